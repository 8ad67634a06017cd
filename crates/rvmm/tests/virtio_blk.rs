//! Issue 15, virtio-blk: the probe guest's bare-metal virtio-blk driver (`mode=virtio`)
//! writes a pattern to sectors 1..4, reads it back, flushes and reads the serial. Under rvmm
//! (`--disk`) and under QEMU 7.2 microvm (`-device virtio-blk-device`) it prints the same
//! lines, and the image each leaves behind is byte-identical and holds the pattern. A
//! read-only disk refuses the write in both and stays untouched; a second rvmm on an image in
//! use is refused; bad `--disk` values fail with the option's message. `cache=none` (O_DIRECT)
//! gives the same lines and image as QEMU's `cache=none`; `virtio=discard` discards and
//! write-zeroes the pattern's sectors in both, the images agree, and the host file's
//! allocated blocks drop.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const IMAGE_SIZE: usize = 1 << 20;
/// What the image holds before a run (so untouched sectors are compared too).
const FILL: u8 = 0x5a;
const SERIAL: &str = "RVMM-DISK-7";

/// The guest's pattern (virtio.c `pattern()`) for sectors 1..4.
fn pattern() -> Vec<u8> {
    (0..2048u32)
        .map(|i| (i * 7 + (i / 512) * 31 + 1) as u8)
        .collect()
}

fn image(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, vec![FILL; IMAGE_SIZE]).unwrap();
    p
}

fn virtio_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("PROBE-VIRTIO"))
        .map(str::to_string)
        .collect()
}

fn under_rvmm(elf: &Path, img: &Path, readonly: bool) -> Vec<String> {
    let ro = if readonly { ",readonly=on" } else { "" };
    rvmm_with(elf, img, ro, "mode=virtio")
}

