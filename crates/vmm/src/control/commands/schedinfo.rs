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

use serde::Serialize;
use serde_json::{Map, Value};

use super::{ClientRequest, QmpCommand};
pub use crate::config::cputune::parse_sched_param;
use crate::config::cputune::{SchedInfo, SchedParam, SCHED_KEYS};
use crate::control::args::{Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;

pub const NAME: &str = "__org.rvmm_schedinfo";

/// virsh schedinfo's parameter names, in its order (the parser's list).
pub const KEYS: &[&str] = SCHED_KEYS;

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

/// The reply: [`SchedInfo`], whose fields are virsh's names in virsh's order.
pub type SchedInfoReply = SchedInfo;

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
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
