//! Named CPU features: QEMU 7.2's feature words (CPUID registers and feature MSRs), the
//! name of every bit QEMU names, the aliases QEMU accepts, and `FeatureSet`, a bitmap over
//! all words.
//!
//! This module owns names and locations only. Which features a CPU model has lives in
//! `models`; what the host's KVM can give lives in `support`, filtering in `filter`; the
//! CPUID table a vCPU sees is assembled by `builder`. The one line QEMU prints for a
//! feature bit (`warning_line`) is here because both filtering and expansion print it.

pub mod ids;
mod table;

use super::cpuid::CpuidReg;
pub use table::{CPUID_FEATURES, MSR_FEATURES};

#[cfg(test)]
mod tests;

/// One of QEMU 7.2's feature words (`enum FeatureWord` in target/i386/cpu.h), in QEMU's
/// order. The order matters: QEMU walks the words in this order when it prints the
/// "host doesn't support requested feature" warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeatureWord {
    /// CPUID.01H:EDX.
    Cpuid1Edx,
    /// CPUID.01H:ECX.
    Cpuid1Ecx,
    /// CPUID.(EAX=07H,ECX=0):EBX.
    Cpuid7_0Ebx,
    /// CPUID.(EAX=07H,ECX=0):ECX.
    Cpuid7_0Ecx,
    /// CPUID.(EAX=07H,ECX=0):EDX.
    Cpuid7_0Edx,
    /// CPUID.(EAX=07H,ECX=1):EAX.
    Cpuid7_1Eax,
    /// CPUID.80000001H:EDX.
    Cpuid8000_0001Edx,
    /// CPUID.80000001H:ECX.
    Cpuid8000_0001Ecx,
    /// CPUID.80000007H:EDX.
    Cpuid8000_0007Edx,
    /// CPUID.80000008H:EBX.
    Cpuid8000_0008Ebx,
    /// CPUID.C0000001H:EDX (Centaur/Zhaoxin).
    CpuidC000_0001Edx,
    /// CPUID.40000001H:EAX, KVM paravirtual features (KVM_CPUID_FEATURES).
    Kvm,
    /// CPUID.40000001H:EDX, KVM hints.
    KvmHints,
    /// CPUID.8000000AH:EDX, SVM features.
    Svm,
    /// CPUID.(EAX=0DH,ECX=1):EAX, XSAVE extensions.
    Xsave,
    /// CPUID.06H:EAX, thermal and power management.
    Cpuid6Eax,
    /// CPUID.(EAX=0DH,ECX=0):EAX, XCR0 components 31..0 (no names: derived from features).
    XsaveXcr0Lo,
    /// CPUID.(EAX=0DH,ECX=0):EDX, XCR0 components 63..32 (no names).
    XsaveXcr0Hi,
    /// IA32_ARCH_CAPABILITIES (MSR 10AH).
    ArchCapabilities,
    /// IA32_CORE_CAPABILITIES (MSR CFH).
    CoreCapability,
    /// IA32_PERF_CAPABILITIES (MSR 345H).
    PerfCapabilities,
    /// IA32_VMX_TRUE_PROCBASED_CTLS (MSR 48EH), allowed-1 settings.
    VmxProcbasedCtls,
    /// IA32_VMX_PROCBASED_CTLS2 (MSR 48BH), allowed-1 settings.
    VmxSecondaryCtls,
    /// IA32_VMX_TRUE_PINBASED_CTLS (MSR 48DH), allowed-1 settings.
    VmxPinbasedCtls,
    /// IA32_VMX_TRUE_EXIT_CTLS (MSR 48FH), allowed-1 settings.
    VmxExitCtls,
    /// IA32_VMX_TRUE_ENTRY_CTLS (MSR 490H), allowed-1 settings.
    VmxEntryCtls,
    /// IA32_VMX_MISC (MSR 485H).
    VmxMisc,
    /// IA32_VMX_EPT_VPID_CAP (MSR 48CH), 64 bits.
    VmxEptVpidCaps,
    /// IA32_VMX_BASIC (MSR 480H), 64 bits.
    VmxBasic,
    /// IA32_VMX_VMFUNC (MSR 491H).
    VmxVmfunc,
    /// CPUID.(EAX=14H,ECX=0):ECX, Intel PT capabilities.
    Cpuid14_0Ecx,
    /// CPUID.(EAX=12H,ECX=0):EAX, SGX leaf functions.
    Sgx12_0Eax,
    /// CPUID.(EAX=12H,ECX=0):EBX, SGX MISCSELECT.
    Sgx12_0Ebx,
    /// CPUID.(EAX=12H,ECX=1):EAX, SGX ATTRIBUTES[31:0].
    Sgx12_1Eax,
    /// CPUID.(EAX=0DH,ECX=1):ECX, IA32_XSS components 31..0 (no names).
    XsaveXssLo,
    /// CPUID.(EAX=0DH,ECX=1):EDX, IA32_XSS components 63..32 (no names).
    XsaveXssHi,
}

