//! Issue 15, virtio-net: the probe guest's bare-metal virtio-net driver (`mode=virtio`) reads
//! its MAC, asks the host for its MAC with ARP and pings it, over a tap in a network
//! namespace of its own whose host side is the kernel (10.99.0.1/24 on the tap). Under rvmm
//! (`--net tap=T`) and under QEMU 7.2 microvm (`-device virtio-net-device`) it prints the
//! same lines; the host sees it (the guest's MAC for 10.99.0.2 in the namespace's neighbour
//! table, the tap's packet counters). A hostile guest (a frame outside RAM, a receive buffer
//! smaller than the header, a looping chain) leaves the device working. A tap the launcher
//! opened and left open (`--net fd=N`, and `-netdev tap,fd=N` through the QEMU personality)
//! carries the same frames; a descriptor that is not open or not a tap is one error line.
//! Needs root (network namespaces, taps) and /dev/kvm.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::netns::NetNs;
use common::*;

const GUEST_MAC: &str = "52:54:00:12:34:56";
const OTHER_MAC: &str = "02:52:56:00:00:07";

/// Checks the host side of one ARP and ping exchange since `before` (`counters()` then):
/// the tap received the ARP and echo requests and sent both replies, and the neighbour
/// table (`events`, from `monitor()`) learnt the guest's MAC.
fn assert_saw_the_guest(n: &NetNs, before: (u64, u64), events: &str) {
    let after = n.counters();
    assert!(after.0 >= before.0 + 2, "tap rx {before:?} -> {after:?}");
    assert!(after.1 >= before.1 + 2, "tap tx {before:?} -> {after:?}");
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("10.99.0.2 ") && l.contains(&format!("lladdr {GUEST_MAC}"))),
        "the host learnt the guest's MAC: {events}"
    );
}

fn stop(mut c: Child) -> String {
    let _ = c.kill();
    let mut s = String::new();
    if let Some(mut out) = c.stdout.take() {
        let _ = out.read_to_string(&mut s);
    }
    let _ = c.wait();
    s
}

fn root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(test, "needs root for a network namespace and a tap");
    false
}

fn virtio_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("PROBE-VIRTIO"))
        .map(str::to_string)
        .collect()
}

