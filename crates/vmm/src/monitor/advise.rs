//! Sizing advice from what a VM's vCPUs really used over a window: the seeds' rules applied
//! literally to the series of [`VmRates`] `rvmm advise` sampled, plus what the host side
//! shows (steal, and the placement that explains it).
//!
//! Per vCPU and for the whole VM the window gives an average (time-weighted over the
//! intervals) and a peak (the highest interval) of:
//! - busy: the vCPU thread's time on a host CPU minus KVM's halt polling ([`super::rates`]);
//! - steal: time it was runnable but waited for a host CPU;
//! - demand: busy + steal, capped at 100: what the vCPU asked for. The sizing rules judge
//!   demand, so that a vCPU starved by a contended host (busy 50 %, steal 50 %) still counts
//!   as fully used; on an uncontended host steal is ≈ 0 and demand is busy.
//!
//! The whole VM's figure for one interval is the mean over its vCPUs (100 % = every vCPU
//! fully used), so one vCPU's worth is 100/N %.
//!
//! Pure: no I/O, every figure comes in through the arguments.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::rates::VmRates;
use super::sample::HostNodeCpus;
use crate::util::cpulist::{cpulist, parse_cpulist};

/// Rule: "watch over a period, and separate the average from the peak": advice needs at
/// least this many intervals (two samples make one; `rvmm advise` asks for two or more).
pub const MIN_INTERVALS: usize = 1;

/// Rule: "with 4 vCPUs and a peak of 25 % the application is single-threaded": with N ≥ 2
/// vCPUs, a VM peak within this fraction of one vCPU's worth (100/N %) either side is
/// "about 100/N %" → 1 vCPU.
pub const SINGLE_THREAD_TOLERANCE: f64 = 0.2;

/// Rule "single-threaded", its second half: the VM's one vCPU's worth must come from one
/// vCPU doing the work, so the busiest vCPU's peak demand must reach this (percent of a host
/// CPU). Without it, N vCPUs each at 100/N % (a light multi-threaded load that would
/// saturate a single vCPU) would read as single-threaded.
pub const SINGLE_THREAD_VCPU_PEAK: f64 = 80.0;

/// Rule: "average < 38 % and peak < 45 % → reduce the vCPU count" (the average half).
pub const REDUCE_AVERAGE_BELOW: f64 = 38.0;
/// Rule: "average < 38 % and peak < 45 % → reduce the vCPU count" (the peak half).
pub const REDUCE_PEAK_BELOW: f64 = 45.0;

/// Rule: "average > 75 % and peak > 90 % → increase the vCPU count" (the average half).
pub const INCREASE_AVERAGE_ABOVE: f64 = 75.0;
/// Rule: "average > 75 % and peak > 90 % → increase the vCPU count" (the peak half).
pub const INCREASE_PEAK_ABOVE: f64 = 90.0;

/// Rule: "change a little at a time": one step adds or removes this share of the current
/// count, rounded up, so at least one vCPU (4 → 3 or 5, 8 → 6 or 10, 64 → 48 or 80). A step
/// of a quarter stays well inside the band between the reduce and increase thresholds, so a
/// reduced VM does not land straight in the increase zone.
pub const STEP_FRACTION: f64 = 0.25;

/// Host side: "steal above a threshold → the host is oversubscribed": a mean steal over the
/// window above this (percent of wall time per vCPU) means the vCPUs wait for host CPUs.
pub const STEAL_CONTENDED_PCT: f64 = 10.0;

/// Host side: "vCPUs running on a host NUMA node other than their guest node's memory": a
/// vCPU whose guest node's memory is bound to host nodes (`--numa node,host-nodes=`) and
/// whose thread ran on a CPU of another host node in more than this share of the intervals
/// reaches its memory across the host's interconnect most of the time.
pub const REMOTE_NODE_SHARE: f64 = 0.5;

/// Why no advice can be given.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AdviseError {
    /// Fewer intervals than the rules need.
    #[error("advice needs at least {MIN_INTERVALS} interval between two samples, got {got}")]
    TooFewIntervals { got: usize },
    /// The samples had no vCPU in them.
    #[error("the samples hold no vCPU")]
    NoVcpus,
    /// `current` is 0 or above `maxcpus`.
    #[error("the VM's vCPU count {current} is not within 1..={maxcpus} (maxcpus)")]
    BadCount { current: u32, maxcpus: u32 },
}

/// What the host side says besides the samples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HostView {
    /// The name (or socket) the commands address the VM by.
    pub vm: String,
    /// The host's CPUs (the width of an affinity map).
    pub host_cpus: u32,
    /// The VM's present vCPUs and its maximum.
    pub vcpus: u32,
    pub maxcpus: u32,
    /// The host's NUMA nodes and their CPUs (from the last sample).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_nodes: Vec<HostNodeCpus>,
}

/// An average and a peak over the window, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct AvgPeak {
    pub average: f64,
    pub peak: f64,
}

/// One vCPU over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VcpuFigures {
    pub vcpu: u32,
    pub thread_id: i32,
    /// Its affinity and the host CPU it last ran on, from the last sample.
    pub affinity: String,
    pub cpu: u32,
    pub busy: AvgPeak,
    pub steal: AvgPeak,
    pub demand: AvgPeak,
}

