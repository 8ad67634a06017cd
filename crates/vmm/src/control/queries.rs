//! The answers to QMP's query commands, built from plain data in QEMU 7.2's shapes (checked
//! against a live QEMU 7.2): `query-status`, `query-cpus-fast`, `query-hotpluggable-cpus`,
//! `query-cpu-definitions` and `query-cpu-model-expansion`.
//!
//! Where rvmm has no equivalent of a QEMU member it says so here: `qom-path` is QEMU's
//! object path, which rvmm mimics as `/machine/unattached/device[N]` numbered by vCPU index
//! (QEMU numbers unattached devices in creation order); model expansion reports the CPU
//! feature properties plus the identification properties rvmm models (family, model,
//! stepping, model-id, vendor, level, xlevel, xlevel2), not QEMU's other object properties.

use serde_json::{json, Map, Value};

use super::commands::ExpansionType;
use super::qmp::QmpError;
use crate::cpu::features::{
    all_features, canonical_name, name_of, normalize_property_name, FeatureSet, FeatureWord,
};
use crate::cpu::filter::{filter_cpu, HostCpuSupport};
use crate::cpu::models::expand::{expand, Accel, CpuRequest, HostIdentity, XSAVE_COMPONENTS};
use crate::cpu::models::{all_names, lookup, DefaultVersion, ModelRef};
use crate::cpu::topology::CpuTopology;

/// QMP's target name for this architecture.
pub const TARGET: &str = "x86_64";

/// `query-status`.
pub fn status(paused: bool) -> Value {
    json!({
        "status": if paused { "paused" } else { "running" },
        "singlestep": false,
        "running": !paused,
    })
}

/// QEMU's object path for vCPU `index`.
pub fn qom_path(index: u32) -> String {
    format!("/machine/unattached/device[{index}]")
}

/// The topology properties of vCPU slot `index` (x86's CpuInstanceProperties): `die-id`
/// only when there is more than one die per socket, as QEMU 7.2 reports it.
pub fn cpu_props(topology: &CpuTopology, index: u32) -> Value {
    let ids = topology.ids(index);
    let mut props = Map::new();
    props.insert("socket-id".into(), json!(ids.pkg));
    if topology.dies() > 1 {
        props.insert("die-id".into(), json!(ids.die));
    }
    props.insert("core-id".into(), json!(ids.core));
    props.insert("thread-id".into(), json!(ids.smt));
    Value::Object(props)
}

/// `query-cpus-fast`: one entry per present vCPU, `(index, thread id)`.
pub fn cpus_fast(topology: &CpuTopology, vcpus: &[(u32, i32)]) -> Value {
    Value::Array(
        vcpus
            .iter()
            .map(|&(index, tid)| {
                json!({
                    "cpu-index": index,
                    "qom-path": qom_path(index),
                    "thread-id": tid,
                    "props": cpu_props(topology, index),
                    "target": TARGET,
                })
            })
            .collect(),
    )
}

