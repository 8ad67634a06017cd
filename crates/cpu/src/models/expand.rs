//! CPU model expansion: a model reference plus the user's feature changes become the
//! final identity, feature set and CPUID levels, following QEMU 7.2's steps in order:
//! `x86_cpu_load_model`, the accelerator's instance defaults (`kvm_default_props`,
//! `tcg_default_props`, the host vendor under KVM), the user's `feat=on|off` properties,
//! then `x86_cpu_expand_features` (legacy `+feat`, `-feat`, `host`/`max` features, feature
//! dependencies, the KVM leaf, XSAVE components, automatic CPUID levels).
//!
//! Filtering against the host is `filter`'s job and comes after this.

use thiserror::Error;

use super::{lookup, resolve, resolve_version, DefaultVersion, ModelRef, VendorId};
use crate::cache::ModelCaches;
use crate::cpuid::CpuidReg;
use crate::features::warning_line;
use crate::features::{
    all_features, feature_mask, ids as f, FeatureId, FeatureSet, FeatureWord, WordLocation,
};
pub use crate::identity::HostIdentity;
use crate::support::HostCpuSupport;

use FeatureWord as W;

/// QEMU's `kvm_default_props`: applied to every built-in model under KVM, before the
/// user's properties (`x2apic` becomes off without an in-kernel irqchip and
/// `kvm-msi-ext-dest-id` on with a split one).
const KVM_DEFAULTS: &[(FeatureId, bool)] = &[
    (f::KVMCLOCK, true),
    (f::KVM_NOPIODELAY, true),
    (f::KVM_ASYNCPF, true),
    (f::KVM_STEAL_TIME, true),
    (f::KVM_PV_EOI, true),
    (f::KVMCLOCK_STABLE_BIT, true),
    (f::X2APIC, true),
    (f::KVM_MSI_EXT_DEST_ID, false),
    (f::ACPI, false),
    (f::MONITOR, false),
    (f::SVM, false),
];

/// QEMU's `tcg_default_props`.
const TCG_DEFAULTS: &[(FeatureId, bool)] = &[(f::VME, false)];

/// One entry of QEMU's `feature_dependencies[]`: when no bit of `from` is set, the `to`
/// bits are cleared.
struct FeatureDep {
    from: (FeatureWord, u64),
    to: (FeatureWord, u64),
}

const ALL: u64 = u64::MAX;

/// QEMU 7.2's `feature_dependencies[]`, in order.
const DEPENDENCIES: &[FeatureDep] = &[
    dep(W::Cpuid7_0Edx, 1 << 29, W::ArchCapabilities, ALL), // arch-capabilities
    dep(W::Cpuid7_0Edx, 1 << 30, W::CoreCapability, ALL),   // core-capability
    dep(W::Cpuid1Ecx, 1 << 15, W::PerfCapabilities, ALL),   // pdcm
    dep(W::Cpuid1Ecx, 1 << 5, W::VmxProcbasedCtls, ALL),    // vmx
    dep(W::Cpuid1Ecx, 1 << 5, W::VmxPinbasedCtls, ALL),
    dep(W::Cpuid1Ecx, 1 << 5, W::VmxExitCtls, ALL),
    dep(W::Cpuid1Ecx, 1 << 5, W::VmxEntryCtls, ALL),
    dep(W::Cpuid1Ecx, 1 << 5, W::VmxMisc, ALL),
    dep(W::Cpuid1Ecx, 1 << 5, W::VmxBasic, ALL),
    dep(W::Cpuid8000_0001Edx, 1 << 29, W::VmxEntryCtls, 1 << 9), // lm -> ia32e-mode entry
    dep(W::VmxProcbasedCtls, 1 << 31, W::VmxSecondaryCtls, ALL), // secondary controls
    dep(W::Xsave, 1 << 3, W::VmxSecondaryCtls, 1 << 20),         // xsaves
    dep(W::Cpuid1Ecx, 1 << 30, W::VmxSecondaryCtls, 1 << 11),    // rdrand
    dep(W::Cpuid7_0Ebx, 1 << 10, W::VmxSecondaryCtls, 1 << 12),  // invpcid
    dep(W::Cpuid7_0Ebx, 1 << 14, W::VmxExitCtls, 1 << 23),       // mpx
    dep(W::Cpuid7_0Ebx, 1 << 14, W::VmxEntryCtls, 1 << 16),
    dep(W::Cpuid7_0Ebx, 1 << 18, W::VmxSecondaryCtls, 1 << 16), // rdseed
    dep(W::Cpuid7_0Ebx, 1 << 25, W::Cpuid14_0Ecx, ALL),         // intel-pt
    dep(W::Cpuid8000_0001Edx, 1 << 27, W::VmxSecondaryCtls, 1 << 3), // rdtscp
    dep(W::VmxSecondaryCtls, 1 << 1, W::VmxEptVpidCaps, 0xffff_ffff), // ept
    dep(W::VmxSecondaryCtls, 1 << 1, W::VmxSecondaryCtls, 1 << 7),
    dep(
        W::VmxSecondaryCtls,
        1 << 5,
        W::VmxEptVpidCaps,
        0xffff_ffff << 32,
    ), // vpid
    dep(W::VmxSecondaryCtls, 1 << 13, W::VmxVmfunc, ALL), // vmfunc
    dep(W::Cpuid8000_0001Ecx, 1 << 2, W::Svm, ALL),       // svm
];