/// The whole VM over the window (mean over its vCPUs per interval, 100 = all fully used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VmFigures {
    pub intervals: usize,
    pub window_s: f64,
    pub busy: AvgPeak,
    pub steal: AvgPeak,
    pub demand: AvgPeak,
    /// The highest peak demand of any one vCPU.
    pub busiest_vcpu_peak: f64,
}

/// Which sizing rule applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    SingleThreaded,
    Reduce,
    Increase,
    Keep,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::SingleThreaded => "single-threaded",
            Rule::Reduce => "reduce",
            Rule::Increase => "increase",
            Rule::Keep => "keep",
        }
    }
}

/// The vCPU count to aim for and how to get there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Sizing {
    pub rule: Rule,
    pub from: u32,
    pub to: u32,
    /// The rule text and the figures that met it, then the step and why.
    pub why: Vec<String>,
    /// `rvmm setvcpus VM N` when `to` fits within maxcpus; `None` for keep or a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// When `to` is above maxcpus: what a restart needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Restart>,
}

/// A count above maxcpus: the VM must be restarted with a larger maximum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Restart {
    /// `--smp N,maxcpus=M` for rvmm run.
    pub rvmm: String,
    /// libvirt's domain XML element.
    pub libvirt_xml: String,
}

/// What the host side explains steal with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Cause {
    /// More vCPUs than host CPUs.
    Oversubscribed { vcpus: u32, host_cpus: u32 },
    /// vCPUs whose affinities share host CPUs (`cpus`).
    SharedPins { vcpus: Vec<u32>, cpus: String },
    /// Nothing in this VM's placement: other work on the host.
    OtherLoad,
}

/// The host is contended: the vCPUs wait for host CPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Contention {
    pub steal_average: f64,
    pub causes: Vec<Cause>,
    pub why: Vec<String>,
    /// The commands that remove the causes (may be empty: other load is not ours to move).
    pub commands: Vec<String>,
}

/// A vCPU that ran away from its memory's host nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Misplaced {
    pub vcpu: u32,
    pub guest_node: u32,
    /// The host nodes its guest node's memory is bound to, as a list.
    pub memory_host_nodes: String,
    /// The host nodes it ran on instead, as a list.
    pub ran_on_nodes: String,
    /// Intervals it spent on another node, of those whose node is known.
    pub remote_intervals: usize,
    pub intervals: usize,
    /// Its affinity (last sample), and whether that allows any CPU of the memory's nodes.
    pub affinity: String,
    pub affinity_reaches_memory: bool,
}

/// Where the vCPUs ran against where their guest node's memory lives. Present when some
/// vCPU's memory is bound to host nodes; `misplaced` empty means they all ran near it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Placement {
    /// vCPUs with bound memory that were checked.
    pub checked: Vec<u32>,
    pub misplaced: Vec<Misplaced>,
    pub why: Vec<String>,
    /// `rvmm vcpupin` commands that keep each misplaced vCPU on its memory's CPUs.
    pub commands: Vec<String>,
    /// The same as libvirt `<cputune>` elements.
    pub libvirt_xml: Vec<String>,
}

/// Everything `rvmm advise` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Advice {
    pub vm: String,
    pub host_cpus: u32,
    pub vcpus: u32,
    pub maxcpus: u32,
    pub figures: VmFigures,
    pub vcpu_figures: Vec<VcpuFigures>,
    pub sizing: Sizing,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contention: Option<Contention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// Time-weighted average and peak of `values` (value, interval seconds).
fn avg_peak(values: &[(f64, f64)]) -> AvgPeak {
    let total: f64 = values.iter().map(|v| v.1).sum();
    if values.is_empty() || total <= 0.0 {
        return AvgPeak::default();
    }
    AvgPeak {
        average: values.iter().map(|(x, s)| x * s).sum::<f64>() / total,
        peak: values.iter().map(|v| v.0).fold(f64::MIN, f64::max),
    }
}

fn demand(busy: f64, steal: f64) -> f64 {
    (busy + steal).min(100.0)
}

/// The per-vCPU and whole-VM figures of a window.
pub fn figures(series: &[VmRates]) -> (VmFigures, Vec<VcpuFigures>) {
    let mut ids: Vec<u32> = series
        .iter()
        .flat_map(|r| r.vcpus.iter().map(|v| v.vcpu))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let vcpus: Vec<VcpuFigures> = ids
        .iter()
        .map(|&id| {
            let rows: Vec<_> = series
                .iter()
                .filter_map(|r| Some((r.vcpus.iter().find(|v| v.vcpu == id)?, r.interval_s)))
                .collect();
            let of = |f: &dyn Fn(&super::rates::VcpuRates) -> f64| {
                avg_peak(&rows.iter().map(|(v, s)| (f(v), *s)).collect::<Vec<_>>())
            };
            let last = rows.last().map(|r| r.0);
            VcpuFigures {
                vcpu: id,
                thread_id: last.map_or(0, |v| v.thread_id),
                affinity: last.map_or_else(String::new, |v| v.affinity.clone()),
                cpu: last.map_or(0, |v| v.cpu),
                busy: of(&|v| v.busy_pct),
                steal: of(&|v| v.steal_pct),
                demand: of(&|v| demand(v.busy_pct, v.steal_pct)),
            }
        })
        .collect();
    let vm_of = |f: &dyn Fn(&VmRates) -> f64| {
        avg_peak(
            &series
                .iter()
                .filter(|r| !r.vcpus.is_empty())
                .map(|r| (f(r), r.interval_s))
                .collect::<Vec<_>>(),
        )
    };
    let busiest_vcpu_peak = vcpus
        .iter()
        .map(|v: &VcpuFigures| v.demand.peak)
        .fold(0.0, f64::max);
    let vm = VmFigures {
        busiest_vcpu_peak,
        intervals: series.len(),
        window_s: series.iter().map(|r| r.interval_s).sum(),
        busy: vm_of(&|r| r.busy_pct),
        steal: vm_of(&|r| r.steal_pct),
        demand: vm_of(&|r| {
            r.vcpus
                .iter()
                .map(|v| demand(v.busy_pct, v.steal_pct))
                .sum::<f64>()
                / r.vcpus.len() as f64
        }),
    };
    (vm, vcpus)
}

