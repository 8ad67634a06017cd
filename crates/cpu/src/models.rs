//! Named CPU models: QEMU 7.2's `builtin_x86_defs[]` as data (vendor, family/model/stepping,
//! brand string, minimum CPUID levels, features by name, versions and their aliases), name
//! lookup the way QEMU's CPU class lookup works, version resolution, and the `-cpu help`
//! listing.
//!
//! The data lives in the submodules by family; `expand` turns a resolved model plus the
//! user's `--cpu` changes into the final feature set (QEMU's `x86_cpu_expand_features`),
//! `leaves` turns that into CPUID entries. What the host can run is `filter`'s job.

mod amd;
pub mod expand;
mod intel_core;
mod intel_other;
mod intel_xeon;
pub mod leaves;
mod legacy;
pub mod list;
mod vmx;

use super::features::{ids, FeatureId, FeatureSet, FeatureWord};
use crate::cache::ModelCaches;
pub use crate::identity::VendorId;

/// A property a model version sets on top of the previous versions (QEMU's `PropValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prop {
    /// `feature=on`.
    On(FeatureId),
    /// `feature=off`.
    Off(FeatureId),
    /// `stepping=N`.
    Stepping(u32),
    /// `model=N`.
    Model(u32),
    /// `model-id=...`.
    ModelId(&'static str),
}

/// One version of a model (QEMU's `X86CPUVersionDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionDef {
    pub version: u32,
    /// Another name for exactly this version (e.g. `Haswell-noTSX` for `Haswell-v2`).
    pub alias: Option<&'static str>,
    /// Shown in `-cpu help` after the brand string, in brackets.
    pub note: Option<&'static str>,
    /// Applied cumulatively: version N applies the props of versions 1..=N in order.
    pub props: &'static [Prop],
}

impl VersionDef {
    pub const fn new(
        version: u32,
        alias: Option<&'static str>,
        note: Option<&'static str>,
        props: &'static [Prop],
    ) -> VersionDef {
        VersionDef {
            version,
            alias,
            note,
            props,
        }
    }
}

/// The version list QEMU registers for a model without explicit versions.
const DEFAULT_VERSIONS: &[VersionDef] = &[VersionDef::new(1, None, None, &[])];

/// A model definition (QEMU's `X86CPUDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelDef {
    pub name: &'static str,
    pub vendor: VendorId,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    /// Minimum basic CPUID level (QEMU's `min-level`).
    pub level: u32,
    /// Minimum extended CPUID level (QEMU's `min-xlevel`).
    pub xlevel: u32,
    /// Minimum Centaur CPUID level. QEMU 7.2's `x86_cpu_load_model` ignores this field
    /// (no 7.2 model sets it); kept for completeness.
    pub xlevel2: u32,
    /// The brand string (CPUID.80000002H-80000004H), at most 48 bytes.
    pub model_id: &'static str,
    /// The CPUID features the definition sets.
    pub features: FeatureSet,
    /// The feature-MSR features (IA32_ARCH_CAPABILITIES, VMX capabilities, ...) it sets.
    pub msr_features: FeatureSet,
    /// Bits the definition sets that QEMU 7.2 gives no name (IA32_VMX_EPT_VPID_CAP bit 14,
    /// "WB memory type for EPT").
    pub unnamed_bits: &'static [(FeatureWord, u8)],
    /// QEMU's `CPUCaches` table the model uses (e.g. `epyc_cache_info`); `None` means
    /// QEMU's legacy cache info.
    pub cache_info: Option<ModelCaches>,
    /// Versions; empty means QEMU's default (only v1, no props).
    pub versions: &'static [VersionDef],
}

impl ModelDef {
    /// The versions QEMU registers for this model.
    pub fn versions(&self) -> &'static [VersionDef] {
        if self.versions.is_empty() {
            DEFAULT_VERSIONS
        } else {
            self.versions
        }
    }

    /// The highest version (QEMU's `x86_cpu_model_last_version`).
    pub fn last_version(&self) -> u32 {
        self.versions().iter().map(|v| v.version).max().unwrap_or(1)
    }

    /// `NAME-vN`.
    pub fn versioned_name(&self, version: u32) -> String {
        format!("{}-v{}", self.name, version)
    }

    /// The definition's own feature bits, before any version props.
    pub fn base_features(&self) -> FeatureSet {
        let mut set = self.features.union(self.msr_features);
        for (word, bit) in self.unnamed_bits {
            set.insert(*word, 1u64 << bit);
        }
        set
    }
}

/// Every built-in model, in QEMU 7.2's `builtin_x86_defs[]` order.
pub const MODELS: &[&ModelDef] = &[
    &legacy::QEMU64,
    &legacy::PHENOM,
    &legacy::CORE2DUO,
    &legacy::KVM64,
    &legacy::QEMU32,
    &legacy::KVM32,
    &legacy::COREDUO,
    &legacy::I486,
    &legacy::PENTIUM,
    &legacy::PENTIUM2,
    &legacy::PENTIUM3,
    &legacy::ATHLON,
    &legacy::N270,
    &legacy::CONROE,
    &legacy::PENRYN,
    &intel_core::NEHALEM,
    &intel_core::WESTMERE,
    &intel_core::SANDYBRIDGE,
    &intel_core::IVYBRIDGE,
    &intel_core::HASWELL,
    &intel_core::BROADWELL,
    &intel_core::SKYLAKE_CLIENT,
    &intel_xeon::SKYLAKE_SERVER,
    &intel_xeon::CASCADELAKE_SERVER,
    &intel_xeon::COOPERLAKE,
    &intel_other::ICELAKE_SERVER,
    &intel_other::DENVERTON,
    &intel_other::SNOWRIDGE,
    &intel_other::KNIGHTSMILL,
    &amd::OPTERON_G1,
    &amd::OPTERON_G2,
    &amd::OPTERON_G3,
    &amd::OPTERON_G4,
    &amd::OPTERON_G5,
    &amd::EPYC,
    &amd::DHYANA,
    &amd::EPYC_ROME,
    &amd::EPYC_MILAN,
];

