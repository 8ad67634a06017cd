//! `rvmm stats` as text: `virsh domstats --vcpu`'s layout (`Domain: 'NAME'`, then one
//! indented `key=value` line per figure), with libvirt's keys where libvirt defines them and
//! rvmm's own keys for the rest.
//!
//! libvirt's keys (virsh(1), domstats `--vcpu`; times in nanoseconds):
//! - `vcpu.current`, `vcpu.maximum`: present vCPUs, and the slots there are.
//! - `vcpu.N.state`: virVcpuState: 0 offline, 1 running, 2 blocked. As libvirt's QEMU
//!   driver does, every present vCPU is 1; whether it is halted is `vcpu.N.halted`.
//! - `vcpu.N.time`: CPU time of the vCPU's thread (schedstat run time, nanosecond-exact).
//! - `vcpu.N.wait`: time the vCPU wanted to run while the host ran something else.
//! - `vcpu.N.halted`: `yes` or `no`.
//! - `vcpu.N.delay`: time the thread was enqueued but waiting instead of running (exposed
//!   to the guest as steal time). rvmm reads both wait and delay from the same source
//!   (schedstat's run delay), so they are equal.
//!
//! rvmm's keys: `vcpu.N.status` (running, halted, paused), `vcpu.N.thread` (thread id),
//! `vcpu.N.cpu` (host CPU it last ran on), `vcpu.N.affinity` (kernel CPU list),
//! `vcpu.N.user` / `.system` / `.guest` (stat fields 14, 15, 43 in ns; guest is 0 where the
//! kernel does not account it), `vcpu.N.timeslices`, `vcpu.N.switches.voluntary` /
//! `.involuntary`, `vcpu.N.migrations` (when the kernel reports it), every KVM statistic of
//! the vCPU as `vcpu.N.kvm.NAME` and of the VM as `kvm.NAME` (raw values as KVM publishes
//! them, the unit in the name; a histogram's buckets as a comma list), `kvm.error` when
//! KVM's statistics are missing, and the emulator threads as `emulator.I.*`.
//!
//! When the VM has a cgroup of its own, each vCPU's group (`vcpuN`) adds
//! `vcpu.N.cgroup.period` and `vcpu.N.cgroup.quota` (CFS bandwidth in microseconds, quota -1
//! when unlimited), `vcpu.N.cgroup.nr_periods` (periods in which the group had runnable
//! threads), `vcpu.N.cgroup.nr_throttled` (those in which it used up its quota) and
//! `vcpu.N.cgroup.throttled_time` (nanoseconds held back), as `cpu.stat` counts them.

use std::fmt::Write as _;

use super::sample::{StatsReport, ThreadSample, VcpuSample};
use crate::host::vmcgroup::CgroupCpuStat;
use crate::machine::stats::{KvmStat, StatValue};
use crate::vcpu::info::VcpuState;

/// The vCPU counts libvirt reports with the per-vCPU figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuCounts {
    pub current: u32,
    pub maximum: u32,
}

/// libvirt's virVcpuState number for a vCPU state.
pub fn libvirt_state(state: VcpuState) -> u32 {
    match state {
        VcpuState::Offline => 0,
        VcpuState::Running | VcpuState::Halted | VcpuState::Paused => 1,
    }
}

/// A KVM statistic's value as text: the number, or a histogram's buckets as a comma list.
pub fn stat_value(value: &StatValue) -> String {
    match value {
        StatValue::Scalar(v) => v.to_string(),
        StatValue::Histogram(buckets) => buckets
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn kvm_lines(out: &mut String, prefix: &str, stats: &[KvmStat]) {
    for s in stats {
        let _ = writeln!(out, "  {prefix}{}={}", s.desc.name, stat_value(&s.value));
    }
}

fn thread_lines(out: &mut String, prefix: &str, t: &ThreadSample) {
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "  {prefix}{key}={value}");
    };
    line("thread", &t.thread_id);
    line("cpu", &t.cpu);
    line("affinity", &t.affinity);
    line("user", &t.utime_ns);
    line("system", &t.stime_ns);
    line("guest", &t.guest_ns);
    line("timeslices", &t.timeslices);
    line("switches.voluntary", &t.voluntary_switches);
    line("switches.involuntary", &t.involuntary_switches);
    if let Some(m) = t.migrations {
        line("migrations", &m);
    }
}

