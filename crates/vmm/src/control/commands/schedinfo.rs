//! `__org.rvmm_schedinfo {set?}` (libvirt's `schedinfo`): the VM's scheduler parameters
//! as its cgroup holds them, under virsh schedinfo's names (`cpu_shares`, `vcpu_period`,
//! `vcpu_quota`, `emulator_period`, `emulator_quota`, `global_period`, `global_quota`).
//! With `set` (an object of those names → integers) every member is checked against the
//! kernel's range first; only when all pass are they applied, in one call to the VM. The
//! reply is always the parameters after, as an object with virsh's names.
//!
//! rvmm has no I/O threads, so virsh's `iothread_period`/`iothread_quota` are not here.
//! What the values mean and where they go (each vCPU's group, the emulator's, the VM's
//! scope) is `host::vmcgroup`'s.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use super::{ClientRequest, QmpCommand};
use crate::config::cputune::{
    SchedInfo, SchedParam, PERIOD_MAX_US, PERIOD_MIN_US, QUOTA_MAX_US, QUOTA_MIN_US, SHARES_MAX,
    SHARES_MIN,
};
use crate::control::args::{Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;

pub const NAME: &str = "__org.rvmm_schedinfo";

/// virsh schedinfo's parameter names, in its order.
pub const KEYS: [&str; 7] = [
    "cpu_shares",
    "vcpu_period",
    "vcpu_quota",
    "emulator_period",
    "emulator_quota",
    "global_period",
    "global_quota",
];

/// A `KEY=VALUE` the kernel would refuse, or a key virsh does not know.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchedParamError {
    #[error("{key}={value}: unknown parameter (valid: {})", KEYS.join(", "))]
    UnknownKey { key: String, value: String },
    #[error("{key}={value}: not an integer")]
    NotInteger { key: String, value: String },
    #[error("{key}={value}: shares must be {SHARES_MIN} to {SHARES_MAX}")]
    Shares { key: String, value: String },
    #[error("{key}={value}: a period must be {PERIOD_MIN_US} to {PERIOD_MAX_US} microseconds")]
    Period { key: String, value: String },
    #[error("{key}={value}: a quota must be -1 (no limit) or {QUOTA_MIN_US} to {QUOTA_MAX_US} microseconds")]
    Quota { key: String, value: String },
}

// replaced by config::cputune::parse_sched_param at merge
/// One virsh schedinfo parameter from its name and its value as text, range-checked.
pub fn parse_sched_param(key: &str, value: &str) -> Result<SchedParam, SchedParamError> {
    let owned = || (key.to_string(), value.to_string());
    if !KEYS.contains(&key) {
        let (key, value) = owned();
        return Err(SchedParamError::UnknownKey { key, value });
    }
    let number: i128 = value.trim().parse().map_err(|_| {
        let (key, value) = owned();
        SchedParamError::NotInteger { key, value }
    })?;
    let unsigned = |min: u64, max: u64| {
        u64::try_from(number)
            .ok()
            .filter(|n| (min..=max).contains(n))
    };
    let quota = || {
        i64::try_from(number)
            .ok()
            .filter(|&n| n == -1 || (QUOTA_MIN_US..=QUOTA_MAX_US).contains(&n))
    };
    let period = || unsigned(PERIOD_MIN_US, PERIOD_MAX_US);
    let bad_period = || {
        let (key, value) = owned();
        SchedParamError::Period { key, value }
    };
    let bad_quota = || {
        let (key, value) = owned();
        SchedParamError::Quota { key, value }
    };
    Ok(match key {
        "cpu_shares" => {
            SchedParam::CpuShares(unsigned(SHARES_MIN, SHARES_MAX).ok_or_else(|| {
                let (key, value) = owned();
                SchedParamError::Shares { key, value }
            })?)
        }
        "vcpu_period" => SchedParam::VcpuPeriod(period().ok_or_else(bad_period)?),
        "emulator_period" => SchedParam::EmulatorPeriod(period().ok_or_else(bad_period)?),
        "global_period" => SchedParam::GlobalPeriod(period().ok_or_else(bad_period)?),
        "vcpu_quota" => SchedParam::VcpuQuota(quota().ok_or_else(bad_quota)?),
        "emulator_quota" => SchedParam::EmulatorQuota(quota().ok_or_else(bad_quota)?),
        _ => SchedParam::GlobalQuota(quota().ok_or_else(bad_quota)?),
    })
}