/// rvmm on `img` with `extra` disk options and guest command line `append`.
fn rvmm_with(elf: &Path, img: &Path, extra: &str, append: &str) -> Vec<String> {
    let mut c = rvmm();
    c.args(["run", "--kernel"])
        .arg(elf)
        .args(["--append", append, "--disk"])
        .arg(format!("path={}{extra},serial={SERIAL}", img.display()));
    let out = run_with_timeout(c, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rvmm failed: {stdout}\n{stderr}");
    virtio_lines(&out.stdout)
}

fn under_qemu(elf: &Path, img: &Path, readonly: bool) -> Vec<String> {
    let ro = if readonly { ",readonly=on" } else { "" };
    qemu_with(elf, img, ro, "mode=virtio")
}

/// QEMU microvm on `img` with `extra` -drive options and guest command line `append`.
fn qemu_with(elf: &Path, img: &Path, extra: &str, append: &str) -> Vec<String> {
    let mut q = qemu();
    q.args([
        "-M",
        MICROVM,
        "-nodefaults",
        "-no-user-config",
        "-enable-kvm",
    ])
    .args(["-m", "128", "-kernel"])
    .arg(elf)
    .args(["-append", append])
    // microvm's transports are legacy (version 1) unless told otherwise.
    .args(["-global", "virtio-mmio.force-legacy=false", "-drive"])
    .arg(format!(
        "if=none,id=d0,format=raw,file={}{extra}",
        img.display()
    ))
    .args([
        "-device",
        &format!("virtio-blk-device,drive=d0,serial={SERIAL}"),
    ])
    .args(["-serial", "stdio", "-display", "none"]);
    let out = run_with_timeout(q, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "qemu failed: {stdout}\n{stderr}");
    virtio_lines(&out.stdout)
}

#[test]
fn same_lines_and_same_image_as_qemu() {
    if !kvm_available("same_lines_and_same_image_as_qemu") {
        return;
    }
    let dir = tempdir("vblk");
    let elf = probe_elf(&dir);
    let (ours, theirs) = (image(&dir, "rvmm.img"), image(&dir, "qemu.img"));
    let lines = under_rvmm(&elf, &ours, false);
    assert_eq!(
        lines,
        [
            "PROBE-VIRTIO dev=0 id=2 capacity=2048 ro=0 flush=1",
            "PROBE-VIRTIO dev=0 write status=0",
            "PROBE-VIRTIO dev=0 read status=0 match=yes",
            "PROBE-VIRTIO dev=0 flush status=0",
            &format!("PROBE-VIRTIO dev=0 getid status=0 serial={SERIAL}"),
            "PROBE-VIRTIO-END devices=1",
        ]
    );
    assert_eq!(under_qemu(&elf, &theirs, false), lines);
    let (a, b) = (
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap(),
    );
    assert!(a == b, "the images rvmm and QEMU left differ");
    assert_eq!(&a[512..2560], &pattern()[..], "the image holds the pattern");
    assert!(a[..512].iter().chain(&a[2560..]).all(|&x| x == FILL));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn readonly_disk_refuses_writes_in_both() {
    if !kvm_available("readonly_disk_refuses_writes_in_both") {
        return;
    }
    let dir = tempdir("vblk-ro");
    let elf = probe_elf(&dir);
    let img = image(&dir, "ro.img");
    let lines = under_rvmm(&elf, &img, true);
    assert_eq!(
        lines[0],
        "PROBE-VIRTIO dev=0 id=2 capacity=2048 ro=1 flush=1"
    );
    assert_eq!(
        lines[1], "PROBE-VIRTIO dev=0 write status=1",
        "VIRTIO_BLK_S_IOERR"
    );
    assert_eq!(lines[2], "PROBE-VIRTIO dev=0 read status=0 match=no");
    assert_eq!(under_qemu(&elf, &img, true), lines);
    assert!(
        std::fs::read(&img).unwrap().iter().all(|&x| x == FILL),
        "image untouched"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_vm_on_the_same_image_is_refused() {
    if !kvm_available("a_second_vm_on_the_same_image_is_refused") {
        return;
    }
    let dir = tempdir("vblk-lock");
    let elf = probe_elf(&dir);
    let img = image(&dir, "shared.img");
    let disk = format!("path={}", img.display());
    let mut first = rvmm()
        .args(["run", "--kernel"])
        .arg(&elf)
        .args(["--append", "mode=halt", "--disk", &disk])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first VM runs its guest (it has opened and locked the image by then).
    let mut reader = BufReader::new(first.stdout.take().unwrap());
    let start = Instant::now();
    let mut line = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.starts_with("PROBE-HALT") {
            break;
        }
    }
    assert!(
        line.starts_with("PROBE-HALT"),
        "the first VM did not start: {line}"
    );
    for extra in ["", ",readonly=on"] {
        let out = rvmm()
            .args(["run", "--kernel"])
            .arg(&elf)
            .args([
                "--append",
                "mode=hello",
                "--disk",
                &format!("{disk}{extra}"),
            ])
            .output()
            .unwrap();
        let (code, err) = failed_cleanly(&out, "second rvmm on a locked image");
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!(
                "--disk path={}: the image is locked by another process",
                img.display()
            )),
            "{err}"
        );
    }
    let _ = first.kill();
    let _ = first.wait();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_disk_options_name_the_option() {
    for (arg, msg) in [
        (
            "path=/x.img,readonly=maybe",
            "--disk: readonly=maybe: expected on or off",
        ),
        ("readonly=on", "--disk: 'readonly=on' has no path="),
        (
            "path=/nonexistent/x.img",
            "--disk path=/nonexistent/x.img: cannot open it",
        ),
    ] {
        let out = rvmm().args(["run", "--disk", arg]).output().unwrap();
        let (code, err) = failed_cleanly(&out, arg);
        assert_ne!(code, 0);
        assert!(err.contains(msg), "{arg}: {err}");
    }
}

/// The guest's `virtio=hostile` requests (a buffer outside RAM, a partial sector, a range
/// past the end, a looping chain) fail or come back unanswered; rvmm goes on serving the
/// disk, ends normally, and the image holds only the good write. (rvmm only: QEMU marks its
/// device broken at the first of these, so there is no common answer to compare.)
#[test]
fn hostile_requests_fail_and_the_disk_goes_on() {
    if !kvm_available("hostile_requests_fail_and_the_disk_goes_on") {
        return;
    }
    let dir = tempdir("vblk-hostile");
    let elf = probe_elf(&dir);
    let img = image(&dir, "hostile.img");
    let mut c = rvmm();
    c.args(["run", "--kernel"])
        .arg(&elf)
        .args(["--append", "mode=virtio virtio=hostile", "--disk"])
        .arg(format!("path={}", img.display()));
    let out = run_with_timeout(c, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rvmm failed: {stdout}\n{stderr}");
    let lines = virtio_lines(&out.stdout);
    assert_eq!(
        &lines[5..],
        [
            "PROBE-VIRTIO dev=0 hostile outside status=1",
            "PROBE-VIRTIO dev=0 hostile partial-sector status=1",
            "PROBE-VIRTIO dev=0 hostile past-end status=1",
            "PROBE-VIRTIO dev=0 hostile loop returned=yes status=255",
            "PROBE-VIRTIO dev=0 hostile then-read status=0 match=yes",
            "PROBE-VIRTIO-END devices=1",
        ],
        "{stdout}"
    );
    let a = std::fs::read(&img).unwrap();
    assert_eq!(&a[512..2560], &pattern()[..]);
    assert!(
        a[..512].iter().chain(&a[2560..]).all(|&x| x == FILL),
        "the hostile writes did not land"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The allocated 512-byte blocks of `path` (stat's st_blocks).
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks()
}

/// Whether `dir` is on a tmpfs (where cache=none or holes would not show what a disk does).
fn on_tmpfs(dir: &Path) -> bool {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "tmpfs"
}

/// A directory on a disk-backed file system: the temporary one unless it is a tmpfs.
fn disk_dir(tag: &str) -> PathBuf {
    let d = tempdir(tag);
    if !on_tmpfs(&d) {
        return d;
    }
    let _ = std::fs::remove_dir_all(&d);
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(tag);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// cache=none: the guest's unaligned buffers go through rvmm's bounce buffer with O_DIRECT;
/// the lines, and the image on a disk-backed file system, are QEMU's with cache=none.
#[test]
fn cache_none_matches_qemu_cache_none() {
    if !kvm_available("cache_none_matches_qemu_cache_none") {
        return;
    }
    let dir = disk_dir("vblk-direct");
    assert!(!on_tmpfs(&dir));
    let elf = probe_elf(&dir);
    let (ours, theirs) = (image(&dir, "rvmm.img"), image(&dir, "qemu.img"));
    let lines = rvmm_with(&elf, &ours, ",cache=none", "mode=virtio");
    assert_eq!(
        lines[1..4],
        [
            "PROBE-VIRTIO dev=0 write status=0",
            "PROBE-VIRTIO dev=0 read status=0 match=yes",
            "PROBE-VIRTIO dev=0 flush status=0",
        ]
    );
    assert_eq!(
        qemu_with(&elf, &theirs, ",cache=none", "mode=virtio"),
        lines
    );
    let a = std::fs::read(&ours).unwrap();
    assert!(a == std::fs::read(&theirs).unwrap(), "the images differ");
    assert_eq!(&a[512..2560], &pattern()[..], "the data reached the file");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cache_none_on_a_file_system_without_o_direct_is_refused() {
    // procfs refuses O_DIRECT (as tmpfs did before Linux 6.6; this host's tmpfs takes it).
    let out = rvmm()
        .args(["run", "--disk", "path=/proc/version,readonly=on,cache=none"])
        .output()
        .unwrap();
    let (code, err) = failed_cleanly(&out, "cache=none on procfs");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "--disk cache=none: /proc/version: its file system refuses O_DIRECT (EINVAL), \
             which cache=none needs; use cache=writeback on this file system"
        ),
        "{err}"
    );
}

/// virtio=discard: discard sectors 0..63, write the pattern again, write-zeroes it, read
/// zeroes back. QEMU (its drive with discard=unmap, without which QEMU acknowledges a discard
/// and keeps the data) prints the same lines and leaves the same image; the host file has
/// fewer allocated blocks after either.
#[test]
fn discard_and_write_zeroes_match_qemu_and_free_blocks() {
    if !kvm_available("discard_and_write_zeroes_match_qemu_and_free_blocks") {
        return;
    }
    let dir = disk_dir("vblk-discard");
    let elf = probe_elf(&dir);
    let (ours, theirs) = (image(&dir, "rvmm.img"), image(&dir, "qemu.img"));
    std::fs::File::open(&ours).unwrap().sync_all().unwrap();
    std::fs::File::open(&theirs).unwrap().sync_all().unwrap();
    let (before_ours, before_theirs) = (allocated(&ours), allocated(&theirs));
    let lines = rvmm_with(&elf, &ours, "", "mode=virtio virtio=discard");
    assert_eq!(
        lines[5..],
        [
            "PROBE-VIRTIO dev=0 discard status=0",
            "PROBE-VIRTIO dev=0 rewrite status=0",
            "PROBE-VIRTIO dev=0 write-zeroes status=0",
            "PROBE-VIRTIO dev=0 read-zeroes status=0 match=yes",
            "PROBE-VIRTIO-END devices=1",
        ]
    );
    assert_eq!(
        qemu_with(
            &elf,
            &theirs,
            ",discard=unmap",
            "mode=virtio virtio=discard"
        ),
        lines
    );
    let a = std::fs::read(&ours).unwrap();
    assert!(a == std::fs::read(&theirs).unwrap(), "the images differ");
    assert!(
        a[..64 * 512].iter().all(|&b| b == 0),
        "sectors 0..63 read zero"
    );
    assert!(a[64 * 512..].iter().all(|&b| b == FILL));
    let (after_ours, after_theirs) = (allocated(&ours), allocated(&theirs));
    assert!(
        after_ours < before_ours,
        "rvmm: st_blocks {before_ours} -> {after_ours}"
    );
    assert!(
        after_theirs < before_theirs,
        "QEMU: st_blocks {before_theirs} -> {after_theirs}"
    );
    eprintln!(
        "st_blocks: rvmm {before_ours} -> {after_ours}, QEMU {before_theirs} -> {after_theirs}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `--machine virtio-cmdline=on` puts each disk on the command line in QEMU microvm's
/// spelling, in slot order (--dry-run shows the line the guest gets); off by default; the
/// probe ignores it and runs as before.
#[test]
fn virtio_cmdline_lists_the_devices_in_slot_order() {
    let dry = |machine: Option<&str>| {
        let mut c = rvmm();
        c.args(["run", "--dry-run", "--append", "mode=virtio"])
            .args(["--disk", "path=/a.img", "--disk", "path=/b.img,readonly=on"]);
        if let Some(m) = machine {
            c.args(["--machine", m]);
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("cmdline: "))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        dry(Some("virtio-cmdline=on")),
        "cmdline: mode=virtio virtio_mmio.device=512@0xfeb00000:16 \
         virtio_mmio.device=512@0xfeb00200:17"
    );
    assert_eq!(dry(None), "cmdline: mode=virtio");
    assert_eq!(dry(Some("virtio-cmdline=off")), "cmdline: mode=virtio");
    if !kvm_available("virtio_cmdline_lists_the_devices_in_slot_order") {
        return;
    }
    let dir = tempdir("vblk-cmdline");
    let elf = probe_elf(&dir);
    let img = image(&dir, "c.img");
    let mut c = rvmm();
    c.args(["run", "--kernel"])
        .arg(&elf)
        .args(["--append", "mode=virtio", "--machine", "virtio-cmdline=on"])
        .arg("--disk")
        .arg(format!("path={},serial={SERIAL}", img.display()));
    let out = run_with_timeout(c, Duration::from_secs(60));
    assert!(out.status.success());
    assert_eq!(virtio_lines(&out.stdout), under_rvmm(&elf, &img, false));
    let _ = std::fs::remove_dir_all(dir);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/domains")
        .join(name)
}

/// A libvirt domain's `<disk>` elements are rvmm's disks, in document order and before
/// `--disk` ones: the fixture passes libvirt's schema, `--dry-run` shows them as `--disk`
/// flags, and a copy pointing at real images runs the probe on all three (the domain's
/// cache='none' disk, its read-only one, then the command line's).
#[test]
fn domain_disks_come_first_and_run() {
    let path = fixture("disk.xml");
    let out = std::process::Command::new("/usr/bin/virt-xml-validate")
        .arg(&path)
        .arg("domain")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");

    let out = rvmm()
        .args(["run", "--dry-run", "--domain"])
        .arg(&path)
        .args(["--disk", "path=/extra.img"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let flags = stdout.lines().find(|l| l.starts_with("flags: ")).unwrap();
    assert!(
        flags.ends_with(
            "--disk path=/var/lib/rvmm/images/root.img,cache=none,serial=RVMM-DISK-7 \
             --disk path=/var/lib/rvmm/images/data.img,readonly=on,serial=DATA \
             --disk path=/extra.img"
        ),
        "{flags}"
    );

    if !kvm_available("domain_disks_come_first_and_run") {
        return;
    }
    let dir = disk_dir("vblk-domain");
    let (root, data, extra) = (
        image(&dir, "root.img"),
        image(&dir, "data.img"),
        image(&dir, "extra.img"),
    );
    let xml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("/var/lib/rvmm/images/root.img", root.to_str().unwrap())
        .replace("/var/lib/rvmm/images/data.img", data.to_str().unwrap());
    let copy = dir.join("disk.xml");
    std::fs::write(&copy, xml).unwrap();
    let mut c = rvmm();
    c.args(["run", "--domain"])
        .arg(&copy)
        .arg("--disk")
        .arg(format!("path={},serial=EXTRA", extra.display()));
    let out = run_with_timeout(c, Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines = virtio_lines(&out.stdout);
    for want in [
        "PROBE-VIRTIO dev=0 id=2 capacity=2048 ro=0 flush=1",
        "PROBE-VIRTIO dev=0 getid status=0 serial=RVMM-DISK-7",
        "PROBE-VIRTIO dev=1 id=2 capacity=2048 ro=1 flush=1",
        "PROBE-VIRTIO dev=1 write status=1",
        "PROBE-VIRTIO dev=1 getid status=0 serial=DATA",
        "PROBE-VIRTIO dev=2 read status=0 match=yes",
        "PROBE-VIRTIO dev=2 getid status=0 serial=EXTRA",
        "PROBE-VIRTIO-END devices=3",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want} not in {lines:#?}");
    }
    assert_eq!(&std::fs::read(&root).unwrap()[512..2560], &pattern()[..]);
    assert!(std::fs::read(&data).unwrap().iter().all(|&b| b == FILL));
    let _ = std::fs::remove_dir_all(dir);
}