const fn dep(from: FeatureWord, from_mask: u64, to: FeatureWord, to_mask: u64) -> FeatureDep {
    FeatureDep {
        from: (from, from_mask),
        to: (to, to_mask),
    }
}

/// QEMU's `x86_ext_save_areas[]`: XSAVE component → the feature that enables it.
pub const XSAVE_COMPONENTS: &[(u32, FeatureWord, u64)] = &[
    (0, W::Cpuid1Ecx, 1 << 26),    // x87: xsave
    (1, W::Cpuid1Ecx, 1 << 26),    // SSE: xsave
    (2, W::Cpuid1Ecx, 1 << 28),    // YMM: avx
    (3, W::Cpuid7_0Ebx, 1 << 14),  // BNDREGS: mpx
    (4, W::Cpuid7_0Ebx, 1 << 14),  // BNDCSR: mpx
    (5, W::Cpuid7_0Ebx, 1 << 16),  // opmask: avx512f
    (6, W::Cpuid7_0Ebx, 1 << 16),  // ZMM_Hi256: avx512f
    (7, W::Cpuid7_0Ebx, 1 << 16),  // Hi16_ZMM: avx512f
    (9, W::Cpuid7_0Ecx, 1 << 3),   // PKRU: pku
    (15, W::Cpuid7_0Edx, 1 << 19), // arch LBR: arch-lbr
    (17, W::Cpuid7_0Edx, 1 << 24), // XTILECFG: amx-tile
    (18, W::Cpuid7_0Edx, 1 << 24), // XTILEDATA: amx-tile
];
/// XCR0-managed components (QEMU's CPUID_XSTATE_XCR0_MASK).
const XSTATE_XCR0_MASK: u64 =
    0b11 | (1 << 2) | (0b11 << 3) | (0b111 << 5) | (1 << 9) | (0b11 << 17);
/// IA32_XSS-managed components (QEMU's CPUID_XSTATE_XSS_MASK: arch LBR).
const XSTATE_XSS_MASK: u64 = 1 << 15;

/// Bits `-cpu host`/`max` never switch on by themselves (QEMU's `no_autoenable_flags`):
/// TOPOEXT, every KVM hint, IA32_VMX_BASIC[49] dual-monitor treatment.
fn no_autoenable(word: FeatureWord) -> u64 {
    match word {
        W::Cpuid8000_0001Ecx => 1 << 22,
        W::KvmHints => ALL,
        W::VmxBasic => 1 << 49,
        _ => 0,
    }
}