/// A parameter's virsh name and value.
pub fn param_entry(p: SchedParam) -> (&'static str, i64) {
    // Shares and periods are far below i64::MAX (checked when parsed).
    let wide = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    match p {
        SchedParam::CpuShares(v) => ("cpu_shares", wide(v)),
        SchedParam::VcpuPeriod(v) => ("vcpu_period", wide(v)),
        SchedParam::VcpuQuota(v) => ("vcpu_quota", v),
        SchedParam::EmulatorPeriod(v) => ("emulator_period", wide(v)),
        SchedParam::EmulatorQuota(v) => ("emulator_quota", v),
        SchedParam::GlobalPeriod(v) => ("global_period", wide(v)),
        SchedParam::GlobalQuota(v) => ("global_quota", v),
    }
}

/// The command: report, or set `set` (checked, in the order given) and report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedInfoCommand {
    pub set: Vec<SchedParam>,
}

/// The arguments as a client sends them: virsh names → integers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchedInfoRequest {
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub set: Map<String, Value>,
}

impl SchedInfoRequest {
    /// A request setting `changes` (none: only report).
    pub fn setting(changes: &[SchedParam]) -> Self {
        let set = changes
            .iter()
            .map(|&p| {
                let (key, value) = param_entry(p);
                (key.to_string(), Value::from(value))
            })
            .collect();
        SchedInfoRequest { set }
    }
}

impl ClientRequest for SchedInfoRequest {
    const NAME: &'static str = NAME;
    type Reply = SchedInfoReply;
}

/// The reply: [`SchedInfo`] under virsh's names, in virsh's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedInfoReply {
    pub cpu_shares: u64,
    pub vcpu_period: u64,
    pub vcpu_quota: i64,
    pub emulator_period: u64,
    pub emulator_quota: i64,
    pub global_period: u64,
    pub global_quota: i64,
}

impl From<SchedInfo> for SchedInfoReply {
    fn from(s: SchedInfo) -> Self {
        SchedInfoReply {
            cpu_shares: s.cpu_shares,
            vcpu_period: s.vcpu_period,
            vcpu_quota: s.vcpu_quota,
            emulator_period: s.emulator_period,
            emulator_quota: s.emulator_quota,
            global_period: s.global_period,
            global_quota: s.global_quota,
        }
    }
}

impl SchedInfoReply {
    /// Each parameter as (virsh name, value text), in virsh's order.
    pub fn entries(&self) -> [(&'static str, String); 7] {
        [
            (KEYS[0], self.cpu_shares.to_string()),
            (KEYS[1], self.vcpu_period.to_string()),
            (KEYS[2], self.vcpu_quota.to_string()),
            (KEYS[3], self.emulator_period.to_string()),
            (KEYS[4], self.emulator_quota.to_string()),
            (KEYS[5], self.global_period.to_string()),
            (KEYS[6], self.global_quota.to_string()),
        ]
    }
}

/// `virsh schedinfo DOMAIN`'s layout: the scheduler, then one `name: value` line per
/// parameter, names padded to 15 columns.
pub fn render_schedinfo(info: &SchedInfoReply) -> String {
    let mut out = format!("{:<15}: {}\n", "Scheduler", "posix");
    for (key, value) in info.entries() {
        out.push_str(&format!("{key:<15}: {value}\n"));
    }
    out
}

/// Every member of `set`, checked; the first bad one is the error.
fn parse_set(set: Map<String, Value>) -> Result<Vec<SchedParam>, QmpError> {
    let mut changes = Vec::new();
    for (key, value) in set {
        let text = match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => {
                return Err(crate::control::args::type_error(
                    &format!("set.{key}"),
                    "integer",
                ))
            }
        };
        let param = parse_sched_param(&key, &text)
            .map_err(|e| QmpError::generic(format!("schedinfo: {e}")))?;
        changes.push(param);
    }
    Ok(changes)
}

