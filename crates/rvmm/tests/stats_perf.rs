//! `rvmm stats VM --perf`: host counters of each vCPU thread of a busy probe guest, checked
//! against what the kernel reports of the same threads in /proc. Every event must have
//! exactly one of a count and a reason; the software events must be counted (a busy vCPU's
//! task-clock grows, and its counts stay within /proc's figures for a window that encloses
//! the count); hardware events are accepted either way, since this host has no hardware PMU
//! and others do. Bad input fails cleanly with a message naming the option.

mod common;

use std::time::Duration;

use common::vm::BackgroundVm;
use common::{failed_cleanly, kvm_available, run_with_timeout, rvmm, text};
use serde_json::Value;
use vmm::host::thread::{schedstat, switches};

/// How far /proc's run time of a running thread may lag behind perf's task-clock.
const LAG_NS: u64 = 100_000_000;

const SOFTWARE: [&str; 4] = [
    "task-clock",
    "context-switches",
    "cpu-migrations",
    "page-faults",
];
const HARDWARE: [&str; 5] = [
    "cycles",
    "instructions",
    "cache-references",
    "cache-misses",
    "branch-misses",
];

/// A vCPU thread's run time (ns) and context switches so far, from /proc.
fn proc_figures(pid: i32, tid: i32) -> (u64, u64) {
    let s = switches(pid, tid).unwrap();
    (
        schedstat(pid, tid).unwrap().run_ns,
        s.voluntary + s.involuntary,
    )
}

fn stats(vm: &BackgroundVm, extra: &[&str]) -> std::process::Output {
    let mut cmd = rvmm();
    cmd.arg("stats").arg(&vm.socket).arg("--perf").args(extra);
    run_with_timeout(cmd, Duration::from_secs(60))
}

#[test]
fn perf_counts_each_vcpu_thread() {
    if !kvm_available("perf_counts_each_vcpu_thread") {
        return;
    }
    let mut vm =
        BackgroundVm::start_probe_elf("stats-perf", &["--smp", "2", "--append", "mode=busy"]);
    vm.wait_line("PROBE-BUSY");
    let pid = vm.pid();
    let cpus = vm.client().ok("query-cpus-fast", None);
    let tids: Vec<i32> = cpus
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["thread-id"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(tids.len(), 2);

    let before: Vec<(u64, u64)> = tids.iter().map(|&t| proc_figures(pid, t)).collect();
    let out = stats(&vm, &["--duration", "1s", "--json"]);
    let after: Vec<(u64, u64)> = tids.iter().map(|&t| proc_figures(pid, t)).collect();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rvmm stats --perf failed: {stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["pid"], pid);
    let seconds = report["duration-s"].as_f64().unwrap();
    assert!(seconds >= 1.0, "counted {seconds} s of the 1 s asked");
    let vcpus = report["vcpus"].as_array().unwrap();
    assert_eq!(vcpus.len(), 2);
    for (i, v) in vcpus.iter().enumerate() {
        assert_eq!(v["vcpu"], i);
        assert_eq!(v["thread-id"], tids[i]);
        let events = v["events"].as_array().unwrap();
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(names, [&HARDWARE[..], &SOFTWARE[..]].concat());
        for e in events {
            let (count, reason) = (e.get("count"), e.get("reason"));
            assert!(
                count.is_some() != reason.is_some(),
                "vCPU {i}: {e} must have exactly one of count and reason"
            );
            if let Some(reason) = reason {
                assert!(!reason.as_str().unwrap().is_empty(), "{e}");
            } else {
                assert!(count.unwrap().is_u64(), "{e}");
                let pct = e["running-pct"].as_f64().unwrap();
                assert!(pct > 0.0 && pct <= 100.0, "{e}");
            }
        }
        let count = |name: &str| {
            events
                .iter()
                .find(|e| e["event"] == name)
                .and_then(|e| e.get("count"))
                .unwrap_or_else(|| panic!("vCPU {i}: {name} not counted: {v}"))
                .as_u64()
                .unwrap()
        };
        for name in SOFTWARE {
            count(name);
        }
        // The count ran inside the /proc window: it cannot exceed what /proc saw, give or
        // take how far /proc's run time (the scheduler's sum_exec_runtime, brought up to date
        // only when the scheduler accounts the running thread) lags for a thread that is
        // running when it is read: a tick normally, but a loaded CI host showed 55 ms. A
        // count of the wrong thread (or of two) would be off by far more than the margin.
        let (run_ns, switched) = (after[i].0 - before[i].0, after[i].1 - before[i].1);
        let task_clock = count("task-clock");
        assert!(task_clock > 0, "vCPU {i}: a busy vCPU ran for 0 ns");
        assert!(
            task_clock <= run_ns + LAG_NS,
            "vCPU {i}: task-clock {task_clock} ns > /proc's run time {run_ns} ns"
        );
        assert!(
            count("context-switches") <= switched,
            "vCPU {i}: context-switches {} > /proc's {switched}",
            count("context-switches")
        );
        // IPC exactly when both cycles and instructions were counted.
        let both = ["cycles", "instructions"].iter().all(|n| {
            events
                .iter()
                .any(|e| e["event"] == *n && e.get("count").is_some())
        });
        if !both {
            assert!(v.get("ipc").is_none(), "{v}");
        }
    }

    // The text form: a table per vCPU, then each event that was not counted and why.
    let out = stats(&vm, &["--duration", "200ms", "--vcpu", "1"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("vCPU 1 (thread {})", tids[1])),
        "{stdout}"
    );
    assert!(!stdout.contains("vCPU 0 ("), "{stdout}");
    assert!(stdout.contains("  task-clock "), "{stdout}");
    let unavailable: Vec<&str> = vcpus[1]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("reason").is_some())
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for name in &unavailable {
        assert!(
            stdout.contains(&format!("\n  {name} (vCPU 1): ")),
            "{stdout}"
        );
    }
    assert_eq!(stdout.contains("Not counted:"), !unavailable.is_empty());
    assert!(vm.alive());
}

