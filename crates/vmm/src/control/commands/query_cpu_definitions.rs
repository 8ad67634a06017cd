//! `query-cpu-definitions`: every CPU model name QEMU 7.2 registers, with the features KVM
//! on this host cannot give it (`unavailable-features`, equal to QEMU's under KVM) and the
//! versioned model an unversioned name stands for (`alias-of`).

use serde::{Deserialize, Serialize};

use super::cpu_slot::type_name;
use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::{HostCpuView, VmView};
use crate::cpu::features::{name_of, FeatureSet, FeatureWord};
use crate::cpu::filter::filter_cpu;
use crate::cpu::models::expand::{expand, Accel, CpuRequest, XSAVE_COMPONENTS};
use crate::cpu::models::{all_names, lookup, DefaultVersion, ModelRef};

pub const NAME: &str = "query-cpu-definitions";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryCpuDefinitions;

/// QEMU's CpuDefinitionInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuDefinitionInfo {
    pub name: String,
    pub typename: String,
    pub unavailable_features: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alias_of: Option<String>,
    #[serde(rename = "static")]
    pub is_static: bool,
    pub migration_safe: bool,
    pub deprecated: bool,
}

/// The versioned name an unversioned name or a version alias stands for.
fn alias_of(name: &str) -> Option<String> {
    match lookup(name)? {
        ModelRef::Builtin { def, version } => {
            let v = version.unwrap_or(1);
            let versioned = def.versioned_name(v);
            (versioned != name).then_some(versioned)
        }
        _ => None,
    }
}

/// QEMU's `x86_cpu_feature_name`: a bit's property name, where an XCR0 bit (an XSAVE
/// component) is named after the feature that owns the component (PKRU → `pku`); a bit with
/// no name at all is shown as `WORD[bit]`.
fn feature_name(word: FeatureWord, bit: u8) -> String {
    let (word, bit) = match word {
        FeatureWord::XsaveXcr0Lo | FeatureWord::XsaveXcr0Hi => {
            let component = u32::from(bit)
                + if word == FeatureWord::XsaveXcr0Hi {
                    32
                } else {
                    0
                };
            match XSAVE_COMPONENTS.iter().find(|(c, _, _)| *c == component) {
                Some(&(_, owner, mask)) => (owner, mask.trailing_zeros() as u8),
                None => (word, bit),
            }
        }
        _ => (word, bit),
    };
    match name_of(word, bit) {
        Some(name) => name.to_string(),
        None => format!("{}[{bit}]", word.description()),
    }
}

/// QEMU's `x86_cpu_list_feature_names`: one name per set bit, in word and bit order
/// (a feature reached through several bits is listed once per bit, as QEMU does).
fn feature_names(set: &FeatureSet) -> Vec<String> {
    set.bits()
        .map(|(word, bit)| feature_name(word, bit))
        .collect()
}

/// What KVM on this host cannot give `name` (QEMU's `unavailable-features`): the features
/// filtering drops, plus those expansion dropped for missing dependencies.
fn unavailable(name: &str, host: HostCpuView<'_>) -> Vec<String> {
    let request = CpuRequest {
        model: name,
        changes: &[],
        pmu: None,
        default_version: DefaultVersion::V1,
        dies: 1,
    };
    let accel = Accel::Kvm {
        host: host.support,
        identity: host.identity,
    };
    match expand(&request, accel) {
        Ok(cpu) => feature_names(&filter_cpu(&cpu, host.support).dropped),
        // QEMU reports a model it cannot even expand as lacking its "type".
        Err(_) => vec!["type".to_string()],
    }
}

/// Every model, `max`, `host` and `base` first as QEMU lists them.
pub(crate) fn cpu_definitions(host: HostCpuView<'_>) -> Vec<CpuDefinitionInfo> {
    let mut names = all_names();
    names.retain(|n| !matches!(n.as_str(), "max" | "host" | "base"));
    let mut out = Vec::with_capacity(names.len() + 3);
    for special in ["max", "host", "base"] {
        out.push(CpuDefinitionInfo {
            name: special.to_string(),
            typename: type_name(special),
            unavailable_features: Vec::new(),
            alias_of: None,
            is_static: special == "base",
            migration_safe: special == "base",
            deprecated: false,
        });
    }
    for name in names {
        out.push(CpuDefinitionInfo {
            typename: type_name(&name),
            unavailable_features: unavailable(&name, host),
            alias_of: alias_of(&name),
            is_static: false,
            migration_safe: true,
            deprecated: false,
            name,
        });
    }
    out
}

impl QmpCommand for QueryCpuDefinitions {
    const NAME: &'static str = NAME;
    type Reply = Vec<CpuDefinitionInfo>;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryCpuDefinitions)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Self::Reply, QmpError> {
        Ok(cpu_definitions(vm.host_cpu()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cpu::models::expand::HostIdentity;
    use crate::cpu::support::testing;
    use serde_json::{json, Value};

    pub(crate) fn identity() -> HostIdentity {
        HostIdentity {
            vendor: crate::cpu::models::VendorId::INTEL,
            family: 6,
            model: 60,
            stepping: 3,
            model_id: "Test CPU".into(),
        }
    }

    #[test]
    fn definitions_list_aliases_and_what_the_host_lacks() {
        let (support, identity) = (testing::host(), identity());
        let host = HostCpuView {
            support: &support,
            identity: &identity,
        };
        let defs = serde_json::to_value(cpu_definitions(host)).unwrap();
        let list = defs.as_array().unwrap();
        assert_eq!(list[0]["name"], "max");
        assert_eq!(
            list[2],
            json!({"name": "base", "typename": "base-x86_64-cpu", "unavailable-features": [],
            "static": true, "migration-safe": true, "deprecated": false})
        );
        let find = |n: &str| -> Value {
            list.iter()
                .find(|e| e["name"] == n)
                .unwrap_or_else(|| panic!("{n} missing"))
                .clone()
        };
        let haswell = find("Haswell");
        assert_eq!(haswell["alias-of"], "Haswell-v1");
        assert_eq!(haswell["typename"], "Haswell-x86_64-cpu");
        // The test host lacks exactly these of Haswell-v1's features (see filter::testing).
        let missing: Vec<String> =
            serde_json::from_value(haswell["unavailable-features"].clone()).unwrap();
        for f in [
            "fma", "pcid", "movbe", "f16c", "rdrand", "hle", "rtm", "invpcid",
        ] {
            assert!(missing.iter().any(|m| m == f), "{f} not in {missing:?}");
        }
        assert!(!missing.iter().any(|m| m == "avx2"), "{missing:?}");
        assert_eq!(find("Haswell-v1").get("alias-of"), None);
        assert_eq!(find("qemu64")["unavailable-features"], json!([]));
    }

    #[test]
    fn xsave_component_bits_are_named_as_qemu_names_them() {
        let mut set = FeatureSet::new();
        set.insert(FeatureWord::Cpuid7_0Ebx, 1 << 14);
        set.insert(
            FeatureWord::XsaveXcr0Lo,
            (1 << 3) | (1 << 4) | (1 << 9) | (1 << 8),
        );
        // QEMU 7.2 lists Denverton's missing MPX as "mpx" three times (CPUID bit, BNDREGS,
        // BNDCSR); component 8 has no owner and no name.
        assert_eq!(
            feature_names(&set),
            ["mpx", "mpx", "mpx", "CPUID.0DH:EAX[8]", "pku"].map(String::from)
        );
    }
}