impl QmpCommand for SchedInfoCommand {
    const NAME: &'static str = NAME;
    type Reply = SchedInfoReply;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let set = match args.object("set", Presence::Optional)? {
            Some(set) => parse_set(set)?,
            None => Vec::new(),
        };
        Ok(SchedInfoCommand { set })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<SchedInfoReply, QmpError> {
        let info = if self.set.is_empty() {
            vm.schedinfo()?
        } else {
            vm.set_schedinfo(&self.set)?
        };
        Ok(info.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(key: &str, value: &str) -> String {
        parse_sched_param(key, value).unwrap_err().to_string()
    }

    #[test]
    fn names_and_kernel_ranges() {
        assert_eq!(
            parse_sched_param("cpu_shares", "2"),
            Ok(SchedParam::CpuShares(2))
        );
        assert_eq!(
            parse_sched_param("cpu_shares", "262144"),
            Ok(SchedParam::CpuShares(262_144))
        );
        assert_eq!(
            parse_sched_param("vcpu_period", "1000"),
            Ok(SchedParam::VcpuPeriod(1000))
        );
        assert_eq!(
            parse_sched_param("global_period", "1000000"),
            Ok(SchedParam::GlobalPeriod(1_000_000))
        );
        assert_eq!(
            parse_sched_param("emulator_period", "5000"),
            Ok(SchedParam::EmulatorPeriod(5000))
        );
        assert_eq!(
            parse_sched_param("vcpu_quota", "-1"),
            Ok(SchedParam::VcpuQuota(-1))
        );
        assert_eq!(
            parse_sched_param("emulator_quota", "17592186044415"),
            Ok(SchedParam::EmulatorQuota(17_592_186_044_415))
        );
        assert_eq!(
            parse_sched_param("global_quota", "1000"),
            Ok(SchedParam::GlobalQuota(1000))
        );
        assert_eq!(
            bad("cpu_shares", "1"),
            "cpu_shares=1: shares must be 2 to 262144"
        );
        assert_eq!(
            bad("cpu_shares", "262145"),
            "cpu_shares=262145: shares must be 2 to 262144"
        );
        assert_eq!(
            bad("vcpu_period", "999"),
            "vcpu_period=999: a period must be 1000 to 1000000 microseconds"
        );
        assert_eq!(
            bad("global_period", "1000001"),
            "global_period=1000001: a period must be 1000 to 1000000 microseconds"
        );
        let quota = ": a quota must be -1 (no limit) or 1000 to 17592186044415 microseconds";
        for v in [
            "0",
            "-2",
            "999",
            "17592186044416",
            "-99999999999999999999999",
        ] {
            assert_eq!(bad("vcpu_quota", v), format!("vcpu_quota={v}{quota}"));
        }
        assert_eq!(bad("vcpu_quota", "x"), "vcpu_quota=x: not an integer");
        assert_eq!(
            bad("iothread_quota", "-1"),
            "iothread_quota=-1: unknown parameter (valid: cpu_shares, vcpu_period, vcpu_quota, \
             emulator_period, emulator_quota, global_period, global_quota)"
        );
    }

    #[test]
    fn every_key_round_trips_through_a_request() {
        let changes: Vec<SchedParam> = KEYS
            .iter()
            .map(|k| parse_sched_param(k, if k.ends_with("quota") { "-1" } else { "2000" }))
            .collect::<Result<_, _>>()
            .unwrap();
        let request = SchedInfoRequest::setting(&changes);
        assert_eq!(request.set.len(), 7);
        let mut args = Args::new(
            serde_json::to_value(&request)
                .unwrap()
                .as_object()
                .unwrap()
                .clone(),
        );
        let mut parsed = SchedInfoCommand::parse(&mut args).unwrap().set;
        // A JSON object's members may come back in another order.
        let mut sorted = changes.clone();
        sorted.sort_by_key(|p| param_entry(*p).0);
        parsed.sort_by_key(|p| param_entry(*p).0);
        assert_eq!(parsed, sorted);
        assert_eq!(
            serde_json::to_value(SchedInfoRequest::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn layout_matches_virsh() {
        let info = SchedInfoReply {
            cpu_shares: 1024,
            vcpu_period: 100_000,
            vcpu_quota: 25_000,
            emulator_period: 100_000,
            emulator_quota: -1,
            global_period: 100_000,
            global_quota: -1,
        };
        assert_eq!(
            render_schedinfo(&info),
            "Scheduler      : posix\n\
             cpu_shares     : 1024\n\
             vcpu_period    : 100000\n\
             vcpu_quota     : 25000\n\
             emulator_period: 100000\n\
             emulator_quota : -1\n\
             global_period  : 100000\n\
             global_quota   : -1\n"
        );
    }
}
