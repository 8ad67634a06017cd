#!/usr/bin/env bash
# guest-image.sh — build and cache the Linux test guest from Debian's packages.
#
# Everything comes from `apt-get download` (Debian's cloud kernel and busybox-static) plus
# the host's lscpu/numactl and their shared libraries (Debian 12 util-linux/numactl, see
# scripts/deps.sh). Outputs, under ${RVMM_CACHE:-<repo>/.cache}/guest/:
#   bzImage            the kernel as Debian ships it (linux-image-6.1.*-cloud-amd64)
#   vmlinux            the uncompressed ELF64 inside it, with a PVH entry note
#   initramfs.cpio.gz  static busybox, guest/initramfs/* (the /init), lscpu, numactl and
#                      the virtio modules (virtio-mmio, -pci, -blk, -net, -balloon and
#                      dependencies)
#   kernel-config      the kernel's .config
#   image.env          the KEY=VALUE lines printed below
#   debs/              the downloaded .deb files
#
# Usage: scripts/guest-image.sh [--print-paths] [--refresh] [--quiet]
#   (default)      build what is missing or stale, then print KEY=VALUE lines on stdout:
#                  KERNEL_PACKAGE, KERNEL_RELEASE, KERNEL_BZIMAGE, KERNEL_VMLINUX,
#                  KERNEL_PVH_ENTRY, INITRAMFS, GUEST_CACHE
#   --print-paths  print those lines without building; exit 2 if the image is not built
#   --refresh      resolve and download the kernel package again (Debian may have a newer one)
#   --quiet        no progress messages on stderr
# With everything cached it only compares a hash of the initramfs inputs and prints.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/scripts/guest-image.sh"
CACHE="${RVMM_CACHE:-$REPO/.cache}"
GUEST="$CACHE/guest"
ENV_FILE="$GUEST/image.env"

KERNEL_META=linux-image-cloud-amd64
# Modules wanted in the initramfs; their dependencies are added from each .ko's modinfo.
MODULES=(virtio_mmio virtio_pci virtio_blk virtio_net virtio_balloon)
# ELF note type XEN_ELFNOTE_PHYS32_ENTRY (xen/include/public/elfnote.h): the PVH entry.
XEN_ELFNOTE_PHYS32_ENTRY=0x00000012

PRINT_ONLY=0
REFRESH=0
QUIET=0
for arg in "$@"; do
    case "$arg" in
        --print-paths) PRINT_ONLY=1 ;;
        --refresh) REFRESH=1 ;;
        --quiet) QUIET=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "guest-image: unknown option '$arg' (expected --print-paths, --refresh, --quiet)" >&2
            exit 64
            ;;
    esac
done

say() { ((QUIET)) || echo "guest-image: $*" >&2; }
die() {
    echo "guest-image: error: $*" >&2
    exit 1
}

# Hash of everything the initramfs is built from (the init files, this script, the kernel
# release and the busybox package), so an edit to guest/initramfs/ triggers a rebuild.
initramfs_inputs_hash() {
    {
        (cd "$REPO/guest/initramfs" && find . -type f | LC_ALL=C sort | xargs sha256sum)
        sha256sum "$SELF" | cut -d' ' -f1
        cat "$GUEST/kernel-release" "$GUEST/busybox-deb" 2>/dev/null || true
    } | sha256sum | cut -d' ' -f1
}

is_current() {
    [[ -s "$ENV_FILE" && -s "$GUEST/bzImage" && -s "$GUEST/vmlinux" && -s "$GUEST/initramfs.cpio.gz" ]] &&
        [[ "$(cat "$GUEST/initramfs.inputs" 2>/dev/null)" == "$(initramfs_inputs_hash)" ]]
}

if ((PRINT_ONLY)); then
    if is_current; then
        cat "$ENV_FILE"
        exit 0
    fi
    echo "guest-image: not built (or stale) under $GUEST; run scripts/guest-image.sh" >&2
    exit 2
fi

mkdir -p "$GUEST/debs"
# One builder at a time (tests may call this in parallel).
exec 9>"$GUEST/.lock"
flock 9

if ((!REFRESH)) && is_current; then
    cat "$ENV_FILE"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb cpio gzip lz4 readelf ldd od sha256sum flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found; run scripts/deps.sh"
done