/// Which version an unversioned name (`Haswell`) means (QEMU's `default_cpu_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultVersion {
    /// A fixed version: QEMU 7.2's `pc-*-7.2` machine types use 1.
    #[default]
    V1,
    /// The newest version of each model (QEMU's `microvm` machine).
    Latest,
}

/// What a `--cpu` model name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelRef {
    /// A built-in model. `version` is `None` for the unversioned name, whose version the
    /// machine type's `DefaultVersion` decides.
    Builtin {
        def: &'static ModelDef,
        version: Option<u32>,
    },
    /// `host`: the host CPU with everything KVM supports.
    Host,
    /// `max`: under KVM, the same as `host`.
    Max,
    /// `base`: no features at all (QEMU's static base model).
    Base,
}

/// Looks a model name up exactly as QEMU 7.2's class lookup does (case-sensitive):
/// `NAME`, `NAME-vN` and each version's alias, plus `host`, `max` and `base`.
pub fn lookup(name: &str) -> Option<ModelRef> {
    match name {
        "host" => return Some(ModelRef::Host),
        "max" => return Some(ModelRef::Max),
        "base" => return Some(ModelRef::Base),
        _ => {}
    }
    for def in MODELS {
        if def.name == name {
            return Some(ModelRef::Builtin { def, version: None });
        }
        let version = versioned_number(name, def.name);
        for v in def.versions() {
            if v.alias == Some(name) || version == Some(v.version) {
                return Some(ModelRef::Builtin {
                    def,
                    version: Some(v.version),
                });
            }
        }
    }
    None
}

/// N when `name` is exactly `BASE-vN` as `versioned_name` writes it (decimal, no sign, no
/// leading zero), without building every model's versioned names (a lookup runs on every
/// `--cpu` parse and expansion).
fn versioned_number(name: &str, base: &str) -> Option<u32> {
    let digits = name.strip_prefix(base)?.strip_prefix("-v")?;
    let canonical = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| digits.parse().ok()).flatten()
}

/// The cache table of the model `name` refers to (any version or alias shares its
/// model's); `None` for names without one and for unknown names.
pub fn model_caches(name: &str) -> Option<ModelCaches> {
    match lookup(name)? {
        ModelRef::Builtin { def, .. } => def.cache_info,
        ModelRef::Host | ModelRef::Max | ModelRef::Base => None,
    }
}

/// Every model name QEMU 7.2 registers (for suggestions), in definition order.
pub fn all_names() -> Vec<String> {
    let mut names = Vec::new();
    for def in MODELS {
        names.push(def.name.to_string());
        for v in def.versions() {
            names.push(def.versioned_name(v.version));
            if let Some(alias) = v.alias {
                names.push(alias.to_string());
            }
        }
    }
    names.extend(["base", "host", "max"].map(String::from));
    names
}

/// A built-in model with its version props applied: QEMU's `x86_cpu_load_model` result
/// before any accelerator default, user change or expansion step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    pub def: &'static ModelDef,
    pub version: u32,
    pub vendor: VendorId,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub model_id: String,
    pub min_level: u32,
    pub min_xlevel: u32,
    pub features: FeatureSet,
}

/// The version number a reference resolves to (QEMU's `x86_cpu_model_resolve_version`).
pub fn resolve_version(def: &ModelDef, version: Option<u32>, default: DefaultVersion) -> u32 {
    match (version, default) {
        (Some(v), _) => v,
        (None, DefaultVersion::V1) => 1,
        (None, DefaultVersion::Latest) => def.last_version(),
    }
}

/// Loads `def` at `version` (QEMU's `x86_cpu_load_model` + `x86_cpu_apply_version_props`):
/// the definition's fields and features, then the props of versions 1..=`version` in order.
/// Returns `None` if the model has no such version.
pub fn resolve(def: &'static ModelDef, version: u32) -> Option<ResolvedModel> {
    if !def.versions().iter().any(|v| v.version == version) {
        return None;
    }
    let mut m = ResolvedModel {
        def,
        version,
        vendor: def.vendor,
        family: def.family,
        model: def.model,
        stepping: def.stepping,
        model_id: def.model_id.to_string(),
        min_level: def.level,
        min_xlevel: def.xlevel,
        features: def.base_features(),
    };
    // x86_cpu_load_model always sets CPUID.01H:ECX[31] (hypervisor present).
    m.features.set(ids::HYPERVISOR, true);
    for v in def.versions() {
        for prop in v.props {
            match *prop {
                Prop::On(id) => m.features.set(id, true),
                Prop::Off(id) => m.features.set(id, false),
                Prop::Stepping(s) => m.stepping = s,
                Prop::Model(n) => m.model = n,
                Prop::ModelId(id) => m.model_id = id.to_string(),
            }
        }
        if v.version == version {
            break;
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests;
