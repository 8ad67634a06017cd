//! QEMU 7.2's Icelake-Server and the Atom/Xeon Phi server models (Denverton, Snowridge,
//! KnightsMill).
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! typed ids (`feats!`, a misspelt name does not compile), CPUID features and feature-MSR
//! features apart, each model written as the model it grew from plus what it adds or drops
//! (VMX sets from `vmx`); checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::vmx::{VMX_BROADWELL, VMX_HASWELL};
use super::{ModelDef, Prop, VendorId, VersionDef};
use crate::feats;
use crate::features::{ids as f, FeatureSet, FeatureWord as W};

/// QEMU 7.2 `Icelake-Server`.
pub(super) const ICELAKE_SERVER: ModelDef = ModelDef {
    name: "Icelake-Server",
    vendor: VendorId::INTEL,
    family: 6,
    model: 134,
    stepping: 0,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Xeon Processor (Icelake)",
    features: super::intel_xeon::CASCADELAKE_SERVER.features.with(feats![
        AVX512VBMI UMIP AVX512VBMI2 GFNI VAES VPCLMULQDQ AVX512BITALG AVX512_VPOPCNTDQ LA57
        WBNOINVD
    ]),
    msr_features: VMX_HASWELL.without(feats![VMX_EPTP_SWITCHING]),
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Icelake-Server-noTSX"),
            Some("no TSX"),
            &[Prop::Off(f::HLE), Prop::Off(f::RTM)],
        ),
        VersionDef::new(
            3,
            None,
            None,
            &[
                Prop::On(f::ARCH_CAPABILITIES),
                Prop::On(f::RDCTL_NO),
                Prop::On(f::IBRS_ALL),
                Prop::On(f::SKIP_L1DFL_VMENTRY),
                Prop::On(f::MDS_NO),
                Prop::On(f::PSCHANGE_MC_NO),
                Prop::On(f::TAA_NO),
            ],
        ),
        VersionDef::new(
            4,
            None,
            None,
            &[
                Prop::On(f::SHA_NI),
                Prop::On(f::AVX512IFMA),
                Prop::On(f::RDPID),
                Prop::On(f::FSRM),
                Prop::On(f::VMX_RDSEED_EXIT),
                Prop::On(f::VMX_PML),
                Prop::On(f::VMX_EPTP_SWITCHING),
                Prop::Model(106),
            ],
        ),
        VersionDef::new(
            5,
            None,
            Some("XSAVES"),
            &[Prop::On(f::XSAVES), Prop::On(f::VMX_XSAVES)],
        ),
        VersionDef::new(
            6,
            None,
            Some("5-level EPT"),
            &[Prop::On(f::VMX_PAGE_WALK_5)],
        ),
    ],
};

/// QEMU 7.2 `Denverton`.
pub(super) const DENVERTON: ModelDef = ModelDef {
    name: "Denverton",
    vendor: VendorId::INTEL,
    family: 6,
    model: 95,
    stepping: 1,
    level: 0x15,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Atom Processor (Denverton)",
    features: super::intel_core::IVYBRIDGE
        .features
        .with(feats![
            MONITOR MOVBE MPX RDSEED SMAP CLFLUSHOPT SHA_NI SPEC_CTRL ARCH_CAPABILITIES SSBD PDPE1GB
            _3DNOWPREFETCH XSAVEC XGETBV1
        ])
        .without(feats![AVX F16C]),
    msr_features: VMX_BROADWELL.with(feats![RDCTL_NO SKIP_L1DFL_VMENTRY]),
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            None,
            Some("no MPX, no MONITOR"),
            &[Prop::Off(f::MONITOR), Prop::Off(f::MPX)],
        ),
        VersionDef::new(
            3,
            None,
            Some("XSAVES, no MPX, no MONITOR"),
            &[Prop::On(f::XSAVES), Prop::On(f::VMX_XSAVES)],
        ),
    ],
};

/// QEMU 7.2 `Snowridge`.
pub(super) const SNOWRIDGE: ModelDef = ModelDef {
    name: "Snowridge",
    vendor: VendorId::INTEL,
    family: 6,
    model: 134,
    stepping: 1,
    level: 0x1b,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Atom Processor (SnowRidge)",
    features: DENVERTON
        .features
        .with(feats![CLWB UMIP GFNI CLDEMOTE MOVDIRI MOVDIR64B CORE_CAPABILITY]),
    msr_features: VMX_BROADWELL.with(feats![SPLIT_LOCK_DETECT]),
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            None,
            None,
            &[
                Prop::Off(f::MPX),
                Prop::ModelId("Intel Atom Processor (Snowridge, no MPX)"),
            ],
        ),
        VersionDef::new(
            3,
            None,
            Some("XSAVES, no MPX"),
            &[Prop::On(f::XSAVES), Prop::On(f::VMX_XSAVES)],
        ),
        VersionDef::new(
            4,
            None,
            Some("no split lock detect, no core-capability"),
            &[
                Prop::Off(f::SPLIT_LOCK_DETECT),
                Prop::Off(f::CORE_CAPABILITY),
            ],
        ),
    ],
};

/// QEMU 7.2 `KnightsMill`.
pub(super) const KNIGHTSMILL: ModelDef = ModelDef {
    name: "KnightsMill",
    vendor: VendorId::INTEL,
    family: 6,
    model: 133,
    stepping: 0,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Xeon Phi Processor (Knights Mill)",
    features: super::intel_core::BROADWELL.features.with(feats![
        SS AVX512F AVX512PF AVX512ER AVX512CD AVX512_VPOPCNTDQ AVX512_4VNNIW AVX512_4FMAPS PDPE1GB
    ]).without(feats![PCID HLE INVPCID RTM SMAP]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};