/// `query-hotpluggable-cpus`: every slot up to maxcpus, highest first as QEMU lists them;
/// present vCPUs carry their `qom-path`.
pub fn hotpluggable_cpus(topology: &CpuTopology, present: u32, model: &str) -> Value {
    Value::Array(
        (0..topology.max_cpus())
            .rev()
            .map(|index| {
                let mut entry = Map::new();
                entry.insert("props".into(), cpu_props(topology, index));
                entry.insert("vcpus-count".into(), json!(1));
                if index < present {
                    entry.insert("qom-path".into(), json!(qom_path(index)));
                }
                entry.insert("type".into(), json!(format!("{model}-{TARGET}-cpu")));
                Value::Object(entry)
            })
            .collect(),
    )
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
fn unavailable(name: &str, host: &HostCpuSupport, identity: &HostIdentity) -> Vec<String> {
    let request = CpuRequest {
        model: name,
        changes: &[],
        pmu: None,
        default_version: DefaultVersion::V1,
        dies: 1,
    };
    match expand(&request, Accel::Kvm { host, identity }) {
        Ok(cpu) => feature_names(&filter_cpu(&cpu, host).dropped),
        // QEMU reports a model it cannot even expand as lacking its "type".
        Err(_) => vec!["type".to_string()],
    }
}

/// `query-cpu-definitions`: every model name QEMU 7.2 registers, with what this host lacks.
pub fn cpu_definitions(host: &HostCpuSupport, identity: &HostIdentity) -> Value {
    let mut names = all_names();
    // QEMU lists max, host and base first.
    names.retain(|n| !matches!(n.as_str(), "max" | "host" | "base"));
    let mut out = Vec::with_capacity(names.len() + 3);
    for special in ["max", "host", "base"] {
        out.push(json!({
            "name": special,
            "typename": format!("{special}-{TARGET}-cpu"),
            "unavailable-features": [],
            "static": special == "base",
            "migration-safe": special == "base",
            "deprecated": false,
        }));
    }
    for name in names {
        let mut entry = Map::new();
        entry.insert("name".into(), json!(name));
        entry.insert("typename".into(), json!(format!("{name}-{TARGET}-cpu")));
        entry.insert(
            "unavailable-features".into(),
            json!(unavailable(&name, host, identity)),
        );
        if let Some(target) = alias_of(&name) {
            entry.insert("alias-of".into(), json!(target));
        }
        entry.insert("static".into(), json!(false));
        entry.insert("migration-safe".into(), json!(true));
        entry.insert("deprecated".into(), json!(false));
        out.push(Value::Object(entry));
    }
    Value::Array(out)
}

/// `query-cpu-model-expansion` under KVM on this host.
pub fn model_expansion(
    expansion: ExpansionType,
    model: &str,
    props: &Map<String, Value>,
    host: &HostCpuSupport,
    identity: &HostIdentity,
) -> Result<Value, QmpError> {
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
    let cpu = expand(&request, Accel::Kvm { host, identity })
        .map_err(|e| QmpError::generic(e.to_string()))?;
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
    Ok(json!({"model": {"name": name, "props": out}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::smp::SmpConfig;
    use crate::cpu::support::testing;

    fn topo(spec: &str) -> CpuTopology {
        SmpConfig::parse(spec).unwrap().topology()
    }

    fn identity() -> HostIdentity {
        HostIdentity {
            vendor: crate::cpu::models::VendorId::INTEL,
            family: 6,
            model: 60,
            stepping: 3,
            model_id: "Test CPU".into(),
        }
    }

    #[test]
    fn cpus_fast_as_qemu() {
        // QEMU 7.2, -smp 2,sockets=1,dies=2,cores=2,maxcpus=4: vCPU 1 is core 1 of die 0.
        let t = topo("2,sockets=1,dies=2,cores=2,threads=1,maxcpus=4");
        assert_eq!(
            cpus_fast(&t, &[(1, 4242)]),
            json!([{"cpu-index": 1, "qom-path": "/machine/unattached/device[1]", "thread-id": 4242,
                    "props": {"core-id": 1, "thread-id": 0, "die-id": 0, "socket-id": 0}, "target": "x86_64"}])
        );
        // One die per socket: no die-id, as QEMU.
        let t = topo("2,sockets=2,cores=2,maxcpus=4");
        assert_eq!(
            cpu_props(&t, 3),
            json!({"socket-id": 1, "core-id": 1, "thread-id": 0})
        );
    }

    #[test]
    fn hotpluggable_as_qemu() {
        let t = topo("2,sockets=2,cores=2,maxcpus=4");
        let v = hotpluggable_cpus(&t, 2, "qemu64");
        assert_eq!(v.as_array().unwrap().len(), 4);
        assert_eq!(
            v[0],
            json!({"props": {"core-id": 1, "thread-id": 0, "socket-id": 1}, "vcpus-count": 1, "type": "qemu64-x86_64-cpu"})
        );
        assert_eq!(
            v[3],
            json!({"props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "vcpus-count": 1,
                   "qom-path": "/machine/unattached/device[0]", "type": "qemu64-x86_64-cpu"})
        );
    }

    #[test]
    fn status_members() {
        assert_eq!(
            status(false),
            json!({"status": "running", "singlestep": false, "running": true})
        );
        assert_eq!(
            status(true),
            json!({"status": "paused", "singlestep": false, "running": false})
        );
    }

    #[test]
    fn definitions_list_aliases_and_what_the_host_lacks() {
        let defs = cpu_definitions(&testing::host(), &identity());
        let list = defs.as_array().unwrap();
        assert_eq!(list[0]["name"], "max");
        assert_eq!(
            list[2],
            json!({"name": "base", "typename": "base-x86_64-cpu", "unavailable-features": [],
            "static": true, "migration-safe": true, "deprecated": false})
        );
        let find = |n: &str| {
            list.iter()
                .find(|e| e["name"] == n)
                .unwrap_or_else(|| panic!("{n} missing"))
                .clone()
        };
        let haswell = find("Haswell");
        assert_eq!(haswell["alias-of"], "Haswell-v1");
        assert_eq!(haswell["typename"], "Haswell-x86_64-cpu");
        // The test host lacks exactly these of Haswell-v1's features (see support::testing).
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

    #[test]
    fn expansion() {
        let host = testing::host();
        let props = Map::from_iter([
            ("aes".to_string(), json!(false)),
            ("sse4_1".to_string(), json!(true)),
        ]);
        let v =
            model_expansion(ExpansionType::Full, "Haswell", &props, &host, &identity()).unwrap();
        assert_eq!(v["model"]["name"], "Haswell");
        assert_eq!(v["model"]["props"]["aes"], false);
        assert_eq!(v["model"]["props"]["sse4.1"], true);
        assert_eq!(v["model"]["props"]["avx2"], true);
        assert_eq!(v["model"]["props"]["family"], 6);
        let s = model_expansion(
            ExpansionType::Static,
            "qemu64",
            &Map::new(),
            &host,
            &identity(),
        )
        .unwrap();
        assert_eq!(s["model"]["name"], "base");
        assert_eq!(
            model_expansion(ExpansionType::Full, "nope", &Map::new(), &host, &identity())
                .unwrap_err()
                .desc,
            "CPU model 'nope' not found"
        );
        let bogus = Map::from_iter([("bogus".to_string(), json!(true))]);
        assert_eq!(
            model_expansion(ExpansionType::Full, "qemu64", &bogus, &host, &identity())
                .unwrap_err()
                .desc,
            "Property 'qemu64-x86_64-cpu.bogus' not found"
        );
        let typed = Map::from_iter([("aes".to_string(), json!("on"))]);
        assert_eq!(
            model_expansion(ExpansionType::Full, "qemu64", &typed, &host, &identity())
                .unwrap_err()
                .desc,
            "Invalid parameter type for 'aes', expected: boolean"
        );
    }
}
