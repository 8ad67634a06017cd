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
//!
//! Every parser here names the option (or virsh parameter) it reads, the value and the rule
//! in its error; [`validate`] re-checks a whole configuration (however it was built) against
//! the guest RAM, for `VmConfig::validate`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::size::{format_size, parse_size, DefaultUnit, SizeError};

/// What the VMM itself may use beyond guest RAM under `--memory-limit`: its code, thread
/// stacks, page tables, KVM's per-vCPU structures and the control sockets. A limit below
/// guest RAM plus this is refused, so that preallocating guest RAM never meets the limit
/// half-way.
pub const MEMORY_OVERHEAD: u64 = 64 << 20;

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
/// Quotas are -1 when unlimited. Its JSON is `__org.rvmm_schedinfo`'s reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// The `--cpu-quota` keys, in the order messages list them.
pub const QUOTA_KEYS: &[&str] = &[
    "period",
    "quota",
    "global_period",
    "global_quota",
    "vcpu_period",
    "vcpu_quota",
    "emulator_period",
    "emulator_quota",
];

/// virsh schedinfo's parameter names rvmm accepts, in the order messages list them.
pub const SCHED_KEYS: &[&str] = &[
    "cpu_shares",
    "vcpu_period",
    "vcpu_quota",
    "emulator_period",
    "emulator_quota",
    "global_period",
    "global_quota",
];

/// How the periods' rule reads in messages.
const PERIOD_RULE: &str =
    "a CFS period is 1000 to 1000000 microseconds (the kernel's cpu.cfs_period_us range)";
/// How the quotas' rule reads in messages.
const QUOTA_RULE: &str = "a CFS quota is -1 (no limit) or 1000 to 17592186044415 microseconds; \
     0 and other negative values are refused";
/// How the shares' rule reads in messages.
const SHARES_RULE: &str = "CPU shares are 2 to 262144 (cgroup v1 cpu.shares, libvirt's <shares>)";

/// Bad CPU or memory tuning, or cgroup options. `option` is how the value was given
/// (`--cpu-shares`, `--cpu-quota vcpu_quota`, the virsh parameter `vcpu_quota`).
#[derive(Debug, PartialEq, Eq, Error)]
pub enum CputuneError {
    #[error("{option}: '{value}' is not a number ({rule})")]
    NotANumber {
        option: String,
        value: String,
        rule: &'static str,
    },
    #[error("{option}: {value} is out of range ({SHARES_RULE})")]
    Shares { option: String, value: String },
    #[error("{option}: {value} is out of range ({PERIOD_RULE})")]
    Period { option: String, value: String },
    #[error("{option}: {value} is not a valid quota ({QUOTA_RULE})")]
    Quota { option: String, value: String },
    #[error("--cpu-quota: '{item}' is not KEY=MICROSECONDS (e.g. vcpu_quota=25000)")]
    QuotaSyntax { item: String },
    #[error("--cpu-quota: unknown key '{key}' (expected one of {})", QUOTA_KEYS.join(", "))]
    QuotaKey { key: String },
    #[error("--cpu-quota: {key} is given twice ('{first}' and '{second}'{alias})")]
    QuotaTwice {
        key: &'static str,
        first: String,
        second: String,
        /// Why two different keys are the same setting.
        alias: &'static str,
    },
    #[error("unknown scheduler parameter '{key}' (expected one of {})", SCHED_KEYS.join(", "))]
    SchedKey { key: String },
    #[error("{key}: rvmm has no iothreads (its I/O runs in the emulator threads: use emulator_period/emulator_quota)")]
    NoIothreads { key: String },
    #[error(transparent)]
    LimitSize(#[from] SizeError),
    #[error(
        "--memory-limit: {limit} ({limit_bytes} bytes) is below the guest RAM of {ram} \
         ({ram_bytes} bytes): the limit must be at least guest RAM plus the VMM's {overhead} \
         overhead, {least} ({least_bytes} bytes)",
        limit = format_size(*limit_bytes), ram = format_size(*ram_bytes),
        overhead = format_size(MEMORY_OVERHEAD),
        least = format_size(ram_bytes.saturating_add(MEMORY_OVERHEAD)),
        least_bytes = ram_bytes.saturating_add(MEMORY_OVERHEAD)
    )]
    LimitBelowRam { limit_bytes: u64, ram_bytes: u64 },
    #[error(
        "--memory-limit: {limit} ({limit_bytes} bytes) leaves less than the VMM's {overhead} \
         overhead (MEMORY_OVERHEAD) above the guest RAM of {ram} ({ram_bytes} bytes): the \
         limit must be at least {least} ({least_bytes} bytes)",
        limit = format_size(*limit_bytes), ram = format_size(*ram_bytes),
        overhead = format_size(MEMORY_OVERHEAD),
        least = format_size(ram_bytes.saturating_add(MEMORY_OVERHEAD)),
        least_bytes = ram_bytes.saturating_add(MEMORY_OVERHEAD)
    )]
    LimitBelowOverhead { limit_bytes: u64, ram_bytes: u64 },
    #[error("--cgroup: '{value}' is not a cgroup mode (expected on, off or auto)")]
    Switch { value: String },
    #[error("--cgroup-parent: '{value}' {rule}")]
    Parent { value: String, rule: &'static str },
    #[error("--cgroup off conflicts with {option}: without a cgroup of its own the VM's {what} cannot be applied")]
    CgroupOff {
        option: &'static str,
        what: &'static str,
    },
}