/// Number of feature words.
pub const FEATURE_WORD_COUNT: usize = 36;

/// Where a feature word's bits live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordLocation {
    /// A CPUID output register. `subleaf` is `Some` for leaves indexed by ECX.
    Cpuid {
        leaf: u32,
        subleaf: Option<u32>,
        reg: CpuidReg,
    },
    /// A feature MSR read through KVM_GET_MSRS on the system fd.
    Msr { index: u32 },
}

/// Static facts about one feature word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordInfo {
    pub word: FeatureWord,
    /// QEMU's enum name, e.g. `FEAT_7_0_EBX`.
    pub qemu_name: &'static str,
    pub location: WordLocation,
}

const fn cpuid(leaf: u32, subleaf: Option<u32>, reg: CpuidReg) -> WordLocation {
    WordLocation::Cpuid { leaf, subleaf, reg }
}

const fn msr(index: u32) -> WordLocation {
    WordLocation::Msr { index }
}

const fn w(word: W, qemu_name: &'static str, location: WordLocation) -> WordInfo {
    WordInfo {
        word,
        qemu_name,
        location,
    }
}

use FeatureWord as W;

/// Every feature word, indexed by `FeatureWord as usize`.
pub const WORDS: [WordInfo; FEATURE_WORD_COUNT] = [
    w(W::Cpuid1Edx, "FEAT_1_EDX", cpuid(0x1, None, CpuidReg::Edx)),
    w(W::Cpuid1Ecx, "FEAT_1_ECX", cpuid(0x1, None, CpuidReg::Ecx)),
    w(
        W::Cpuid7_0Ebx,
        "FEAT_7_0_EBX",
        cpuid(0x7, Some(0), CpuidReg::Ebx),
    ),
    w(
        W::Cpuid7_0Ecx,
        "FEAT_7_0_ECX",
        cpuid(0x7, Some(0), CpuidReg::Ecx),
    ),
    w(
        W::Cpuid7_0Edx,
        "FEAT_7_0_EDX",
        cpuid(0x7, Some(0), CpuidReg::Edx),
    ),
    w(
        W::Cpuid7_1Eax,
        "FEAT_7_1_EAX",
        cpuid(0x7, Some(1), CpuidReg::Eax),
    ),
    w(
        W::Cpuid8000_0001Edx,
        "FEAT_8000_0001_EDX",
        cpuid(0x8000_0001, None, CpuidReg::Edx),
    ),
    w(
        W::Cpuid8000_0001Ecx,
        "FEAT_8000_0001_ECX",
        cpuid(0x8000_0001, None, CpuidReg::Ecx),
    ),
    w(
        W::Cpuid8000_0007Edx,
        "FEAT_8000_0007_EDX",
        cpuid(0x8000_0007, None, CpuidReg::Edx),
    ),
    w(
        W::Cpuid8000_0008Ebx,
        "FEAT_8000_0008_EBX",
        cpuid(0x8000_0008, None, CpuidReg::Ebx),
    ),
    w(
        W::CpuidC000_0001Edx,
        "FEAT_C000_0001_EDX",
        cpuid(0xC000_0001, None, CpuidReg::Edx),
    ),
    w(W::Kvm, "FEAT_KVM", cpuid(0x4000_0001, None, CpuidReg::Eax)),
    w(
        W::KvmHints,
        "FEAT_KVM_HINTS",
        cpuid(0x4000_0001, None, CpuidReg::Edx),
    ),
    w(W::Svm, "FEAT_SVM", cpuid(0x8000_000A, None, CpuidReg::Edx)),
    w(W::Xsave, "FEAT_XSAVE", cpuid(0xD, Some(1), CpuidReg::Eax)),
    w(W::Cpuid6Eax, "FEAT_6_EAX", cpuid(0x6, None, CpuidReg::Eax)),
    w(
        W::XsaveXcr0Lo,
        "FEAT_XSAVE_XCR0_LO",
        cpuid(0xD, Some(0), CpuidReg::Eax),
    ),
    w(
        W::XsaveXcr0Hi,
        "FEAT_XSAVE_XCR0_HI",
        cpuid(0xD, Some(0), CpuidReg::Edx),
    ),
    w(W::ArchCapabilities, "FEAT_ARCH_CAPABILITIES", msr(0x10A)),
    w(W::CoreCapability, "FEAT_CORE_CAPABILITY", msr(0xCF)),
    w(W::PerfCapabilities, "FEAT_PERF_CAPABILITIES", msr(0x345)),
    w(W::VmxProcbasedCtls, "FEAT_VMX_PROCBASED_CTLS", msr(0x48E)),
    w(W::VmxSecondaryCtls, "FEAT_VMX_SECONDARY_CTLS", msr(0x48B)),
    w(W::VmxPinbasedCtls, "FEAT_VMX_PINBASED_CTLS", msr(0x48D)),
    w(W::VmxExitCtls, "FEAT_VMX_EXIT_CTLS", msr(0x48F)),
    w(W::VmxEntryCtls, "FEAT_VMX_ENTRY_CTLS", msr(0x490)),
    w(W::VmxMisc, "FEAT_VMX_MISC", msr(0x485)),
    w(W::VmxEptVpidCaps, "FEAT_VMX_EPT_VPID_CAPS", msr(0x48C)),
    w(W::VmxBasic, "FEAT_VMX_BASIC", msr(0x480)),
    w(W::VmxVmfunc, "FEAT_VMX_VMFUNC", msr(0x491)),
    w(
        W::Cpuid14_0Ecx,
        "FEAT_14_0_ECX",
        cpuid(0x14, Some(0), CpuidReg::Ecx),
    ),
    w(
        W::Sgx12_0Eax,
        "FEAT_SGX_12_0_EAX",
        cpuid(0x12, Some(0), CpuidReg::Eax),
    ),
    w(
        W::Sgx12_0Ebx,
        "FEAT_SGX_12_0_EBX",
        cpuid(0x12, Some(0), CpuidReg::Ebx),
    ),
    w(
        W::Sgx12_1Eax,
        "FEAT_SGX_12_1_EAX",
        cpuid(0x12, Some(1), CpuidReg::Eax),
    ),
    w(
        W::XsaveXssLo,
        "FEAT_XSAVE_XSS_LO",
        cpuid(0xD, Some(1), CpuidReg::Ecx),
    ),
    w(
        W::XsaveXssHi,
        "FEAT_XSAVE_XSS_HI",
        cpuid(0xD, Some(1), CpuidReg::Edx),
    ),
];

