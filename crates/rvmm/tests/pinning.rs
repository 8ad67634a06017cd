//! vCPU pinning and seeing where vCPUs run, checked against the kernel: the probe guest's
//! busy mode loads two pinned vCPUs, and `/proc/PID/task/TID/stat`, `taskset -pc` and
//! `ps -eLo lwp,psr,comm` must show each vCPU thread only on its CPU, before and after a
//! re-pin at run time, with `rvmm vcpuinfo` agreeing with them; `--cpuset` covers every
//! thread; halt mode gives halted vCPUs; bad CPUs are errors that name them.

mod common;

use std::time::{Duration, Instant};

use common::vm::{
    allowed_cpus, clk_tck, ps_psr, task_stat, taskset_if_alive, taskset_list, threads, BackgroundVm,
};
use common::{kvm_available, run_with_timeout, rvmm};
use serde_json::Value;

/// Two CPUs this process may use, or None (the test cannot show anything on one CPU).
fn two_cpus(test: &str) -> Option<(u32, u32)> {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        common::skip(test, &format!("needs two usable host CPUs, have {cpus:?}"));
        return None;
    }
    Some((cpus[0], cpus[1]))
}

/// Runs an rvmm subcommand that must succeed; returns (stdout, stderr).
fn rvmm_ok(args: &[&str]) -> (String, String) {
    let out = run_with_timeout(
        {
            let mut c = rvmm();
            c.args(args);
            c
        },
        Duration::from_secs(30),
    );
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "rvmm {args:?} failed: {e}");
    (o, e)
}

