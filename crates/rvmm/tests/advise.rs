//! `rvmm advise` against real VMs: the probe guest's `mode=load` keeps chosen vCPUs busy at
//! a chosen duty cycle, and each load must get the advice the seeds' rules say
//! (single-threaded → 1, idle → reduce, saturated → increase, two busy vCPUs pinned to one
//! host CPU → contended), with the per-vCPU busy figures agreeing with the kernel's
//! schedstat of the same threads over the same window.
//!
//! Windows are short (3 s, 500 ms intervals) and the machine has 2 cores shared with other
//! tests, so the rules are judged on demand (busy + steal), which contention does not lower,
//! and the /proc comparison allows ±10 points.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::vm::{allowed_cpus, comm, run_wait, threads, BackgroundVm};
use common::{failed_cleanly, kvm_available, run_with_timeout, rvmm};
use serde_json::Value;

/// Busy figures from `rvmm advise` and from /proc may differ by this many points.
const PROC_TOLERANCE_POINTS: f64 = 10.0;

/// A VM booted with the probe in load mode; returns once every vCPU runs its load.
fn load_vm(tag: &str, smp: &str, duty: &str, extra: &[&str]) -> BackgroundVm {
    let append = format!("mode=load duty={duty}");
    let mut args = vec!["--smp", smp, "--append", &append];
    args.extend_from_slice(extra);
    let mut vm = BackgroundVm::start_probe_elf(tag, &args);
    vm.wait_line("PROBE-LOAD cpus=");
    vm
}

fn advise_cmd(vm: &str, window: &str, interval: &str, json: bool) -> Command {
    let mut c = rvmm();
    c.args(["advise", vm, "--window", window, "--interval", interval]);
    if json {
        c.arg("--json");
    }
    c
}