impl FeatureWord {
    /// All words in QEMU's order.
    pub fn all() -> impl Iterator<Item = FeatureWord> {
        WORDS.iter().map(|w| w.word)
    }

    /// Index into `WORDS` and `FeatureSet`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Static facts about this word.
    pub fn info(self) -> &'static WordInfo {
        &WORDS[self.index()]
    }

    /// True for words that live in a feature MSR.
    pub fn is_msr(self) -> bool {
        matches!(self.info().location, WordLocation::Msr { .. })
    }

    /// The word as QEMU prints it in feature warnings (`feature_word_description`):
    /// `CPUID.%02XH:%s` for CPUID words (the subleaf is not printed) and `MSR(%02XH)`
    /// for MSR words, e.g. `CPUID.07H:EBX`, `CPUID.80000001H:ECX`, `MSR(10AH)`.
    pub fn description(self) -> String {
        match self.info().location {
            WordLocation::Cpuid { leaf, reg, .. } => format!("CPUID.{leaf:02X}H:{}", reg_name(reg)),
            WordLocation::Msr { index } => format!("MSR({index:02X}H)"),
        }
    }
}

/// The register's name as QEMU prints it.
pub fn reg_name(reg: CpuidReg) -> &'static str {
    match reg {
        CpuidReg::Eax => "EAX",
        CpuidReg::Ebx => "EBX",
        CpuidReg::Ecx => "ECX",
        CpuidReg::Edx => "EDX",
    }
}

