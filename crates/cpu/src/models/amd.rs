//! QEMU 7.2's AMD and Hygon models: Opteron G1-G5, EPYC, EPYC-Rome, EPYC-Milan, Dhyana.
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! space-separated QEMU names in QEMU's word and bit order, CPUID features and feature-MSR
//! features apart; checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::{ModelDef, Prop, VendorId, VersionDef};

/// QEMU 7.2 `Opteron_G1`.
pub(super) const OPTERON_G1: ModelDef = ModelDef {
    name: "Opteron_G1",
    vendor: VendorId::AMD,
    family: 15,
    model: 6,
    stepping: 1,
    level: 0x5,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "AMD Opteron 240 (Gen 1 Class Opteron)",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni syscall nx lm",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `Opteron_G2`.
pub(super) const OPTERON_G2: ModelDef = ModelDef {
    name: "Opteron_G2",
    vendor: VendorId::AMD,
    family: 15,
    model: 6,
    stepping: 1,
    level: 0x5,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "AMD Opteron 22xx (Gen 2 Class Opteron)",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni cx16 syscall nx lm lahf-lm svm",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `Opteron_G3`.
pub(super) const OPTERON_G3: ModelDef = ModelDef {
    name: "Opteron_G3",
    vendor: VendorId::AMD,
    family: 16,
    model: 2,
    stepping: 3,
    level: 0x5,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "AMD Opteron 23xx (Gen 3 Class Opteron)",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni monitor cx16 popcnt syscall nx rdtscp lm lahf-lm svm abm \
              sse4a misalignsse",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `Opteron_G4`.
pub(super) const OPTERON_G4: ModelDef = ModelDef {
    name: "Opteron_G4",
    vendor: VendorId::AMD,
    family: 21,
    model: 1,
    stepping: 2,
    level: 0xd,
    xlevel: 0x8000_001a,
    xlevel2: 0x0,
    model_id: "AMD Opteron 62xx class CPU",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 cx16 sse4.1 sse4.2 popcnt aes xsave avx \
              syscall nx pdpe1gb rdtscp lm lahf-lm svm abm sse4a misalignsse 3dnowprefetch xop \
              fma4 npt nrip-save",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `Opteron_G5`.
pub(super) const OPTERON_G5: ModelDef = ModelDef {
    name: "Opteron_G5",
    vendor: VendorId::AMD,
    family: 21,
    model: 2,
    stepping: 0,
    level: 0xd,
    xlevel: 0x8000_001a,
    xlevel2: 0x0,
    model_id: "AMD Opteron 63xx class CPU",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 fma cx16 sse4.1 sse4.2 popcnt aes xsave avx \
              f16c syscall nx pdpe1gb rdtscp lm lahf-lm svm abm sse4a misalignsse 3dnowprefetch \
              xop fma4 tbm npt nrip-save",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `EPYC`.
pub(super) const EPYC: ModelDef = ModelDef {
    name: "EPYC",
    vendor: VendorId::AMD,
    family: 23,
    model: 1,
    stepping: 2,
    level: 0xd,
    xlevel: 0x8000_001e,
    xlevel2: 0x0,
    model_id: "AMD EPYC Processor",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq monitor ssse3 fma cx16 sse4.1 sse4.2 movbe popcnt \
              aes xsave avx f16c rdrand fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt \
              sha-ni syscall nx mmxext fxsr-opt pdpe1gb rdtscp lm lahf-lm svm cr8legacy abm \
              sse4a misalignsse 3dnowprefetch osvw topoext npt nrip-save xsaveopt xsavec \
              xgetbv1 arat",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: Some("epyc_cache_info"),
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("EPYC-IBPB"),
            None,
            &[
                Prop::On("ibpb"),
                Prop::ModelId("AMD EPYC Processor (with IBPB)"),
            ],
        ),
        VersionDef::new(
            3,
            None,
            None,
            &[
                Prop::On("ibpb"),
                Prop::On("perfctr-core"),
                Prop::On("clzero"),
                Prop::On("xsaveerptr"),
                Prop::On("xsaves"),
                Prop::ModelId("AMD EPYC Processor"),
            ],
        ),
    ],
};

/// QEMU 7.2 `Dhyana`.
pub(super) const DHYANA: ModelDef = ModelDef {
    name: "Dhyana",
    vendor: VendorId::HYGON,
    family: 24,
    model: 0,
    stepping: 1,
    level: 0xd,
    xlevel: 0x8000_001e,
    xlevel2: 0x0,
    model_id: "Hygon Dhyana Processor",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni monitor ssse3 fma cx16 sse4.1 sse4.2 movbe popcnt xsave avx \
              f16c rdrand fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt syscall nx \
              mmxext fxsr-opt pdpe1gb rdtscp lm lahf-lm svm cr8legacy abm sse4a misalignsse \
              3dnowprefetch osvw topoext ibpb npt nrip-save xsaveopt xsavec xgetbv1 arat",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: Some("epyc_cache_info"),
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(2, None, Some("XSAVES"), &[Prop::On("xsaves")]),
    ],
};

/// QEMU 7.2 `EPYC-Rome`.
pub(super) const EPYC_ROME: ModelDef = ModelDef {
    name: "EPYC-Rome",
    vendor: VendorId::AMD,
    family: 23,
    model: 49,
    stepping: 0,
    level: 0xd,
    xlevel: 0x8000_001e,
    xlevel2: 0x0,
    model_id: "AMD EPYC-Rome Processor",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq monitor ssse3 fma cx16 sse4.1 sse4.2 movbe popcnt \
              aes xsave avx f16c rdrand fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt \
              clwb sha-ni umip rdpid syscall nx mmxext fxsr-opt pdpe1gb rdtscp lm lahf-lm svm \
              cr8legacy abm sse4a misalignsse 3dnowprefetch osvw topoext perfctr-core clzero \
              xsaveerptr wbnoinvd ibpb amd-stibp npt nrip-save xsaveopt xsavec xgetbv1 xsaves \
              arat",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: Some("epyc_rome_cache_info"),
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(2, None, None, &[Prop::On("ibrs"), Prop::On("amd-ssbd")]),
    ],
};

/// QEMU 7.2 `EPYC-Milan`.
pub(super) const EPYC_MILAN: ModelDef = ModelDef {
    name: "EPYC-Milan",
    vendor: VendorId::AMD,
    family: 25,
    model: 1,
    stepping: 1,
    level: 0xd,
    xlevel: 0x8000_001e,
    xlevel2: 0x0,
    model_id: "AMD EPYC-Milan Processor",
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq monitor ssse3 fma cx16 pcid sse4.1 sse4.2 movbe \
              popcnt aes xsave avx f16c rdrand fsgsbase bmi1 avx2 smep bmi2 erms invpcid rdseed \
              adx smap clflushopt clwb sha-ni umip pku rdpid fsrm syscall nx mmxext fxsr-opt \
              pdpe1gb rdtscp lm lahf-lm svm cr8legacy abm sse4a misalignsse 3dnowprefetch osvw \
              topoext perfctr-core clzero xsaveerptr wbnoinvd ibpb ibrs amd-stibp amd-ssbd npt \
              nrip-save svme-addr-chk xsaveopt xsavec xgetbv1 xsaves arat",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: Some("epyc_milan_cache_info"),
    versions: &[],
};
