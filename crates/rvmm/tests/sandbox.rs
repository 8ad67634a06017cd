//! `--sandbox`: every thread of a running VM is under a seccomp filter with
//! no-new-privileges (the kernel's /proc/PID/task/TID/status says so), `off` leaves them
//! unfiltered, a real thread that makes a forbidden call ends rvmm with a message naming
//! the thread and the call (exit status 159), `log` lets the call through, and guest RAM is
//! MADV_DONTDUMP and MADV_DONTFORK (/proc/PID/smaps VmFlags `dd` and `dc`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::vm::{comm, threads, BackgroundVm};
use common::{kvm_available, run_with_timeout, rvmm, text};
use serde_json::json;

/// The `NAME:\tVALUE` field of a status file.
fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in:\n{status}"))
        .trim()
        .to_string()
}

/// (thread name, Seccomp, NoNewPrivs) of every thread of `pid`.
fn thread_states(pid: i32) -> Vec<(String, String, String)> {
    threads(pid)
        .into_iter()
        .filter_map(|tid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
            Some((
                comm(pid, tid),
                field(&status, "Seccomp"),
                field(&status, "NoNewPrivs"),
            ))
        })
        .collect()
}

/// A halted 2-vCPU probe VM with a negotiated QMP client (so the client threads exist).
fn halted_vm(tag: &str, extra: &[&str]) -> (BackgroundVm, common::vm::TestClient) {
    let mut args = vec!["--smp", "2", "-m", "64M", "--append", "mode=halt"];
    args.extend_from_slice(extra);
    let vm = BackgroundVm::start(tag, &args);
    vm.wait_halted();
    let client = vm.client();
    (vm, client)
}

#[test]
fn every_thread_of_a_running_vm_is_filtered_with_no_new_privs() {
    if !kvm_available("every_thread_of_a_running_vm_is_filtered_with_no_new_privs") {
        return;
    }
    let (vm, mut client) = halted_vm("sandbox-on", &[]);
    // The filters let the VMM thread answer the usual commands.
    assert_eq!(
        client.ok("query-status", None),
        json!({"running": true, "singlestep": false, "status": "running"})
    );
    client.ok("stop", None);
    client.ok("cont", None);
    let states = thread_states(vm.pid());
    let names: Vec<&str> = states.iter().map(|(n, _, _)| n.as_str()).collect();
    for want in ["CPU 0/KVM", "CPU 1/KVM", "qmp-accept", "migration"] {
        assert!(names.contains(&want), "no thread {want}: {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("qmp-in-")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("qmp-out-")), "{names:?}");
    for (name, seccomp, nnp) in &states {
        assert_eq!(seccomp, "2", "thread {name} is not filtered: {states:?}");
        assert_eq!(nnp, "1", "thread {name} lacks no-new-privs: {states:?}");
    }
    client.ok("quit", None);
    let out = vm.wait(Duration::from_secs(10));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("seccomp"), "{stderr}");
}

#[test]
fn sandbox_off_leaves_the_threads_unfiltered() {
    if !kvm_available("sandbox_off_leaves_the_threads_unfiltered") {
        return;
    }
    // The test's own filter state (0 unless the test itself runs under a filter).
    let own = field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "Seccomp",
    );
    let (vm, mut client) = halted_vm("sandbox-off", &["--sandbox", "off"]);
    let states = thread_states(vm.pid());
    assert!(states.len() >= 5, "{states:?}");
    for (name, seccomp, nnp) in &states {
        assert_eq!(seccomp, &own, "thread {name}: {states:?}");
        // no-new-privileges holds in every mode.
        assert_eq!(nnp, "1", "thread {name}: {states:?}");
    }
    assert_eq!(own, "0", "the test itself runs under seccomp");
    client.ok("quit", None);
    assert_eq!(vm.wait(Duration::from_secs(10)).status.code(), Some(0));
}

/// `rvmm run` of the probe (hello mode, or halt with a QMP socket) with the self-test hook
/// set for `role`.
fn selftest(role: &str, mode: &str) -> (Option<i32>, String, String) {
    let dir = common::vm::test_dir(&format!("sandbox-self-{role}-{mode}"));
    let mut cmd: Command = rvmm();
    cmd.args(["run", "--append", "mode=hello", "--sandbox", mode])
        .arg("--qmp")
        .arg(format!("unix:{}", dir.join("vm.qmp").display()))
        .env("RVMM_SANDBOX_SELFTEST", role);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

#[test]
fn a_thread_that_makes_a_forbidden_call_ends_rvmm_with_its_name() {
    if !kvm_available("a_thread_that_makes_a_forbidden_call_ends_rvmm_with_its_name") {
        return;
    }
    for (role, thread) in [
        ("vcpu", "CPU 0/KVM"),
        ("control", "qmp-accept"),
        ("main", "rvmm"),
        // The migration thread may open stream sockets; the self-test asks for a packet
        // socket, which it may not.
        ("migration", "migration"),
    ] {
        let (code, _, stderr) = selftest(role, "on");
        let line = format!(
            "rvmm: seccomp: thread '{thread}' made a forbidden system call 41 (socket); exiting"
        );
        assert!(
            stderr.lines().any(|l| l == line),
            "{role}: no line {line:?} in:\n{stderr}"
        );
        // 159 = 128 + SIGSYS, from the handler's _exit: not a death by a signal.
        assert_eq!(code, Some(159), "{role}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn log_mode_lets_the_forbidden_call_through() {
    if !kvm_available("log_mode_lets_the_forbidden_call_through") {
        return;
    }
    let (code, stdout, stderr) = selftest("vcpu", "log");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("PROBE-HELLO"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("seccomp"), "{stderr}");
}

#[test]
fn a_bad_sandbox_mode_is_refused_with_the_choices() {
    let out = rvmm().args(["run", "--sandbox", "maybe"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--sandbox"), "{stderr}");
    assert!(stderr.contains("maybe"), "{stderr}");
    assert!(stderr.contains("on, off, log"), "{stderr}");
}

#[test]
fn guest_memory_is_left_out_of_core_dumps_and_forks() {
    if !kvm_available("guest_memory_is_left_out_of_core_dumps_and_forks") {
        return;
    }
    let (vm, mut client) = halted_vm("sandbox-smaps", &[]);
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", vm.pid())).unwrap();
    // Each mapping: its Size in kB and its VmFlags.
    let mut maps: Vec<(u64, Vec<String>)> = Vec::new();
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("Size:") {
            let kb = kb.trim().trim_end_matches("kB").trim().parse().unwrap();
            maps.push((kb, Vec::new()));
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            maps.last_mut().unwrap().1 = flags.split_whitespace().map(String::from).collect();
        }
    }
    let has = |flags: &[String], f: &str| flags.iter().any(|x| x == f);
    // Guest RAM (64 MiB, possibly split in VMAs by THP advice) is exactly the memory that
    // is both dontdump and dontcopy.
    let guarded: u64 = maps
        .iter()
        .filter(|(_, f)| has(f, "dd") && has(f, "dc"))
        .map(|(kb, _)| kb)
        .sum();
    assert_eq!(guarded, 64 << 10, "{smaps}");
    // And no readable mapping of 32 MiB or more (only guest RAM is that large; glibc's
    // arenas reserve 64 MiB but without access) lacks either flag.
    for (kb, flags) in &maps {
        if *kb >= 32 << 10 && has(flags, "rd") {
            assert!(has(flags, "dd") && has(flags, "dc"), "{kb} kB {flags:?}");
        }
    }
    client.ok("quit", None);
    assert_eq!(vm.wait(Duration::from_secs(10)).status.code(), Some(0));
}
