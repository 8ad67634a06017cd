//! What happened between two samples of one VM, per vCPU and for the whole VM, as shares of
//! wall time and rates per second:
//!
//! - busy: the vCPU thread's time on a host CPU (schedstat, nanosecond-exact) minus the
//!   time KVM spent halt-polling for it. This is what the host spends on the vCPU, and what
//!   `advise` sizes by. It counts guest code and the VMM's handling of its exits.
//! - guest: time in guest mode (stat field 43), when the kernel accounts it (it does not
//!   under kvm-pvm, so it is `None` there); vmm = busy − guest then.
//! - steal: time the thread was runnable but waited for a host CPU (schedstat run delay).
//! - exits: KVM's cumulative counters named `exits` or `*_exits`, per second.

use serde::{Deserialize, Serialize};

use super::sample::{StatsReport, VcpuSample};
use super::MonitorError;
use crate::machine::stats::{StatType, StatUnit};
use crate::vcpu::info::VcpuState;

/// One vCPU between two samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VcpuRates {
    pub vcpu: u32,
    pub state: VcpuState,
    pub thread_id: i32,
    /// The host CPU it last ran on, and its affinity.
    pub cpu: u32,
    pub affinity: String,
    /// Busy time over wall time, in percent (100 = one host CPU).
    pub busy_pct: f64,
    /// Guest-mode time over wall time; `None` where the kernel does not account it.
    pub guest_pct: Option<f64>,
    /// Busy time outside guest mode; `None` with `guest_pct`.
    pub vmm_pct: Option<f64>,
    /// Time waiting for a host CPU over wall time.
    pub steal_pct: f64,
    /// Halt-polling time over wall time.
    pub halt_poll_pct: f64,
    /// All exits per second (KVM's `exits`).
    pub exits_per_s: f64,
    /// Exits per second by reason (`io_exits`, `halt_exits`, ...), highest first.
    pub exit_reasons: Vec<(String, f64)>,
    /// Involuntary context switches and migrations per second.
    pub involuntary_per_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations_per_s: Option<f64>,
    /// The host NUMA node of `cpu` (absent when the report does not list it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_node: Option<u32>,
    /// The guest node of the vCPU and the host nodes its memory is bound to
    /// ([`VcpuSample`]'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_node: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_host_nodes: Vec<u32>,
}

/// The whole VM between two samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VmRates {
    /// Wall time between the samples, in seconds.
    pub interval_s: f64,
    /// The vCPUs present in both samples.
    pub vcpus: Vec<VcpuRates>,
    /// Mean busy over those vCPUs (100 = every vCPU busy all the time).
    pub busy_pct: f64,
    /// Sum of busy over the vCPUs (host CPUs' worth, in percent of one).
    pub host_cpu_pct: f64,
    pub steal_pct: f64,
    pub exits_per_s: f64,
    /// The emulator threads' time on a CPU over wall time.
    pub emulator_pct: f64,
}

fn pct(delta_ns: u64, wall_ns: u64) -> f64 {
    delta_ns as f64 * 100.0 / wall_ns as f64
}

/// Whether a statistic counts exits.
pub fn is_exit_counter(name: &str, kind: StatType, unit: StatUnit) -> bool {
    kind == StatType::Cumulative
        && unit == StatUnit::None
        && (name == "exits" || name.ends_with("_exits"))
}