/// QEMU's `x86_cpu_get_migratable_flags`: named bits, minus `invtsc`, plus the XCR0
/// components QEMU can migrate.
fn migratable(word: FeatureWord) -> u64 {
    // One pass over the feature table: asking `name_of` for each of the 64 bits scanned the
    // whole table 64 times per word, most of rvmm's start-up instructions with `-cpu host`.
    let r = all_features()
        .filter(|f| f.word == word)
        .fold(0u64, |r, f| r | 1u64 << f.bit);
    match word {
        W::Cpuid8000_0007Edx => r & !(1 << 8),
        W::XsaveXcr0Lo => 0b11 | (1 << 2) | (0b11 << 3) | (0b111 << 5) | (1 << 9),
        _ => r,
    }
}

/// The accelerator whose defaults apply.
#[derive(Debug, Clone, Copy)]
pub enum Accel<'a> {
    /// QEMU's TCG defaults (used to compare with QEMU's unfiltered expansion).
    Tcg,
    /// KVM: built-in models take the host's vendor and `kvm_default_props`; `host` and
    /// `max` take everything `host` supports.
    Kvm {
        host: &'a HostCpuSupport,
        identity: &'a HostIdentity,
    },
}

/// What to expand.
#[derive(Debug, Clone, Copy)]
pub struct CpuRequest<'a> {
    /// The model name as the user gave it.
    pub model: &'a str,
    /// Feature changes in application order (`feat=on|off` first, then `+feat`, then
    /// `-feat`, as the VMM's `--cpu` parser orders them). Names: canonical names or QEMU aliases.
    pub changes: &'a [(String, bool)],
    /// `pmu=on|off`; `None` keeps the model's default (off, on for `host`/`max`).
    pub pmu: Option<bool>,
    /// How the unversioned name resolves.
    pub default_version: DefaultVersion,
    /// Dies per socket (more than one raises the basic level to 0x1F on Intel).
    pub dies: u32,
}

/// The expanded CPU: what QEMU's `query-cpu-model-expansion` reports, plus the bits needed
/// to build CPUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedCpu {
    /// The model name as given.
    pub name: String,
    /// `NAME-vN` for built-in models.
    pub versioned_name: Option<String>,
    pub vendor: VendorId,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub model_id: String,
    pub level: u32,
    pub xlevel: u32,
    pub xlevel2: u32,
    /// CPUID.(EAX=07H,ECX=0):EAX, the highest leaf-7 subleaf.
    pub level_func7: u32,
    /// Requested features, before filtering against the host.
    pub features: FeatureSet,
    /// Bits set or cleared by a property after the model was loaded (QEMU's
    /// `user_features`: accelerator defaults and the user's changes).
    pub user_features: FeatureSet,
    /// User-requested bits removed because what they depend on is off; QEMU warns about
    /// these ("This feature depends on other features that were not requested") and
    /// counts them as filtered for `enforce`.
    pub dependency_dropped: FeatureSet,
    /// QEMU's warning lines for `dependency_dropped`, in the order QEMU prints them
    /// (dependency table order, then bit order).
    pub dependency_warnings: Vec<String>,
    pub pmu: bool,
    /// QEMU's cache table, for models that have one.
    pub cache_info: Option<ModelCaches>,
}

/// Expansion failures.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExpandError {
    #[error("--cpu: unknown CPU model '{0}'")]
    UnknownModel(String),
    #[error("--cpu: CPU model '{0}' has no version {1}")]
    UnknownVersion(String, u32),
    #[error("--cpu: unknown CPU feature '{0}'")]
    UnknownFeature(String),
    #[error("--cpu: CPU model '{0}' requires KVM")]
    NeedsKvm(String),
}

/// The warning prefix QEMU uses for dependency drops.
pub const DEPENDENCY_WARNING_PREFIX: &str =
    "This feature depends on other features that were not requested";

struct State {
    features: FeatureSet,
    user: FeatureSet,
}

impl State {
    fn set_id(&mut self, id: FeatureId, on: bool) {
        self.features.set(id, on);
        self.user.insert(id.word, id.mask);
    }

