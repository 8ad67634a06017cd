//! Issue 15 on Linux: the Debian cloud kernel's own virtio_mmio, virtio_blk, virtio_net and
//! virtio_balloon drivers on rvmm's devices. The guest (`rvmm.test=virtio`, see
//! guest/initramfs/rvmm-virtio.sh) mounts an ext4 disk the test made with `mkfs.ext4 -d`,
//! reads a file and writes one, pings the host over a tap in a network namespace of its own
//! (10.99.0.1/24 on the tap), and sees MemTotal fall by the 64 MiB QMP's `balloon` takes.
//! The host then finds the guest's file in the image (debugfs) and `query-balloon` reports the
//! target. Needs hardware-backed KVM: on kvm-pvm (detected as in linux_boot.rs, by
//! /sys/module/kvm_pvm) Linux stops in early boot with KVM_EXIT_INTERNAL_ERROR before it loads
//! modules, so the test is skipped with that reason. Needs root (namespace, tap).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::vm::BackgroundVm;
use common::*;
use serde_json::json;

const RAM: u64 = 512 << 20;
const INFLATE_MB: u64 = 64;
const TOKEN: &str = "rvmm-linux-virtio-disk-7f3a";

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace with one tap (10.99.0.1/24, up); deleted on drop, tap and all.
/// (The minimal part of tests/virtio_net.rs's guard.)
struct NetNs {
    ns: String,
}

impl NetNs {
    fn new(tag: &str) -> NetNs {
        let ns = format!("rvmm-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        run_ok(Command::new("ip").args(["netns", "add", &ns]));
        let n = NetNs { ns };
        for args in [
            &["tuntap", "add", "dev", "rvtap0", "mode", "tap"][..],
            &["addr", "add", "10.99.0.1/24", "dev", "rvtap0"],
            &["link", "set", "rvtap0", "up"],
        ] {
            run_ok(Command::new("ip").args(["-n", &n.ns]).args(args));
        }
        n
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// A 32 MiB ext4 image holding /rvmm.txt (TOKEN), made with `mkfs.ext4 -d`.
fn make_disk(dir: &Path) -> std::path::PathBuf {
    let fs = dir.join("fs");
    std::fs::create_dir_all(&fs).unwrap();
    std::fs::write(fs.join("rvmm.txt"), format!("{TOKEN}\n")).unwrap();
    let img = dir.join("disk.img");
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&fs)
            .arg(&img)
            .arg("32M"),
    );
    img
}

#[test]
fn linux_mounts_the_disk_pings_over_the_tap_and_inflates_the_balloon() {
    let name = "linux_mounts_the_disk_pings_over_the_tap_and_inflates_the_balloon";
    if !kvm_available(name) {
        return;
    }
    if is_kvm_pvm() {
        skip(
            name,
            "/dev/kvm is kvm-pvm (software nested virtualization, /sys/module/kvm_pvm): Linux \
             stops in early boot with KVM_EXIT_INTERNAL_ERROR, before it loads the virtio drivers",
        );
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip(name, "needs root for a network namespace and a tap");
        return;
    }
    if Command::new("mkfs.ext4")
        .arg("-V")
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        skip(
            name,
            "mkfs.ext4 is missing (e2fsprogs; run scripts/deps.sh)",
        );
        return;
    }
    let img = guest_image();
    let dir = vm::test_dir("linux-virtio-disk");
    let disk = make_disk(&dir);
    let n = NetNs::new("lvirtio");

    let vmdir = vm::test_dir("linux-virtio");
    let socket = vmdir.join("vm.qmp");
    let append = format!("console=ttyS0 quiet rvmm.test=virtio rvmm.balloon_mb={INFLATE_MB}");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &n.ns])
        .arg(env!("CARGO_BIN_EXE_rvmm"))
        .args(["run", "--smp", "1", "-m", "512M", "--kernel"])
        .arg(&img.bzimage)
        .arg("--initrd")
        .arg(&img.initramfs)
        .args(["--append", &append, "--disk"])
        .arg(format!("path={}", disk.display()))
        .args([
            "--net",
            "tap=rvtap0",
            "--balloon",
            "on,deflate-on-oom=off",
            "--qmp",
        ])
        .arg(format!("unix:{}", socket.display()))
        .stdin(Stdio::null());
    let mut vm = BackgroundVm::spawn(cmd, vmdir, socket);

    vm.wait_line_within("RVMM-VIRTIO balloon before", Duration::from_secs(180));
    let target = RAM - (INFLATE_MB << 20);
    let mut c = vm.client();
    c.ok("balloon", Some(json!({ "value": target })));
    let start = Instant::now();
    loop {
        let actual = c.ok("query-balloon", None)["actual"].as_u64().unwrap();
        if actual == target {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "query-balloon: actual={actual}, target {target}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(c);
    let out = vm.wait(Duration::from_secs(120));
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "guest did not power off cleanly: {stderr}\n{stdout}"
    );
    for line in [
        "RVMM-VIRTIO modules ok".to_string(),
        format!("RVMM-VIRTIO disk ok content={TOKEN}"),
        "RVMM-VIRTIO ping ok".to_string(),
        "RVMM-VIRTIO balloon after memtotal_kb=".to_string(),
        "RVMM-VIRTIO done".to_string(),
    ] {
        assert!(stdout.contains(&line), "no {line:?}:\n{stdout}\n{stderr}");
    }
    assert!(!stdout.contains(" failed"), "{stdout}");
    // The guest's write reached the image file.
    let written = run_ok(
        Command::new("debugfs")
            .args(["-R", "cat /from-guest.txt"])
            .arg(&disk)
            .stderr(Stdio::null()),
    );
    assert_eq!(written, "written by the guest\n");
    let _ = std::fs::remove_dir_all(&dir);
}