fn vcpu_rates(
    before: &VcpuSample,
    after: &VcpuSample,
    wall: u64,
    guest: bool,
    host_node: Option<u32>,
) -> VcpuRates {
    let (b, a) = (&before.thread, &after.thread);
    let run = a.run_ns.saturating_sub(b.run_ns);
    let poll = after.halt_poll_ns().saturating_sub(before.halt_poll_ns());
    let busy = run.saturating_sub(poll);
    let guest_ns = a.guest_ns.saturating_sub(b.guest_ns);
    let per_s = |d: u64| d as f64 * 1e9 / wall as f64;
    let mut exits_per_s = 0.0;
    let mut exit_reasons = Vec::new();
    for s in &after.kvm {
        if !is_exit_counter(&s.desc.name, s.desc.kind, s.desc.unit) {
            continue;
        }
        let prev = before
            .kvm
            .iter()
            .find(|p| p.desc.name == s.desc.name)
            .map_or(0, |p| p.value.total());
        let rate = per_s(s.value.total().saturating_sub(prev));
        if s.desc.name == "exits" {
            exits_per_s = rate;
        } else {
            exit_reasons.push((s.desc.name.clone(), rate));
        }
    }
    exit_reasons.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    VcpuRates {
        vcpu: after.vcpu,
        state: after.state,
        thread_id: a.thread_id,
        cpu: a.cpu,
        affinity: a.affinity.clone(),
        busy_pct: pct(busy, wall),
        guest_pct: guest.then(|| pct(guest_ns, wall)),
        vmm_pct: guest.then(|| pct(busy.saturating_sub(guest_ns), wall)),
        steal_pct: pct(a.wait_ns.saturating_sub(b.wait_ns), wall),
        halt_poll_pct: pct(poll, wall),
        exits_per_s,
        exit_reasons,
        involuntary_per_s: per_s(
            a.involuntary_switches
                .saturating_sub(b.involuntary_switches),
        ),
        migrations_per_s: match (b.migrations, a.migrations) {
            (Some(x), Some(y)) => Some(per_s(y.saturating_sub(x))),
            _ => None,
        },
        host_node,
        guest_node: after.guest_node,
        memory_host_nodes: after.memory_host_nodes.clone(),
    }
}