/// `value` as an unsigned decimal number (`None`: too large for a u64, out of every
/// range); `option` and `rule` name it in errors.
fn unsigned(option: &str, value: &str, rule: &'static str) -> Result<Option<u64>, CputuneError> {
    let t = value.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CputuneError::NotANumber {
            option: option.to_string(),
            value: value.to_string(),
            rule,
        });
    }
    Ok(t.parse().ok())
}

/// CPU shares (`--cpu-shares N`, `cpu_shares`, `<shares>`): 2..=262144.
pub fn parse_shares(option: &str, value: &str) -> Result<u64, CputuneError> {
    match unsigned(option, value, SHARES_RULE)? {
        Some(v) => check_shares(option, v),
        None => Err(CputuneError::Shares {
            option: option.to_string(),
            value: value.trim().to_string(),
        }),
    }
}

/// Checks shares already read as a number.
pub fn check_shares(option: &str, value: u64) -> Result<u64, CputuneError> {
    if (SHARES_MIN..=SHARES_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(CputuneError::Shares {
            option: option.to_string(),
            value: value.to_string(),
        })
    }
}

/// A CFS period in microseconds: 1000..=1000000.
pub fn parse_period(option: &str, value: &str) -> Result<u64, CputuneError> {
    match unsigned(option, value, PERIOD_RULE)? {
        Some(v) => check_period(option, v),
        None => Err(CputuneError::Period {
            option: option.to_string(),
            value: value.trim().to_string(),
        }),
    }
}

/// Checks a period already read as a number.
pub fn check_period(option: &str, value: u64) -> Result<u64, CputuneError> {
    if (PERIOD_MIN_US..=PERIOD_MAX_US).contains(&value) {
        Ok(value)
    } else {
        Err(CputuneError::Period {
            option: option.to_string(),
            value: value.to_string(),
        })
    }
}

/// A CFS quota in microseconds: -1 (no limit) or 1000..=17592186044415.
pub fn parse_quota(option: &str, value: &str) -> Result<i64, CputuneError> {
    let t = value.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let v = unsigned(option, digits, QUOTA_RULE).map_err(|_| CputuneError::NotANumber {
        option: option.to_string(),
        value: value.to_string(),
        rule: QUOTA_RULE,
    })?;
    match v.and_then(|v| i64::try_from(v).ok()) {
        // The error shows the value as written (`-0`).
        Some(v) => {
            check_quota(option, if negative { -v } else { v }).map_err(|_| CputuneError::Quota {
                option: option.to_string(),
                value: t.to_string(),
            })
        }
        None => Err(CputuneError::Quota {
            option: option.to_string(),
            value: t.to_string(),
        }),
    }
}

