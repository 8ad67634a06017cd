//! One look at a running VM: KVM's statistics of the VM and of each present vCPU, and the
//! scheduler figures of each vCPU thread and of the other (emulator) threads. The VMM
//! thread builds it for `__org.rvmm_stats`; clients keep two and compute [`super::rates`].

use serde::{Deserialize, Serialize};

use crate::host::thread::{self as host_thread, ThreadError};
use crate::host::vmcgroup::CgroupCpuStat;
use crate::machine::stats::{value_of, KvmStat, StatUnit};
use crate::util::cpulist::{cpulist, parse_cpulist};
use crate::vcpu::info::{ticks_to_ns, VcpuState};

/// Everything one look gathers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StatsReport {
    /// The VM's `--name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The VMM's process id (a restarted VM has another).
    pub pid: i32,
    /// CLOCK_MONOTONIC when the look was taken, in nanoseconds.
    pub time_ns: u64,
    /// The host's possible CPUs (the width of an affinity map).
    pub host_cpus: u32,
    /// The VM-wide KVM statistics (empty when the kernel has none; `kvm-error` says why).
    pub vm: Vec<KvmStat>,
    /// Why KVM statistics are missing, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm_error: Option<String>,
    /// Every present vCPU, in slot order.
    pub vcpus: Vec<VcpuSample>,
    /// The threads that are not vCPUs.
    pub emulator: Vec<ThreadSample>,
    /// The host's NUMA nodes with their CPUs: which node a vCPU's host CPU is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_nodes: Vec<HostNodeCpus>,
}

/// One host NUMA node and its CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HostNodeCpus {
    pub node: u32,
    /// Its CPUs as a kernel CPU list.
    pub cpus: String,
}

/// One present vCPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VcpuSample {
    pub vcpu: u32,
    pub state: VcpuState,
    pub thread: ThreadSample,
    /// The vCPU's KVM statistics (empty when the kernel has none).
    pub kvm: Vec<KvmStat>,
    /// The guest NUMA node of the vCPU's slot (absent without guest NUMA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_node: Option<u32>,
    /// The host nodes that guest node's memory is bound to (`host-nodes=`); empty when
    /// it is not bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_host_nodes: Vec<u32>,
    /// The vCPU's own cgroup (`vcpuN`): its CFS quota and how often the kernel throttled
    /// it. Absent when the VM has no cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupCpuStat>,
}

/// One thread as the host scheduler sees it. Times are nanoseconds since the thread
/// started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ThreadSample {
    pub thread_id: i32,
    /// The thread's name (`comm`).
    pub name: String,
    /// The host CPU it last ran on.
    pub cpu: u32,
    /// Its affinity as a kernel CPU list.
    pub affinity: String,
    /// User and system time (stat fields 14 and 15; guest time is inside them).
    pub utime_ns: u64,
    pub stime_ns: u64,
    /// Time running guest code (stat field 43; 0 where the kernel does not account it).
    pub guest_ns: u64,
    /// Time on a CPU (schedstat field 1, nanosecond-exact).
    pub run_ns: u64,
    /// Time runnable but waiting for a CPU (schedstat field 2): the guest's steal.
    pub wait_ns: u64,
    /// Times scheduled in.
    pub timeslices: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// Moves between host CPUs (absent without CONFIG_SCHED_DEBUG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<u64>,
}

/// Reads thread `tid` of process `pid`.
pub fn read_thread(pid: i32, tid: i32) -> Result<ThreadSample, ThreadError> {
    let stat = host_thread::task_stat(pid, tid)?;
    let sched = host_thread::schedstat(pid, tid)?;
    let switches = host_thread::switches(pid, tid)?;
    let affinity = host_thread::get_affinity(tid)?;
    let hz = host_thread::clock_ticks_per_second();
    Ok(ThreadSample {
        thread_id: tid,
        name: stat.comm,
        cpu: stat.processor,
        affinity: cpulist(&affinity),
        utime_ns: ticks_to_ns(stat.utime, hz),
        stime_ns: ticks_to_ns(stat.stime, hz),
        guest_ns: ticks_to_ns(stat.guest_time, hz),
        run_ns: sched.run_ns,
        wait_ns: sched.wait_ns,
        timeslices: sched.timeslices,
        voluntary_switches: switches.voluntary,
        involuntary_switches: switches.involuntary,
        migrations: host_thread::migrations(pid, tid),
    })
}

/// CLOCK_MONOTONIC now, in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// KVM's names for the halt-polling time counters: time a halted vCPU's thread spent
/// polling for a wake-up on a CPU instead of sleeping. It shows as run time of the thread
/// but is not guest work.
pub const HALT_POLL_STATS: [&str; 2] = ["halt_poll_success_ns", "halt_poll_fail_ns"];