/// One named bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// QEMU's canonical property name.
    pub name: &'static str,
    pub word: FeatureWord,
    /// Bit number within the word (0..=63; only MSR words use bits above 31).
    pub bit: u8,
}

impl Feature {
    /// The single-bit mask of this entry.
    pub fn mask(&self) -> u64 {
        1u64 << self.bit
    }

    /// CPUID leaf, subleaf and register, or `None` for MSR features.
    pub fn cpuid_location(&self) -> Option<(u32, Option<u32>, CpuidReg)> {
        match self.word.info().location {
            WordLocation::Cpuid { leaf, subleaf, reg } => Some((leaf, subleaf, reg)),
            WordLocation::Msr { .. } => None,
        }
    }

    /// MSR index, or `None` for CPUID features.
    pub fn msr_index(&self) -> Option<u32> {
        match self.word.info().location {
            WordLocation::Msr { index } => Some(index),
            WordLocation::Cpuid { .. } => None,
        }
    }
}

/// A named feature as a typed value: its canonical name and every bit QEMU's property of
/// that name sets. The constants are in [`ids`]; CPU model data is written with them (see
/// [`feats!`](crate::feats)), so a misspelt name fails to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureId {
    /// QEMU's canonical property name.
    pub name: &'static str,
    pub word: FeatureWord,
    pub mask: u64,
}

impl FeatureId {
    pub const fn new(name: &'static str, word: FeatureWord, mask: u64) -> FeatureId {
        FeatureId { name, word, mask }
    }
}

/// A `&[FeatureId]` from feature ids written as in [`ids`], space-separated:
/// `feats![FPU VME SSE4_1]`. An unknown name is a compile error.
#[macro_export]
macro_rules! feats {
    ($($id:ident)*) => {
        &[$($crate::features::ids::$id),*]
    };
}

/// Extra names QEMU 7.2 accepts for a feature (`object_property_add_alias` calls in
/// `x86_cpu_initfn`): `(alias, canonical name)`.
pub const ALIASES: &[(&str, &str)] = &[
    ("sse3", "pni"),
    ("pclmuldq", "pclmulqdq"),
    ("sse4-1", "sse4.1"),
    ("sse4-2", "sse4.2"),
    ("xd", "nx"),
    ("ffxsr", "fxsr-opt"),
    ("i64", "lm"),
    ("ds_cpl", "ds-cpl"),
    ("tsc_adjust", "tsc-adjust"),
    ("fxsr_opt", "fxsr-opt"),
    ("lahf_lm", "lahf-lm"),
    ("cmp_legacy", "cmp-legacy"),
    ("nodeid_msr", "nodeid-msr"),
    ("perfctr_core", "perfctr-core"),
    ("perfctr_nb", "perfctr-nb"),
    ("kvm_nopiodelay", "kvm-nopiodelay"),
    ("kvm_mmu", "kvm-mmu"),
    ("kvm_asyncpf", "kvm-asyncpf"),
    ("kvm_asyncpf_int", "kvm-asyncpf-int"),
    ("kvm_steal_time", "kvm-steal-time"),
    ("kvm_pv_eoi", "kvm-pv-eoi"),
    ("kvm_pv_unhalt", "kvm-pv-unhalt"),
    ("kvm_poll_control", "kvm-poll-control"),
    ("svm_lock", "svm-lock"),
    ("nrip_save", "nrip-save"),
    ("tsc_scale", "tsc-scale"),
    ("vmcb_clean", "vmcb-clean"),
    ("pause_filter", "pause-filter"),
    ("sse4_1", "sse4.1"),
    ("sse4_2", "sse4.2"),
];

/// Every named feature, CPUID words first, in QEMU's word and bit order.
pub fn all_features() -> impl Iterator<Item = &'static Feature> {
    CPUID_FEATURES.iter().chain(MSR_FEATURES.iter())
}

/// The canonical name behind `name`: itself when it is a canonical name, the target when
/// it is one of QEMU's aliases, `None` when QEMU 7.2 has no such property. Exact match:
/// QEMU's `+feat`/`-feat` syntax looks names up this way.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    if let Some(f) = all_features().find(|f| f.name == name) {
        return Some(f.name);
    }
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .and_then(|(_, target)| all_features().find(|f| f.name == *target))
        .map(|f| f.name)
}