/// One step of "change a little at a time" from `n` vCPUs.
pub fn step(n: u32) -> u32 {
    ((f64::from(n) * STEP_FRACTION).ceil() as u32).max(1)
}

fn restart(vm_to: u32) -> Restart {
    Restart {
        rvmm: format!("--smp {vm_to},maxcpus={vm_to}"),
        libvirt_xml: format!("<vcpu placement='static' current='{vm_to}'>{vm_to}</vcpu>"),
    }
}

/// The command (or restart) that takes the VM to `to` vCPUs.
fn apply(host: &HostView, to: u32) -> (Option<String>, Option<Restart>) {
    if to == host.vcpus {
        (None, None)
    } else if to <= host.maxcpus {
        (Some(format!("rvmm setvcpus {} {to}", host.vm)), None)
    } else {
        (None, Some(restart(to)))
    }
}

fn f1(x: f64) -> String {
    format!("{x:.1}")
}

/// The sizing rules, in the seeds' order: single-threaded, reduce, increase, else keep.
pub fn sizing(vm: &VmFigures, host: &HostView, contended: bool) -> Sizing {
    let n = host.vcpus;
    let (avg, peak) = (vm.demand.average, vm.demand.peak);
    let one = 100.0 / f64::from(n);
    let figures = format!(
        "VM demand (busy + steal) over {} s in {} intervals: average {} %, peak {} % (busy average {} %, peak {} %)",
        f1(vm.window_s),
        vm.intervals,
        f1(avg),
        f1(peak),
        f1(vm.busy.average),
        f1(vm.busy.peak)
    );
    let mut why = vec![figures];
    let (rule, to) = if n >= 2
        && (peak - one).abs() <= one * SINGLE_THREAD_TOLERANCE
        && vm.busiest_vcpu_peak >= SINGLE_THREAD_VCPU_PEAK
    {
        why.push(format!(
            "rule single-threaded: with {n} vCPUs a VM peak of about 100/{n} = {} % (±{} %, one vCPU's worth) means the application is single-threaded; peak {} %, carried by one vCPU (its peak {} % ≥ {SINGLE_THREAD_VCPU_PEAK} %) → 1 vCPU",
            f1(one),
            f1(SINGLE_THREAD_TOLERANCE * 100.0),
            f1(peak),
            f1(vm.busiest_vcpu_peak)
        ));
        (Rule::SingleThreaded, 1)
    } else if avg < REDUCE_AVERAGE_BELOW && peak < REDUCE_PEAK_BELOW && n > 1 {
        // Never below what keeps the projected peak at or under the increase threshold.
        let needed = (peak * f64::from(n) / INCREASE_PEAK_ABOVE).ceil().max(1.0) as u32;
        let to = n.saturating_sub(step(n)).max(needed).max(1);
        why.push(format!(
            "rule reduce: average < {REDUCE_AVERAGE_BELOW} % and peak < {REDUCE_PEAK_BELOW} % → reduce the vCPU count; average {} %, peak {} %",
            f1(avg),
            f1(peak)
        ));
        why.push(format!(
            "step: change a little at a time: {} vCPU(s) ({} % of {n}, at least one), {n} → {to}, and no fewer than the {needed} that keep the projected peak ≤ {INCREASE_PEAK_ABOVE} %; watch again after the change",
            step(n),
            STEP_FRACTION * 100.0
        ));
        (Rule::Reduce, to)
    } else if avg > INCREASE_AVERAGE_ABOVE && peak > INCREASE_PEAK_ABOVE {
        why.push(format!(
            "rule increase: average > {INCREASE_AVERAGE_ABOVE} % and peak > {INCREASE_PEAK_ABOVE} % → increase the vCPU count; average {} %, peak {} %",
            f1(avg),
            f1(peak)
        ));
        let to = n + step(n);
        why.push(format!(
            "step: change a little at a time: {} vCPU(s) ({} % of {n}, at least one), {n} → {to}; watch again after the change",
            step(n),
            STEP_FRACTION * 100.0
        ));
        if to > host.host_cpus {
            why.push(format!(
                "note: {to} vCPUs are more than the host's {} CPUs; they would contend with each other",
                host.host_cpus
            ));
        }
        if contended {
            why.push(
                "note: the host is contended (see below): part of this demand is steal, time the vCPUs waited for a host CPU; remove the contention first, or more vCPUs will wait too"
                    .to_string(),
            );
        }
        (Rule::Increase, to)
    } else {
        why.push(format!(
            "rule keep: neither single-threaded (peak about {} %), reduce (average < {REDUCE_AVERAGE_BELOW} % and peak < {REDUCE_PEAK_BELOW} %) nor increase (average > {INCREASE_AVERAGE_ABOVE} % and peak > {INCREASE_PEAK_ABOVE} %) holds{}",
            f1(one),
            if n == 1 { " (1 vCPU cannot be reduced)" } else { "" }
        ));
        (Rule::Keep, n)
    };
    let (command, restart) = apply(host, to);
    if let Some(r) = &restart {
        why.push(format!(
            "{to} vCPUs are above maxcpus {}: restart the VM with a larger maximum (rvmm run {}; libvirt {})",
            host.maxcpus, r.rvmm, r.libvirt_xml
        ));
    }
    Sizing {
        rule,
        from: n,
        to,
        why,
        command,
        restart,
    }
}

