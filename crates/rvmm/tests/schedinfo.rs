//! `rvmm schedinfo VM [--set KEY=VALUE ...]` against a real VM and its real cgroup: the
//! virsh layout with a fresh group's values, a quota set at run time showing in the reply
//! and in the vCPU group's `cpu.cfs_quota_us` (this host is cgroup v1) and in `vcpuinfo` and
//! `stats`, the quota's effect on a busy vCPU (25 % ± 5 %, back to a whole CPU without),
//! and bad `--set`s refused with one message naming them, changing nothing. The tests on a
//! VM need the VM cgroup (root and a cpu controller, as on the CI host).

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::vm::{run_wait, BackgroundVm};
use common::{failed_cleanly, kvm_available, run_with_timeout, rvmm};

fn schedinfo(args: &[&str]) -> Output {
    let mut c = rvmm();
    c.arg("schedinfo").args(args);
    run_with_timeout(c, Duration::from_secs(30))
}

fn schedinfo_ok(args: &[&str]) -> String {
    let out = schedinfo(args);
    assert!(
        out.status.success(),
        "rvmm schedinfo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rvmm ARGS`, which must succeed; its stdout.
fn schedinfo_ok_cmd(args: &[&str]) -> String {
    let mut c = rvmm();
    c.args(args);
    let out = run_with_timeout(c, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "rvmm {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The vCPU thread's share of one host CPU over `window` (1.0 = a whole CPU), and the
/// vCPU group's `cpuacct.usage` growth over the same window, in nanoseconds.
fn share_over(pid: i32, tid: i32, usage_file: &str, window: Duration) -> (f64, u64, u64) {
    let usage = || -> u64 {
        std::fs::read_to_string(usage_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (t0, u0, start) = (run_wait(pid, tid).0, usage(), Instant::now());
    std::thread::sleep(window);
    let (t1, u1, wall) = (run_wait(pid, tid).0, usage(), start.elapsed());
    ((t1 - t0) as f64 / wall.as_nanos() as f64, t1 - t0, u1 - u0)
}

/// virsh schedinfo's layout for a VM whose vCPU quota is `vcpu_quota`, everything else as
/// a fresh group has it.
fn layout(vcpu_quota: i64) -> String {
    format!(
        "Scheduler      : posix\n\
         cpu_shares     : 1024\n\
         vcpu_period    : 100000\n\
         vcpu_quota     : {vcpu_quota}\n\
         emulator_period: 100000\n\
         emulator_quota : -1\n\
         global_period  : 100000\n\
         global_quota   : -1\n"
    )
}

#[test]
fn schedinfo_shows_and_sets_the_vcpu_quota_in_the_group() {
    let test = "schedinfo_shows_and_sets_the_vcpu_quota_in_the_group";
    if !kvm_available(test) {
        return;
    }
    let name = format!("sched{}", std::process::id());
    // Default options but a name (the group is named after it) and a guest that stays up.
    let vm = BackgroundVm::start(
        "schedinfo",
        &["--smp", "2", "--name", &name, "--append", "mode=halt"],
    );
    let sock = vm.socket.to_str().unwrap().to_string();
    let group = format!("/sys/fs/cgroup/cpu/rvmm.slice/rvmm-{name}.scope");
    let quota_file = format!("{group}/vcpu0/cpu.cfs_quota_us");
    let read_quota = || {
        std::fs::read_to_string(&quota_file)
            .unwrap()
            .trim()
            .to_string()
    };

    assert_eq!(schedinfo_ok(&[&sock]), layout(-1));
    assert_eq!(read_quota(), "-1");

    assert_eq!(
        schedinfo_ok(&[&sock, "--set", "vcpu_quota=25000"]),
        layout(25_000)
    );
    assert_eq!(read_quota(), "25000");
    assert_eq!(
        std::fs::read_to_string(format!("{group}/vcpu1/cpu.cfs_quota_us"))
            .unwrap()
            .trim(),
        "25000",
        "vcpu_quota applies to each vCPU's group"
    );
    // vcpuinfo and stats show the quota of each vCPU's group.
    let info = schedinfo_ok_cmd(&["vcpuinfo", &sock]);
    assert!(
        info.contains("CPU quota:      25000/100000 us (25%)\n"),
        "{info}"
    );
    assert!(info.contains("Throttled:      "), "{info}");
    let stats = schedinfo_ok_cmd(&["stats", &sock]);
    for line in [
        "  vcpu.0.cgroup.period=100000\n",
        "  vcpu.0.cgroup.quota=25000\n",
        "  vcpu.1.cgroup.quota=25000\n",
    ] {
        assert!(stats.contains(line), "{line:?} missing from:\n{stats}");
    }
    // As JSON, with virsh's names.
    let json: serde_json::Value = serde_json::from_str(&schedinfo_ok(&[&sock, "--json"])).unwrap();
    assert_eq!(json["vcpu_quota"], 25_000);
    assert_eq!(json["cpu_shares"], 1024);

    // A bad --set beside a good one: one error naming it, nothing changed.
    let out = schedinfo(&[&sock, "--set", "cpu_shares=512", "--set", "vcpu_quota=0"]);
    let (_, stderr) = failed_cleanly(&out, "schedinfo --set vcpu_quota=0");
    assert!(
        stderr.contains("vcpu_quota: 0 is not a valid quota (a CFS quota is -1 (no limit) or 1000"),
        "{stderr}"
    );
    assert_eq!(schedinfo_ok(&[&sock]), layout(25_000));
    assert_eq!(read_quota(), "25000");

    // Back to no limit.
    assert_eq!(schedinfo_ok(&[&sock, "--set", "vcpu_quota=-1"]), layout(-1));
    assert_eq!(read_quota(), "-1");
    drop(vm);
}

/// The proof: a busy vCPU held to a 25 % quota uses 25 % ± 5 % of a host CPU (the
/// thread's schedstat and the group's cpuacct.usage agree), and goes back to about a whole
/// CPU once the quota is removed at run time. Needs a host CPU the vCPU can have to itself.
#[test]
fn a_quarter_quota_holds_a_busy_vcpu_to_a_quarter_of_a_cpu() {
    let test = "a_quarter_quota_holds_a_busy_vcpu_to_a_quarter_of_a_cpu";
    if !kvm_available(test) {
        return;
    }
    let name = format!("schedq{}", std::process::id());
    let vm = BackgroundVm::start(
        "schedquota",
        &["--smp", "1", "--name", &name, "--append", "mode=busy"],
    );
    let sock = vm.socket.to_str().unwrap().to_string();
    let tid = vm.client().ok("query-cpus-fast", None)[0]["thread-id"]
        .as_i64()
        .unwrap() as i32;
    let usage = format!("/sys/fs/cgroup/cpuacct/rvmm.slice/rvmm-{name}.scope/vcpu0/cpuacct.usage");
    schedinfo_ok(&[&sock, "--set", "vcpu_quota=25000"]);
    std::thread::sleep(Duration::from_millis(500));
    let (share, thread_ns, group_ns) = share_over(vm.pid(), tid, &usage, Duration::from_secs(4));
    assert!(
        (0.20..=0.30).contains(&share),
        "with a 25 % quota the vCPU used {:.1} % of a CPU",
        share * 100.0
    );
    let diff = thread_ns.abs_diff(group_ns) as f64 / thread_ns.max(1) as f64;
    assert!(
        diff < 0.05,
        "the thread ran {thread_ns} ns, its group counted {group_ns} ns"
    );
    let stats = schedinfo_ok_cmd(&["stats", &sock]);
    assert!(
        !stats.contains("vcpu.0.cgroup.nr_throttled=0\n"),
        "a busy vCPU at 25 % is throttled:\n{stats}"
    );

    schedinfo_ok(&[&sock, "--set", "vcpu_quota=-1"]);
    std::thread::sleep(Duration::from_millis(500));
    let (share, _, _) = share_over(vm.pid(), tid, &usage, Duration::from_secs(4));
    assert!(
        share > 0.75,
        "without a quota the busy vCPU used only {:.1} % of a CPU",
        share * 100.0
    );
    drop(vm);
}

#[test]
fn bad_sets_fail_before_the_vm_is_asked() {
    // No VM listens at this path: the --set is refused before rvmm connects.
    let missing = "/nonexistent-rvmm-test/vm.qmp";
    for (set, expected) in [
        (
            "vcpu_quota=0",
            "rvmm: schedinfo: --set vcpu_quota: 0 is not a valid quota (a CFS quota is -1 (no \
             limit) or 1000 to 17592186044415 microseconds; 0 and other negative values are \
             refused)",
        ),
        (
            "vcpu_period=999",
            "rvmm: schedinfo: --set vcpu_period: 999 is out of range (a CFS period is 1000 to \
             1000000 microseconds (the kernel's cpu.cfs_period_us range))",
        ),
        (
            "cpu_shares=1",
            "rvmm: schedinfo: --set cpu_shares: 1 is out of range (CPU shares are 2 to 262144 \
             (cgroup v1 cpu.shares, libvirt's <shares>))",
        ),
        (
            "iothread_quota=-1",
            "rvmm: schedinfo: --set iothread_quota: rvmm has no iothreads (its I/O runs in the \
             emulator threads: use emulator_period/emulator_quota)",
        ),
        (
            "vcpu_quota",
            "rvmm: schedinfo: --set vcpu_quota: expected KEY=VALUE (e.g. vcpu_quota=25000)",
        ),
    ] {
        let out = schedinfo(&[missing, "--set", "cpu_shares=512", "--set", set]);
        let (code, stderr) = failed_cleanly(&out, set);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stderr.trim_end(), expected);
        assert!(out.stdout.is_empty());
    }
}