TMP="$(mktemp -d "$GUEST/.build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

APT_UPDATED=0
# apt_download PKG...: fetch .debs into debs/ (apt-get update once if apt does not know them).
apt_download() {
    local log="$TMP/apt.log"
    if ! (cd "$GUEST/debs" && apt-get download -q "$@") >"$log" 2>&1; then
        if ((APT_UPDATED)); then
            cat "$log" >&2
            die "apt-get download $* failed"
        fi
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -q >"$log" 2>&1 || {
            cat "$log" >&2
            die "apt-get update failed"
        }
        APT_UPDATED=1
        apt_download "$@"
    fi
}

# resolve_kernel: print "name=version" of the real kernel package behind the metapackage.
resolve_kernel() {
    local dep version
    dep="$(apt-cache depends "$KERNEL_META" 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p')"
    if [[ -z "$dep" && $APT_UPDATED == 0 ]]; then
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null 2>&1 || die "apt-get update failed"
        APT_UPDATED=1
        dep="$(apt-cache depends "$KERNEL_META" 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p')"
    fi
    dep="${dep%%$'\n'*}"
    [[ -n "$dep" ]] || die "cannot resolve $KERNEL_META to a linux-image-*-cloud-amd64 package"
    version="$(apt-cache policy "$dep" | sed -n 's/^ *Candidate: //p')"
    [[ -n "$version" && "$version" != "(none)" ]] || die "no candidate version for $dep"
    echo "$dep=$version"
}

# first_file GLOB-RESULT...: print the first argument that exists (nothing if none).
first_file() {
    local f
    for f in "$@"; do
        [[ -e "$f" ]] && { echo "$f"; return; }
    done
    return 0
}

# u32 FILE OFFSET / u8 FILE OFFSET: little-endian integers from a file.
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }

# extract_vmlinux BZIMAGE OUT: decompress the bzImage's payload (boot protocol >= 2.08:
# payload_offset at 0x248 and payload_length at 0x24c, relative to the protected-mode code
# at (setup_sects + 1) * 512, setup_sects at 0x1f1). Debian's 6.1 cloud kernel uses LZ4.
extract_vmlinux() {
    local bz="$1" out="$2" sects off len magic want got
    [[ "$(od -An -c -j $((0x202)) -N4 "$bz" | tr -d ' ')" == HdrS ]] || die "$bz: no HdrS boot header"
    sects="$(u8 "$bz" $((0x1f1)))"
    ((sects)) || sects=4
    off=$(((sects + 1) * 512 + $(u32 "$bz" $((0x248)))))
    len="$(u32 "$bz" $((0x24c)))"
    dd if="$bz" of="$TMP/payload" iflag=skip_bytes,count_bytes bs=1M skip="$off" count="$len" status=none
    magic="$(od -An -tx1 -N4 "$TMP/payload" | tr -d ' ')"
    # The build appends the decompressed size (u32) after the compressed stream.
    want="$(u32 "$TMP/payload" $((len - 4)))"
    case "$magic" in
        02214c18) say "payload: LZ4 (legacy frame), $len bytes"
                  lz4 -dc "$TMP/payload" >"$out" 2>/dev/null || true ;;  # trailing size word → rc 1
        fd377a58) say "payload: xz, $len bytes"
                  xz -dc "$TMP/payload" >"$out" 2>/dev/null || true ;;
        28b52ffd) say "payload: zstd, $len bytes"
                  zstd -dcq "$TMP/payload" >"$out" 2>/dev/null || true ;;
        1f8b*)    say "payload: gzip, $len bytes"
                  gzip -dc "$TMP/payload" >"$out" 2>/dev/null || true ;;
        *) die "$bz: unsupported payload compression (magic $magic)" ;;
    esac
    got="$(stat -c %s "$out")"
    [[ "$got" == "$want" ]] || die "$bz: decompressed $got bytes, header says $want"
}

