//! QEMU 7.2's Intel Xeon models Skylake-Server, Cascadelake-Server and Cooperlake.
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! typed ids (`feats!`, a misspelt name does not compile), CPUID features and feature-MSR
//! features apart, each model written as the model it grew from plus what it adds or drops
//! (VMX sets from `vmx`); checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::vmx::VMX_BROADWELL;
use super::{ModelDef, Prop, VendorId, VersionDef};
use crate::feats;
use crate::features::{ids as f, FeatureWord as W};

/// QEMU 7.2 `Skylake-Server`.
pub(super) const SKYLAKE_SERVER: ModelDef = ModelDef {
    name: "Skylake-Server",
    vendor: VendorId::INTEL,
    family: 6,
    model: 85,
    stepping: 4,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Xeon Processor (Skylake)",
    features: super::intel_core::SKYLAKE_CLIENT.features.with(feats![
        AVX512F AVX512DQ CLFLUSHOPT CLWB AVX512CD AVX512BW AVX512VL PKU PDPE1GB
    ]),
    msr_features: VMX_BROADWELL.without(feats![VMX_EPTP_SWITCHING]),
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Skylake-Server-IBRS"),
            None,
            &[
                Prop::Off(f::CLFLUSHOPT),
                Prop::On(f::SPEC_CTRL),
                Prop::ModelId("Intel Xeon Processor (Skylake, IBRS)"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Skylake-Server-noTSX-IBRS"),
            None,
            &[
                Prop::Off(f::HLE),
                Prop::Off(f::RTM),
                Prop::ModelId("Intel Xeon Processor (Skylake, IBRS, no TSX)"),
            ],
        ),
        VersionDef::new(
            4,
            None,
            Some("IBRS, EPT switching, no TSX"),
            &[Prop::On(f::VMX_EPTP_SWITCHING)],
        ),
        VersionDef::new(
            5,
            None,
            Some("IBRS, XSAVES, EPT switching, no TSX"),
            &[Prop::On(f::XSAVES), Prop::On(f::VMX_XSAVES)],
        ),
    ],
};

/// QEMU 7.2 `Cascadelake-Server`.
pub(super) const CASCADELAKE_SERVER: ModelDef = ModelDef {
    name: "Cascadelake-Server",
    vendor: VendorId::INTEL,
    family: 6,
    model: 85,
    stepping: 6,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Xeon Processor (Cascadelake)",
    features: SKYLAKE_SERVER
        .features
        .with(feats![AVX512VNNI SPEC_CTRL SSBD]),
    msr_features: SKYLAKE_SERVER.msr_features,
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            None,
            Some("ARCH_CAPABILITIES"),
            &[
                Prop::On(f::ARCH_CAPABILITIES),
                Prop::On(f::RDCTL_NO),
                Prop::On(f::IBRS_ALL),
                Prop::On(f::SKIP_L1DFL_VMENTRY),
                Prop::On(f::MDS_NO),
            ],
        ),
        VersionDef::new(
            3,
            Some("Cascadelake-Server-noTSX"),
            Some("ARCH_CAPABILITIES, no TSX"),
            &[Prop::Off(f::HLE), Prop::Off(f::RTM)],
        ),
        VersionDef::new(
            4,
            None,
            Some("ARCH_CAPABILITIES, EPT switching, no TSX"),
            &[Prop::On(f::VMX_EPTP_SWITCHING)],
        ),
        VersionDef::new(
            5,
            None,
            Some("ARCH_CAPABILITIES, EPT switching, XSAVES, no TSX"),
            &[Prop::On(f::XSAVES), Prop::On(f::VMX_XSAVES)],
        ),
    ],
};

/// QEMU 7.2 `Cooperlake`.
pub(super) const COOPERLAKE: ModelDef = ModelDef {
    name: "Cooperlake",
    vendor: VendorId::INTEL,
    family: 6,
    model: 85,
    stepping: 10,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Xeon Processor (Cooperlake)",
    features: CASCADELAKE_SERVER
        .features
        .with(feats![STIBP ARCH_CAPABILITIES AVX512_BF16]),
    msr_features: VMX_BROADWELL
        .with(feats![RDCTL_NO IBRS_ALL SKIP_L1DFL_VMENTRY MDS_NO PSCHANGE_MC_NO TAA_NO]),
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            None,
            Some("XSAVES"),
            &[Prop::On(f::XSAVES), Prop::On(f::VMX_XSAVES)],
        ),
    ],
};