fn under_rvmm(n: &NetNs, elf: &Path, net: &str, append: &str) -> Vec<String> {
    let mut c = n.exec(Path::new(env!("CARGO_BIN_EXE_rvmm")));
    c.args(["run", "--kernel"])
        .arg(elf)
        .args(["--append", append, "--net", net]);
    let out = run_with_timeout(c, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rvmm failed: {stdout}\n{stderr}");
    virtio_lines(&out.stdout)
}

fn under_qemu(n: &NetNs, elf: &Path, mac: &str) -> Vec<String> {
    let mut q = n.exec(Path::new("/usr/bin/qemu-system-x86_64"));
    q.args([
        "-M",
        MICROVM,
        "-nodefaults",
        "-no-user-config",
        "-enable-kvm",
    ])
    .args(["-m", "128", "-kernel"])
    .arg(elf)
    .args(["-append", "mode=virtio"])
    .args(["-global", "virtio-mmio.force-legacy=false"])
    .args([
        "-netdev",
        &format!("tap,id=n0,ifname={},script=no,downscript=no", n.tap),
        "-device",
        &format!("virtio-net-device,netdev=n0,mac={mac}"),
    ])
    .args(["-serial", "stdio", "-display", "none"]);
    let out = run_with_timeout(q, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "qemu failed: {stdout}\n{stderr}");
    virtio_lines(&out.stdout)
}

fn expected(mac: &str, host_mac: &str) -> Vec<String> {
    vec![
        format!("PROBE-VIRTIO dev=0 id=1 mac={mac} status=1"),
        format!("PROBE-VIRTIO dev=0 arp reply mac={host_mac}"),
        "PROBE-VIRTIO dev=0 ping reply seq=1 match=yes".to_string(),
        "PROBE-VIRTIO-END devices=1".to_string(),
    ]
}

#[test]
fn arp_and_ping_the_host_as_under_qemu() {
    let test = "arp_and_ping_the_host_as_under_qemu";
    if !kvm_available(test) || !root(test) {
        return;
    }
    let dir = tempdir("vnet");
    let elf = probe_elf(&dir);
    let n = NetNs::new("vnet");
    let host_mac = n.tap_mac();
    let before = n.counters();
    let mon = n.monitor();
    let lines = under_rvmm(&n, &elf, &format!("tap={}", n.tap), "mode=virtio");
    let events = stop(mon);
    assert_eq!(lines, expected(GUEST_MAC, &host_mac));
    assert_saw_the_guest(&n, before, &events);

    // The oracle, with another MAC given both ways.
    let ours = under_rvmm(
        &n,
        &elf,
        &format!("tap={},mac={OTHER_MAC}", n.tap),
        "mode=virtio",
    );
    assert_eq!(ours, expected(OTHER_MAC, &host_mac));
    assert_eq!(under_qemu(&n, &elf, OTHER_MAC), ours);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_hostile_guest_leaves_the_nic_working() {
    let test = "a_hostile_guest_leaves_the_nic_working";
    if !kvm_available(test) || !root(test) {
        return;
    }
    let dir = tempdir("vnet-hostile");
    let elf = probe_elf(&dir);
    let n = NetNs::new("vnet-h");
    let host_mac = n.tap_mac();
    let lines = under_rvmm(
        &n,
        &elf,
        &format!("tap={}", n.tap),
        "mode=virtio virtio=hostile",
    );
    let mut want = expected(GUEST_MAC, &host_mac);
    want.splice(
        1..1,
        [
            "PROBE-VIRTIO dev=0 hostile tx-outside returned=yes len=0".to_string(),
            "PROBE-VIRTIO dev=0 hostile rx-small returned=yes len=0".to_string(),
            "PROBE-VIRTIO dev=0 hostile tx-loop returned=yes len=0".to_string(),
        ],
    );
    assert_eq!(lines, want);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_created_tap_is_named_at_start() {
    let test = "a_created_tap_is_named_at_start";
    if !kvm_available(test) || !root(test) {
        return;
    }
    let n = NetNs::new("vnet-c");
    let mut c = n.exec(Path::new(env!("CARGO_BIN_EXE_rvmm")));
    c.args(["run", "--append", "mode=hello", "--net", "tap"]);
    let out = run_with_timeout(c, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "--net tap: NIC 0 ({GUEST_MAC}) is on tap tap0, created by rvmm and gone when it \
             exits"
        )),
        "{stderr}"
    );
    assert!(
        !n.ip(&["link", "show"]).contains(": tap0:"),
        "the created tap is gone"
    );
}

#[test]
fn a_missing_tap_is_one_error_line() {
    let test = "a_missing_tap_is_one_error_line";
    if !root(test) {
        return;
    }
    let n = NetNs::new("vnet-m");
    let mut c = n.exec(Path::new(env!("CARGO_BIN_EXE_rvmm")));
    c.args(["run", "--append", "mode=hello", "--net", "tap=nosuchtap"]);
    let out = run_with_timeout(c, Duration::from_secs(60));
    let (code, err) = failed_cleanly(&out, "rvmm on a missing tap");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "--net tap=nosuchtap: no tap device named nosuchtap: create it with `ip tuntap add \
             dev nosuchtap mode tap`"
        ),
        "{err}"
    );
}

/// `/dev/net/tun` attached to `n`'s tap as libvirt opens one for a guest: TUNSETIFF with
/// IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, from a thread that joined the namespace (a tap lives
/// in its opener's namespace). The descriptor is close-on-exec here; [`inherit`] clears that
/// in the child only, so tests running beside this one never inherit it.
fn open_tap_in(n: &NetNs) -> OwnedFd {
    let ns = format!("/run/netns/{}", n.ns);
    let name = n.tap.clone();
    std::thread::spawn(move || {
        let ns = File::open(&ns).expect("netns");
        // SAFETY: setns on an open namespace file; it moves this thread only.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let tun = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("/dev/net/tun");
        // struct ifreq: the name, then the flags (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR).
        let mut req = [0u8; 40];
        req[..name.len()].copy_from_slice(name.as_bytes());
        req[16..18].copy_from_slice(&(0x0002u16 | 0x1000 | 0x4000).to_ne_bytes());
        const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
        // SAFETY: TUNSETIFF reads and writes the 40-byte ifreq, which outlives the call.
        let r = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, req.as_mut_ptr()) };
        assert_eq!(r, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        OwnedFd::from(tun)
    })
    .join()
    .expect("the tap opener")
}