/// A cumulative time statistic converted to nanoseconds (KVM publishes them as seconds
/// × 10^exponent); 0 when absent or not a time.
pub fn stat_ns(stats: &[KvmStat], name: &str) -> u64 {
    let Some(stat) = stats.iter().find(|s| s.desc.name == name) else {
        return 0;
    };
    if stat.desc.unit != StatUnit::Seconds || stat.desc.base != 10 {
        return value_of(stats, name).unwrap_or(0);
    }
    let v = stat.value.total() as f64 * 10f64.powi(stat.desc.exponent as i32 + 9);
    v as u64
}

impl VcpuSample {
    /// Nanoseconds the vCPU's thread spent halt-polling.
    pub fn halt_poll_ns(&self) -> u64 {
        HALT_POLL_STATS.iter().map(|n| stat_ns(&self.kvm, n)).sum()
    }
}

impl StatsReport {
    /// Whether the kernel accounts guest time to vCPU threads (stat field 43): some vCPU
    /// has a non-zero guest time. Under kvm-pvm it never does.
    pub fn guest_time_accounted(&self) -> bool {
        self.vcpus.iter().any(|v| v.thread.guest_ns > 0)
    }

    pub fn vcpu(&self, index: u32) -> Option<&VcpuSample> {
        self.vcpus.iter().find(|v| v.vcpu == index)
    }

    /// The host NUMA node holding host CPU `cpu`, when the report lists it.
    pub fn host_node_of(&self, cpu: u32) -> Option<u32> {
        host_node_of(&self.host_nodes, cpu)
    }
}

/// The node in `nodes` whose CPU list holds `cpu`.
pub fn host_node_of(nodes: &[HostNodeCpus], cpu: u32) -> Option<u32> {
    nodes
        .iter()
        .find(|n| parse_cpulist(&n.cpus).is_ok_and(|c| c.contains(&cpu)))
        .map(|n| n.node)
}

/// A few statistics shaped as KVM publishes them (a counter, a time, a histogram, a
/// boolean), for the fake VMs of unit tests and fuzzing; `exits` is the counter's value.
pub fn example_kvm_stats(exits: u64) -> Vec<KvmStat> {
    use crate::machine::stats::{StatDesc, StatType, StatValue};
    let stat = |name: &str, kind, unit, exponent, value| KvmStat {
        desc: StatDesc {
            name: String::from(name),
            kind,
            unit,
            base: 10,
            exponent,
            size: match &value {
                StatValue::Histogram(b) => b.len() as u16,
                StatValue::Scalar(_) => 1,
            },
            offset: 0,
            bucket_size: 0,
        },
        value,
    };
    vec![
        stat(
            "exits",
            StatType::Cumulative,
            StatUnit::None,
            0,
            StatValue::Scalar(exits),
        ),
        stat(
            "io_exits",
            StatType::Cumulative,
            StatUnit::None,
            0,
            StatValue::Scalar(exits / 2),
        ),
        stat(
            "halt_poll_success_ns",
            StatType::Cumulative,
            StatUnit::Seconds,
            -9,
            StatValue::Scalar(1000),
        ),
        stat(
            "halt_wait_hist",
            StatType::Log2Histogram,
            StatUnit::Seconds,
            -9,
            StatValue::Histogram(vec![0, 1, 2]),
        ),
        stat(
            "guest_mode",
            StatType::Instant,
            StatUnit::Boolean,
            0,
            StatValue::Scalar(0),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::stats::{StatDesc, StatType, StatValue};

    fn time_stat(name: &str, exponent: i16, value: u64) -> KvmStat {
        KvmStat {
            desc: StatDesc {
                name: name.into(),
                kind: StatType::Cumulative,
                unit: StatUnit::Seconds,
                base: 10,
                exponent,
                size: 1,
                offset: 0,
                bucket_size: 0,
            },
            value: StatValue::Scalar(value),
        }
    }

    #[test]
    fn time_statistics_convert_by_their_exponent() {
        let stats = vec![
            time_stat("halt_poll_success_ns", -9, 1500),
            time_stat("halt_poll_fail_ns", -6, 2),
        ];
        assert_eq!(stat_ns(&stats, "halt_poll_success_ns"), 1500);
        assert_eq!(stat_ns(&stats, "halt_poll_fail_ns"), 2000);
        assert_eq!(stat_ns(&stats, "absent"), 0);
        let v = VcpuSample {
            vcpu: 0,
            state: VcpuState::Running,
            thread: ThreadSample::default(),
            kvm: stats,
            guest_node: None,
            memory_host_nodes: Vec::new(),
            cgroup: None,
        };
        assert_eq!(v.halt_poll_ns(), 3500);
    }

    #[test]
    fn own_thread_reads() {
        let pid = std::process::id() as i32;
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let t = read_thread(pid, tid).unwrap();
        assert_eq!(t.thread_id, tid);
        assert!(!t.affinity.is_empty());
        assert!(monotonic_ns() > 0);
    }
}