/// Waits until every thread has used at least `ticks` of CPU time.
fn wait_busy(pid: i32, tids: &[i32], ticks: u64) {
    let start = Instant::now();
    while !tids.iter().all(|&t| task_stat(pid, t).1 >= ticks) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "vCPUs never got busy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each vCPU thread's (state, utime + stime, last CPU) from /proc.
type Stats = Vec<(char, u64, u32)>;

/// `rvmm vcpuinfo VM --json`, bracketed by the kernel's figures for every vCPU thread.
fn vcpuinfo_between(vm: &BackgroundVm, tids: &[i32]) -> (Stats, Value, Stats) {
    let pid = vm.pid();
    let before: Vec<_> = tids.iter().map(|&t| task_stat(pid, t)).collect();
    let (json, _) = rvmm_ok(&["vcpuinfo", vm.socket.to_str().unwrap(), "--json"]);
    let after: Vec<_> = tids.iter().map(|&t| task_stat(pid, t)).collect();
    (before, serde_json::from_str(&json).unwrap(), after)
}

/// rvmm's record of vCPU `i` agrees with /proc and taskset; the vCPU is pinned to `cpu`.
fn assert_agrees(vm: &BackgroundVm, tids: &[i32], expect: &[u32]) {
    let (before, info, after) = vcpuinfo_between(vm, tids);
    let hz = clk_tck();
    for (i, &tid) in tids.iter().enumerate() {
        let v = &info["vcpus"][i];
        assert_eq!(v["vcpu"], i, "{info}");
        assert_eq!(v["thread-id"], tid);
        assert_eq!(v["state"], "running");
        // Pinned to one CPU: the last CPU is that CPU in every reading.
        assert_eq!(v["cpu"], expect[i], "{info}");
        assert_eq!((before[i].2, after[i].2), (expect[i], expect[i]));
        assert_eq!(v["affinity"], taskset_list(tid));
        let ticks = v["utime"].as_u64().unwrap() + v["stime"].as_u64().unwrap();
        assert!(
            before[i].1 <= ticks && ticks <= after[i].1,
            "{} <= {ticks} <= {}",
            before[i].1,
            after[i].1
        );
        assert_eq!(
            v["cpu-time-ns"].as_u64().unwrap(),
            ticks * 1_000_000_000 / hz
        );
    }
}

/// Samples `ps` and checks each vCPU thread only ever shows up on its CPU.
fn assert_ps_shows(tids: &[i32], expect: &[u32], samples: usize) {
    for _ in 0..samples {
        let rows = ps_psr(tids);
        assert_eq!(rows.len(), tids.len(), "ps lost a thread: {rows:?}");
        for (lwp, psr, name) in rows {
            let i = tids.iter().position(|&t| t == lwp).unwrap();
            assert_eq!(name, format!("CPU {i}/KVM"));
            assert_eq!(psr, expect[i], "vCPU {i} (thread {lwp}) seen on CPU {psr}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn pinned_busy_vcpus_stay_on_their_cpus_before_and_after_a_repin() {
    let test = "pinned_busy_vcpus_stay_on_their_cpus_before_and_after_a_repin";
    if !kvm_available(test) {
        return;
    }
    let Some((a, b)) = two_cpus(test) else { return };
    let (pin0, pin1, emu) = (format!("0={a}"), format!("1={b}"), a.to_string());
    let vm = BackgroundVm::start(
        "pin",
        &[
            "--smp",
            "2",
            "--append",
            "mode=busy",
            "--vcpu-pin",
            &pin0,
            "--vcpu-pin",
            &pin1,
            "--emulator-pin",
            &emu,
        ],
    );
    let pid = vm.pid();
    let sock = vm.socket.to_str().unwrap().to_string();
    let tids = vm.vcpu_tids();
    assert_eq!(tids.len(), 2);
    wait_busy(pid, &tids, 5);

    // The kernel: each vCPU thread's affinity and last CPU, and ps over time.
    assert_eq!(taskset_list(tids[0]), a.to_string());
    assert_eq!(taskset_list(tids[1]), b.to_string());
    assert_ps_shows(&tids, &[a, b], 20);
    // Every other thread (main loop, QMP threads) is an emulator thread, on CPU a.
    let emulator: Vec<i32> = threads(pid)
        .into_iter()
        .filter(|t| !tids.contains(t))
        .collect();
    assert!(
        emulator.len() >= 2,
        "main and QMP accept threads at least: {emulator:?}"
    );
    for &t in &emulator {
        if let Some(list) = taskset_if_alive(t) {
            assert_eq!(list, a.to_string(), "thread {t}");
        }
    }
    // rvmm agrees with the kernel.
    assert_agrees(&vm, &tids, &[a, b]);
    let (text, _) = rvmm_ok(&["vcpuinfo", &sock]);
    let width = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    let width: u32 = width
        .trim()
        .rsplit(['-', ','])
        .next()
        .unwrap()
        .parse::<u32>()
        .unwrap()
        + 1;
    let map = |c: u32| {
        (0..width)
            .map(|i| if i == c { 'y' } else { '-' })
            .collect::<String>()
    };
    assert!(
        text.contains(&format!(
            "VCPU:           0\nCPU:            {a}\nState:          running\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "CPU Affinity:   {}\nThread ID:      {}\n",
            map(a),
            tids[0]
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "CPU Affinity:   {}\nThread ID:      {}\n",
            map(b),
            tids[1]
        )),
        "{text}"
    );
    let (table, _) = rvmm_ok(&["vcpupin", &sock]);
    assert_eq!(
        table,
        format!(" VCPU   CPU Affinity\n----------------------\n 0      {a}\n 1      {b}\n")
    );

    // Re-pin vCPU 0 onto b at run time: a warning (two vCPUs on one CPU), and the kernel
    // shows the move at once.
    let (out, err) = rvmm_ok(&["vcpupin", &sock, "0", &b.to_string()]);
    assert_eq!(out, "");
    assert_eq!(
        err.trim_end(),
        format!("rvmm: warning: vcpupin: vCPUs 0 and 1 are both pinned to host CPU {b}; they will take turns on it")
    );
    assert_eq!(taskset_list(tids[0]), b.to_string());
    let t0 = task_stat(pid, tids[0]).1;
    wait_busy(pid, &tids[..1], t0 + 3);
    assert_ps_shows(&tids, &[b, b], 20);
    assert_agrees(&vm, &tids, &[b, b]);
    let (table, _) = rvmm_ok(&["vcpupin", &sock, "0"]);
    assert_eq!(
        table,
        format!(" VCPU   CPU Affinity\n----------------------\n 0      {b}\n")
    );

    // The emulator threads move too.
    rvmm_ok(&["emulatorpin", &sock, &b.to_string()]);
    for t in threads(pid).into_iter().filter(|t| !tids.contains(t)) {
        if let Some(list) = taskset_if_alive(t) {
            assert_eq!(list, b.to_string(), "thread {t}");
        }
    }
    let (shown, _) = rvmm_ok(&["emulatorpin", &sock]);
    assert_eq!(
        shown,
        format!("emulator: CPU Affinity\n----------------------------------\n       *: {b}\n")
    );

    // A CPU that does not exist is an error naming it; nothing changes.
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    let out = run_with_timeout(
        {
            let mut c = rvmm();
            c.args(["vcpupin", &sock, "1", "4000"]);
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "rvmm: vcpupin: vcpupin 1 4000: host CPU 4000 does not exist (this host's CPUs are {})",
            possible.trim()
        )
    );
    assert_eq!(taskset_list(tids[1]), b.to_string());
    let mut vm = vm;
    assert!(vm.alive());
    vm.client().ok("quit", None);
    assert!(vm.wait(Duration::from_secs(20)).status.success());
}

#[test]
fn cpuset_covers_every_thread_and_halted_vcpus_show_as_halted() {
    let test = "cpuset_covers_every_thread_and_halted_vcpus_show_as_halted";
    if !kvm_available(test) {
        return;
    }
    let Some((_, b)) = two_cpus(test) else { return };
    let vm = BackgroundVm::start(
        "cpuset",
        &[
            "--smp",
            "2",
            "--append",
            "mode=halt",
            "--cpuset",
            &b.to_string(),
        ],
    );
    let pid = vm.pid();
    let sock = vm.socket.to_str().unwrap().to_string();
    for t in threads(pid) {
        if let Some(list) = taskset_if_alive(t) {
            assert_eq!(list, b.to_string(), "thread {t}");
        }
    }
    // Halt mode: once the probe has dumped, every vCPU sleeps in KVM (state S, "halted").
    let state = |vm: &BackgroundVm| -> Vec<String> {
        let (json, _) = rvmm_ok(&["vcpuinfo", vm.socket.to_str().unwrap(), "--json"]);
        let v: Value = serde_json::from_str(&json).unwrap();
        v["vcpus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["state"].as_str().unwrap().to_string())
            .collect()
    };
    let start = Instant::now();
    while state(&vm) != ["halted", "halted"] {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "vCPUs never halted: {:?}",
            state(&vm)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tids = vm.vcpu_tids();
    for &t in &tids {
        assert_eq!(task_stat(pid, t).0, 'S');
    }
    // Paused vCPUs park on a condition variable: "paused", and not spinning.
    let mut c = vm.client();
    c.ok("stop", None);
    assert_eq!(state(&vm), ["paused", "paused"]);
    let before: Vec<u64> = tids.iter().map(|&t| task_stat(pid, t).1).collect();
    std::thread::sleep(Duration::from_millis(300));
    let after: Vec<u64> = tids.iter().map(|&t| task_stat(pid, t).1).collect();
    assert!(
        after.iter().zip(&before).all(|(a, b)| a - b <= 2),
        "paused vCPUs used CPU: {before:?} -> {after:?}"
    );
    c.ok("cont", None);
    let (text, _) = rvmm_ok(&["vcpuinfo", &sock]);
    assert!(text.contains("VCPU:           1\n"), "{text}");
    c.ok("quit", None);
    assert!(vm.wait(Duration::from_secs(20)).status.success());
}

#[test]
fn bad_pins_are_errors_naming_them() {
    // Guest-side rules need no KVM.
    let out = run_with_timeout(
        {
            let mut c = rvmm();
            c.args(["run", "--smp", "2", "--vcpu-pin", "5=0"]);
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "rvmm: --vcpu-pin: vCPU 5 does not exist (--smp gives vCPUs 0-1)"
    );
    let out = run_with_timeout(
        {
            let mut c = rvmm();
            c.args(["run", "--cpuset", "0-"]);
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "rvmm: --cpuset: \"0-\": CPU list \"0-\": bad token \"0-\": missing CPU number"
    );
    if !kvm_available("bad_pins_are_errors_naming_them") {
        return;
    }
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    let out = run_with_timeout(
        {
            let mut c = rvmm();
            c.args(["run", "--vcpu-pin", "0=4000", "--append", "mode=hello"]);
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap(),
        format!(
            "rvmm: --vcpu-pin 0=4000: host CPU 4000 does not exist (this host's CPUs are {})",
            possible.trim()
        )
    );
    // Two vCPUs on one host CPU: allowed, with one warning.
    let cpu = allowed_cpus()[0];
    let (p0, p1) = (format!("0={cpu}"), format!("1={cpu}"));
    let out = run_with_timeout(
        {
            let mut c = rvmm();
            c.args(["run", "--smp", "2", "--vcpu-pin", &p0, "--vcpu-pin", &p1]);
            c
        },
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let shared: Vec<&str> = err.lines().filter(|l| l.contains("both pinned")).collect();
    assert_eq!(
        shared,
        [format!("rvmm: warning: --vcpu-pin: vCPUs 0 and 1 are both pinned to host CPU {cpu}; they will take turns on it")]
    );
}