/// Groups of pinned vCPUs (affinity narrower than the host) whose affinities overlap, with
/// the host CPUs they share; each group has at least two vCPUs.
pub fn shared_pins(vcpus: &[VcpuFigures], host_cpus: u32) -> Vec<(Vec<u32>, Vec<u32>)> {
    let pinned: Vec<(u32, Vec<u32>)> = vcpus
        .iter()
        .filter_map(|v| {
            let cpus = parse_cpulist(&v.affinity).ok()?;
            (!cpus.is_empty() && (cpus.len() as u32) < host_cpus).then_some((v.vcpu, cpus))
        })
        .collect();
    let mut groups: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
    for (vcpu, cpus) in &pinned {
        match groups
            .iter_mut()
            .find(|(_, shared)| shared.iter().any(|c| cpus.contains(c)))
        {
            Some((members, shared)) => {
                members.push(*vcpu);
                shared.retain(|c| cpus.contains(c));
            }
            None => groups.push((vec![*vcpu], cpus.clone())),
        }
    }
    groups.retain(|(members, _)| members.len() >= 2);
    groups
}

/// The host side: contended when the mean steal is above [`STEAL_CONTENDED_PCT`].
pub fn contention(vm: &VmFigures, vcpus: &[VcpuFigures], host: &HostView) -> Option<Contention> {
    let steal = vm.steal.average;
    if steal <= STEAL_CONTENDED_PCT {
        return None;
    }
    let mut why = vec![format!(
        "rule contended: mean steal above {STEAL_CONTENDED_PCT} % means the vCPUs wait for host CPUs; mean steal {} %, peak {} %",
        f1(steal),
        f1(vm.steal.peak)
    )];
    let mut causes = Vec::new();
    let mut commands = Vec::new();
    if host.vcpus > host.host_cpus {
        causes.push(Cause::Oversubscribed {
            vcpus: host.vcpus,
            host_cpus: host.host_cpus,
        });
        why.push(format!(
            "cause: {} vCPUs on {} host CPUs",
            host.vcpus, host.host_cpus
        ));
        commands.push(format!("rvmm setvcpus {} {}", host.vm, host.host_cpus));
    }
    // Host CPUs no pinned vCPU uses: where a vCPU of a shared group can go.
    let mut used: Vec<u32> = vcpus
        .iter()
        .filter_map(|v| parse_cpulist(&v.affinity).ok())
        .filter(|c| (c.len() as u32) < host.host_cpus)
        .flatten()
        .collect();
    for (members, shared) in shared_pins(vcpus, host.host_cpus) {
        let names: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        why.push(format!(
            "cause: vCPUs {} are pinned to overlapping host CPUs (they share {})",
            names.join(", "),
            cpulist(&shared)
        ));
        for &v in &members[1..] {
            match (0..host.host_cpus).find(|c| !used.contains(c)) {
                Some(free) => {
                    used.push(free);
                    commands.push(format!("rvmm vcpupin {} {v} {free}", host.vm));
                }
                None => why.push(format!(
                    "no host CPU is free of pinned vCPUs for vCPU {v}: reduce the vCPU count or unpin it (rvmm vcpupin {} {v} 0-{})",
                    host.vm,
                    host.host_cpus.saturating_sub(1)
                )),
            }
        }
        causes.push(Cause::SharedPins {
            vcpus: members,
            cpus: cpulist(&shared),
        });
    }
    if causes.is_empty() {
        causes.push(Cause::OtherLoad);
        why.push(format!(
            "cause: nothing in this VM's placement ({} vCPUs on {} host CPUs, no shared pins): other work on the host takes its CPUs; no rvmm command removes it",
            host.vcpus, host.host_cpus
        ));
    }
    Some(Contention {
        steal_average: steal,
        causes,
        why,
        commands,
    })
}