/// Checks a quota already read as a number.
pub fn check_quota(option: &str, value: i64) -> Result<i64, CputuneError> {
    if value == -1 || (QUOTA_MIN_US..=QUOTA_MAX_US).contains(&value) {
        Ok(value)
    } else {
        Err(CputuneError::Quota {
            option: option.to_string(),
            value: value.to_string(),
        })
    }
}

/// Which bandwidth a `--cpu-quota` key sets, and whether it is the period or the quota.
fn quota_key(key: &str) -> Option<(&'static str, bool)> {
    Some(match key {
        "period" | "global_period" => ("global_period", true),
        "quota" | "global_quota" => ("global_quota", false),
        "vcpu_period" => ("vcpu_period", true),
        "vcpu_quota" => ("vcpu_quota", false),
        "emulator_period" => ("emulator_period", true),
        "emulator_quota" => ("emulator_quota", false),
        _ => return None,
    })
}

/// The bandwidth of `tune` a canonical key (`global_period`, ...) belongs to.
fn bandwidth_of<'t>(tune: &'t mut CpuTune, key: &str) -> &'t mut Bandwidth {
    match key.split('_').next() {
        Some("vcpu") => &mut tune.vcpu,
        Some("emulator") => &mut tune.emulator,
        _ => &mut tune.global,
    }
}

/// `--cpu-quota KEY=US[,KEY=US...]`, each occurrence, into `tune`'s bandwidths. `period`
/// and `quota` are the whole VM's (`global_period`, `global_quota`); each setting may be
/// given once.
pub fn parse_cpu_quota(values: &[String], tune: &mut CpuTune) -> Result<(), CputuneError> {
    let mut seen: Vec<(&'static str, String)> = Vec::new();
    for value in values {
        for item in value.split(',') {
            let (key, number) = item
                .split_once('=')
                .ok_or_else(|| CputuneError::QuotaSyntax {
                    item: item.to_string(),
                })?;
            let key = key.trim();
            let (canonical, is_period) = quota_key(key).ok_or_else(|| CputuneError::QuotaKey {
                key: key.to_string(),
            })?;
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == canonical) {
                let alias = if first.split('=').next().map(str::trim) != Some(key) {
                    ": period/quota are global_period/global_quota"
                } else {
                    ""
                };
                return Err(CputuneError::QuotaTwice {
                    key: canonical,
                    first: first.clone(),
                    second: item.to_string(),
                    alias,
                });
            }
            seen.push((canonical, item.to_string()));
            let option = format!("--cpu-quota {key}");
            let bandwidth = bandwidth_of(tune, canonical);
            if is_period {
                bandwidth.period_us = Some(parse_period(&option, number)?);
            } else {
                bandwidth.quota_us = Some(parse_quota(&option, number)?);
            }
        }
    }
    Ok(())
}

/// One `schedinfo --set KEY=VALUE` (virsh schedinfo's names); errors are prefixed with the
/// key, the caller adds where it came from.
pub fn parse_sched_param(key: &str, value: &str) -> Result<SchedParam, CputuneError> {
    Ok(match key {
        "cpu_shares" => SchedParam::CpuShares(parse_shares(key, value)?),
        "vcpu_period" => SchedParam::VcpuPeriod(parse_period(key, value)?),
        "vcpu_quota" => SchedParam::VcpuQuota(parse_quota(key, value)?),
        "emulator_period" => SchedParam::EmulatorPeriod(parse_period(key, value)?),
        "emulator_quota" => SchedParam::EmulatorQuota(parse_quota(key, value)?),
        "global_period" => SchedParam::GlobalPeriod(parse_period(key, value)?),
        "global_quota" => SchedParam::GlobalQuota(parse_quota(key, value)?),
        k if k.starts_with("iothread_") => {
            return Err(CputuneError::NoIothreads { key: k.to_string() })
        }
        k => return Err(CputuneError::SchedKey { key: k.to_string() }),
    })
}

