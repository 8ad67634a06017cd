# rvmm Linux test guest, virtio path: sourced by /init when the kernel command line has
# rvmm.test=virtio (tests/linux_virtio.rs), after which /init powers off.
#
# One line per step, each starting with "RVMM-VIRTIO " (on failure: "RVMM-VIRTIO <step>
# failed ..."), for a guest booted with a --disk holding an ext4 file system with the file
# /rvmm.txt, a --net tap=… whose host side is 10.99.0.1/24, and a --balloon:
#   modules ok                       virtio_mmio, virtio_blk, virtio_net, virtio_balloon loaded
#   disk ok content=TEXT             /dev/vda mounted; TEXT = first line of /rvmm.txt; the guest
#                                    then writes /from-guest.txt ("written by the guest")
#   ping ok                          eth0 up as 10.99.0.2/24, one ping to 10.99.0.1 answered
#   balloon before memtotal_kb=N     MemTotal with the balloon empty ...
#   balloon after memtotal_kb=N      ... and once it fell by rvmm.balloon_mb=M MiB (60 s at most)
#   done
# (virtio_balloon without DEFLATE_ON_OOM takes inflated pages out of MemTotal.)

V="RVMM-VIRTIO"

vfail() {
    echo "$V $1 failed${2:+ $2}"
}

memtotal_kb() {
    awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo
}

ok=1
for m in virtio_mmio virtio_blk virtio_net virtio_balloon; do
    out=$(modprobe "$m" 2>&1) || { vfail modules "$m: $out"; ok=0; }
done
[ $ok = 1 ] && echo "$V modules ok"

# The devices appear asynchronously after the driver binds: wait for them (10 s at most).
i=0
while { [ ! -b /dev/vda ] || [ ! -e /sys/class/net/eth0 ]; } && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done

mkdir -p /mnt
if ! out=$(mount -t ext4 /dev/vda /mnt 2>&1); then
    vfail disk "mount: $out"
elif ! content=$(head -n 1 /mnt/rvmm.txt 2>&1); then
    vfail disk "read: $content"
    umount /mnt
else
    echo "written by the guest" >/mnt/from-guest.txt
    sync
    umount /mnt
    echo "$V disk ok content=$content"
fi

if ! out=$(ip link set eth0 up 2>&1 && ip addr add 10.99.0.2/24 dev eth0 2>&1); then
    vfail ping "eth0: $out"
elif out=$(ping -c 1 -W 10 10.99.0.1 2>&1); then
    echo "$V ping ok"
else
    vfail ping "$(echo "$out" | tr '\n' ' ')"
fi

want_mb=$(cmdline_get rvmm.balloon_mb || echo 64)
before=$(memtotal_kb)
echo "$V balloon before memtotal_kb=$before"
i=0
while [ $((before - $(memtotal_kb))) -lt $((want_mb * 1024)) ] && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
after=$(memtotal_kb)
if [ $((before - after)) -ge $((want_mb * 1024)) ]; then
    echo "$V balloon after memtotal_kb=$after"
else
    vfail balloon "memtotal_kb=$after after 60 s, wanted $want_mb MiB less"
fi
echo "$V done"
