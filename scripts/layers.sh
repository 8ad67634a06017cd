#!/usr/bin/env bash
# layers.sh — checks that the modules of crates/vmm import only the layers below them
# (docs/architecture.md). The CPU crate needs no check: Cargo refuses a dependency cycle.
# Prints every forbidden import and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/../crates/vmm/src"

# module: the modules it may import (crate::vcpu is machine::vcpu under its older name).
declare -A ALLOWED=(
    [util]=""
    [sandbox]=""
    [config]="util"
    [host]="config util"
    [memory]="config host sandbox util"
    [devices]="config memory sandbox"
    [boot]="memory config util"
    [machine]="boot config devices host memory sandbox util"
    [probe]="boot devices memory util config"
    [monitor]="host machine util"
    [snapshot]="devices machine memory"
    [control]="config host machine monitor sandbox util"
    [vmm]="boot config control devices host machine memory monitor probe sandbox snapshot util"
    [fuzz_targets]="boot config control devices host machine memory monitor probe util"
)

bad=0
for module in "${!ALLOWED[@]}"; do
    while IFS= read -r hit; do
        file="${hit%%:*}"
        used="$(grep -oE 'crate::[a-z_]+' <<<"${hit#*:}" | head -1 | sed 's/crate:://')"
        [[ "$used" == vcpu ]] && used=machine
        [[ "$used" == "$module" ]] && continue
        [[ -z "${ALLOWED[$used]+x}" ]] && continue
        if [[ " ${ALLOWED[$module]} " != *" $used "* ]]; then
            echo "layers: $file imports crate::$used, which $module/ may not (allowed: ${ALLOWED[$module]:-nothing})"
            bad=1
        fi
    done < <(grep -rnoE 'crate::[a-z_]+' "$module" | sed -E 's/^([^:]+):[0-9]+:/\1:/' | sort -u)
done
if [[ $bad == 0 ]]; then
    echo "layers: every module of crates/vmm imports only the layers below it"
fi
exit $bad
