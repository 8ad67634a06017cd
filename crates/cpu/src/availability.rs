//! Which CPU models run on this host: every name of the `-cpu help` listing, expanded and
//! filtered exactly as `builder::plan` does for a VM, with the features the host's KVM
//! lacks (QEMU's `query-cpu-definitions` `unavailable-features`), and a model's full
//! unfiltered expansion for `rvmm cpu-models --expand`.
//!
//! The listing itself is `models::list`; expansion `models::expand`; filtering
//! `filter`. This module only runs them per model; nothing here touches /dev/kvm.

use super::builder::DEFAULT_VERSION;
use super::features::{name_of, FeatureSet};
use super::filter::{filter_cpu, HostCpuSupport};
use super::models::expand::{expand, Accel, ExpandError, ExpandedCpu, HostIdentity};
use super::models::list::{entries, EntryKind, ModelListEntry};
use super::models::{lookup, resolve_version, ModelRef};
use crate::spec::CpuSpec;

/// One model of the listing and whether it runs on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAvailability {
    pub entry: ModelListEntry,
    /// The name the entry expands as (`Haswell-v1` for `Haswell`, `Haswell-v2` for
    /// `Haswell-noTSX`); `host`, `max` and `base` stand for themselves.
    pub resolves_to: String,
    /// The named features the host's KVM cannot give, in QEMU's word and bit order, each
    /// once: QEMU's `unavailable-features`, which leaves out unnamed bits (XSAVE
    /// components, unnamed MSR bits) although it drops them too.
    pub unavailable: Vec<String>,
}

impl ModelAvailability {
    /// True when every feature of the model survives filtering.
    pub fn usable(&self) -> bool {
        self.unavailable.is_empty()
    }
}

/// The versioned name an unversioned name or alias resolves to under rvmm's default version.
pub fn resolved_name(name: &str) -> Option<String> {
    match lookup(name)? {
        ModelRef::Builtin { def, version } => {
            Some(def.versioned_name(resolve_version(def, version, DEFAULT_VERSION)))
        }
        ModelRef::Host => Some("host".to_string()),
        ModelRef::Max => Some("max".to_string()),
        ModelRef::Base => Some("base".to_string()),
    }
}

/// Expands a `--cpu` configuration under KVM for this host, before filtering (what rvmm
/// asks KVM for).
pub fn expand_for_host(
    cpu: &CpuSpec,
    host: &HostCpuSupport,
    identity: &HostIdentity,
) -> Result<ExpandedCpu, ExpandError> {
    expand(
        &cpu.request(DEFAULT_VERSION, 1),
        Accel::Kvm { host, identity },
    )
}

/// The names of the named bits of `dropped`, each once, in word and bit order.
pub fn unavailable_names(dropped: &FeatureSet) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (word, bit) in dropped.bits() {
        if let Some(name) = name_of(word, bit) {
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// Every model of the listing (in `-cpu help` order) with what the host lacks for it.
pub fn model_availability(
    host: &HostCpuSupport,
    identity: &HostIdentity,
) -> Vec<ModelAvailability> {
    entries()
        .into_iter()
        .map(|entry| {
            let resolves_to = match entry.kind {
                EntryKind::Special => entry.name.clone(),
                _ => resolved_name(&entry.name).unwrap_or_else(|| entry.name.clone()),
            };
            let cpu = CpuSpec {
                model: entry.name.clone(),
                ..CpuSpec::default()
            };
            let unavailable = match expand_for_host(&cpu, host, identity) {
                Ok(expanded) => unavailable_names(&filter_cpu(&expanded, host).dropped),
                Err(e) => vec![e.to_string()],
            };
            ModelAvailability {
                entry,
                resolves_to,
                unavailable,
            }
        })
        .collect()
}

/// The most capable named model the host runs without losing a feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosestModel {
    /// `NAME-vN`.
    pub name: String,
    /// Its named features after expansion.
    pub features: usize,
}

/// The most capable built-in model (every version of every model) whose features all
/// survive filtering (unnamed bits too): the most named features, then the later model in QEMU's definition
/// order (newer generation), then the higher version. Models of another vendor than the
/// host are skipped unless they are QEMU's generic models (`qemu64`, `kvm64`, `qemu32`,
/// `kvm32`), which run on any vendor.
pub fn closest_model(host: &HostCpuSupport, identity: &HostIdentity) -> Option<ClosestModel> {
    const GENERIC: [&str; 4] = ["qemu64", "kvm64", "qemu32", "kvm32"];
    let mut best: Option<((usize, usize, u32), String)> = None;
    for (order, def) in super::models::MODELS.iter().enumerate() {
        if def.vendor != identity.vendor && !GENERIC.contains(&def.name) {
            continue;
        }
        for v in def.versions() {
            let name = def.versioned_name(v.version);
            let cpu = CpuSpec {
                model: name.clone(),
                ..CpuSpec::default()
            };
            let Ok(expanded) = expand_for_host(&cpu, host, identity) else {
                continue;
            };
            if !filter_cpu(&expanded, host).dropped.is_empty() {
                continue;
            }
            let key = (expanded.features.names().len(), order, v.version);
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, name));
            }
        }
    }
    best.map(|((features, _, _), name)| ClosestModel { name, features })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::testing;

    use testing::identity;

    fn find<'a>(list: &'a [ModelAvailability], name: &str) -> &'a ModelAvailability {
        list.iter().find(|m| m.entry.name == name).unwrap()
    }

    #[test]
    fn haswell_lacks_what_the_test_host_lacks() {
        let list = model_availability(&testing::host(), &identity());
        assert_eq!(list.len(), 132);
        let haswell = find(&list, "Haswell");
        assert_eq!(haswell.resolves_to, "Haswell-v1");
        // The synthetic host is a Haswell without FMA, PCID, MOVBE, F16C, RDRAND, HLE,
        // RTM and INVPCID; it has no KVM paravirtual leaf features beyond 0x010007fb.
        assert_eq!(
            haswell.unavailable,
            ["fma", "pcid", "movbe", "f16c", "rdrand", "hle", "invpcid", "rtm"]
        );
        // Haswell-noTSX (v2) no longer asks for HLE and RTM.
        let notsx = find(&list, "Haswell-noTSX");
        assert_eq!(notsx.resolves_to, "Haswell-v2");
        assert_eq!(
            notsx.unavailable,
            ["fma", "pcid", "movbe", "f16c", "rdrand", "invpcid"]
        );
        assert!(find(&list, "base").usable());
        assert!(find(&list, "host").usable());
        assert!(find(&list, "qemu64").usable());
    }

    #[test]
    fn closest_model_on_the_test_host() {
        // Without F16C and RDRAND no IvyBridge, and without IA32_SPEC_CTRL (spec-ctrl) no
        // SandyBridge-v2 (IBRS); SandyBridge-v1 needs nothing the host lacks.
        let closest = closest_model(&testing::host(), &identity()).unwrap();
        assert_eq!(closest.name, "SandyBridge-v1");
    }

    #[test]
    fn resolved_names() {
        assert_eq!(resolved_name("Haswell").as_deref(), Some("Haswell-v1"));
        assert_eq!(
            resolved_name("Skylake-Client-IBRS").as_deref(),
            Some("Skylake-Client-v2")
        );
        assert_eq!(resolved_name("max").as_deref(), Some("max"));
        assert_eq!(resolved_name("Nope"), None);
    }
}