/// The rates between `before` and `after` (two samples of the same VM, in that order).
/// vCPUs present in only one of them (plugged or unplugged meanwhile) are left out.
pub fn rates(before: &StatsReport, after: &StatsReport) -> Result<VmRates, MonitorError> {
    if before.pid != after.pid {
        return Err(MonitorError::ProcessChanged {
            before: before.pid,
            after: after.pid,
        });
    }
    if after.time_ns <= before.time_ns {
        return Err(MonitorError::NotLater {
            before_ns: before.time_ns,
            after_ns: after.time_ns,
        });
    }
    let wall = after.time_ns - before.time_ns;
    let guest = after.guest_time_accounted();
    let vcpus: Vec<VcpuRates> = after
        .vcpus
        .iter()
        .filter_map(|a| {
            let b = before
                .vcpu(a.vcpu)
                .filter(|b| b.thread.thread_id == a.thread.thread_id)?;
            let node = after.host_node_of(a.thread.cpu);
            Some(vcpu_rates(b, a, wall, guest, node))
        })
        .collect();
    let n = vcpus.len().max(1) as f64;
    let host_cpu_pct: f64 = vcpus.iter().map(|v| v.busy_pct).sum();
    let emulator_run = |r: &StatsReport, tid: i32| {
        r.emulator
            .iter()
            .find(|t| t.thread_id == tid)
            .map(|t| t.run_ns)
    };
    let emulator_ns: u64 = after
        .emulator
        .iter()
        .filter_map(|t| Some(t.run_ns.saturating_sub(emulator_run(before, t.thread_id)?)))
        .sum();
    Ok(VmRates {
        interval_s: wall as f64 / 1e9,
        busy_pct: host_cpu_pct / n,
        host_cpu_pct,
        steal_pct: vcpus.iter().map(|v| v.steal_pct).sum::<f64>() / n,
        exits_per_s: vcpus.iter().map(|v| v.exits_per_s).sum(),
        emulator_pct: pct(emulator_ns, wall),
        vcpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::stats::{KvmStat, StatDesc, StatValue};
    use crate::monitor::sample::ThreadSample;

    fn counter(name: &str, unit: StatUnit, exponent: i16, value: u64) -> KvmStat {
        KvmStat {
            desc: StatDesc {
                name: name.into(),
                kind: StatType::Cumulative,
                unit,
                base: 10,
                exponent,
                size: 1,
                offset: 0,
                bucket_size: 0,
            },
            value: StatValue::Scalar(value),
        }
    }

    fn vcpu(
        index: u32,
        run: u64,
        wait: u64,
        guest: u64,
        exits: u64,
        io: u64,
        poll: u64,
    ) -> VcpuSample {
        VcpuSample {
            vcpu: index,
            state: VcpuState::Running,
            thread: ThreadSample {
                thread_id: 100 + index as i32,
                run_ns: run,
                wait_ns: wait,
                guest_ns: guest,
                involuntary_switches: exits / 10,
                ..ThreadSample::default()
            },
            kvm: vec![
                counter("exits", StatUnit::None, 0, exits),
                counter("io_exits", StatUnit::None, 0, io),
                counter("halt_exits", StatUnit::None, 0, exits - io),
                counter("halt_poll_success_ns", StatUnit::Seconds, -9, poll),
                counter("pf_taken", StatUnit::None, 0, 5),
            ],
            guest_node: None,
            memory_host_nodes: Vec::new(),
            cgroup: None,
        }
    }

    fn report(time_ns: u64, vcpus: Vec<VcpuSample>) -> StatsReport {
        StatsReport {
            name: Some("vm".into()),
            pid: 7,
            time_ns,
            host_cpus: 2,
            vm: vec![],
            kvm_error: None,
            vcpus,
            emulator: vec![],
            host_nodes: Vec::new(),
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn shares_of_wall_time_and_exit_rates() {
        let before = report(
            S,
            vec![vcpu(0, 0, 0, 0, 0, 0, 0), vcpu(1, 0, 0, 0, 0, 0, 0)],
        );
        // Over 2 s: vCPU 0 ran 2 s of which 0.2 s halt-polling, waited 0.5 s;
        // vCPU 1 ran 0.5 s; 3000 exits of which 1000 io.
        let after = report(
            3 * S,
            vec![
                vcpu(0, 2 * S, S / 2, 0, 3000, 1000, S / 5),
                vcpu(1, S / 2, 0, 0, 20, 20, 0),
            ],
        );
        let r = rates(&before, &after).unwrap();
        assert_eq!(r.interval_s, 2.0);
        let v0 = &r.vcpus[0];
        assert!((v0.busy_pct - 90.0).abs() < 1e-9, "{v0:?}");
        assert!((v0.halt_poll_pct - 10.0).abs() < 1e-9);
        assert!((v0.steal_pct - 25.0).abs() < 1e-9);
        assert_eq!(v0.exits_per_s, 1500.0);
        assert_eq!(v0.exit_reasons[0], ("halt_exits".to_string(), 1000.0));
        assert_eq!(v0.exit_reasons[1], ("io_exits".to_string(), 500.0));
        assert_eq!(v0.exit_reasons.len(), 2, "pf_taken is not an exit counter");
        assert_eq!(v0.guest_pct, None, "no guest time accounted");
        assert!((r.vcpus[1].busy_pct - 25.0).abs() < 1e-9);
        assert!((r.busy_pct - 57.5).abs() < 1e-9);
        assert!((r.host_cpu_pct - 115.0).abs() < 1e-9);
        assert_eq!(r.exits_per_s, 1510.0);
    }

    #[test]
    fn guest_time_splits_busy_when_accounted() {
        let before = report(0, vec![vcpu(0, 0, 0, 0, 0, 0, 0)]);
        let after = report(S, vec![vcpu(0, S, 0, 3 * S / 4, 10, 0, 0)]);
        let v = &rates(&before, &after).unwrap().vcpus[0];
        assert_eq!(v.guest_pct, Some(75.0));
        assert_eq!(v.vmm_pct, Some(25.0));
    }

    #[test]
    fn vcpus_in_one_sample_only_are_left_out_and_bad_pairs_refused() {
        let before = report(0, vec![vcpu(0, 0, 0, 0, 0, 0, 0)]);
        let after = report(
            S,
            vec![vcpu(0, S, 0, 0, 0, 0, 0), vcpu(1, S, 0, 0, 0, 0, 0)],
        );
        assert_eq!(rates(&before, &after).unwrap().vcpus.len(), 1);
        assert_eq!(
            rates(&after, &before).unwrap_err(),
            MonitorError::NotLater {
                before_ns: S,
                after_ns: 0
            }
        );
        let mut other = after.clone();
        other.pid = 8;
        assert!(matches!(
            rates(&before, &other),
            Err(MonitorError::ProcessChanged {
                before: 7,
                after: 8
            })
        ));
    }
}
