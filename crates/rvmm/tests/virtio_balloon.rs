//! Issue 15, virtio-balloon: the probe guest's bare-metal balloon driver (`mode=virtio`)
//! touches 64 MiB of its RAM, inflates the balloon to the target QMP's `balloon` sets,
//! deflates when the target drops and finds the pages zeroed (the host dropped them). Under
//! rvmm (`--balloon`) and QEMU 7.2 microvm (`-device virtio-balloon-device`) it prints the
//! same lines, the same BALLOON_CHANGE events and `query-balloon` answers come back, and
//! the VMM's RSS drops by the inflated size and comes back after the deflate. A hostile
//! driver (PFNs outside RAM, a 2 GiB PFN array, a write to num_pages) leaves rvmm serving;
//! bad `--balloon` values and `balloon` arguments fail with the option's or QEMU's message.

mod common;

use std::process::Command;
use std::time::Duration;

use common::vm::BackgroundVm;
use common::*;
use serde_json::json;

const RAM_MIB: u64 = 256;
const RAM: u64 = RAM_MIB << 20;
/// What the test asks the balloon to take (the guest's whole touched region).
const INFLATE: u64 = 64 << 20;

/// VmRSS of `pid` in bytes.
fn rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb << 10
}

/// RSS once it has settled (the same reading twice, 100 ms apart).
fn settled_rss(pid: i32) -> u64 {
    let mut last = rss(pid);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss(pid);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// What one run measured.
#[derive(Debug)]
struct Run {
    lines: Vec<String>,
    changes: Vec<u64>,
    queried: (u64, u64),
    rss: (u64, u64, u64),
}

fn virtio_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("PROBE-VIRTIO"))
        .map(str::to_string)
        .collect()
}

/// Drives the guest in `vm`: target, inflate, measure, deflate, measure.
fn drive(mut vm: BackgroundVm) -> Run {
    let pid = vm.pid();
    vm.wait_line("PROBE-VIRTIO dev=0 id=5");
    let mut c = vm.client();
    let before = settled_rss(pid);
    c.ok("balloon", Some(json!({ "value": RAM - INFLATE })));
    vm.wait_line("PROBE-VIRTIO dev=0 balloon inflated=");
    let mut changes = vec![c.event("BALLOON_CHANGE")["data"]["actual"]
        .as_u64()
        .unwrap()];
    let inflated = c.ok("query-balloon", None)["actual"].as_u64().unwrap();
    let after = settled_rss(pid);
    c.ok("balloon", Some(json!({ "value": RAM })));
    vm.wait_line("PROBE-VIRTIO dev=0 balloon deflated=");
    changes.push(
        c.event("BALLOON_CHANGE")["data"]["actual"]
            .as_u64()
            .unwrap(),
    );
    let deflated = c.ok("query-balloon", None)["actual"].as_u64().unwrap();
    let back = settled_rss(pid);
    // Lets the guest end.
    c.ok("balloon", Some(json!({ "value": RAM - 4096 })));
    drop(c);
    let out = vm.wait(Duration::from_secs(60));
    Run {
        lines: virtio_lines(&out.stdout),
        changes,
        queried: (inflated, deflated),
        rss: (before, after, back),
    }
}

fn check_rss(who: &str, run: &Run) {
    let (before, after, back) = run.rss;
    eprintln!(
        "{who}: RSS {} MiB before, {} MiB inflated, {} MiB after deflate",
        before >> 20,
        after >> 20,
        back >> 20
    );
    let want = INFLATE * 3 / 4;
    assert!(
        before.saturating_sub(after) >= want,
        "{who}: RSS dropped by {} bytes, want at least {want}: {run:?}",
        before.saturating_sub(after)
    );
    assert!(
        back.saturating_sub(after) >= want,
        "{who}: RSS came back by {} bytes, want at least {want}: {run:?}",
        back.saturating_sub(after)
    );
}

fn rvmm_vm(tag: &str, append: &str, balloon: &str) -> BackgroundVm {
    rvmm_vm_with(tag, append, balloon, "")
}

/// With `-m 256M{memory_options}`.
fn rvmm_vm_with(tag: &str, append: &str, balloon: &str, memory_options: &str) -> BackgroundVm {
    BackgroundVm::start_probe_elf(
        tag,
        &[
            "-m",
            &format!("{RAM_MIB}M{memory_options}"),
            "--append",
            append,
            "--balloon",
            balloon,
        ],
    )
}

fn qemu_vm(tag: &str, append: &str, device: &str) -> BackgroundVm {
    let dir = common::vm::test_dir(tag);
    let elf = probe_elf(&dir);
    let socket = dir.join("qemu.qmp");
    let mut q = qemu();
    q.args([
        "-M",
        MICROVM,
        "-nodefaults",
        "-no-user-config",
        "-enable-kvm",
    ])
    .args(["-m", &RAM_MIB.to_string(), "-kernel"])
    .arg(&elf)
    .args(["-append", append])
    .args(["-global", "virtio-mmio.force-legacy=false"])
    .args(["-device", device])
    .args([
        "-qmp",
        &format!("unix:{},server=on,wait=off", socket.display()),
    ])
    .args(["-serial", "stdio", "-display", "none"]);
    BackgroundVm::spawn(q, dir, socket)
}

