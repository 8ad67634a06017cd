//! `query-stats`: KVM's binary statistics of the VM or of its vCPUs in QEMU 7.2's shapes
//! (qapi/stats.json, accel/kvm/kvm-all.c), checked against a live QEMU 7.2 on the same kernel
//! (crates/rvmm/tests/stats_qmp.rs).
//!
//! Arguments are QEMU's StatsFilter union: `target` (`vm` | `vcpu`), `providers` (a list of
//! `{provider: "kvm", names?: [...]}`), and for the `vcpu` target only, `vcpus` (QOM paths,
//! the ones `query-cpus-fast` reports). The reply is one StatsResult per provider request and
//! object: `{provider, qom-path (vCPUs only), stats: [{name, value}]}`, where a value is a
//! number, a bool (statistics whose unit is `boolean`) or a list of numbers (histograms).
//!
//! What QEMU 7.2 does and rvmm does too: each provider request is answered on its own (two
//! `kvm` requests give two result sets); QEMU builds its lists by prepending, so the results
//! come last request and last vCPU first, and each result's statistics in the reverse of
//! the kernel's descriptor order; `names` keeps the statistics named (unknown names are
//! ignored) and an object none of whose statistics is kept has no result at all; an empty
//! `names` or `vcpus` list gives nothing; a `vcpus` path that names no vCPU is ignored.
//!
//! Where rvmm differs on purpose: QEMU 7.2 also prepends a histogram's buckets, so it sends
//! them last bucket first; rvmm sends bucket 0 first, as the schema documents and the kernel
//! stores them. Member order inside a JSON object is QEMU's hash order there and alphabetical
//! here (it carries no meaning). A kernel without binary statistics is an error naming that
//! (QEMU would answer `[]`, having registered no provider).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cpu_slot::qom_path;
use super::{ClientRequest, QmpCommand};
use crate::control::args::{type_error, Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::{VcpuThread, VmView};
use crate::machine::stats::{KvmStat, StatUnit, StatValue};

pub const NAME: &str = "query-stats";

/// The kinds of objects statistics are asked of (QEMU's StatsTarget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsTarget {
    Vm,
    Vcpu,
}

/// Where statistics come from (QEMU's StatsProvider; 7.2 has only KVM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsProvider {
    Kvm,
}

impl StatsProvider {
    /// The provider `text` names, or QEMU's enum error for member `member`.
    pub(crate) fn parse(member: &str, text: &str) -> Result<StatsProvider, QmpError> {
        match text {
            "kvm" => Ok(StatsProvider::Kvm),
            other => Err(enum_error(member, other)),
        }
    }
}

/// QEMU's text for an enum member with a value it does not know. QEMU names the member
/// without its path (`'provider'`, even inside `providers[0]`).
pub(crate) fn enum_error(member: &str, value: &str) -> QmpError {
    QmpError::generic(format!(
        "Parameter '{member}' does not accept value '{value}'"
    ))
}

/// One provider's part of a request (QEMU's StatsRequest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRequest {
    pub provider: StatsProvider,
    /// Only these statistics; `None` is every one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub names: Option<Vec<String>>,
}

/// The command (QEMU's StatsFilter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryStats {
    pub target: StatsTarget,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<StatsRequest>>,
    /// QOM paths of the vCPUs wanted (`vcpu` target only); `None` is every vCPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<Vec<String>>,
}

/// A statistic's value as QMP sends it (QEMU's StatsValue alternate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QmpStatValue {
    Boolean(bool),
    Scalar(u64),
    List(Vec<u64>),
}

/// One statistic (QEMU's Stats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub name: String,
    pub value: QmpStatValue,
}

/// The statistics of one object from one provider (QEMU's StatsResult).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StatsResult {
    pub provider: StatsProvider,
    /// The vCPU's QOM path; absent for the VM.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub qom_path: Option<String>,
    pub stats: Vec<Stat>,
}

impl ClientRequest for QueryStats {
    const NAME: &'static str = NAME;
    type Reply = Vec<StatsResult>;
}

/// A list member's elements, or QEMU's type error naming it.
fn array(name: &str, v: Value) -> Result<Vec<Value>, QmpError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(type_error(name, "array")),
    }
}

/// A list of strings; elements are named `name[i]` in errors.
fn string_list(name: &str, v: Value) -> Result<Vec<String>, QmpError> {
    array(name, v)?
        .into_iter()
        .enumerate()
        .map(|(i, e)| match e {
            Value::String(s) => Ok(s),
            _ => Err(type_error(&format!("{name}[{i}]"), "string")),
        })
        .collect()
}

