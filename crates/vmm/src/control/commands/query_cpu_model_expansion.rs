//! `query-cpu-model-expansion` under KVM on this host: a model name plus property changes
//! in, every feature property and the identification properties rvmm models out (family,
//! model, stepping, model-id, vendor, level, xlevel, xlevel2; not QEMU's other object
//! properties). `static` expansion names the result `base`, `full` keeps the model's name.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::cpu_slot::TARGET;
use super::QmpCommand;
use crate::control::args::{Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::{HostCpuView, VmView};
use crate::cpu::features::{all_features, canonical_name, normalize_property_name};
use crate::cpu::models::expand::{expand, Accel, CpuRequest};
use crate::cpu::models::{lookup, DefaultVersion};

pub const NAME: &str = "query-cpu-model-expansion";

/// `query-cpu-model-expansion`'s `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpansionType {
    /// A static base model (`base`) plus properties.
    Static,
    /// The named model with every property.
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryCpuModelExpansion {
    pub expansion: ExpansionType,
    pub model: String,
    /// Property changes (`"aes": true`).
    pub props: Map<String, Value>,
}

/// QEMU's CpuModelInfo: a name and its properties (booleans for features, numbers and
/// strings for the identification properties).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuModelInfo {
    pub name: String,
    pub props: Map<String, Value>,
}

/// QEMU's CpuModelExpansionInfo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuModelExpansionInfo {
    pub model: CpuModelInfo,
}

/// Expands `model` with `props` for this host.
pub(crate) fn model_expansion(
    expansion: ExpansionType,
    model: &str,
    props: &Map<String, Value>,
    host: HostCpuView<'_>,
) -> Result<CpuModelExpansionInfo, QmpError> {
    if lookup(model).is_none() {
        return Err(QmpError::generic(format!("CPU model '{model}' not found")));
    }
    let mut changes = Vec::new();
    for (key, value) in props {
        let name = canonical_name(&normalize_property_name(key)).ok_or_else(|| {
            QmpError::generic(format!("Property '{model}-{TARGET}-cpu.{key}' not found"))
        })?;
        let on = value.as_bool().ok_or_else(|| {
            QmpError::generic(format!(
                "Invalid parameter type for '{key}', expected: boolean"
            ))
        })?;
        changes.push((name.to_string(), on));
    }
    let request = CpuRequest {
        model,
        changes: &changes,
        pmu: None,
        default_version: DefaultVersion::V1,
        dies: 1,
    };
    let accel = Accel::Kvm {
        host: host.support,
        identity: host.identity,
    };
    let cpu = expand(&request, accel).map_err(|e| QmpError::generic(e.to_string()))?;
    let mut out = Map::new();
    for f in all_features() {
        if !out.contains_key(f.name) {
            out.insert(
                f.name.to_string(),
                json!(cpu.features.has_named(f.name).unwrap_or(false)),
            );
        }
    }
    out.insert("family".into(), json!(cpu.family));
    out.insert("model".into(), json!(cpu.model));
    out.insert("stepping".into(), json!(cpu.stepping));
    out.insert("model-id".into(), json!(cpu.model_id));
    out.insert("vendor".into(), json!(cpu.vendor.as_string()));
    out.insert("level".into(), json!(cpu.level));
    out.insert("xlevel".into(), json!(cpu.xlevel));
    out.insert("xlevel2".into(), json!(cpu.xlevel2));
    let name = match expansion {
        ExpansionType::Static => "base",
        ExpansionType::Full => model,
    };
    Ok(CpuModelExpansionInfo {
        model: CpuModelInfo {
            name: name.to_string(),
            props: out,
        },
    })
}

impl QmpCommand for QueryCpuModelExpansion {
    const NAME: &'static str = NAME;
    type Reply = CpuModelExpansionInfo;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let kind = args.string("type", Presence::Required)?.unwrap_or_default();
        let expansion = match kind.as_str() {
            "static" => ExpansionType::Static,
            "full" => ExpansionType::Full,
            other => {
                return Err(QmpError::generic(format!(
                    "Parameter 'type' does not accept value '{other}'"
                )))
            }
        };
        let model = args
            .object("model", Presence::Required)?
            .unwrap_or_default();
        let mut model = Args::new(model);
        let name = model
            .string("name", Presence::Required)
            .map_err(|e| QmpError::generic(e.desc.replace("'name'", "'model.name'")))?
            .unwrap_or_default();
        let props = model
            .object("props", Presence::Optional)
            .map_err(|e| QmpError::generic(e.desc.replace("'props'", "'model.props'")))?
            .unwrap_or_default();
        model.finish("model.")?;
        Ok(QueryCpuModelExpansion {
            expansion,
            model: name,
            props,
        })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Self::Reply, QmpError> {
        model_expansion(self.expansion, &self.model, &self.props, vm.host_cpu())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::commands::query_cpu_definitions::tests::identity;
    use crate::cpu::support::testing;

    #[test]
    fn expansion() {
        let (support, identity) = (testing::host(), identity());
        let host = HostCpuView {
            support: &support,
            identity: &identity,
        };
        let props = Map::from_iter([
            ("aes".to_string(), json!(false)),
            ("sse4_1".to_string(), json!(true)),
        ]);
        let v = serde_json::to_value(
            model_expansion(ExpansionType::Full, "Haswell", &props, host).unwrap(),
        )
        .unwrap();
        assert_eq!(v["model"]["name"], "Haswell");
        assert_eq!(v["model"]["props"]["aes"], false);
        assert_eq!(v["model"]["props"]["sse4.1"], true);
        assert_eq!(v["model"]["props"]["avx2"], true);
        assert_eq!(v["model"]["props"]["family"], 6);
        let s = model_expansion(ExpansionType::Static, "qemu64", &Map::new(), host).unwrap();
        assert_eq!(s.model.name, "base");
        assert_eq!(
            model_expansion(ExpansionType::Full, "nope", &Map::new(), host)
                .unwrap_err()
                .desc,
            "CPU model 'nope' not found"
        );
        let bogus = Map::from_iter([("bogus".to_string(), json!(true))]);
        assert_eq!(
            model_expansion(ExpansionType::Full, "qemu64", &bogus, host)
                .unwrap_err()
                .desc,
            "Property 'qemu64-x86_64-cpu.bogus' not found"
        );
        let typed = Map::from_iter([("aes".to_string(), json!("on"))]);
        assert_eq!(
            model_expansion(ExpansionType::Full, "qemu64", &typed, host)
                .unwrap_err()
                .desc,
            "Invalid parameter type for 'aes', expected: boolean"
        );
    }
}