fn cgroup_lines(out: &mut String, prefix: &str, c: &CgroupCpuStat) {
    let _ = writeln!(out, "  {prefix}cgroup.period={}", c.period_us);
    let _ = writeln!(out, "  {prefix}cgroup.quota={}", c.quota_us);
    let _ = writeln!(out, "  {prefix}cgroup.nr_periods={}", c.nr_periods);
    let _ = writeln!(out, "  {prefix}cgroup.nr_throttled={}", c.nr_throttled);
    let _ = writeln!(out, "  {prefix}cgroup.throttled_time={}", c.throttled_ns);
}

fn vcpu_lines(out: &mut String, v: &VcpuSample) {
    let p = format!("vcpu.{}.", v.vcpu);
    let t = &v.thread;
    let halted = if v.state == VcpuState::Halted {
        "yes"
    } else {
        "no"
    };
    let _ = writeln!(out, "  {p}state={}", libvirt_state(v.state));
    let _ = writeln!(out, "  {p}time={}", t.run_ns);
    let _ = writeln!(out, "  {p}wait={}", t.wait_ns);
    let _ = writeln!(out, "  {p}halted={halted}");
    let _ = writeln!(out, "  {p}delay={}", t.wait_ns);
    let _ = writeln!(out, "  {p}status={}", v.state.as_str());
    thread_lines(out, &p, t);
    if let Some(c) = &v.cgroup {
        cgroup_lines(out, &p, c);
    }
    kvm_lines(out, &format!("{p}kvm."), &v.kvm);
}