/// `providers[i]`: an object with `provider` and optional `names`.
fn provider_request(path: &str, v: Value) -> Result<StatsRequest, QmpError> {
    let Value::Object(mut m) = v else {
        return Err(type_error(path, "object"));
    };
    let provider = match m.remove("provider") {
        None => {
            return Err(QmpError::generic(format!(
                "Parameter '{path}.provider' is missing"
            )))
        }
        Some(Value::String(s)) => StatsProvider::parse("provider", &s)?,
        Some(_) => return Err(type_error(&format!("{path}.provider"), "string")),
    };
    let names = m
        .remove("names")
        .map(|v| string_list(&format!("{path}.names"), v))
        .transpose()?;
    Args::new(m).finish(&format!("{path}."))?;
    Ok(StatsRequest { provider, names })
}

impl QmpCommand for QueryStats {
    const NAME: &'static str = NAME;
    type Reply = Vec<StatsResult>;

    /// QEMU visits the union's base (`target`, `providers`), then the variant's members
    /// (`vcpus`, for `vcpu` only); anything left is unexpected.
    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let target = match args
            .string("target", Presence::Required)?
            .unwrap_or_default()
            .as_str()
        {
            "vm" => StatsTarget::Vm,
            "vcpu" => StatsTarget::Vcpu,
            other => return Err(enum_error("target", other)),
        };
        let providers = match args.take("providers", Presence::Optional)? {
            None => None,
            Some(v) => Some(
                array("providers", v)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| provider_request(&format!("providers[{i}]"), p))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let vcpus = match target {
            StatsTarget::Vcpu => args
                .take("vcpus", Presence::Optional)?
                .map(|v| string_list("vcpus", v))
                .transpose()?,
            StatsTarget::Vm => None,
        };
        Ok(QueryStats {
            target,
            providers,
            vcpus,
        })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Vec<StatsResult>, QmpError> {
        // Without `providers`, every provider once, with every statistic.
        let every = [StatsRequest {
            provider: StatsProvider::Kvm,
            names: None,
        }];
        let requests = self.providers.as_deref().unwrap_or(&every);
        let mut results = Vec::new();
        for request in requests {
            let names = request.names.as_deref();
            if names.is_some_and(<[String]>::is_empty) {
                continue;
            }
            match self.target {
                StatsTarget::Vm => {
                    let stats = qmp_stats(&vm.vm_kvm_stats()?, names);
                    if !stats.is_empty() {
                        results.push(StatsResult {
                            provider: request.provider,
                            qom_path: None,
                            stats,
                        });
                    }
                }
                StatsTarget::Vcpu => {
                    for (vcpu, path) in vcpu_paths(vm) {
                        if self.vcpus.as_ref().is_some_and(|w| !w.contains(&path)) {
                            continue;
                        }
                        let stats = qmp_stats(&vm.vcpu_kvm_stats(vcpu)?, names);
                        if !stats.is_empty() {
                            results.push(StatsResult {
                                provider: request.provider,
                                qom_path: Some(path),
                                stats,
                            });
                        }
                    }
                }
            }
        }
        // QEMU prepends every result.
        results.reverse();
        Ok(results)
    }
}

/// The present vCPUs in QEMU's order with the QOM paths `query-cpus-fast` gives them.
pub(crate) fn vcpu_paths(vm: &dyn VmView) -> Vec<(VcpuThread, String)> {
    vm.vcpus()
        .into_iter()
        .map(|v| {
            let path = vm
                .cpu_slots()
                .get(v.index)
                .map_or_else(|| qom_path(v.index), |c| c.qom_path.clone());
            (v, path)
        })
        .collect()
}

/// The statistics `names` keeps (all without it), in QEMU's order: the reverse of the
/// kernel's descriptor order.
pub(crate) fn qmp_stats(stats: &[KvmStat], names: Option<&[String]>) -> Vec<Stat> {
    stats
        .iter()
        .rev()
        .filter(|s| names.is_none_or(|n| n.contains(&s.desc.name)))
        .map(|s| Stat {
            name: s.desc.name.clone(),
            value: qmp_value(s),
        })
        .collect()
}

/// A statistic's value as QEMU 7.2 sends it: a bool for the `boolean` unit (whatever the
/// type), a list for a histogram, else a number.
pub(crate) fn qmp_value(stat: &KvmStat) -> QmpStatValue {
    match (&stat.value, stat.desc.unit) {
        (v, StatUnit::Boolean) => QmpStatValue::Boolean(first(v) != 0),
        (StatValue::Histogram(buckets), _) => QmpStatValue::List(buckets.clone()),
        (StatValue::Scalar(v), _) => QmpStatValue::Scalar(*v),
    }
}

fn first(v: &StatValue) -> u64 {
    match v {
        StatValue::Scalar(v) => *v,
        StatValue::Histogram(b) => b.first().copied().unwrap_or(0),
    }
}