/// The first table entry for `name` (canonical name or alias), as QEMU's property lookup
/// resolves it.
pub fn feature_by_name(name: &str) -> Option<&'static Feature> {
    let canonical = canonical_name(name)?;
    all_features().find(|f| f.name == canonical)
}

/// The word and every bit QEMU's property `name` sets (usually one bit; `kvmclock` and
/// `vmx-invept-single-context` cover two).
pub fn feature_mask(name: &str) -> Option<(FeatureWord, u64)> {
    let canonical = canonical_name(name)?;
    let mut found: Option<(FeatureWord, u64)> = None;
    for f in all_features().filter(|f| f.name == canonical) {
        found = Some(match found {
            Some((word, mask)) => (word, mask | f.mask()),
            None => (f.word, f.mask()),
        });
    }
    found
}

/// The name QEMU prints for a bit (the first name in the table), if the bit is named.
pub fn name_of(word: FeatureWord, bit: u8) -> Option<&'static str> {
    all_features()
        .find(|f| f.word == word && f.bit == bit)
        .map(|f| f.name)
}

/// QEMU's `feat2prop`: the `feat=on|off` syntax turns every `_` into `-` before looking
/// the property up (the `+feat`/`-feat` syntax does not).
pub fn normalize_property_name(name: &str) -> String {
    name.replace('_', "-")
}

/// Every name accepted as a feature property: canonical names (once each) and aliases.
pub fn accepted_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for f in all_features() {
        if !names.contains(&f.name) {
            names.push(f.name);
        }
    }
    names.extend(ALIASES.iter().map(|(alias, _)| *alias));
    names
}

/// Up to `max` candidates closest to `name`, for "did you mean" hints. A candidate scores
/// the smaller of its edit distance to `name` and 1 + the distance between `name` and the
/// candidate's prefix of the same length (so `Haswel` finds `Haswell-v1`); candidates
/// scoring at most a third of the name's length (at least 2) qualify, best score first,
/// then smaller full distance, then the candidates' order. Case is ignored.
pub fn nearest_names<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<&'a str> {
    let lowered = name.to_ascii_lowercase();
    let len = lowered.chars().count();
    let limit = (len / 3).max(2);
    let mut scored: Vec<(usize, usize, usize, &'a str)> = candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let lc = c.to_ascii_lowercase();
            let full = edit_distance(&lowered, &lc);
            let prefix: String = lc.chars().take(len).collect();
            let by_prefix = if lc.chars().count() > len {
                edit_distance(&lowered, &prefix) + 1
            } else {
                full
            };
            (full.min(by_prefix), full, i, c)
        })
        .filter(|(score, _, _, _)| *score <= limit)
        .collect();
    scored.sort();
    let mut out: Vec<&'a str> = Vec::new();
    for (_, _, _, c) in scored {
        if !out.contains(&c) {
            out.push(c);
        }
        if out.len() == max {
            break;
        }
    }
    out
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// A set of feature bits over all words (QEMU's `FeatureWordArray`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureSet {
    words: [u64; FEATURE_WORD_COUNT],
}

impl Default for FeatureSet {
    fn default() -> Self {
        FeatureSet {
            words: [0; FEATURE_WORD_COUNT],
        }
    }
}

impl FeatureSet {
    /// The empty set, usable in constants.
    pub const EMPTY: FeatureSet = FeatureSet {
        words: [0; FEATURE_WORD_COUNT],
    };

    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set of `ids`; for model tables (`FeatureSet::of(feats![FPU VME])`).
    pub const fn of(ids: &[FeatureId]) -> FeatureSet {
        FeatureSet::EMPTY.with(ids)
    }

    /// This set plus `ids`.
    pub const fn with(mut self, ids: &[FeatureId]) -> FeatureSet {
        let mut i = 0;
        while i < ids.len() {
            self.words[ids[i].word.index()] |= ids[i].mask;
            i += 1;
        }
        self
    }

    /// This set without `ids`.
    pub const fn without(mut self, ids: &[FeatureId]) -> FeatureSet {
        let mut i = 0;
        while i < ids.len() {
            self.words[ids[i].word.index()] &= !ids[i].mask;
            i += 1;
        }
        self
    }