/// The report as `virsh domstats --vcpu` lays it out; `name` is shown when the VM has
/// none of its own (the socket path it was reached by).
pub fn render_domstats(report: &StatsReport, counts: VcpuCounts, name: &str) -> String {
    let mut out = String::new();
    let name = report.name.as_deref().unwrap_or(name);
    let _ = writeln!(out, "Domain: '{name}'");
    let _ = writeln!(out, "  vcpu.current={}", counts.current);
    let _ = writeln!(out, "  vcpu.maximum={}", counts.maximum);
    for v in &report.vcpus {
        vcpu_lines(&mut out, v);
    }
    if let Some(e) = &report.kvm_error {
        let _ = writeln!(out, "  kvm.error={e}");
    }
    kvm_lines(&mut out, "kvm.", &report.vm);
    let _ = writeln!(out, "  emulator.count={}", report.emulator.len());
    for (i, t) in report.emulator.iter().enumerate() {
        let p = format!("emulator.{i}.");
        let _ = writeln!(out, "  {p}name={}", t.name);
        let _ = writeln!(out, "  {p}time={}", t.run_ns);
        let _ = writeln!(out, "  {p}delay={}", t.wait_ns);
        thread_lines(&mut out, &p, t);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::sample::example_kvm_stats;

    fn thread(tid: i32, name: &str) -> ThreadSample {
        ThreadSample {
            thread_id: tid,
            name: name.into(),
            cpu: 1,
            affinity: "0-1".into(),
            utime_ns: 10,
            stime_ns: 20,
            guest_ns: 0,
            run_ns: 3000,
            wait_ns: 40,
            timeslices: 5,
            voluntary_switches: 6,
            involuntary_switches: 7,
            migrations: Some(8),
        }
    }

    fn report() -> StatsReport {
        StatsReport {
            name: Some("web".into()),
            pid: 7,
            time_ns: 1,
            host_cpus: 2,
            vm: vec![],
            kvm_error: None,
            vcpus: vec![
                VcpuSample {
                    vcpu: 0,
                    state: VcpuState::Running,
                    thread: thread(101, "vcpu0"),
                    kvm: example_kvm_stats(100),
                    guest_node: None,
                    memory_host_nodes: Vec::new(),
                    cgroup: Some(CgroupCpuStat {
                        period_us: 100_000,
                        quota_us: 25_000,
                        nr_periods: 40,
                        nr_throttled: 30,
                        throttled_ns: 2_250_000_000,
                        usage_ns: Some(1_000_000_000),
                    }),
                },
                VcpuSample {
                    vcpu: 2,
                    state: VcpuState::Halted,
                    thread: ThreadSample {
                        migrations: None,
                        ..thread(103, "vcpu2")
                    },
                    kvm: vec![],
                    guest_node: None,
                    memory_host_nodes: Vec::new(),
                    cgroup: None,
                },
            ],
            emulator: vec![thread(100, "rvmm")],
            host_nodes: Vec::new(),
        }
    }

    #[test]
    fn libvirt_keys_first_then_rvmms() {
        let text = render_domstats(
            &report(),
            VcpuCounts {
                current: 2,
                maximum: 4,
            },
            "/x.qmp",
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..9],
            [
                "Domain: 'web'",
                "  vcpu.current=2",
                "  vcpu.maximum=4",
                "  vcpu.0.state=1",
                "  vcpu.0.time=3000",
                "  vcpu.0.wait=40",
                "  vcpu.0.halted=no",
                "  vcpu.0.delay=40",
                "  vcpu.0.status=running",
            ]
        );
        for key in [
            "  vcpu.0.thread=101",
            "  vcpu.0.cpu=1",
            "  vcpu.0.affinity=0-1",
            "  vcpu.0.user=10",
            "  vcpu.0.system=20",
            "  vcpu.0.guest=0",
            "  vcpu.0.switches.voluntary=6",
            "  vcpu.0.switches.involuntary=7",
            "  vcpu.0.migrations=8",
            "  vcpu.0.cgroup.period=100000",
            "  vcpu.0.cgroup.quota=25000",
            "  vcpu.0.cgroup.nr_periods=40",
            "  vcpu.0.cgroup.nr_throttled=30",
            "  vcpu.0.cgroup.throttled_time=2250000000",
            "  vcpu.0.kvm.exits=100",
            "  vcpu.0.kvm.io_exits=50",
            "  vcpu.0.kvm.halt_wait_hist=0,1,2",
            "  vcpu.0.kvm.guest_mode=0",
            "  vcpu.2.state=1",
            "  vcpu.2.halted=yes",
            "  vcpu.2.status=halted",
            "  emulator.count=1",
            "  emulator.0.name=rvmm",
            "  emulator.0.thread=100",
        ] {
            assert!(lines.contains(&key), "{key:?} missing from:\n{text}");
        }
        assert!(
            !text.contains("vcpu.2.migrations"),
            "absent figures are left out"
        );
        assert!(
            !text.contains("vcpu.2.cgroup"),
            "a vCPU without a group has no cgroup lines"
        );
        assert!(text.ends_with("\n\n"), "a blank line ends the domain");
    }

    #[test]
    fn vm_statistics_and_a_missing_kvm_part() {
        let mut r = report();
        r.name = None;
        r.vm = example_kvm_stats(3);
        r.kvm_error = Some("no binary stats".into());
        let text = render_domstats(
            &r,
            VcpuCounts {
                current: 2,
                maximum: 2,
            },
            "/run/vm.qmp",
        );
        assert!(text.starts_with("Domain: '/run/vm.qmp'\n"), "{text}");
        assert!(text.contains("\n  kvm.exits=3\n"), "{text}");
        assert!(text.contains("\n  kvm.error=no binary stats\n"), "{text}");
    }

    #[test]
    fn states_map_to_libvirts_numbers() {
        assert_eq!(libvirt_state(VcpuState::Offline), 0);
        assert_eq!(libvirt_state(VcpuState::Running), 1);
        assert_eq!(libvirt_state(VcpuState::Halted), 1);
        assert_eq!(libvirt_state(VcpuState::Paused), 1);
        assert_eq!(stat_value(&StatValue::Histogram(vec![])), "");
    }
}