#[test]
fn perf_bad_input() {
    if !kvm_available("perf_bad_input") {
        return;
    }
    let mut vm =
        BackgroundVm::start_probe_elf("stats-perf-bad", &["--smp", "2", "--append", "mode=halt"]);
    vm.wait_line("PROBE-HALT");
    for (extra, message) in [
        (
            &["--duration", "0"][..],
            "rvmm: --duration: \"0\" is not a duration: it must be greater than zero",
        ),
        (
            &["--duration", "soon"][..],
            "rvmm: --duration: \"soon\" is not a duration:",
        ),
        (
            &["--vcpu", "7"][..],
            "rvmm: --vcpu 7: vCPU 7 does not exist (the VM has vCPUs 0-1)",
        ),
    ] {
        let out = stats(&vm, extra);
        let (_, stderr) = failed_cleanly(&out, &format!("stats --perf {extra:?}"));
        assert!(stderr.starts_with(message), "{extra:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // --duration belongs to --perf.
    let mut cmd = rvmm();
    cmd.arg("stats").arg(&vm.socket).args(["--duration", "1s"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let (_, stderr) = failed_cleanly(&out, "stats --duration without --perf");
    assert!(stderr.contains("--perf"), "{stderr}");
    // A VM that is not there.
    let dir = common::tempdir("stats-perf-novm");
    let gone = dir.join("gone.qmp");
    let mut cmd = rvmm();
    cmd.arg("stats").arg(&gone).arg("--perf");
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let (_, stderr) = failed_cleanly(&out, "stats --perf on no VM");
    assert!(stderr.contains("cannot connect to"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(vm.alive());
}

/// Whether process `pid` holds a perf event fd (it is counting).
fn counting(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .map(|l| l.to_string_lossy().contains("perf_event"))
            .unwrap_or(false)
    })
}

#[test]
fn perf_reports_a_vm_that_ends_while_counted() {
    if !kvm_available("perf_reports_a_vm_that_ends_while_counted") {
        return;
    }
    let mut vm =
        BackgroundVm::start_probe_elf("stats-perf-end", &["--smp", "1", "--append", "mode=busy"]);
    vm.wait_line("PROBE-BUSY");
    let mut cmd = rvmm();
    cmd.arg("stats")
        .arg(&vm.socket)
        .args(["--perf", "--duration", "30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    while !counting(child.id()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "rvmm stats --perf never opened a counter"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    vm.client().ok("quit", None);
    let _ = vm.wait(Duration::from_secs(10));
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = failed_cleanly(&out, "stats --perf on a VM that quit");
    assert!(
        stderr.contains("ended while its vCPUs were being counted"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
