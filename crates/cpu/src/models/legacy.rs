//! QEMU 7.2's generic and pre-Nehalem models: qemu64/qemu32, kvm64/kvm32, the 486 to
//! Pentium III line, Core Duo/Core 2, Atom N270, Athlon and Phenom, Conroe and Penryn.
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! space-separated QEMU names in QEMU's word and bit order, CPUID features and feature-MSR
//! features apart; checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::{ModelDef, VendorId};

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
    features: "fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx \
              fxsr sse sse2 pni cx16 syscall nx lm lahf-lm svm",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni monitor cx16 popcnt syscall nx mmxext fxsr-opt pdpe1gb \
              rdtscp lm 3dnowext 3dnow lahf-lm svm abm sse4a npt",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              acpi mmx fxsr sse sse2 ss pni monitor ssse3 cx16 syscall nx lm lahf-lm",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr8-load-exit vmx-cr8-store-exit \
                  vmx-flexpriority vmx-vnmi-pending vmx-movdr-exit vmx-io-exit vmx-io-bitmap \
                  vmx-msr-bitmap vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls \
                  vmx-apicv-xapic vmx-intr-exit vmx-nmi-exit vmx-vnmi vmx-exit-ack-intr \
                  vmx-entry-ia32e-mode vmx-activity-hlt vmx-ins-outs",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni cx16 syscall nx lm",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr8-load-exit vmx-cr8-store-exit \
                  vmx-flexpriority vmx-movdr-exit vmx-io-exit vmx-io-bitmap vmx-monitor-exit \
                  vmx-pause-exit vmx-intr-exit vmx-nmi-exit vmx-exit-ack-intr \
                  vmx-entry-ia32e-mode vmx-activity-hlt",
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
    features: "fpu de pse tsc msr pae mce cx8 apic sep pge cmov pat mmx fxsr sse sse2 pni",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-movdr-exit vmx-io-exit vmx-io-bitmap \
                  vmx-msr-bitmap vmx-monitor-exit vmx-pause-exit vmx-intr-exit vmx-nmi-exit \
                  vmx-exit-ack-intr vmx-entry-ia32e-mode vmx-activity-hlt",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat clflush acpi \
              mmx fxsr sse sse2 ss pni monitor nx",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-movdr-exit vmx-io-exit vmx-io-bitmap \
                  vmx-msr-bitmap vmx-monitor-exit vmx-pause-exit vmx-intr-exit vmx-nmi-exit \
                  vmx-exit-ack-intr vmx-entry-ia32e-mode vmx-activity-hlt",
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
    features: "fpu vme pse",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr mce cx8 apic mmx",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 mmx fxsr",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 mmx fxsr \
              sse",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 mmx fxsr \
              sse sse2 mmxext 3dnowext 3dnow",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat clflush acpi \
              mmx fxsr sse sse2 ss pni monitor ssse3 movbe nx lahf-lm",
    msr_features: "",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni ssse3 syscall nx lm lahf-lm",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr8-load-exit vmx-cr8-store-exit \
                  vmx-flexpriority vmx-vnmi-pending vmx-movdr-exit vmx-io-exit vmx-io-bitmap \
                  vmx-msr-bitmap vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls \
                  vmx-apicv-xapic vmx-intr-exit vmx-nmi-exit vmx-vnmi vmx-exit-ack-intr \
                  vmx-entry-ia32e-mode vmx-activity-hlt vmx-ins-outs",
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni ssse3 cx16 sse4.1 syscall nx lm lahf-lm",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr8-load-exit vmx-cr8-store-exit \
                  vmx-flexpriority vmx-vnmi-pending vmx-movdr-exit vmx-io-exit vmx-io-bitmap \
                  vmx-msr-bitmap vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls \
                  vmx-apicv-xapic vmx-wbinvd-exit vmx-intr-exit vmx-nmi-exit vmx-vnmi \
                  vmx-exit-load-perf-global-ctrl vmx-exit-ack-intr vmx-entry-ia32e-mode \
                  vmx-entry-load-perf-global-ctrl vmx-activity-hlt vmx-ins-outs",
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};