#[test]
fn inflate_and_deflate_give_memory_back_as_qemu() {
    if !kvm_available("inflate_and_deflate_give_memory_back_as_qemu") {
        return;
    }
    let append = "mode=virtio balloon.wait=60";
    let ours = drive(rvmm_vm("vballoon", append, "on"));
    let pages = INFLATE >> 12;
    assert_eq!(
        ours.lines,
        [
            format!("PROBE-VIRTIO dev=0 id=5 touched={pages} reporting=0"),
            format!("PROBE-VIRTIO dev=0 balloon target={pages}"),
            format!("PROBE-VIRTIO dev=0 balloon inflated={pages}"),
            format!("PROBE-VIRTIO dev=0 balloon deflated={pages} zero=yes"),
            "PROBE-VIRTIO-END devices=1".to_string(),
        ]
    );
    assert_eq!(ours.changes, [RAM - INFLATE, RAM]);
    assert_eq!(ours.queried, (RAM - INFLATE, RAM));
    check_rss("rvmm", &ours);

    let theirs = drive(qemu_vm("vballoon-qemu", append, "virtio-balloon-device"));
    assert_eq!(theirs.lines, ours.lines);
    assert_eq!(theirs.changes, ours.changes);
    assert_eq!(theirs.queried, ours.queried);
    check_rss("qemu", &theirs);
}

#[test]
fn shared_memory_is_given_back_with_a_hole() {
    if !kvm_available("shared_memory_is_given_back_with_a_hole") {
        return;
    }
    // A memfd (shared=on): MADV_REMOVE punches the pages out of the file; VmRSS counts the
    // shared pages mapped (RssShmem), so it drops and comes back the same way.
    let run = drive(rvmm_vm_with(
        "vballoon-shared",
        "mode=virtio balloon.wait=60",
        "on",
        ",shared=on",
    ));
    assert!(run.lines[3].ends_with("zero=yes"), "{:?}", run.lines);
    check_rss("rvmm shared=on", &run);
}

#[test]
fn free_page_reporting_as_qemu() {
    if !kvm_available("free_page_reporting_as_qemu") {
        return;
    }
    let append = "mode=virtio balloon.wait=60 balloon.report=on";
    let ours = drive(rvmm_vm("vballoon-fpr", append, "free-page-reporting=on"));
    assert_eq!(
        ours.lines.last().unwrap(),
        "PROBE-VIRTIO-END devices=1",
        "{:?}",
        ours.lines
    );
    assert!(
        ours.lines
            .contains(&"PROBE-VIRTIO dev=0 balloon reported=1024 status=ok".to_string()),
        "{:?}",
        ours.lines
    );
    assert!(ours.lines[0].ends_with("reporting=1"), "{:?}", ours.lines);
    let theirs = drive(qemu_vm(
        "vballoon-fpr-qemu",
        append,
        "virtio-balloon-device,free-page-reporting=on",
    ));
    assert_eq!(theirs.lines, ours.lines);
}

#[test]
fn a_hostile_driver_does_not_stop_the_balloon() {
    if !kvm_available("a_hostile_driver_does_not_stop_the_balloon") {
        return;
    }
    let run = drive(rvmm_vm(
        "vballoon-hostile",
        "mode=virtio balloon.wait=60 balloon.hostile=on",
        "on",
    ));
    assert_eq!(
        run.lines[1], "PROBE-VIRTIO dev=0 hostile used=1 num_pages=unchanged",
        "{:?}",
        run.lines
    );
    assert!(run.lines[4].ends_with("zero=yes"), "{:?}", run.lines);
    assert_eq!(run.changes, [RAM - INFLATE, RAM]);
}

#[test]
fn qmp_balloon_errors_are_qemus() {
    if !kvm_available("qmp_balloon_errors_are_qemus") {
        return;
    }
    // No balloon: DeviceNotActive, as QEMU.
    let vm = BackgroundVm::start_probe_elf("vballoon-none", &["--append", "mode=halt"]);
    let mut c = vm.client();
    for (cmd, args) in [
        ("balloon", Some(json!({"value": 1 << 26}))),
        ("query-balloon", None),
    ] {
        assert_eq!(
            c.execute(cmd, args),
            json!({"error": {"class": "DeviceNotActive",
                             "desc": "No balloon device has been activated"}})
        );
    }
    drop(c);
    drop(vm);
    let vm = BackgroundVm::start_probe_elf(
        "vballoon-args",
        &["-m", "256M", "--balloon", "--append", "mode=halt"],
    );
    let mut c = vm.client();
    assert_eq!(
        c.ok("query-balloon", None),
        json!({"actual": RAM}),
        "before the driver writes actual"
    );
    for value in [0i64, -1] {
        assert_eq!(
            c.execute("balloon", Some(json!({ "value": value }))),
            json!({"error": {"class": "GenericError",
                             "desc": "Parameter 'target' expects a size"}})
        );
    }
    // Above RAM: accepted (an empty balloon), as QEMU clamps it.
    assert_eq!(c.ok("balloon", Some(json!({"value": RAM * 4}))), json!({}));
    assert_eq!(
        c.execute("balloon", Some(json!({"value": "1G"}))),
        json!({"error": {"class": "GenericError",
                         "desc": "Invalid parameter type for 'value', expected: integer"}})
    );
}