/// `c` with descriptor `fd` left open across exec in the child (as a launcher passes it).
fn inherit(c: &mut Command, fd: i32) {
    // SAFETY: the hook runs in the forked child before exec and only calls fcntl, which is
    // async-signal-safe; `fd` is open in the parent for as long as `c` is spawned.
    unsafe {
        c.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn an_inherited_tap_descriptor_carries_frames() {
    let test = "an_inherited_tap_descriptor_carries_frames";
    if !kvm_available(test) || !root(test) {
        return;
    }
    let dir = tempdir("vnet-fd");
    let elf = probe_elf(&dir);
    let n = NetNs::new("vnet-fd");
    let host_mac = n.tap_mac();
    let tap = open_tap_in(&n);
    let fd = tap.as_raw_fd();
    let before = n.counters();
    let mon = n.monitor();

    // rvmm in the test's own namespace: the descriptor alone reaches the namespace's tap.
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvmm"));
    c.stdin(Stdio::null())
        .args(["run", "--kernel"])
        .arg(&elf)
        .args(["--append", "mode=virtio", "--net", &format!("fd={fd}")]);
    inherit(&mut c, fd);
    let out = run_with_timeout(c, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "rvmm --net fd={fd}: {stdout}\n{stderr}"
    );
    let events = stop(mon);
    assert_eq!(virtio_lines(&out.stdout), expected(GUEST_MAC, &host_mac));
    assert_saw_the_guest(&n, before, &events);

    // The same descriptor (still the test's) through the QEMU personality, another MAC.
    let qemu = dir.join("qemu-system-x86_64");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rvmm"), &qemu).unwrap();
    let mut q = Command::new(&qemu);
    q.stdin(Stdio::null())
        .env("XDG_RUNTIME_DIR", &dir)
        .args([
            "-M",
            "microvm",
            "-enable-kvm",
            "-nodefaults",
            "-no-user-config",
        ])
        .args(["-m", "128", "-kernel"])
        .arg(&elf)
        .args(["-append", "mode=virtio"])
        .args(["-netdev", &format!("tap,id=n0,fd={fd}"), "-device"])
        .arg(format!("virtio-net-device,netdev=n0,mac={OTHER_MAC}"))
        .args(["-serial", "stdio", "-display", "none"]);
    inherit(&mut q, fd);
    let out = run_with_timeout(q, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "-netdev tap,fd={fd}: {stdout}\n{stderr}"
    );
    assert_eq!(virtio_lines(&out.stdout), expected(OTHER_MAC, &host_mac));
    drop(tap);
    let _ = std::fs::remove_dir_all(dir);
}

/// `--net fd=N` on a descriptor that is not open, one that is a regular file and one of
/// stdio: one error line each, naming the option, the value and the rule.
#[test]
fn a_descriptor_that_is_not_a_tap_is_one_error_line() {
    let test = "a_descriptor_that_is_not_a_tap_is_one_error_line";
    if !kvm_available(test) {
        return;
    }
    let run = |fd: i32, keep: Option<i32>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rvmm"));
        c.stdin(Stdio::null()).args([
            "run",
            "--append",
            "mode=hello",
            "--net",
            &format!("fd={fd}"),
        ]);
        if let Some(k) = keep {
            inherit(&mut c, k);
        }
        let out = run_with_timeout(c, Duration::from_secs(60));
        let (code, err) = failed_cleanly(&out, &format!("rvmm --net fd={fd}"));
        assert_eq!(code, 1, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    // std opens close-on-exec, so nothing of this test's is open at 97 in the child.
    let err = run(97, None);
    assert!(
        err.contains(
            "--net fd=97: not an open file descriptor (the launcher must leave the tap open, \
             without close-on-exec, when it starts rvmm)"
        ),
        "{err}"
    );
    let dir = tempdir("vnet-fd-file");
    let file = File::create(dir.join("not-a-tap")).unwrap();
    let fd = file.as_raw_fd();
    let err = run(fd, Some(fd));
    assert!(
        err.contains(&format!(
            "--net fd={fd}: not a TAP device (TUNGETIFF: Inappropriate ioctl for device"
        )),
        "{err}"
    );
    let err = run(2, None);
    assert!(
        err.contains("--net fd=2: fd=0..2 are stdio; the tap's descriptor is 3 or above"),
        "{err}"
    );
    drop(file);
    let _ = std::fs::remove_dir_all(dir);
}