    fn set(&mut self, name: &str, on: bool) -> Result<(), ExpandError> {
        let (word, mask) =
            feature_mask(name).ok_or_else(|| ExpandError::UnknownFeature(name.to_string()))?;
        if on {
            self.features.insert(word, mask);
        } else {
            self.features.remove(word, mask);
        }
        self.user.insert(word, mask);
        Ok(())
    }
}

/// Expands a request the way QEMU 7.2 does before filtering.
pub fn expand(req: &CpuRequest<'_>, accel: Accel<'_>) -> Result<ExpandedCpu, ExpandError> {
    let model_ref =
        lookup(req.model).ok_or_else(|| ExpandError::UnknownModel(req.model.to_string()))?;
    let mut out = ExpandedCpu {
        name: req.model.to_string(),
        versioned_name: None,
        vendor: VendorId([0; 12]),
        family: 0,
        model: 0,
        stepping: 0,
        model_id: String::new(),
        level: 0,
        xlevel: 0,
        xlevel2: 0,
        level_func7: 0,
        features: FeatureSet::new(),
        user_features: FeatureSet::new(),
        dependency_dropped: FeatureSet::new(),
        dependency_warnings: Vec::new(),
        pmu: false,
        cache_info: None,
    };
    let mut st = State {
        features: FeatureSet::new(),
        user: FeatureSet::new(),
    };
    let mut max_features = false;
    match model_ref {
        ModelRef::Builtin { def, version } => {
            let v = resolve_version(def, version, req.default_version);
            let m = resolve(def, v)
                .ok_or_else(|| ExpandError::UnknownVersion(def.name.to_string(), v))?;
            out.versioned_name = Some(def.versioned_name(v));
            out.vendor = m.vendor;
            out.family = m.family;
            out.model = m.model;
            out.stepping = m.stepping;
            out.model_id = m.model_id;
            out.level = m.min_level;
            out.xlevel = m.min_xlevel;
            out.cache_info = def.cache_info;
            st.features = m.features;
            let defaults = match accel {
                Accel::Tcg => TCG_DEFAULTS,
                Accel::Kvm { identity, .. } => {
                    out.vendor = identity.vendor;
                    KVM_DEFAULTS
                }
            };
            for &(id, on) in defaults {
                let on = match accel {
                    Accel::Kvm { host, .. } if id == f::X2APIC => on && host.irqchip_in_kernel,
                    Accel::Kvm { host, .. } if id == f::KVM_MSI_EXT_DEST_ID => {
                        host.irqchip_in_kernel && host.irqchip_split
                    }
                    _ => on,
                };
                st.set_id(id, on);
            }
        }
        ModelRef::Host | ModelRef::Max => {
            let Accel::Kvm { host, identity } = accel else {
                return Err(ExpandError::NeedsKvm(req.model.to_string()));
            };
            max_features = true;
            out.pmu = true;
            out.vendor = identity.vendor;
            out.family = identity.family;
            out.model = identity.model;
            out.stepping = identity.stepping;
            out.model_id = identity.model_id.clone();
            out.level = host.raw_cpuid(0, 0, CpuidReg::Eax);
            out.xlevel = host.raw_cpuid(0x8000_0000, 0, CpuidReg::Eax);
            out.xlevel2 = host.raw_cpuid(0xC000_0000, 0, CpuidReg::Eax);
        }
        ModelRef::Base => {}
    }
    if let Some(pmu) = req.pmu {
        out.pmu = pmu;
    }
    // The user's changes: properties, then legacy +feat, then -feat (as the `--cpu` parser
    // orders them).
    for (name, on) in req.changes {
        st.set(name, *on)?;
    }
    if max_features {
        if let Accel::Kvm { host, .. } = accel {
            for word in FeatureWord::all() {
                let add = host.supported_word(word)
                    & migratable(word)
                    & !st.user.word(word)
                    & !no_autoenable(word);
                st.features.insert(word, add);
            }
        }
    }
    for d in DEPENDENCIES {
        if st.features.word(d.from.0) & d.from.1 == 0 {
            let unavailable = st.features.word(d.to.0) & d.to.1;
            let user_requested = unavailable & st.user.word(d.to.0);
            out.dependency_dropped.insert(d.to.0, user_requested);
            for bit in (0u8..64).filter(|b| user_requested & (1u64 << b) != 0) {
                out.dependency_warnings
                    .push(warning_line(DEPENDENCY_WARNING_PREFIX, d.to.0, bit));
            }
            st.features.remove(d.to.0, unavailable);
        }
    }
    if !matches!(accel, Accel::Kvm { .. }) {
        st.features.set_word(W::Kvm, 0);
    }
    enable_xsave_components(&mut st.features);
    adjust_levels(&mut out, &st.features, req.dies);
    out.features = st.features;
    out.user_features = st.user;
    Ok(out)
}

