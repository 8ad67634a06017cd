//! QEMU 7.2's generic and pre-Nehalem models: qemu64/qemu32, kvm64/kvm32, the 486 to
//! Pentium III line, Core Duo/Core 2, Atom N270, Athlon and Phenom, Conroe and Penryn.
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! typed ids (`feats!`, a misspelt name does not compile), CPUID features and feature-MSR
//! features apart, each model written as the model it grew from plus what it adds or drops
//! (VMX sets from `vmx`); checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::{ModelDef, VendorId};
use crate::feats;
use crate::features::FeatureSet;

/// QEMU 7.2 `qemu64`.
pub(super) const QEMU64: ModelDef = ModelDef {
    name: "qemu64",
    vendor: VendorId::AMD,
    family: 15,
    model: 107,
    stepping: 1,
    level: 0xd,
    xlevel: 0x8000_000a,
    xlevel2: 0x0,
    model_id: "QEMU Virtual CPU version 2.5+",
    features: FeatureSet::of(feats![
        FPU DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFLUSH MMX FXSR SSE
        SSE2 PNI CX16 SYSCALL NX LM LAHF_LM SVM
    ]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `phenom`.
pub(super) const PHENOM: ModelDef = ModelDef {
    name: "phenom",
    vendor: VendorId::AMD,
    family: 16,
    model: 2,
    stepping: 3,
    level: 0x5,
    xlevel: 0x8000_001a,
    xlevel2: 0x0,
    model_id: "AMD Phenom(tm) 9550 Quad-Core Processor",
    features: QEMU64.features.with(feats![
        VME MONITOR POPCNT MMXEXT FXSR_OPT PDPE1GB RDTSCP _3DNOWEXT _3DNOW ABM SSE4A NPT
    ]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `core2duo`.
pub(super) const CORE2DUO: ModelDef = ModelDef {
    name: "core2duo",
    vendor: VendorId::INTEL,
    family: 6,
    model: 15,
    stepping: 11,
    level: 0xa,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel(R) Core(TM)2 Duo CPU     T7700  @ 2.40GHz",
    features: FeatureSet::of(feats![
        FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFLUSH ACPI MMX
        FXSR SSE SSE2 SS PNI MONITOR SSSE3 CX16 SYSCALL NX LM LAHF_LM
    ]),
    msr_features: FeatureSet::of(feats![
        VMX_VINTR_PENDING VMX_TSC_OFFSET VMX_HLT_EXIT VMX_INVLPG_EXIT VMX_MWAIT_EXIT
        VMX_RDPMC_EXIT VMX_RDTSC_EXIT VMX_CR8_LOAD_EXIT VMX_CR8_STORE_EXIT VMX_FLEXPRIORITY
        VMX_VNMI_PENDING VMX_MOVDR_EXIT VMX_IO_EXIT VMX_IO_BITMAP VMX_MSR_BITMAP VMX_MONITOR_EXIT
        VMX_PAUSE_EXIT VMX_SECONDARY_CTLS VMX_APICV_XAPIC VMX_INTR_EXIT VMX_NMI_EXIT VMX_VNMI
        VMX_EXIT_ACK_INTR VMX_ENTRY_IA32E_MODE VMX_ACTIVITY_HLT VMX_INS_OUTS
    ]),
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `kvm64`.
pub(super) const KVM64: ModelDef = ModelDef {
    name: "kvm64",
    vendor: VendorId::INTEL,
    family: 15,
    model: 6,
    stepping: 1,
    level: 0xd,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Common KVM processor",
    features: CORE2DUO
        .features
        .without(feats![ACPI SS MONITOR SSSE3 LAHF_LM]),
    msr_features: CORE2DUO.msr_features.without(feats![
        VMX_VNMI_PENDING VMX_MSR_BITMAP VMX_SECONDARY_CTLS VMX_APICV_XAPIC VMX_VNMI VMX_INS_OUTS
    ]),
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `qemu32`.
pub(super) const QEMU32: ModelDef = ModelDef {
    name: "qemu32",
    vendor: VendorId::INTEL,
    family: 6,
    model: 6,
    stepping: 3,
    level: 0x4,
    xlevel: 0x8000_0004,
    xlevel2: 0x0,
    model_id: "QEMU Virtual CPU version 2.5+",
    features: KVM64
        .features
        .without(feats![VME MTRR MCA PSE36 CLFLUSH CX16 SYSCALL NX LM]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `kvm32`.
pub(super) const KVM32: ModelDef = ModelDef {
    name: "kvm32",
    vendor: VendorId::INTEL,
    family: 15,
    model: 6,
    stepping: 1,
    level: 0x5,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Common 32-bit KVM processor",
    features: KVM64.features.without(feats![CX16 SYSCALL NX LM]),
    msr_features: KVM64
        .msr_features
        .with(feats![VMX_MSR_BITMAP])
        .without(feats![VMX_CR8_LOAD_EXIT VMX_CR8_STORE_EXIT VMX_FLEXPRIORITY]),
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `coreduo`.
pub(super) const COREDUO: ModelDef = ModelDef {
    name: "coreduo",
    vendor: VendorId::INTEL,
    family: 6,
    model: 14,
    stepping: 8,
    level: 0xa,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Genuine Intel(R) CPU           T2600  @ 2.16GHz",
    features: KVM32
        .features
        .with(feats![ACPI SS MONITOR NX])
        .without(feats![PSE36]),
    msr_features: KVM32.msr_features,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `486`.
pub(super) const I486: ModelDef = ModelDef {
    name: "486",
    vendor: VendorId::INTEL,
    family: 4,
    model: 8,
    stepping: 0,
    level: 0x1,
    xlevel: 0x0,
    xlevel2: 0x0,
    model_id: "",
    features: FeatureSet::of(feats![FPU VME PSE]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `pentium`.
pub(super) const PENTIUM: ModelDef = ModelDef {
    name: "pentium",
    vendor: VendorId::INTEL,
    family: 5,
    model: 4,
    stepping: 3,
    level: 0x1,
    xlevel: 0x0,
    xlevel2: 0x0,
    model_id: "",
    features: FeatureSet::of(feats![FPU VME DE PSE TSC MSR MCE CX8 APIC MMX]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `pentium2`.
pub(super) const PENTIUM2: ModelDef = ModelDef {
    name: "pentium2",
    vendor: VendorId::INTEL,
    family: 6,
    model: 5,
    stepping: 2,
    level: 0x2,
    xlevel: 0x0,
    xlevel2: 0x0,
    model_id: "",
    features: KVM32.features.without(feats![CLFLUSH SSE SSE2 PNI]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `pentium3`.
pub(super) const PENTIUM3: ModelDef = ModelDef {
    name: "pentium3",
    vendor: VendorId::INTEL,
    family: 6,
    model: 7,
    stepping: 3,
    level: 0x3,
    xlevel: 0x0,
    xlevel2: 0x0,
    model_id: "",
    features: PENTIUM2.features.with(feats![SSE]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `athlon`.
pub(super) const ATHLON: ModelDef = ModelDef {
    name: "athlon",
    vendor: VendorId::AMD,
    family: 6,
    model: 2,
    stepping: 3,
    level: 0x2,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "QEMU Virtual CPU version 2.5+",
    features: QEMU64
        .features
        .with(feats![VME MMXEXT _3DNOWEXT _3DNOW])
        .without(feats![CLFLUSH PNI CX16 SYSCALL NX LM LAHF_LM SVM]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `n270`.
pub(super) const N270: ModelDef = ModelDef {
    name: "n270",
    vendor: VendorId::INTEL,
    family: 6,
    model: 28,
    stepping: 2,
    level: 0xa,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel(R) Atom(TM) CPU N270   @ 1.60GHz",
    features: COREDUO.features.with(feats![SSSE3 MOVBE LAHF_LM]),
    msr_features: FeatureSet::EMPTY,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `Conroe`.
pub(super) const CONROE: ModelDef = ModelDef {
    name: "Conroe",
    vendor: VendorId::INTEL,
    family: 6,
    model: 15,
    stepping: 3,
    level: 0xa,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Celeron_4x0 (Conroe/Merom Class Core 2)",
    features: KVM64
        .features
        .with(feats![SSSE3 LAHF_LM])
        .without(feats![CX16]),
    msr_features: CORE2DUO.msr_features,
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};

/// QEMU 7.2 `Penryn`.
pub(super) const PENRYN: ModelDef = ModelDef {
    name: "Penryn",
    vendor: VendorId::INTEL,
    family: 6,
    model: 23,
    stepping: 3,
    level: 0xa,
    xlevel: 0x8000_0008,
    xlevel2: 0x0,
    model_id: "Intel Core 2 Duo P9xxx (Penryn Class Core 2)",
    features: CONROE.features.with(feats![CX16 SSE4_1]),
    msr_features: CORE2DUO.msr_features.with(feats![
        VMX_WBINVD_EXIT VMX_EXIT_LOAD_PERF_GLOBAL_CTRL VMX_ENTRY_LOAD_PERF_GLOBAL_CTRL
    ]),
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};
