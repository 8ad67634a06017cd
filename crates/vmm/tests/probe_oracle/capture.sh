#!/bin/bash
# Captures one oracle fixture: boots Debian 12's Linux 6.1 cloud kernel under QEMU (TCG) with
# a busybox initramfs running dumper.c, and writes the PROBE block plus the kernel's answers.
#   capture.sh NAME QEMU-ARGS...      e.g. capture.sh intel-2s -cpu qemu64,vendor=GenuineIntel -smp 4,sockets=2
# Needs qemu-system-x86, busybox-static, gcc, libc6-dev; downloads the kernel .deb with apt-get.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=$1; shift
work=${WORK:-/tmp/probe-oracle}
mkdir -p "$work/ird/bin" "$work/ird/proc" "$work/ird/sys"
cd "$work"
if ! ls root/boot/vmlinuz-* >/dev/null 2>&1; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-6/{print $2}')
    apt-get download "$pkg" && dpkg-deb -x "$pkg"_*.deb root
fi
kernel=$(ls root/boot/vmlinuz-* | head -1)
gcc -O1 -static -o ird/dumper "$here/dumper.c"
cp /bin/busybox ird/bin/
for a in sh mount grep sed poweroff; do ln -sf busybox "ird/bin/$a"; done
cat > ird/init <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
/dumper
grep -m1 '^flags' /proc/cpuinfo | sed 's/^/CPUINFO /'
grep -E '^(cpu family|model\s|model name|stepping|cpuid level)' /proc/cpuinfo | head -5
echo DUMPER-DONE
poweroff -f
INIT
chmod +x ird/init
(cd ird && find . | cpio -o -H newc 2>/dev/null | gzip) > initrd.gz
timeout 300 qemu-system-x86_64 -accel tcg -nographic -no-reboot -kernel "$kernel" -initrd initrd.gz \
    -append "console=ttyS0 quiet panic=-1 tsc=reliable" "$@" | tr -d '\r' > "$name.log"
{
    echo "# Captured with QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}') (TCG) and $(basename "$kernel"):"
    echo "#   qemu-system-x86_64 -accel tcg $*"
    echo "# dumper.c printed the PROBE block, then the kernel's answers (SYS, NODE, /proc/cpuinfo)."
    awk '/PROBE-BEGIN/{p=1} p' "$name.log" |
        awk '!/^CPUID cpu=[0-9]+ leaf=0000000d sub=(0000000[2-9a-f]|000000[1-3][0-9a-f]) eax=00000000 ebx=00000000 ecx=00000000 edx=00000000$/'
} > "$here/$name.txt"
echo "wrote $here/$name.txt"
