#!/usr/bin/env bash
# deps.sh — install what rvmm's tests need, idempotently and without prompts.
#
# Debian packages: QEMU (the oracle), iasl, a static busybox (guest initramfs), virsh and
# xmllint (virt-xml-validate checks the test domains against libvirt's schema),
# cpio/xz/zstd/lz4 (guest image build), numactl and util-linux (host topology), python3-venv,
# tmux (`rvmm top` is tested in a real terminal).
# Python: a venv at ${RVMM_CACHE:-<repo>/.cache}/venv holding the `qemu.qmp` package and
# `prometheus_client` (its exposition-format parser checks the --metrics endpoint).
#
# Quick when everything is present: packages are checked with dpkg/command -v first,
# `apt-get update` runs at most once and only when something must be installed.
# Prints one line per thing it installs. Works as root with no stdin (CI).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${RVMM_CACHE:-$REPO/.cache}"
VENV="$CACHE/venv"
export DEBIAN_FRONTEND=noninteractive

# package:command pairs; the command (if any) must be on PATH too.
PKGS=(
    "qemu-system-x86:qemu-system-x86_64"
    "acpica-tools:iasl"
    "busybox-static:"
    "libvirt-clients:virsh"
    "libxml2-utils:xmllint"
    "cpio:cpio"
    "xz-utils:xz"
    "zstd:zstd"
    "lz4:lz4"
    "numactl:numactl"
    "util-linux:lscpu"
    "python3-venv:"
    "binutils:readelf"
    "tmux:tmux"
)

have_pkg() {
    local pkg="$1" cmd="$2"
    if [[ -n "$cmd" ]] && ! command -v "$cmd" >/dev/null 2>&1; then
        return 1
    fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'
}

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    SUDO=(sudo -n)
fi

missing=()
for entry in "${PKGS[@]}"; do
    pkg="${entry%%:*}"
    cmd="${entry#*:}"
    have_pkg "$pkg" "$cmd" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    for pkg in "${missing[@]}"; do
        echo "deps: installing Debian package $pkg"
    done
    # Wait for another apt/dpkg (e.g. a parallel job) instead of failing on its lock.
    APT=("${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 -y -q)
    log="$(mktemp)"
    if ! { "${APT[@]}" update && "${APT[@]}" install --no-install-recommends "${missing[@]}"; } \
        </dev/null >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        echo "deps: apt-get failed installing: ${missing[*]}" >&2
        exit 1
    fi
    rm -f "$log"
fi

# The venv uses whichever python3 is first on PATH; it needs the venv and ensurepip modules
# (Debian's python3-venv provides them for the system python).
PY_PACKAGES=(qemu.qmp prometheus_client)
if ! "$VENV/bin/python" -c 'import qemu.qmp, prometheus_client.parser' >/dev/null 2>&1; then
    mkdir -p "$CACHE"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "deps: creating Python venv $VENV"
        python3 -m venv "$VENV"
    fi
    echo "deps: installing PyPI packages ${PY_PACKAGES[*]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" </dev/null
fi
