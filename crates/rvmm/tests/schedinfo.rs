//! `rvmm schedinfo VM [--set KEY=VALUE ...]` against a real VM and its real cgroup: the
//! virsh layout with a fresh group's values, a quota set at run time showing in the reply
//! and in the vCPU group's `cpu.cfs_quota_us` (this host is cgroup v1), and bad `--set`s
//! refused with one message naming them, changing nothing.

mod common;

use std::process::Output;
use std::time::Duration;

use common::vm::BackgroundVm;
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
#[ignore = "needs the VM cgroup from issue 14 helper A; un-ignore at merge"]
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
    // As JSON, with virsh's names.
    let json: serde_json::Value = serde_json::from_str(&schedinfo_ok(&[&sock, "--json"])).unwrap();
    assert_eq!(json["vcpu_quota"], 25_000);
    assert_eq!(json["cpu_shares"], 1024);

    // A bad --set beside a good one: one error naming it, nothing changed.
    let out = schedinfo(&[&sock, "--set", "cpu_shares=512", "--set", "vcpu_quota=0"]);
    let (_, stderr) = failed_cleanly(&out, "schedinfo --set vcpu_quota=0");
    assert!(
        stderr.contains("vcpu_quota=0: a quota must be -1 (no limit) or 1000"),
        "{stderr}"
    );
    assert_eq!(schedinfo_ok(&[&sock]), layout(25_000));
    assert_eq!(read_quota(), "25000");

    // Back to no limit.
    assert_eq!(schedinfo_ok(&[&sock, "--set", "vcpu_quota=-1"]), layout(-1));
    assert_eq!(read_quota(), "-1");
    drop(vm);
}

#[test]
fn bad_sets_fail_before_the_vm_is_asked() {
    // No VM listens at this path: the --set is refused before rvmm connects.
    let missing = "/nonexistent-rvmm-test/vm.qmp";
    for (set, expected) in [
        (
            "vcpu_quota=0",
            "rvmm: schedinfo: --set vcpu_quota=0: a quota must be -1 (no limit) or 1000 to \
             17592186044415 microseconds",
        ),
        (
            "vcpu_period=999",
            "rvmm: schedinfo: --set vcpu_period=999: a period must be 1000 to 1000000 \
             microseconds",
        ),
        (
            "cpu_shares=1",
            "rvmm: schedinfo: --set cpu_shares=1: shares must be 2 to 262144",
        ),
        (
            "iothread_quota=-1",
            "rvmm: schedinfo: --set iothread_quota=-1: unknown parameter (valid: cpu_shares, \
             vcpu_period, vcpu_quota, emulator_period, emulator_quota, global_period, \
             global_quota)",
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
