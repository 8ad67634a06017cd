//! QEMU 7.2's Intel Core models from Nehalem to Skylake-Client, with their versions.
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! typed ids (`feats!`, a misspelt name does not compile), CPUID features and feature-MSR
//! features apart, each model written as the model it grew from plus what it adds or drops
//! (VMX sets from `vmx`); checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::vmx::{VMX_BROADWELL, VMX_HASWELL, VMX_IVYBRIDGE, VMX_NEHALEM, VMX_WESTMERE};
use super::{ModelDef, Prop, VendorId, VersionDef};
use crate::feats;
use crate::features::{ids as f, FeatureWord as W};

/// QEMU 7.2 `Nehalem`.
pub(super) const NEHALEM: ModelDef = ModelDef {
    name: "Nehalem",
    vendor: VendorId::INTEL,
    family: 6,
    model: 26,
    stepping: 3,
    level: 0xb,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Core i7 9xx (Nehalem Class Core i7)",
    features: super::legacy::PENRYN.features.with(feats![SSE4_2 POPCNT]),
    msr_features: VMX_NEHALEM,
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Nehalem-IBRS"),
            None,
            &[
                Prop::On(f::SPEC_CTRL),
                Prop::ModelId("Intel Core i7 9xx (Nehalem Core i7, IBRS update)"),
            ],
        ),
    ],
};

/// QEMU 7.2 `Westmere`.
pub(super) const WESTMERE: ModelDef = ModelDef {
    name: "Westmere",
    vendor: VendorId::INTEL,
    family: 6,
    model: 44,
    stepping: 1,
    level: 0xb,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Westmere E56xx/L56xx/X56xx (Nehalem-C)",
    features: NEHALEM.features.with(feats![PCLMULQDQ AES ARAT]),
    msr_features: VMX_WESTMERE,
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Westmere-IBRS"),
            None,
            &[
                Prop::On(f::SPEC_CTRL),
                Prop::ModelId("Westmere E56xx/L56xx/X56xx (IBRS update)"),
            ],
        ),
    ],
};

/// QEMU 7.2 `SandyBridge`.
pub(super) const SANDYBRIDGE: ModelDef = ModelDef {
    name: "SandyBridge",
    vendor: VendorId::INTEL,
    family: 6,
    model: 42,
    stepping: 1,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Xeon E312xx (Sandy Bridge)",
    features: WESTMERE
        .features
        .with(feats![X2APIC TSC_DEADLINE XSAVE AVX RDTSCP XSAVEOPT]),
    msr_features: VMX_WESTMERE,
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("SandyBridge-IBRS"),
            None,
            &[
                Prop::On(f::SPEC_CTRL),
                Prop::ModelId("Intel Xeon E312xx (Sandy Bridge, IBRS update)"),
            ],
        ),
    ],
};

/// QEMU 7.2 `IvyBridge`.
pub(super) const IVYBRIDGE: ModelDef = ModelDef {
    name: "IvyBridge",
    vendor: VendorId::INTEL,
    family: 6,
    model: 58,
    stepping: 9,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Xeon E3-12xx v2 (Ivy Bridge)",
    features: SANDYBRIDGE
        .features
        .with(feats![F16C RDRAND FSGSBASE SMEP ERMS]),
    msr_features: VMX_IVYBRIDGE,
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("IvyBridge-IBRS"),
            None,
            &[
                Prop::On(f::SPEC_CTRL),
                Prop::ModelId("Intel Xeon E3-12xx v2 (Ivy Bridge, IBRS)"),
            ],
        ),
    ],
};

/// QEMU 7.2 `Haswell`.
pub(super) const HASWELL: ModelDef = ModelDef {
    name: "Haswell",
    vendor: VendorId::INTEL,
    family: 6,
    model: 60,
    stepping: 4,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Core Processor (Haswell)",
    features: IVYBRIDGE
        .features
        .with(feats![FMA PCID MOVBE BMI1 HLE AVX2 BMI2 INVPCID RTM ABM]),
    msr_features: VMX_HASWELL,
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Haswell-noTSX"),
            None,
            &[
                Prop::Off(f::HLE),
                Prop::Off(f::RTM),
                Prop::Stepping(1),
                Prop::ModelId("Intel Core Processor (Haswell, no TSX)"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Haswell-IBRS"),
            None,
            &[
                Prop::On(f::HLE),
                Prop::On(f::RTM),
                Prop::Stepping(4),
                Prop::On(f::SPEC_CTRL),
                Prop::ModelId("Intel Core Processor (Haswell, IBRS)"),
            ],
        ),
        VersionDef::new(
            4,
            Some("Haswell-noTSX-IBRS"),
            None,
            &[
                Prop::Off(f::HLE),
                Prop::Off(f::RTM),
                Prop::Stepping(1),
                Prop::ModelId("Intel Core Processor (Haswell, no TSX, IBRS)"),
            ],
        ),
    ],
};

/// QEMU 7.2 `Broadwell`.
pub(super) const BROADWELL: ModelDef = ModelDef {
    name: "Broadwell",
    vendor: VendorId::INTEL,
    family: 6,
    model: 61,
    stepping: 2,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Core Processor (Broadwell)",
    features: HASWELL
        .features
        .with(feats![RDSEED ADX SMAP _3DNOWPREFETCH]),
    msr_features: VMX_BROADWELL,
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Broadwell-noTSX"),
            None,
            &[
                Prop::Off(f::HLE),
                Prop::Off(f::RTM),
                Prop::ModelId("Intel Core Processor (Broadwell, no TSX)"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Broadwell-IBRS"),
            None,
            &[
                Prop::On(f::HLE),
                Prop::On(f::RTM),
                Prop::On(f::SPEC_CTRL),
                Prop::ModelId("Intel Core Processor (Broadwell, IBRS)"),
            ],
        ),
        VersionDef::new(
            4,
            Some("Broadwell-noTSX-IBRS"),
            None,
            &[
                Prop::Off(f::HLE),
                Prop::Off(f::RTM),
                Prop::ModelId("Intel Core Processor (Broadwell, no TSX, IBRS)"),
            ],
        ),
    ],
};

/// QEMU 7.2 `Skylake-Client`.
pub(super) const SKYLAKE_CLIENT: ModelDef = ModelDef {
    name: "Skylake-Client",
    vendor: VendorId::INTEL,
    family: 6,
    model: 94,
    stepping: 3,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Core Processor (Skylake)",
    features: BROADWELL.features.with(feats![XSAVEC XGETBV1]),
    msr_features: VMX_BROADWELL
        .without(feats![VMX_APICV_X2APIC VMX_APICV_REGISTER VMX_APICV_VID VMX_POSTED_INTR]),
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Skylake-Client-IBRS"),
            None,
            &[
                Prop::On(f::SPEC_CTRL),
                Prop::ModelId("Intel Core Processor (Skylake, IBRS)"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Skylake-Client-noTSX-IBRS"),
            None,
            &[
                Prop::Off(f::HLE),
                Prop::Off(f::RTM),
                Prop::ModelId("Intel Core Processor (Skylake, IBRS, no TSX)"),
            ],
        ),
        VersionDef::new(
            4,
            None,
            Some("IBRS, XSAVES, no TSX"),
            &[Prop::On(f::XSAVES), Prop::On(f::VMX_XSAVES)],
        ),
    ],
};