/// QEMU's `x86_cpu_enable_xsave_components`: XCR0/XSS words from the enabled features.
fn enable_xsave_components(f: &mut FeatureSet) {
    if !f.contains(W::Cpuid1Ecx, 1 << 26) {
        for w in [W::XsaveXcr0Lo, W::XsaveXcr0Hi, W::XsaveXssLo, W::XsaveXssHi] {
            f.set_word(w, 0);
        }
        return;
    }
    let mut mask = 0u64;
    for &(component, word, bits) in XSAVE_COMPONENTS {
        if f.word(word) & bits != 0 {
            mask |= 1 << component;
        }
    }
    f.set_word(W::XsaveXcr0Lo, mask & XSTATE_XCR0_MASK & 0xffff_ffff);
    f.set_word(W::XsaveXcr0Hi, (mask & XSTATE_XCR0_MASK) >> 32);
    f.set_word(W::XsaveXssLo, mask & XSTATE_XSS_MASK & 0xffff_ffff);
    f.set_word(W::XsaveXssHi, (mask & XSTATE_XSS_MASK) >> 32);
}

/// QEMU's automatic level increase (`full-cpuid-auto-level`, on for 7.2 machine types).
fn adjust_levels(out: &mut ExpandedCpu, f: &FeatureSet, dies: u32) {
    let raise = |v: &mut u32, to: u32| *v = (*v).max(to);
    let words = [
        W::Cpuid7_0Ebx,
        W::Cpuid1Edx,
        W::Cpuid1Ecx,
        W::Cpuid6Eax,
        W::Cpuid7_0Ecx,
        W::Cpuid7_1Eax,
        W::Cpuid8000_0001Edx,
        W::Cpuid8000_0001Ecx,
        W::Cpuid8000_0007Edx,
        W::Cpuid8000_0008Ebx,
        W::CpuidC000_0001Edx,
        W::Svm,
        W::Xsave,
    ];
    for word in words {
        if f.word(word) == 0 {
            continue;
        }
        let WordLocation::Cpuid { leaf, subleaf, .. } = word.info().location else {
            continue;
        };
        match leaf & 0xF000_0000 {
            0 => raise(&mut out.level, leaf),
            0x8000_0000 => raise(&mut out.xlevel, leaf),
            0xC000_0000 => raise(&mut out.xlevel2, leaf),
            _ => {}
        }
        if leaf == 7 {
            raise(&mut out.level_func7, subleaf.unwrap_or(0));
        }
    }
    if f.contains(W::Cpuid7_0Ebx, 1 << 25) {
        raise(&mut out.level, 0x14); // Intel PT needs leaf 0x14
    }
    if dies > 1 && out.vendor.is_intel() {
        raise(&mut out.level, 0x1F); // multi-die topology needs leaf 0x1F
    }
    if f.contains(W::Cpuid8000_0001Ecx, 1 << 2) {
        raise(&mut out.xlevel, 0x8000_000A); // SVM needs leaf 0x8000000A
    }
    if f.contains(W::Cpuid7_0Ebx, 1 << 2) {
        raise(&mut out.level, 0x12); // SGX needs leaf 0x12
    }
}

#[cfg(test)]
mod tests;
