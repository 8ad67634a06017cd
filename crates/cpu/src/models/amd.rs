//! QEMU 7.2's AMD and Hygon models: Opteron G1-G5, EPYC, EPYC-Rome, EPYC-Milan, Dhyana.
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! typed ids (`feats!`, a misspelt name does not compile), CPUID features and feature-MSR
//! features apart, each model written as the model it grew from plus what it adds or drops
//! (VMX sets from `vmx`); checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::{ModelDef, Prop, VendorId, VersionDef};
use crate::cache::ModelCaches;
use crate::feats;
use crate::features::{ids as f, FeatureSet};

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
    features: super::legacy::QEMU64
        .features
        .with(feats![VME])
        .without(feats![CX16 LAHF_LM SVM]),
    msr_features: FeatureSet::EMPTY,
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
    features: super::legacy::QEMU64.features.with(feats![VME]),
    msr_features: FeatureSet::EMPTY,
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
    features: OPTERON_G2
        .features
        .with(feats![MONITOR POPCNT RDTSCP ABM SSE4A MISALIGNSSE]),
    msr_features: FeatureSet::EMPTY,
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
    features: OPTERON_G3.features.with(feats![
        PCLMULQDQ SSSE3 SSE4_1 SSE4_2 AES XSAVE AVX PDPE1GB _3DNOWPREFETCH XOP FMA4 NPT NRIP_SAVE
    ]).without(feats![MONITOR]),
    msr_features: FeatureSet::EMPTY,
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
    features: OPTERON_G4.features.with(feats![FMA F16C TBM]),
    msr_features: FeatureSet::EMPTY,
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
    features: OPTERON_G5.features.with(feats![
        MONITOR MOVBE RDRAND FSGSBASE BMI1 AVX2 SMEP BMI2 RDSEED ADX SMAP CLFLUSHOPT SHA_NI MMXEXT
        FXSR_OPT CR8LEGACY OSVW TOPOEXT XSAVEOPT XSAVEC XGETBV1 ARAT
    ]).without(feats![XOP FMA4 TBM]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: Some(ModelCaches::Epyc),
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("EPYC-IBPB"),
            None,
            &[
                Prop::On(f::IBPB),
                Prop::ModelId("AMD EPYC Processor (with IBPB)"),
            ],
        ),
        VersionDef::new(
            3,
            None,
            None,
            &[
                Prop::On(f::IBPB),
                Prop::On(f::PERFCTR_CORE),
                Prop::On(f::CLZERO),
                Prop::On(f::XSAVEERPTR),
                Prop::On(f::XSAVES),
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
    features: EPYC
        .features
        .with(feats![IBPB])
        .without(feats![PCLMULQDQ AES SHA_NI]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: Some(ModelCaches::Epyc),
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(2, None, Some("XSAVES"), &[Prop::On(f::XSAVES)]),
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
    features: EPYC.features.with(feats![
        CLWB UMIP RDPID PERFCTR_CORE CLZERO XSAVEERPTR WBNOINVD IBPB AMD_STIBP XSAVES
    ]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: Some(ModelCaches::EpycRome),
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(2, None, None, &[Prop::On(f::IBRS), Prop::On(f::AMD_SSBD)]),
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
    features: EPYC_ROME
        .features
        .with(feats![PCID ERMS INVPCID PKU FSRM IBRS AMD_SSBD SVME_ADDR_CHK]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: Some(ModelCaches::EpycMilan),
    versions: &[],
};