/// The host CPUs of `nodes` (those `host` lists), ascending.
fn node_cpus(host: &HostView, nodes: &[u32]) -> Vec<u32> {
    let mut cpus: Vec<u32> = host
        .host_nodes
        .iter()
        .filter(|n| nodes.contains(&n.node))
        .filter_map(|n| parse_cpulist(&n.cpus).ok())
        .flatten()
        .collect();
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

/// The host side: vCPUs whose threads ran on a host node other than the ones their guest
/// node's memory is bound to, in more than [`REMOTE_NODE_SHARE`] of the intervals; `None`
/// when no vCPU's memory is bound.
pub fn placement(series: &[VmRates], host: &HostView) -> Option<Placement> {
    let mut checked: Vec<u32> = Vec::new();
    let mut misplaced = Vec::new();
    let mut why = Vec::new();
    let mut commands = Vec::new();
    let mut libvirt_xml = Vec::new();
    let last = series.last()?;
    for v in last
        .vcpus
        .iter()
        .filter(|v| !v.memory_host_nodes.is_empty())
    {
        let Some(guest_node) = v.guest_node else {
            continue;
        };
        checked.push(v.vcpu);
        let mut known = 0;
        let mut remote = 0;
        let mut ran_on: Vec<u32> = Vec::new();
        for r in series
            .iter()
            .flat_map(|i| i.vcpus.iter().find(|x| x.vcpu == v.vcpu))
        {
            let Some(node) = r.host_node else { continue };
            known += 1;
            if !v.memory_host_nodes.contains(&node) {
                remote += 1;
                ran_on.push(node);
            }
        }
        if known == 0 || (remote as f64) <= REMOTE_NODE_SHARE * known as f64 {
            continue;
        }
        ran_on.sort_unstable();
        ran_on.dedup();
        let memory_cpus = node_cpus(host, &v.memory_host_nodes);
        let affinity = parse_cpulist(&v.affinity).unwrap_or_default();
        let reaches = affinity.iter().any(|c| memory_cpus.contains(c));
        let m = Misplaced {
            vcpu: v.vcpu,
            guest_node,
            memory_host_nodes: cpulist(&v.memory_host_nodes),
            ran_on_nodes: cpulist(&ran_on),
            remote_intervals: remote,
            intervals: known,
            affinity: v.affinity.clone(),
            affinity_reaches_memory: reaches,
        };
        why.push(format!(
            "rule remote memory: a vCPU should run on the host nodes its guest node's memory is bound to; vCPU {} (guest node {}, memory on host node {}) ran on host node {} in {} of {} intervals{}",
            m.vcpu,
            m.guest_node,
            m.memory_host_nodes,
            m.ran_on_nodes,
            m.remote_intervals,
            m.intervals,
            if reaches {
                String::new()
            } else {
                format!(
                    "; its affinity {} holds no CPU of those nodes",
                    m.affinity
                )
            }
        ));
        if memory_cpus.is_empty() {
            why.push(format!(
                "host node {} lists no CPUs: pin vCPU {} to the CPUs nearest to it by hand",
                m.memory_host_nodes, m.vcpu
            ));
        } else {
            let cpus = cpulist(&memory_cpus);
            commands.push(format!("rvmm vcpupin {} {} {cpus}", host.vm, m.vcpu));
            libvirt_xml.push(format!("<vcpupin vcpu='{}' cpuset='{cpus}'/>", m.vcpu));
        }
        misplaced.push(m);
    }
    if checked.is_empty() {
        return None;
    }
    if misplaced.is_empty() {
        why.push(format!(
            "rule remote memory: vCPUs {} ran on the host nodes their guest nodes' memory is bound to",
            cpulist(&checked)
        ));
    }
    Some(Placement {
        checked,
        misplaced,
        why,
        commands,
        libvirt_xml,
    })
}

/// The advice for a window of `series` (one [`VmRates`] per interval, oldest first).
pub fn advise(series: &[VmRates], host: &HostView) -> Result<Advice, AdviseError> {
    if series.len() < MIN_INTERVALS {
        return Err(AdviseError::TooFewIntervals { got: series.len() });
    }
    if host.vcpus == 0 || host.vcpus > host.maxcpus {
        return Err(AdviseError::BadCount {
            current: host.vcpus,
            maxcpus: host.maxcpus,
        });
    }
    let (vm, vcpus) = figures(series);
    if vcpus.is_empty() {
        return Err(AdviseError::NoVcpus);
    }
    let contention = contention(&vm, &vcpus, host);
    let sizing = sizing(&vm, host, contention.is_some());
    let placement = placement(series, host);
    Ok(Advice {
        vm: host.vm.clone(),
        host_cpus: host.host_cpus,
        vcpus: host.vcpus,
        maxcpus: host.maxcpus,
        figures: vm,
        vcpu_figures: vcpus,
        sizing,
        contention,
        placement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::rates::VcpuRates;
    use crate::vcpu::info::VcpuState;

    fn vcpu(id: u32, busy: f64, steal: f64, affinity: &str) -> VcpuRates {
        VcpuRates {
            vcpu: id,
            state: VcpuState::Running,
            thread_id: 100 + id as i32,
            cpu: 0,
            affinity: affinity.into(),
            busy_pct: busy,
            guest_pct: None,
            vmm_pct: None,
            steal_pct: steal,
            halt_poll_pct: 0.0,
            exits_per_s: 0.0,
            exit_reasons: Vec::new(),
            involuntary_per_s: 0.0,
            migrations_per_s: None,
            host_node: None,
            guest_node: None,
            memory_host_nodes: Vec::new(),
        }
    }

    /// One interval of 1 s: per vCPU (busy, steal, affinity).
    fn interval(v: &[(f64, f64, &str)]) -> VmRates {
        let vcpus: Vec<VcpuRates> = v
            .iter()
            .enumerate()
            .map(|(i, (b, s, a))| vcpu(i as u32, *b, *s, a))
            .collect();
        let n = vcpus.len() as f64;
        VmRates {
            interval_s: 1.0,
            busy_pct: vcpus.iter().map(|v| v.busy_pct).sum::<f64>() / n,
            host_cpu_pct: vcpus.iter().map(|v| v.busy_pct).sum(),
            steal_pct: vcpus.iter().map(|v| v.steal_pct).sum::<f64>() / n,
            exits_per_s: 0.0,
            emulator_pct: 0.0,
            vcpus,
        }
    }

    /// `n` vCPUs, unpinned, each interval all at the given busy, no steal.
    fn uniform(n: usize, busy: &[f64]) -> Vec<VmRates> {
        busy.iter()
            .map(|&b| interval(&vec![(b, 0.0, "0-7"); n]))
            .collect()
    }

    fn host(vcpus: u32, maxcpus: u32) -> HostView {
        HostView {
            vm: "web".into(),
            host_cpus: 8,
            vcpus,
            maxcpus,
            host_nodes: vec![
                HostNodeCpus {
                    node: 0,
                    cpus: "0-3".into(),
                },
                HostNodeCpus {
                    node: 1,
                    cpus: "4-7".into(),
                },
            ],
        }
    }

    /// Two vCPUs of guest nodes 0 and 1, whose memory is bound to host nodes 0 and 1; each
    /// interval gives the host node each ran on.
    fn numa_series(ran_on: &[(u32, u32)], affinity: &str) -> Vec<VmRates> {
        ran_on
            .iter()
            .map(|&(a, b)| {
                let mut i = interval(&[(50.0, 0.0, affinity), (50.0, 0.0, affinity)]);
                for (v, node) in i.vcpus.iter_mut().zip([a, b]) {
                    v.guest_node = Some(v.vcpu);
                    v.memory_host_nodes = vec![v.vcpu];
                    v.host_node = Some(node);
                    v.cpu = node * 4;
                }
                i
            })
            .collect()
    }

    #[test]
    fn vcpus_near_their_memory_are_fine() {
        let p = placement(&numa_series(&[(0, 1), (0, 1), (1, 1)], "0-7"), &host(2, 2)).unwrap();
        assert_eq!(p.checked, vec![0, 1]);
        assert!(p.misplaced.is_empty(), "{p:?}");
        assert!(p.commands.is_empty());
        assert!(
            p.why[0].contains("vCPUs 0-1 ran on the host nodes"),
            "{:?}",
            p.why
        );
    }

    #[test]
    fn a_vcpu_mostly_on_the_other_node_is_pinned_to_its_memory() {
        // vCPU 1's memory is on host node 1; it ran on node 0 in 2 of 3 intervals.
        let series = numa_series(&[(0, 0), (0, 0), (0, 1)], "0-7");
        let advice = advise(&series, &host(2, 2)).unwrap();
        let p = advice.placement.unwrap();
        assert_eq!(p.misplaced.len(), 1);
        let m = &p.misplaced[0];
        assert_eq!((m.vcpu, m.guest_node), (1, 1));
        assert_eq!((m.remote_intervals, m.intervals), (2, 3));
        assert_eq!(m.ran_on_nodes, "0");
        assert!(m.affinity_reaches_memory);
        assert_eq!(p.commands, vec!["rvmm vcpupin web 1 4-7"]);
        assert_eq!(p.libvirt_xml, vec!["<vcpupin vcpu='1' cpuset='4-7'/>"]);
        assert!(
            p.why[0].contains("ran on host node 0 in 2 of 3 intervals"),
            "{:?}",
            p.why
        );
    }

    #[test]
    fn remote_share_edge_and_affinity_that_excludes_the_memory() {
        // Half the intervals away is not "most": no finding.
        let p = placement(&numa_series(&[(0, 0), (0, 1)], "0-3"), &host(2, 2)).unwrap();
        assert!(p.misplaced.is_empty(), "{p:?}");
        // Always away, and pinned where it cannot reach its memory.
        let p = placement(&numa_series(&[(0, 0), (0, 0)], "0-3"), &host(2, 2)).unwrap();
        assert!(!p.misplaced[0].affinity_reaches_memory);
        assert!(p.why[0].contains("its affinity 0-3 holds no CPU of those nodes"));
    }

    #[test]
    fn no_bound_memory_no_placement_check() {
        assert_eq!(placement(&uniform(2, &[50.0, 50.0]), &host(2, 2)), None);
        assert_eq!(
            advise(&uniform(2, &[50.0]), &host(2, 2)).unwrap().placement,
            None
        );
    }

    #[test]
    fn average_is_time_weighted_and_peak_is_the_highest_interval() {
        let mut s = uniform(2, &[10.0, 50.0]);
        s[1].interval_s = 3.0;
        let (vm, vcpus) = figures(&s);
        assert_eq!(vm.busy.average, 40.0);
        assert_eq!(vm.busy.peak, 50.0);
        assert_eq!(vm.window_s, 4.0);
        assert_eq!(vm.intervals, 2);
        assert_eq!(vcpus.len(), 2);
        assert_eq!(
            vcpus[1].busy,
            AvgPeak {
                average: 40.0,
                peak: 50.0
            }
        );
    }

    #[test]
    fn demand_is_busy_plus_steal_capped() {
        let s = vec![interval(&[(60.0, 50.0, "0"), (20.0, 10.0, "1")])];
        let (vm, vcpus) = figures(&s);
        assert_eq!(vcpus[0].demand.average, 100.0);
        assert_eq!(vcpus[1].demand.average, 30.0);
        assert_eq!(vm.demand.average, 65.0);
        assert_eq!(vm.steal.average, 30.0);
    }

    #[test]
    fn one_busy_vcpu_of_four_is_single_threaded() {
        let s: Vec<_> = (0..4)
            .map(|_| {
                interval(&[
                    (100.0, 0.0, "0-7"),
                    (0.5, 0.0, "0-7"),
                    (0.0, 0.0, "0-7"),
                    (0.0, 0.0, "0-7"),
                ])
            })
            .collect();
        let a = advise(&s, &host(4, 4)).unwrap();
        assert_eq!(a.sizing.rule, Rule::SingleThreaded);
        assert_eq!(a.sizing.to, 1);
        assert_eq!(a.sizing.command.as_deref(), Some("rvmm setvcpus web 1"));
        assert!(a.contention.is_none());
    }

    /// One interval where the VM's mean busy is `vm_peak` %, carried as far as it goes by
    /// vCPU 0 and the rest spread over the others.
    fn concentrated(n: usize, vm_peak: f64) -> Vec<VmRates> {
        let total = vm_peak * n as f64;
        let first = total.min(100.0);
        let rest = (total - first) / (n - 1) as f64;
        let mut v = vec![(rest, 0.0, "0-7"); n];
        v[0].0 = first;
        vec![interval(&v)]
    }

    #[test]
    fn single_threaded_band_edges() {
        // 4 vCPUs: one vCPU's worth is 25 %, the band 20..30 %; vCPU 0 carries it.
        for (peak, rule) in [
            (19.9, Rule::Reduce),
            (20.0, Rule::SingleThreaded),
            // 100 + 3 × 6.67 sums a hair above 30 in floating point: stay just inside.
            (29.99, Rule::SingleThreaded),
            (30.1, Rule::Reduce),
        ] {
            let s = concentrated(4, peak);
            assert_eq!(
                sizing(&figures(&s).0, &host(4, 4), false).rule,
                rule,
                "peak {peak}"
            );
        }
        // The same VM peak spread evenly over the vCPUs is not one thread's work.
        assert_eq!(
            sizing(&figures(&uniform(4, &[25.0])).0, &host(4, 4), false).rule,
            Rule::Reduce
        );
        let both_half = uniform(2, &[50.0]);
        let r = sizing(&figures(&both_half).0, &host(2, 2), false);
        assert_eq!(r.rule, Rule::Keep, "{r:?}");
        // 1 vCPU is never "single-threaded → 1".
        let s = uniform(1, &[100.0]);
        assert_eq!(
            sizing(&figures(&s).0, &host(1, 4), false).rule,
            Rule::Increase
        );
    }

    #[test]
    fn reduce_boundaries() {
        // 8 vCPUs: the single-threaded band (10..15 %) is away from these peaks.
        let case = |avg_peak: &[f64]| sizing(&figures(&uniform(8, avg_peak)).0, &host(8, 8), false);
        // Two 1 s intervals (x, y) average (x + y) / 2.
        assert_eq!(case(&[31.0, 44.5]).rule, Rule::Reduce); // avg 37.75, peak 44.5
        assert_eq!(case(&[31.5, 44.5]).rule, Rule::Keep); // avg 38.0: not < 38
        assert_eq!(case(&[30.0, 45.0]).rule, Rule::Keep); // peak 45.0: not < 45
        let r = case(&[0.0, 1.0]);
        assert_eq!((r.rule, r.from, r.to), (Rule::Reduce, 8, 6));
        assert_eq!(r.command.as_deref(), Some("rvmm setvcpus web 6"));
        assert!(r
            .why
            .iter()
            .any(|w| w.contains("average < 38 % and peak < 45 %")));
        assert!(r
            .why
            .iter()
            .any(|w| w.starts_with("step: change a little at a time: 2 vCPU")));
    }

    #[test]
    fn reduce_keeps_enough_for_the_peak() {
        // 8 vCPUs, peak 44 %: 3.52 vCPUs' worth; 8 → 6 keeps 3.52/6 = 59 % (fine), but the
        // floor (ceil(44 * 8 / 90) = 4) is what a deeper cut may not go below.
        let s = uniform(8, &[30.0, 44.0]);
        let r = sizing(&figures(&s).0, &host(8, 8), false);
        assert_eq!((r.rule, r.to), (Rule::Reduce, 6));
        let s = uniform(3, &[5.0, 10.0]);
        let r = sizing(&figures(&s).0, &host(3, 3), false);
        assert_eq!((r.rule, r.to), (Rule::Reduce, 2));
        // All idle: 2 → 1.
        let r = sizing(&figures(&uniform(2, &[0.0])).0, &host(2, 2), false);
        assert_eq!((r.rule, r.to), (Rule::Reduce, 1));
    }

    #[test]
    fn increase_boundaries_and_maxcpus() {
        let case =
            |v: &[f64], h: HostView| sizing(&figures(&uniform(h.vcpus as usize, v)).0, &h, false);
        assert_eq!(case(&[60.5, 90.5], host(4, 8)).rule, Rule::Increase); // avg 75.5
        assert_eq!(case(&[59.5, 90.5], host(4, 8)).rule, Rule::Keep); // avg 75.0: not > 75
        assert_eq!(case(&[80.0, 90.0], host(4, 8)).rule, Rule::Keep); // peak 90: not > 90
        let r = case(&[95.0], host(4, 8));
        assert_eq!((r.from, r.to), (4, 5));
        assert_eq!(r.command.as_deref(), Some("rvmm setvcpus web 5"));
        assert!(r.restart.is_none());
        // Above maxcpus: a restart, with the libvirt XML.
        let r = case(&[95.0], host(4, 4));
        assert_eq!(r.to, 5);
        assert!(r.command.is_none());
        let restart = r.restart.unwrap();
        assert_eq!(
            restart.libvirt_xml,
            "<vcpu placement='static' current='5'>5</vcpu>"
        );
        assert_eq!(restart.rvmm, "--smp 5,maxcpus=5");
        // 1 vCPU at 95 %: 1 → 2.
        let r = case(&[95.0], host(1, 1));
        assert_eq!((r.rule, r.to), (Rule::Increase, 2));
    }

    #[test]
    fn increase_on_a_contended_host_says_so() {
        let s = uniform(2, &[95.0]);
        let r = sizing(&figures(&s).0, &host(2, 4), true);
        assert_eq!((r.rule, r.to), (Rule::Increase, 3));
        assert!(r
            .why
            .iter()
            .any(|w| w.starts_with("note: the host is contended")));
        let r = sizing(&figures(&s).0, &host(2, 4), false);
        assert!(!r
            .why
            .iter()
            .any(|w| w.starts_with("note: the host is contended")));
    }

    #[test]
    fn keep_between_the_thresholds() {
        let r = sizing(&figures(&uniform(4, &[50.0, 60.0])).0, &host(4, 4), false);
        assert_eq!((r.rule, r.to, r.command), (Rule::Keep, 4, None));
    }

    #[test]
    fn step_is_a_quarter_at_least_one() {
        assert_eq!([1, 2, 4, 5, 8, 64].map(step), [1, 1, 1, 2, 2, 16]);
    }

    #[test]
    fn steal_threshold_edge() {
        let at = |steal: f64| {
            let s = vec![interval(&[(20.0, steal, "0-7"), (20.0, steal, "0-7")])];
            let (vm, v) = figures(&s);
            contention(&vm, &v, &host(2, 2))
        };
        assert!(at(10.0).is_none());
        let c = at(10.1).unwrap();
        assert_eq!(c.causes, vec![Cause::OtherLoad]);
        assert!(c.commands.is_empty());
    }

    #[test]
    fn shared_pins_are_named_with_a_fix() {
        let s = vec![interval(&[
            (50.0, 50.0, "1"),
            (50.0, 50.0, "1"),
            (1.0, 0.0, "2"),
        ])];
        let a = advise(&s, &host(3, 3)).unwrap();
        let c = a.contention.unwrap();
        assert_eq!(
            c.causes,
            vec![Cause::SharedPins {
                vcpus: vec![0, 1],
                cpus: "1".into()
            }]
        );
        assert_eq!(c.commands, vec!["rvmm vcpupin web 1 0"]);
        assert!(c.why.iter().any(|w| w.contains("vCPUs 0, 1 are pinned")));
    }

    #[test]
    fn oversubscribed_host() {
        let mut h = host(4, 4);
        h.host_cpus = 2;
        let s = vec![interval(&[(50.0, 40.0, "0-1"); 4])];
        let c = advise(&s, &h).unwrap().contention.unwrap();
        assert_eq!(
            c.causes,
            vec![Cause::Oversubscribed {
                vcpus: 4,
                host_cpus: 2
            }]
        );
        assert_eq!(c.commands, vec!["rvmm setvcpus web 2"]);
    }

    #[test]
    fn no_free_cpu_for_a_shared_pin() {
        let mut h = host(2, 2);
        h.host_cpus = 2;
        let s = vec![interval(&[(50.0, 50.0, "0"), (50.0, 50.0, "0")])];
        let c = advise(&s, &h).unwrap().contention.unwrap();
        assert_eq!(c.commands, vec!["rvmm vcpupin web 1 1"]);
        let s = vec![interval(&[
            (50.0, 50.0, "0"),
            (50.0, 50.0, "0"),
            (50.0, 50.0, "1"),
        ])];
        let mut h = host(3, 3);
        h.host_cpus = 2;
        let c = advise(&s, &h).unwrap().contention.unwrap();
        assert!(c.why.iter().any(|w| w.starts_with("no host CPU is free")));
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            advise(&[], &host(2, 2)),
            Err(AdviseError::TooFewIntervals { got: 0 })
        );
        assert_eq!(
            advise(&uniform(2, &[1.0]), &host(0, 2)),
            Err(AdviseError::BadCount {
                current: 0,
                maxcpus: 2
            })
        );
        assert_eq!(
            advise(&uniform(2, &[1.0]), &host(3, 2)),
            Err(AdviseError::BadCount {
                current: 3,
                maxcpus: 2
            })
        );
        assert_eq!(
            advise(&uniform(0, &[1.0]), &host(2, 2)),
            Err(AdviseError::NoVcpus)
        );
    }
}