#[test]
fn bad_balloon_values_fail_with_the_rule() {
    for (value, message) in [
        (
            "yes",
            "--balloon: 'yes' is not on, off or KEY=VALUE (keys: deflate-on-oom, \
             free-page-reporting, current-memory)",
        ),
        (
            "on,stats-period=10",
            "--balloon: unknown key 'stats-period' (keys: deflate-on-oom, \
             free-page-reporting, current-memory)",
        ),
        (
            "deflate-on-oom=maybe",
            "--balloon: deflate-on-oom=maybe: expected on or off",
        ),
        (
            "off,free-page-reporting=on",
            "--balloon: off conflicts with free-page-reporting=on (there is no balloon to \
             have it)",
        ),
        (
            "current-memory=1G",
            "--balloon: current-memory=1G (1073741824 bytes) must be a multiple of 4 KiB and \
             at most the guest memory (134217728 bytes)",
        ),
    ] {
        let out = run_with_timeout(
            {
                let mut c = rvmm();
                c.args(["run", "--dry-run", "--balloon", value]);
                c
            },
            Duration::from_secs(20),
        );
        let (code, stderr) = failed_cleanly(&out, value);
        assert_ne!(code, 0);
        assert!(stderr.contains(message), "{value}: {stderr}");
    }
    // --balloon with --domain: the domain's <memballoon> says it.
    let mut c = rvmm();
    c.args(["run", "--domain", "/nonexistent.xml", "--balloon"]);
    let out = run_with_timeout(c, Duration::from_secs(20));
    let (_, stderr) = failed_cleanly(&out, "--domain with --balloon");
    assert!(
        stderr.contains("--balloon conflicts with --domain"),
        "{stderr}"
    );
}

#[test]
fn dry_run_shows_the_balloon() {
    let dry = |args: &[&str]| {
        let mut c: Command = rvmm();
        c.args(["run", "--dry-run"]).args(args);
        let out = run_with_timeout(c, Duration::from_secs(20));
        assert!(out.status.success(), "{:?}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(dry(&[]).contains("\nballoon: off\n"));
    let out = dry(&["--balloon", "deflate-on-oom=on,current-memory=96M"]);
    assert!(
        out.contains(
            "\nballoon: on deflate-on-oom=on free-page-reporting=off initial-memory=96M \
             (100663296 bytes)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("--balloon on,deflate-on-oom=on,current-memory=96M"),
        "{out}"
    );
}

#[test]
fn setmem_and_dommemstat() {
    if !kvm_available("setmem_and_dommemstat") {
        return;
    }
    let mut vm = rvmm_vm("vballoon-setmem", "mode=virtio balloon.wait=60", "on");
    vm.wait_line("PROBE-VIRTIO dev=0 id=5");
    let socket = vm.socket.display().to_string();
    let cli = |args: &[&str]| {
        let mut c = rvmm();
        c.args(args);
        run_with_timeout(c, Duration::from_secs(20))
    };
    // virsh's unit: a bare number is KiB.
    let out = cli(&["setmem", &socket, &((RAM - INFLATE) >> 10).to_string()]);
    assert!(out.status.success(), "{:?}", text(&out));
    vm.wait_line("PROBE-VIRTIO dev=0 balloon inflated=16384");
    let start = std::time::Instant::now();
    let stat = loop {
        let out = cli(&["dommemstat", &socket]);
        assert!(out.status.success(), "{:?}", text(&out));
        let stat = String::from_utf8(out.stdout).unwrap();
        if stat.starts_with(&format!("actual {}\n", (RAM - INFLATE) >> 10))
            || start.elapsed() > Duration::from_secs(10)
        {
            break stat;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = stat.lines().collect();
    assert_eq!(
        lines[0],
        format!("actual {}", (RAM - INFLATE) >> 10),
        "{stat}"
    );
    let rss: u64 = lines[1].strip_prefix("rss ").unwrap().parse().unwrap();
    assert!(rss > 0 && rss < (RAM >> 10), "{stat}");
    let out = cli(&["setmem", &socket, "0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("SIZE must be above 0"),
        "{:?}",
        text(&out)
    );
    let out = cli(&["setmem", &socket, "256M"]);
    assert!(out.status.success(), "{:?}", text(&out));
    vm.wait_line("PROBE-VIRTIO dev=0 balloon deflated=16384 zero=yes");
}
