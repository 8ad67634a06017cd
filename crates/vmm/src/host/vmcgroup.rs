//! The VM's own cgroup, laid out as libvirt lays out a domain's: a scope group per VM under
//! a parent (`/rvmm.slice/rvmm-NAME.scope`), with a child per vCPU thread (`vcpuN`) and one
//! for every other thread (`emulator`). cgroup v2 (threaded children) where the unified
//! hierarchy has the cpu controller, cgroup v1 (cpu, cpuacct, cpuset, memory hierarchies)
//! otherwise. The settings come from `config::cputune`.

use serde::{Deserialize, Serialize};

/// One group's CPU bandwidth and how often the kernel throttled it (`cpu.stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CgroupCpuStat {
    /// The CFS period and quota in microseconds; quota -1 is no limit.
    pub period_us: u64,
    pub quota_us: i64,
    /// Periods with runnable threads, and those in which the group hit its quota.
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Time the group's threads were held back by the quota, nanoseconds.
    pub throttled_ns: u64,
    /// The group's CPU time (v1 `cpuacct.usage`, v2 `usage_usec`), nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_ns: Option<u64>,
}