# pvh_entry VMLINUX: check it is an x86-64 ELF64 and print its PVH entry (hex).
pvh_entry() {
    local elf="$1" hdr entry
    hdr="$(readelf -h "$elf")" || die "$elf: not an ELF file"
    grep -q 'Class: *ELF64' <<<"$hdr" || die "$elf: not ELF64"
    grep -q 'Machine: *Advanced Micro Devices X86-64' <<<"$hdr" || die "$elf: not x86-64"
    entry="$(readelf -n "$elf" | awk -v t="($XEN_ELFNOTE_PHYS32_ENTRY)" '
        $1 == "Xen" && index($0, t) { want = 1; next }
        want && /description data:/ {
            sub(/.*description data: */, "")
            n = split($0, b, " "); v = ""
            for (i = n; i >= 1; i--) v = v b[i]
            print v; exit
        }')"
    [[ -n "$entry" ]] || die "$elf: no XEN_ELFNOTE_PHYS32_ENTRY (PVH) note"
    printf '0x%x\n' "$((16#$entry))"
}

build_kernel() {
    local pkgver pkg ver deb kroot release
    pkgver="$(resolve_kernel)"
    pkg="${pkgver%%=*}"
    ver="${pkgver#*=}"
    deb="$(first_file "$GUEST/debs/${pkg}_"*.deb)"
    if [[ -z "$deb" || "$REFRESH" == 1 ]]; then
        say "downloading $pkg ($ver)"
        rm -f "$GUEST/debs/${pkg}_"*.deb
        apt_download "$pkgver"
        deb="$(first_file "$GUEST/debs/${pkg}_"*.deb)"
        [[ -n "$deb" ]] || die "apt-get download $pkgver left no .deb in $GUEST/debs"
    fi
    kroot="$TMP/kernel"
    dpkg-deb -x "$deb" "$kroot"
    release="$(ls "$kroot/lib/modules")"
    [[ -f "$kroot/boot/vmlinuz-$release" ]] || die "$deb: no /boot/vmlinuz-$release"
    cp "$kroot/boot/vmlinuz-$release" "$TMP/bzImage"
    cp "$kroot/boot/config-$release" "$TMP/kernel-config"
    say "extracting vmlinux from vmlinuz-$release"
    extract_vmlinux "$TMP/bzImage" "$TMP/vmlinux"
    pvh_entry "$TMP/vmlinux" >"$TMP/pvh-entry"
    echo "$release" >"$TMP/release"
    echo "$pkg=$ver" >"$TMP/package"

    # The wanted modules and their dependencies (modinfo "depends=" inside each .ko).
    local mdir="$kroot/lib/modules/$release" out="$GUEST/modules.new" queue=("${MODULES[@]}")
    local -A path_of=() seen=()
    local rel name m deps
    while read -r rel; do
        name="$(basename "$rel" .ko)"
        path_of["${name//-/_}"]="$rel"
    done <"$mdir/modules.order"
    rm -rf "$out"
    mkdir -p "$out"
    : >"$TMP/modules.dep"
    while ((${#queue[@]})); do
        m="${queue[0]}"
        queue=("${queue[@]:1}")
        [[ -z "${seen[$m]:-}" ]] || continue
        seen[$m]=1
        rel="${path_of[$m]:-}"
        [[ -n "$rel" ]] || die "module $m is not in $pkg (built in?)"
        mkdir -p "$out/$(dirname "$rel")"
        cp "$mdir/$rel" "$out/$rel"
        deps="$(tr '\0' '\n' <"$mdir/$rel" | grep -a -m1 '^depends=' || true)"
        deps="${deps#depends=}"
        deps="${deps//,/ }"
        local line="$rel:" d
        for d in $deps; do
            line+=" ${path_of[$d]:-}"
            queue+=("$d")
        done
        echo "$line" >>"$TMP/modules.dep"
    done
    cp "$mdir/modules.builtin" "$mdir/modules.builtin.modinfo" "$out/"
    # modules.dep lists every module with its full dependency closure, as depmod writes it:
    # modprobe loads the list from its end, so every module comes before its dependencies.
    awk -F': *' '
        { dep[$1] = $2; order[NR] = $1 }
        function visit(m,   n, a, i) {   # post-order: load order, dependencies first
            if (m in seen) return
            seen[m] = 1
            n = split(dep[m], a, " ")
            for (i = 1; i <= n; i++) visit(a[i])
            load[++nload] = m
        }
        END {
            for (i = 1; i <= NR; i++) {
                split("", seen); nload = 0
                visit(order[i])
                line = order[i] ":"
                for (j = nload - 1; j >= 1; j--) line = line " " load[j]
                print line
            }
        }
    ' "$TMP/modules.dep" | LC_ALL=C sort >"$out/modules.dep"
    (cd "$out" && find kernel -name '*.ko' | LC_ALL=C sort) >"$out/modules.order"

    rm -rf "$GUEST/modules"
    mv "$out" "$GUEST/modules"
    for f in bzImage vmlinux kernel-config; do mv "$TMP/$f" "$GUEST/$f"; done
    mv "$TMP/pvh-entry" "$GUEST/pvh-entry"
    mv "$TMP/package" "$GUEST/kernel-package"
    mv "$TMP/release" "$GUEST/kernel-release"
    rm -rf "$kroot"
}

# copy_with_libs ROOT BINARY: copy a host binary and the shared libraries ldd lists.
copy_with_libs() {
    local root="$1" bin="$2" lib
    install -D -m 755 "$bin" "$root$bin"
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        [[ -e "$root$lib" ]] || install -D -m 755 "$(readlink -f "$lib")" "$root$lib"
    done
}

build_initramfs() {
    local release root bbdeb
    release="$(cat "$GUEST/kernel-release")"
    bbdeb="$(first_file "$GUEST/debs/busybox-static_"*.deb)"
    if [[ -z "$bbdeb" ]]; then
        say "downloading busybox-static"
        apt_download busybox-static
        bbdeb="$(first_file "$GUEST/debs/busybox-static_"*.deb)"
        [[ -n "$bbdeb" ]] || die "apt-get download busybox-static left no .deb in $GUEST/debs"
    fi
    basename "$bbdeb" >"$GUEST/busybox-deb"
    say "building initramfs"
    root="$TMP/root"
    mkdir -p "$TMP/bb" "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc}
    dpkg-deb -x "$bbdeb" "$TMP/bb"
    install -m 755 "$TMP/bb/bin/busybox" "$root/bin/busybox"
    local applet
    for applet in $("$root/bin/busybox" --list); do
        [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
    done
    cp -a "$REPO/guest/initramfs/." "$root/"
    chmod 755 "$root/init"
    local bin
    for bin in /usr/bin/lscpu /usr/bin/numactl; do
        if [[ -x "$bin" ]]; then
            copy_with_libs "$root" "$bin"
        else
            say "warning: $bin not on this host; the guest will not have it (run scripts/deps.sh)"
        fi
    done
    mkdir -p "$root/lib/modules/$release"
    cp -a "$GUEST/modules/." "$root/lib/modules/$release/"
    # Without CONFIG_DEVTMPFS_MOUNT the kernel wants /dev/console in the image for the first
    # console; /init copes without it (it reopens devtmpfs's console), so only root adds it.
    if [[ "$(id -u)" == 0 ]]; then
        mknod -m 600 "$root/dev/console" c 5 1
    fi
    find "$root" -exec touch -h -d @0 {} +
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9 -n >"$TMP/initramfs.cpio.gz"
    mv "$TMP/initramfs.cpio.gz" "$GUEST/initramfs.cpio.gz"
}

# modules_complete: every module in MODULES is in the cached modules/ (a cache built before
# one was added to the list is rebuilt).
modules_complete() {
    local m
    for m in "${MODULES[@]}"; do
        grep -q "/$m\.ko:" "$GUEST/modules/modules.dep" 2>/dev/null || return 1
    done
}

if ((REFRESH)) || [[ ! -s "$GUEST/bzImage" || ! -s "$GUEST/vmlinux" || ! -s "$GUEST/pvh-entry" ||
    ! -s "$GUEST/kernel-release" || ! -d "$GUEST/modules" ]] || ! modules_complete; then
    build_kernel
fi
build_initramfs
initramfs_inputs_hash >"$GUEST/initramfs.inputs"

cat >"$ENV_FILE" <<EOF
KERNEL_PACKAGE=$(cat "$GUEST/kernel-package")
KERNEL_RELEASE=$(cat "$GUEST/kernel-release")
KERNEL_BZIMAGE=$GUEST/bzImage
KERNEL_VMLINUX=$GUEST/vmlinux
KERNEL_PVH_ENTRY=$(cat "$GUEST/pvh-entry")
INITRAMFS=$GUEST/initramfs.cpio.gz
GUEST_CACHE=$GUEST
EOF
cat "$ENV_FILE"
