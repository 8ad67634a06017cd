//! How much host CPU and memory the VM may use, as libvirt's `<cputune>` and `<memtune>`
//! say it and as cgroups enforce it: relative shares between VMs (`--cpu-shares N`), CFS
//! bandwidth (period and quota, in microseconds) for the whole VM, for each vCPU and for the
//! emulator threads (`--cpu-quota KEY=US,...`), a hard memory limit (`--memory-limit SIZE`)
//! and where the VM's cgroup goes (`--cgroup on|off|auto`, `--cgroup-parent PATH`).
//!
//! Names follow libvirt (virsh schedinfo's parameters): `cpu_shares`, `vcpu_period`,
//! `vcpu_quota`, `emulator_period`, `emulator_quota`, `global_period`, `global_quota`. A quota
//! of -1 is libvirt's "no limit". Only the grammar and the kernel's ranges live here;
//! `host::vmcgroup` writes the values into the groups.

use serde::Serialize;

/// The shortest and longest CFS period the kernel accepts (`cpu.cfs_period_us`, `cpu.max`).
pub const PERIOD_MIN_US: u64 = 1_000;
pub const PERIOD_MAX_US: u64 = 1_000_000;
/// The smallest quota the kernel accepts, and the largest libvirt does.
pub const QUOTA_MIN_US: i64 = 1_000;
pub const QUOTA_MAX_US: i64 = 17_592_186_044_415;
/// cgroup v1 `cpu.shares` range (libvirt's `<shares>` range).
pub const SHARES_MIN: u64 = 2;
pub const SHARES_MAX: u64 = 262_144;
/// The kernel's default period when none is given.
pub const DEFAULT_PERIOD_US: u64 = 100_000;

/// One CFS bandwidth setting: `quota` microseconds of CPU time per `period`. Either may be
/// absent (the group keeps what it has); a quota of -1 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bandwidth {
    pub period_us: Option<u64>,
    pub quota_us: Option<i64>,
}

impl Bandwidth {
    /// Whether anything is set.
    pub fn is_set(&self) -> bool {
        self.period_us.is_some() || self.quota_us.is_some()
    }
}

/// CPU tuning for the VM's groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuTune {
    /// Relative weight against other groups (v1 `cpu.shares`; v2 `cpu.weight` through
    /// [`shares_to_weight`]).
    pub shares: Option<u64>,
    /// The whole VM (the scope group): `global_period`/`global_quota`.
    pub global: Bandwidth,
    /// Each vCPU's group: `vcpu_period`/`vcpu_quota` (libvirt XML `<period>`/`<quota>`).
    pub vcpu: Bandwidth,
    /// The emulator group: `emulator_period`/`emulator_quota`.
    pub emulator: Bandwidth,
}

impl CpuTune {
    /// Whether any CPU tuning is asked for.
    pub fn is_set(&self) -> bool {
        self.shares.is_some()
            || self.global.is_set()
            || self.vcpu.is_set()
            || self.emulator.is_set()
    }
}

/// Memory tuning: `<memtune><hard_limit>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemTune {
    /// The most memory the VM's process may use, bytes (guest RAM plus the VMM's overhead).
    pub hard_limit: Option<u64>,
}

/// Whether the VM gets a cgroup of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum CgroupSwitch {
    /// When the host lets rvmm create one (root, a writable cpu controller); without, the VM
    /// runs in the cgroup it was started in. Any tuning option makes it `On`.
    #[default]
    Auto,
    /// Always: failing to create it is an error.
    On,
    /// Never: tuning options are refused.
    Off,
}

/// Where the VM's cgroup goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CgroupConfig {
    pub switch: CgroupSwitch,
    /// The parent group, a path inside each hierarchy (`/machine.slice`); `None` is
    /// [`DEFAULT_PARENT`], created when missing. A given parent must exist.
    pub parent: Option<String>,
}

/// The parent group when `--cgroup-parent` is not given.
pub const DEFAULT_PARENT: &str = "/rvmm.slice";

/// One `schedinfo --set KEY=VALUE` (and QMP `__org.rvmm_schedinfo`) change, parsed and
/// range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SchedParam {
    CpuShares(u64),
    VcpuPeriod(u64),
    /// -1: no limit.
    VcpuQuota(i64),
    EmulatorPeriod(u64),
    EmulatorQuota(i64),
    GlobalPeriod(u64),
    GlobalQuota(i64),
}

/// The VM's scheduler parameters as virsh schedinfo lists them (read back from the groups).
/// Quotas are -1 when unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SchedInfo {
    pub cpu_shares: u64,
    pub vcpu_period: u64,
    pub vcpu_quota: i64,
    pub emulator_period: u64,
    pub emulator_quota: i64,
    pub global_period: u64,
    pub global_quota: i64,
}

/// cgroup v2 `cpu.weight` (1-10000, default 100) for v1 `cpu.shares` (2-262144, default
/// 1024): systemd's conversion, shares × 100 / 1024 clamped to the weight range.
pub fn shares_to_weight(shares: u64) -> u64 {
    (shares * 100 / 1024).clamp(1, 10_000)
}
