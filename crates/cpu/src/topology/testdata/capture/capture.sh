#!/bin/bash
# Capture the CPUID tables QEMU hands KVM_SET_CPUID2 for every vCPU, without a guest.
# usage: capture.sh OUT.txt [qemu options...]   e.g. capture.sh out.txt -smp 4,cores=2,threads=2 -cpu EPYC
# Output: "vcpu <KVM vcpu id>" then "function index flags eax ebx ecx edx" (hex) per entry.
# The golden files beside this directory are these dumps trimmed to the topology leaves.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "$1"); shift
shim=$(mktemp -d)/cpuid_shim.so
gcc -shared -fPIC -O2 -o "$shim" "$here/cpuid_shim.c" -ldl
rm -f "$out"
echo '{"execute":"qmp_capabilities"}{"execute":"quit"}' |
    CPUID_DUMP="$out" LD_PRELOAD="$shim" timeout 30 \
    qemu-system-x86_64 -M pc -accel kvm -display none -nodefaults -S -qmp stdio "$@" >/dev/null
echo "$(grep -c '^vcpu' "$out") vCPU tables in $out"