    /// This set plus every bit of `other`.
    pub const fn union(mut self, other: FeatureSet) -> FeatureSet {
        let mut i = 0;
        while i < FEATURE_WORD_COUNT {
            self.words[i] |= other.words[i];
            i += 1;
        }
        self
    }

    /// Sets or clears one feature.
    pub fn set(&mut self, id: FeatureId, on: bool) {
        if on {
            self.insert(id.word, id.mask);
        } else {
            self.remove(id.word, id.mask);
        }
    }

    /// True when every bit of `id` is set.
    pub fn has(&self, id: FeatureId) -> bool {
        self.contains(id.word, id.mask)
    }

    /// The bits of one word.
    pub fn word(&self, word: FeatureWord) -> u64 {
        self.words[word.index()]
    }

    /// Replaces one word.
    pub fn set_word(&mut self, word: FeatureWord, bits: u64) {
        self.words[word.index()] = bits;
    }

    /// Sets `mask` in `word`.
    pub fn insert(&mut self, word: FeatureWord, mask: u64) {
        self.words[word.index()] |= mask;
    }

    /// Clears `mask` in `word`.
    pub fn remove(&mut self, word: FeatureWord, mask: u64) {
        self.words[word.index()] &= !mask;
    }

    /// True when every bit of `mask` is set in `word`.
    pub fn contains(&self, word: FeatureWord, mask: u64) -> bool {
        self.word(word) & mask == mask
    }

    /// Sets or clears a named feature (canonical name or alias, exact match) as QEMU's
    /// property setter does. Returns `false` if QEMU has no such property.
    pub fn set_named(&mut self, name: &str, on: bool) -> bool {
        match feature_mask(name) {
            Some((word, mask)) => {
                if on {
                    self.insert(word, mask);
                } else {
                    self.remove(word, mask);
                }
                true
            }
            None => false,
        }
    }

    /// QEMU's property getter: true when all bits of the named property are set;
    /// `None` for unknown names.
    pub fn has_named(&self, name: &str) -> Option<bool> {
        feature_mask(name).map(|(word, mask)| self.contains(word, mask))
    }

    /// True when no bit is set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Bits in `self` and not in `other`.
    pub fn difference(&self, other: &FeatureSet) -> FeatureSet {
        let mut out = *self;
        for (o, b) in out.words.iter_mut().zip(other.words.iter()) {
            *o &= !b;
        }
        out
    }

    /// Bits in both.
    pub fn intersection(&self, other: &FeatureSet) -> FeatureSet {
        let mut out = *self;
        for (o, b) in out.words.iter_mut().zip(other.words.iter()) {
            *o &= b;
        }
        out
    }

    /// Every set bit as `(word, bit)`, in QEMU's word order then bit order.
    pub fn bits(&self) -> impl Iterator<Item = (FeatureWord, u8)> + '_ {
        FeatureWord::all().flat_map(move |word| {
            let value = self.word(word);
            (0u8..64)
                .filter(move |b| value & (1u64 << b) != 0)
                .map(move |b| (word, b))
        })
    }

    /// Names of the set properties (canonical, each once), in table order. A property
    /// covering two bits is listed when both are set. Unnamed bits are not listed.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for f in all_features() {
            if !out.contains(&f.name) && self.has_named(f.name) == Some(true) {
                out.push(f.name);
            }
        }
        out
    }
}

/// One warning line as QEMU's `mark_unavailable_features` prints it, without QEMU's
/// `qemu-system-x86_64: warning: ` prefix: `PREFIX: CPUID.07H:EBX.hle [bit 4]`, or
/// `PREFIX: MSR(48CH) [bit 14]` for a bit with no name.
pub fn warning_line(prefix: &str, word: FeatureWord, bit: u8) -> String {
    match name_of(word, bit) {
        Some(name) => format!("{prefix}: {}.{name} [bit {bit}]", word.description()),
        None => format!("{prefix}: {} [bit {bit}]", word.description()),
    }
}

/// Warning lines for every bit of `set`, words in QEMU's order, bits low to high.
pub fn warning_lines(prefix: &str, set: &FeatureSet) -> Vec<String> {
    set.bits()
        .map(|(word, bit)| warning_line(prefix, word, bit))
        .collect()
}