/// `--memory-limit SIZE` in bytes (`-m`'s grammar: a bare number is MiB). Checked against
/// the guest RAM by [`check_memory_limit`].
pub fn parse_memory_limit(value: &str) -> Result<u64, CputuneError> {
    Ok(parse_size("--memory-limit", value, DefaultUnit::Mebibytes)?)
}

/// A memory limit must hold the guest RAM and [`MEMORY_OVERHEAD`].
pub fn check_memory_limit(limit: u64, guest_ram: u64) -> Result<(), CputuneError> {
    if limit < guest_ram {
        return Err(CputuneError::LimitBelowRam {
            limit_bytes: limit,
            ram_bytes: guest_ram,
        });
    }
    if limit < guest_ram.saturating_add(MEMORY_OVERHEAD) {
        return Err(CputuneError::LimitBelowOverhead {
            limit_bytes: limit,
            ram_bytes: guest_ram,
        });
    }
    Ok(())
}

impl CgroupSwitch {
    /// `--cgroup on|off|auto`.
    pub fn parse(value: &str) -> Result<Self, CputuneError> {
        match value {
            "on" => Ok(CgroupSwitch::On),
            "off" => Ok(CgroupSwitch::Off),
            "auto" => Ok(CgroupSwitch::Auto),
            _ => Err(CputuneError::Switch {
                value: value.to_string(),
            }),
        }
    }

    /// The `--cgroup` value.
    pub fn name(self) -> &'static str {
        match self {
            CgroupSwitch::On => "on",
            CgroupSwitch::Off => "off",
            CgroupSwitch::Auto => "auto",
        }
    }
}

/// `--cgroup-parent PATH`: an absolute path inside the cgroup hierarchies (`/machine.slice`,
/// `/` for the root), without `.`/`..` or empty components. Whether it exists is checked
/// when the group is created.
pub fn parse_cgroup_parent(value: &str) -> Result<String, CputuneError> {
    let bad = |rule| CputuneError::Parent {
        value: value.to_string(),
        rule,
    };
    let Some(rest) = value.strip_prefix('/') else {
        return Err(bad(
            "is not an absolute path inside the cgroup hierarchy (e.g. /machine.slice)",
        ));
    };
    if value.starts_with("/sys/fs/cgroup") {
        return Err(bad(
            "is a file system path: give the path inside the cgroup hierarchy (e.g. \
             /machine.slice, not /sys/fs/cgroup/cpu/machine.slice)",
        ));
    }
    if rest.is_empty() {
        return Ok("/".to_string());
    }
    for part in rest.split('/') {
        match part {
            "" => return Err(bad("has an empty component ('//' or a trailing '/')")),
            "." | ".." => return Err(bad("may not contain '.' or '..' components")),
            p if p.chars().any(char::is_control) => {
                return Err(bad("may not contain control characters"))
            }
            _ => {}
        }
    }
    if value.len() > 4096 {
        return Err(bad("is longer than PATH_MAX (4096 bytes)"));
    }
    Ok(value.to_string())
}

impl CgroupConfig {
    /// The parent group's path (`--cgroup-parent`, else [`DEFAULT_PARENT`]).
    pub fn parent_path(&self) -> &str {
        self.parent.as_deref().unwrap_or(DEFAULT_PARENT)
    }