fn advise_json(vm: &BackgroundVm) -> Value {
    let out = run_with_timeout(
        advise_cmd(vm.socket.to_str().unwrap(), "3s", "500ms", true),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "rvmm advise failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("advise --json prints JSON")
}

/// The vCPU threads of `pid` by vCPU index ("CPU N/KVM").
fn vcpu_threads(pid: i32) -> Vec<(u32, i32)> {
    let mut v: Vec<(u32, i32)> = threads(pid)
        .into_iter()
        .filter_map(|tid| {
            let name = comm(pid, tid);
            let n = name
                .strip_prefix("CPU ")?
                .strip_suffix("/KVM")?
                .parse()
                .ok()?;
            Some((n, tid))
        })
        .collect();
    v.sort_unstable();
    v
}

fn sizing(a: &Value) -> (&str, u64) {
    (
        a["sizing"]["rule"].as_str().unwrap(),
        a["sizing"]["to"].as_u64().unwrap(),
    )
}

#[test]
fn one_busy_vcpu_of_four_is_single_threaded_and_busy_agrees_with_proc() {
    let test = "one_busy_vcpu_of_four_is_single_threaded_and_busy_agrees_with_proc";
    if !kvm_available(test) {
        return;
    }
    let vm = load_vm("adv-single", "4", "100,0,0,0", &[]);
    let pid = vm.pid();
    let tids = vcpu_threads(pid);
    assert_eq!(tids.len(), 4, "{tids:?}");
    let before: Vec<(u64, u64)> = tids.iter().map(|&(_, t)| run_wait(pid, t)).collect();
    let t0 = Instant::now();
    let a = advise_json(&vm);
    let wall_ns = t0.elapsed().as_nanos() as f64;
    let after: Vec<(u64, u64)> = tids.iter().map(|&(_, t)| run_wait(pid, t)).collect();

    assert_eq!(sizing(&a), ("single-threaded", 1), "{a:#}");
    let sock = vm.socket.to_str().unwrap();
    assert_eq!(
        a["sizing"]["command"].as_str().unwrap(),
        format!("rvmm setvcpus {sock} 1")
    );
    assert!(a["sizing"]["why"][1]
        .as_str()
        .unwrap()
        .contains("one vCPU's worth"));

    // Per vCPU: advise's busy average vs the kernel's run time over the same threads.
    let figures = a["vcpu-figures"].as_array().unwrap();
    for (i, &(vcpu, tid)) in tids.iter().enumerate() {
        let f = figures
            .iter()
            .find(|f| f["vcpu"] == vcpu)
            .unwrap_or_else(|| panic!("no figures for vCPU {vcpu}: {a:#}"));
        assert_eq!(f["thread-id"], tid);
        let proc_busy = (after[i].0 - before[i].0) as f64 * 100.0 / wall_ns;
        let advise_busy = f["busy"]["average"].as_f64().unwrap();
        eprintln!("vCPU {vcpu}: advise busy {advise_busy:.1} %, /proc run {proc_busy:.1} %");
        assert!(
            (advise_busy - proc_busy).abs() <= PROC_TOLERANCE_POINTS,
            "vCPU {vcpu}: advise busy {advise_busy:.1} % vs /proc {proc_busy:.1} %"
        );
        if vcpu == 0 {
            // duty 100: always running or runnable.
            let demand = f["demand"]["average"].as_f64().unwrap();
            assert!(demand > 90.0, "vCPU 0 demand {demand}");
        } else {
            assert!(advise_busy < 5.0, "idle vCPU {vcpu} busy {advise_busy}");
        }
    }
}

#[test]
fn idle_vcpus_are_reduced_a_step() {
    let test = "idle_vcpus_are_reduced_a_step";
    if !kvm_available(test) {
        return;
    }
    let vm = load_vm("adv-idle", "4", "0", &[]);
    let a = advise_json(&vm);
    assert_eq!(sizing(&a), ("reduce", 3), "{a:#}");
    assert!(a["figures"]["demand"]["peak"].as_f64().unwrap() < 45.0);
    let why = a["sizing"]["why"].to_string();
    assert!(why.contains("average < 38 % and peak < 45 %"), "{why}");
    assert!(why.contains("change a little at a time"), "{why}");

    // The text form says the same.
    let out = run_with_timeout(
        advise_cmd(vm.socket.to_str().unwrap(), "1s", "500ms", false),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("recommendation: reduce (4 → 3 vCPUs)"),
        "{text}"
    );
    assert!(text.contains("command: rvmm setvcpus "), "{text}");
}

#[test]
fn vcpus_are_checked_against_the_host_node_of_their_memory() {
    let test = "vcpus_are_checked_against_the_host_node_of_their_memory";
    if !kvm_available(test) {
        return;
    }
    // Guest node 0 (vCPU 0) has its memory bound to host node 0; guest node 1 (vCPU 1) is
    // not bound, so only vCPU 0 is checked. This host has one node holding every CPU, so
    // vCPU 0 cannot run away from its memory.
    let vm = load_vm(
        "adv-numa",
        "2",
        "50",
        &[
            "-m",
            "256M",
            "--numa",
            "node,nodeid=0,cpus=0,mem=128M,host-nodes=0,policy=bind",
            "--numa",
            "node,nodeid=1,cpus=1,mem=128M",
        ],
    );
    let out = run_with_timeout(
        {
            let mut c = rvmm();
            c.args(["stats", vm.socket.to_str().unwrap(), "--json"]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", failed(&out, "rvmm stats"));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stats --json prints JSON");
    let vcpus = report["vcpus"].as_array().unwrap();
    assert_eq!(vcpus[0]["guest-node"], 0, "{report:#}");
    assert_eq!(vcpus[0]["memory-host-nodes"], serde_json::json!([0]));
    assert_eq!(vcpus[1]["guest-node"], 1);
    assert!(vcpus[1].get("memory-host-nodes").is_none(), "{report:#}");
    let online = std::fs::read_to_string("/sys/devices/system/node/node0/cpulist").unwrap();
    assert_eq!(report["host-nodes"][0]["node"], 0);
    assert_eq!(report["host-nodes"][0]["cpus"], online.trim());

    let a = advise_json(&vm);
    let p = &a["placement"];
    assert_eq!(p["checked"], serde_json::json!([0]), "{a:#}");
    assert_eq!(p["misplaced"], serde_json::json!([]), "{a:#}");
    assert!(
        p["why"][0]
            .as_str()
            .unwrap()
            .contains("vCPUs 0 ran on the host nodes their guest nodes' memory is bound to"),
        "{a:#}"
    );
}

#[test]
fn a_saturated_vcpu_is_increased_within_maxcpus_or_by_restart() {
    let test = "a_saturated_vcpu_is_increased_within_maxcpus_or_by_restart";
    if !kvm_available(test) {
        return;
    }
    let vm = load_vm("adv-sat", "1,maxcpus=2", "95", &[]);
    let a = advise_json(&vm);
    assert_eq!(sizing(&a), ("increase", 2), "{a:#}");
    let sock = vm.socket.to_str().unwrap();
    assert_eq!(
        a["sizing"]["command"].as_str().unwrap(),
        format!("rvmm setvcpus {sock} 2")
    );
    drop(vm);

    // maxcpus 1: a restart with a larger maximum, and libvirt's XML for it.
    let vm = load_vm("adv-sat1", "1", "95", &[]);
    let a = advise_json(&vm);
    assert_eq!(sizing(&a), ("increase", 2), "{a:#}");
    assert!(a["sizing"].get("command").is_none(), "{a:#}");
    assert_eq!(
        a["sizing"]["restart"]["libvirt-xml"],
        "<vcpu placement='static' current='2'>2</vcpu>"
    );
}

#[test]
fn two_busy_vcpus_pinned_to_one_cpu_are_contended() {
    let test = "two_busy_vcpus_pinned_to_one_cpu_are_contended";
    if !kvm_available(test) {
        return;
    }
    let cpus = allowed_cpus();
    let a_cpu = cpus[0];
    let (p0, p1) = (format!("0={a_cpu}"), format!("1={a_cpu}"));
    let vm = load_vm(
        "adv-pin",
        "2",
        "100,100",
        &["--vcpu-pin", &p0, "--vcpu-pin", &p1],
    );
    let a = advise_json(&vm);
    let c = &a["contention"];
    assert!(c.is_object(), "not contended: {a:#}");
    assert!(c["steal-average"].as_f64().unwrap() > 10.0, "{a:#}");
    let shared = c["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "shared-pins")
        .unwrap_or_else(|| panic!("no shared-pins cause: {a:#}"));
    assert_eq!(shared["vcpus"], serde_json::json!([0, 1]));
    assert_eq!(shared["cpus"], a_cpu.to_string());
    let sock = vm.socket.to_str().unwrap();
    let cmd = c["commands"][0].as_str().unwrap();
    let prefix = format!("rvmm vcpupin {sock} 1 ");
    assert!(cmd.starts_with(&prefix), "{cmd}");
    assert_ne!(cmd[prefix.len()..], a_cpu.to_string(), "{cmd}");
}

fn failed(out: &Output, what: &str) -> String {
    failed_cleanly(out, what).1
}

#[test]
fn bad_input_is_one_clear_message() {
    let test = "bad_input_is_one_clear_message";
    let run = |args: &[&str]| {
        run_with_timeout(
            {
                let mut c = rvmm();
                c.arg("advise").args(args);
                c
            },
            Duration::from_secs(30),
        )
    };
    let e = failed(
        &run(&["vm", "--window", "1s", "--interval", "1s"]),
        "window",
    );
    assert!(
        e.contains("--window 1s must hold at least two --interval 1s samples"),
        "{e}"
    );
    let e = failed(&run(&["vm", "--window", "soon"]), "bad window");
    assert!(e.contains("--window") && e.contains("soon"), "{e}");
    let e = failed(&run(&["vm", "--interval", "1x"]), "bad interval");
    assert!(e.contains("--interval") && e.contains("1x"), "{e}");
    let e = failed(
        &run(&["/nonexistent/vm.qmp", "--window", "2s", "--interval", "1s"]),
        "unknown VM",
    );
    assert!(e.contains("/nonexistent/vm.qmp"), "{e}");

    // The VM exits while being watched.
    if !kvm_available(test) {
        return;
    }
    let mut vm = load_vm("adv-exit", "1", "0", &[]);
    let child = advise_cmd(vm.socket.to_str().unwrap(), "20s", "200ms", false)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // Ends our own VM (SIGTERM to its pid).
    let _ = Command::new("kill").arg(vm.pid().to_string()).status();
    let start = Instant::now();
    while vm.alive() {
        assert!(start.elapsed() < Duration::from_secs(10), "VM did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let e = failed(&out, "VM exit");
    assert!(e.contains("the VM exited while being watched"), "{e}");
    assert!(out.stdout.is_empty());
}

#[test]
fn load_mode_keeps_the_duty_cycle_and_rejects_bad_values() {
    let test = "load_mode_keeps_the_duty_cycle_and_rejects_bad_values";
    if !kvm_available(test) {
        return;
    }
    // vCPU 0 at 30 %, vCPU 1 idle. Demand (busy + steal) is what the guest asked for: busy
    // alone drops when other tests take the host's 2 cores; a wake-up that waits for a CPU
    // adds a little steal, hence the wide upper bound.
    let vm = load_vm("adv-duty", "2", "30,0", &[]);
    let a = advise_json(&vm);
    let f = &a["vcpu-figures"];
    let d0 = f[0]["demand"]["average"].as_f64().unwrap();
    let b0 = f[0]["busy"]["average"].as_f64().unwrap();
    let b1 = f[1]["busy"]["average"].as_f64().unwrap();
    eprintln!("duty 30: busy {b0:.1} %, demand {d0:.1} %; duty 0: busy {b1:.1} %");
    assert!(
        (20.0..=50.0).contains(&d0),
        "duty 30 gave demand {d0}: {a:#}"
    );
    assert!(b0 <= 35.0, "duty 30 gave busy {b0}");
    assert!(b1 < 2.0, "duty 0 gave busy {b1}");
    drop(vm);

    for (append, error) in [
        (
            "mode=load duty=101",
            "PROBE-ERROR bad duty (0..100 per vCPU) 101",
        ),
        (
            "mode=load duty=50,x",
            "PROBE-ERROR bad duty (0..100 per vCPU) 50,x",
        ),
        (
            "mode=load period=0",
            "PROBE-ERROR bad period (1..10000 ms) 0",
        ),
    ] {
        let dir = common::tempdir("adv-bad");
        let elf = common::probe_elf(&dir);
        let mut cmd = rvmm();
        cmd.args(["run", "--kernel"])
            .arg(&elf)
            .args(["--append", append]);
        let out = common::run_with_timeout(cmd, Duration::from_secs(30));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.lines().any(|l| l == error), "{append}: {text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