    /// The VM's scope inside each hierarchy: `<parent>/rvmm-<name>.scope`, or
    /// `<parent>/rvmm-pid<PID>.scope` for an unnamed VM.
    pub fn scope_path(&self, name: Option<&str>, pid: u32) -> String {
        let leaf = match name {
            Some(n) => format!("rvmm-{n}.scope"),
            None => format!("rvmm-pid{pid}.scope"),
        };
        match self.parent_path().trim_end_matches('/') {
            "" => format!("/{leaf}"),
            p => format!("{p}/{leaf}"),
        }
    }
}

/// The first tuning option set, as the `rvmm run` flag that sets it: each makes a cgroup
/// mandatory.
pub fn first_tuning_option(
    cputune: &CpuTune,
    memtune: &MemTune,
    cgroup: &CgroupConfig,
) -> Option<(&'static str, &'static str)> {
    [
        (cputune.shares.is_some(), "--cpu-shares", "CPU shares"),
        (
            cputune.global.is_set() || cputune.vcpu.is_set() || cputune.emulator.is_set(),
            "--cpu-quota",
            "CPU bandwidth",
        ),
        (
            memtune.hard_limit.is_some(),
            "--memory-limit",
            "memory limit",
        ),
        (cgroup.parent.is_some(), "--cgroup-parent", "cgroup parent"),
    ]
    .into_iter()
    .find_map(|(set, option, what)| set.then_some((option, what)))
}

/// Every rule on a whole configuration's tuning (however it was built): the kernel's ranges,
/// the memory limit against `guest_ram`, the parent's syntax and `--cgroup off` without
/// tuning.
pub fn validate(
    cputune: &CpuTune,
    memtune: &MemTune,
    cgroup: &CgroupConfig,
    guest_ram: u64,
) -> Result<(), CputuneError> {
    if let Some(s) = cputune.shares {
        check_shares("--cpu-shares", s)?;
    }
    for (name, b) in [
        ("global", &cputune.global),
        ("vcpu", &cputune.vcpu),
        ("emulator", &cputune.emulator),
    ] {
        if let Some(p) = b.period_us {
            check_period(&format!("--cpu-quota {name}_period"), p)?;
        }
        if let Some(q) = b.quota_us {
            check_quota(&format!("--cpu-quota {name}_quota"), q)?;
        }
    }
    if let Some(limit) = memtune.hard_limit {
        check_memory_limit(limit, guest_ram)?;
    }
    if let Some(p) = &cgroup.parent {
        parse_cgroup_parent(p)?;
    }
    if cgroup.switch == CgroupSwitch::Off {
        if let Some((option, what)) = first_tuning_option(cputune, memtune, cgroup) {
            return Err(CputuneError::CgroupOff { option, what });
        }
    }
    Ok(())
}

/// The raw `rvmm run` option values, as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct TuningOptions<'a> {
    pub cpu_shares: Option<&'a str>,
    pub cpu_quota: &'a [String],
    pub memory_limit: Option<&'a str>,
    pub cgroup: Option<&'a str>,
    pub cgroup_parent: Option<&'a str>,
}

/// What [`TuningOptions::parse`] builds: the three `VmConfig` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuning {
    pub cputune: CpuTune,
    pub memtune: MemTune,
    pub cgroup: CgroupConfig,
}

impl TuningOptions<'_> {
    /// Parses each option on its own; the rules between them and the guest RAM are
    /// [`validate`]'s.
    pub fn parse(&self) -> Result<Tuning, CputuneError> {
        let mut t = Tuning::default();
        if let Some(s) = self.cpu_shares {
            t.cputune.shares = Some(parse_shares("--cpu-shares", s)?);
        }
        parse_cpu_quota(self.cpu_quota, &mut t.cputune)?;
        if let Some(m) = self.memory_limit {
            t.memtune.hard_limit = Some(parse_memory_limit(m)?);
        }
        if let Some(c) = self.cgroup {
            t.cgroup.switch = CgroupSwitch::parse(c)?;
        }
        if let Some(p) = self.cgroup_parent {
            t.cgroup.parent = Some(parse_cgroup_parent(p)?);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests;
