//! QEMU 7.2's Intel Core models from Nehalem to Skylake-Client, with their versions.
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! space-separated QEMU names in QEMU's word and bit order, CPUID features and feature-MSR
//! features apart; checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::{ModelDef, Prop, VendorId, VersionDef};
use crate::features::FeatureWord as W;

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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni ssse3 cx16 sse4.1 sse4.2 popcnt syscall nx lm lahf-lm",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr3-load-noexit vmx-cr3-store-noexit \
                  vmx-cr8-load-exit vmx-cr8-store-exit vmx-flexpriority vmx-vnmi-pending \
                  vmx-movdr-exit vmx-io-exit vmx-io-bitmap vmx-mtf vmx-msr-bitmap \
                  vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls vmx-apicv-xapic vmx-ept \
                  vmx-desc-exit vmx-rdtscp-exit vmx-apicv-x2apic vmx-vpid vmx-wbinvd-exit \
                  vmx-intr-exit vmx-nmi-exit vmx-vnmi vmx-preemption-timer \
                  vmx-exit-nosave-debugctl vmx-exit-load-perf-global-ctrl vmx-exit-ack-intr \
                  vmx-exit-save-pat vmx-exit-load-pat vmx-exit-save-efer vmx-exit-load-efer \
                  vmx-exit-save-preemption-timer vmx-entry-noload-debugctl vmx-entry-ia32e-mode \
                  vmx-entry-load-perf-global-ctrl vmx-entry-load-pat vmx-entry-load-efer \
                  vmx-activity-hlt vmx-ept-execonly vmx-page-walk-4 vmx-ept-2mb vmx-ept-1gb \
                  vmx-invept vmx-invept-single-context vmx-invept-all-context vmx-invvpid \
                  vmx-invvpid-single-addr vmx-invvpid-all-context \
                  vmx-invept-single-context-noglobals vmx-ins-outs vmx-true-ctls",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Nehalem-IBRS"),
            None,
            &[
                Prop::On("spec-ctrl"),
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 cx16 sse4.1 sse4.2 popcnt aes syscall nx lm \
              lahf-lm arat",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr3-load-noexit vmx-cr3-store-noexit \
                  vmx-cr8-load-exit vmx-cr8-store-exit vmx-flexpriority vmx-vnmi-pending \
                  vmx-movdr-exit vmx-io-exit vmx-io-bitmap vmx-mtf vmx-msr-bitmap \
                  vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls vmx-apicv-xapic vmx-ept \
                  vmx-desc-exit vmx-rdtscp-exit vmx-apicv-x2apic vmx-vpid vmx-wbinvd-exit \
                  vmx-unrestricted-guest vmx-intr-exit vmx-nmi-exit vmx-vnmi \
                  vmx-preemption-timer vmx-exit-nosave-debugctl vmx-exit-load-perf-global-ctrl \
                  vmx-exit-ack-intr vmx-exit-save-pat vmx-exit-load-pat vmx-exit-save-efer \
                  vmx-exit-load-efer vmx-exit-save-preemption-timer vmx-entry-noload-debugctl \
                  vmx-entry-ia32e-mode vmx-entry-load-perf-global-ctrl vmx-entry-load-pat \
                  vmx-entry-load-efer vmx-store-lma vmx-activity-hlt vmx-ept-execonly \
                  vmx-page-walk-4 vmx-ept-2mb vmx-ept-1gb vmx-invept vmx-invept-single-context \
                  vmx-invept-all-context vmx-invvpid vmx-invvpid-single-addr \
                  vmx-invvpid-all-context vmx-invept-single-context-noglobals vmx-ins-outs \
                  vmx-true-ctls",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Westmere-IBRS"),
            None,
            &[
                Prop::On("spec-ctrl"),
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 cx16 sse4.1 sse4.2 x2apic popcnt \
              tsc-deadline aes xsave avx syscall nx rdtscp lm lahf-lm xsaveopt arat",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr3-load-noexit vmx-cr3-store-noexit \
                  vmx-cr8-load-exit vmx-cr8-store-exit vmx-flexpriority vmx-vnmi-pending \
                  vmx-movdr-exit vmx-io-exit vmx-io-bitmap vmx-mtf vmx-msr-bitmap \
                  vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls vmx-apicv-xapic vmx-ept \
                  vmx-desc-exit vmx-rdtscp-exit vmx-apicv-x2apic vmx-vpid vmx-wbinvd-exit \
                  vmx-unrestricted-guest vmx-intr-exit vmx-nmi-exit vmx-vnmi \
                  vmx-preemption-timer vmx-exit-nosave-debugctl vmx-exit-load-perf-global-ctrl \
                  vmx-exit-ack-intr vmx-exit-save-pat vmx-exit-load-pat vmx-exit-save-efer \
                  vmx-exit-load-efer vmx-exit-save-preemption-timer vmx-entry-noload-debugctl \
                  vmx-entry-ia32e-mode vmx-entry-load-perf-global-ctrl vmx-entry-load-pat \
                  vmx-entry-load-efer vmx-store-lma vmx-activity-hlt vmx-ept-execonly \
                  vmx-page-walk-4 vmx-ept-2mb vmx-ept-1gb vmx-invept vmx-invept-single-context \
                  vmx-invept-all-context vmx-invvpid vmx-invvpid-single-addr \
                  vmx-invvpid-all-context vmx-invept-single-context-noglobals vmx-ins-outs \
                  vmx-true-ctls",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("SandyBridge-IBRS"),
            None,
            &[
                Prop::On("spec-ctrl"),
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 cx16 sse4.1 sse4.2 x2apic popcnt \
              tsc-deadline aes xsave avx f16c rdrand fsgsbase smep erms syscall nx rdtscp lm \
              lahf-lm xsaveopt arat",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr3-load-noexit vmx-cr3-store-noexit \
                  vmx-cr8-load-exit vmx-cr8-store-exit vmx-flexpriority vmx-vnmi-pending \
                  vmx-movdr-exit vmx-io-exit vmx-io-bitmap vmx-mtf vmx-msr-bitmap \
                  vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls vmx-apicv-xapic vmx-ept \
                  vmx-desc-exit vmx-rdtscp-exit vmx-apicv-x2apic vmx-vpid vmx-wbinvd-exit \
                  vmx-unrestricted-guest vmx-apicv-register vmx-apicv-vid vmx-rdrand-exit \
                  vmx-intr-exit vmx-nmi-exit vmx-vnmi vmx-preemption-timer vmx-posted-intr \
                  vmx-exit-nosave-debugctl vmx-exit-load-perf-global-ctrl vmx-exit-ack-intr \
                  vmx-exit-save-pat vmx-exit-load-pat vmx-exit-save-efer vmx-exit-load-efer \
                  vmx-exit-save-preemption-timer vmx-entry-noload-debugctl vmx-entry-ia32e-mode \
                  vmx-entry-load-perf-global-ctrl vmx-entry-load-pat vmx-entry-load-efer \
                  vmx-store-lma vmx-activity-hlt vmx-ept-execonly vmx-page-walk-4 vmx-ept-2mb \
                  vmx-ept-1gb vmx-invept vmx-invept-single-context vmx-invept-all-context \
                  vmx-invvpid vmx-invvpid-single-addr vmx-invvpid-all-context \
                  vmx-invept-single-context-noglobals vmx-ins-outs vmx-true-ctls",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("IvyBridge-IBRS"),
            None,
            &[
                Prop::On("spec-ctrl"),
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 fma cx16 pcid sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave avx f16c rdrand fsgsbase bmi1 hle avx2 smep bmi2 \
              erms invpcid rtm syscall nx rdtscp lm lahf-lm abm xsaveopt arat",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr3-load-noexit vmx-cr3-store-noexit \
                  vmx-cr8-load-exit vmx-cr8-store-exit vmx-flexpriority vmx-vnmi-pending \
                  vmx-movdr-exit vmx-io-exit vmx-io-bitmap vmx-mtf vmx-msr-bitmap \
                  vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls vmx-apicv-xapic vmx-ept \
                  vmx-desc-exit vmx-rdtscp-exit vmx-apicv-x2apic vmx-vpid vmx-wbinvd-exit \
                  vmx-unrestricted-guest vmx-apicv-register vmx-apicv-vid vmx-rdrand-exit \
                  vmx-invpcid-exit vmx-vmfunc vmx-shadow-vmcs vmx-intr-exit vmx-nmi-exit \
                  vmx-vnmi vmx-preemption-timer vmx-posted-intr vmx-exit-nosave-debugctl \
                  vmx-exit-load-perf-global-ctrl vmx-exit-ack-intr vmx-exit-save-pat \
                  vmx-exit-load-pat vmx-exit-save-efer vmx-exit-load-efer \
                  vmx-exit-save-preemption-timer vmx-entry-noload-debugctl vmx-entry-ia32e-mode \
                  vmx-entry-load-perf-global-ctrl vmx-entry-load-pat vmx-entry-load-efer \
                  vmx-store-lma vmx-activity-hlt vmx-vmwrite-vmexit-fields vmx-ept-execonly \
                  vmx-page-walk-4 vmx-ept-2mb vmx-ept-1gb vmx-invept vmx-eptad \
                  vmx-invept-single-context vmx-invept-all-context vmx-invvpid \
                  vmx-invvpid-single-addr vmx-invvpid-all-context \
                  vmx-invept-single-context-noglobals vmx-ins-outs vmx-true-ctls \
                  vmx-eptp-switching",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Haswell-noTSX"),
            None,
            &[
                Prop::Off("hle"),
                Prop::Off("rtm"),
                Prop::Stepping(1),
                Prop::ModelId("Intel Core Processor (Haswell, no TSX)"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Haswell-IBRS"),
            None,
            &[
                Prop::On("hle"),
                Prop::On("rtm"),
                Prop::Stepping(4),
                Prop::On("spec-ctrl"),
                Prop::ModelId("Intel Core Processor (Haswell, IBRS)"),
            ],
        ),
        VersionDef::new(
            4,
            Some("Haswell-noTSX-IBRS"),
            None,
            &[
                Prop::Off("hle"),
                Prop::Off("rtm"),
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 fma cx16 pcid sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave avx f16c rdrand fsgsbase bmi1 hle avx2 smep bmi2 \
              erms invpcid rtm rdseed adx smap syscall nx rdtscp lm lahf-lm abm 3dnowprefetch \
              xsaveopt arat",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr3-load-noexit vmx-cr3-store-noexit \
                  vmx-cr8-load-exit vmx-cr8-store-exit vmx-flexpriority vmx-vnmi-pending \
                  vmx-movdr-exit vmx-io-exit vmx-io-bitmap vmx-mtf vmx-msr-bitmap \
                  vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls vmx-apicv-xapic vmx-ept \
                  vmx-desc-exit vmx-rdtscp-exit vmx-apicv-x2apic vmx-vpid vmx-wbinvd-exit \
                  vmx-unrestricted-guest vmx-apicv-register vmx-apicv-vid vmx-rdrand-exit \
                  vmx-invpcid-exit vmx-vmfunc vmx-shadow-vmcs vmx-rdseed-exit vmx-pml \
                  vmx-intr-exit vmx-nmi-exit vmx-vnmi vmx-preemption-timer vmx-posted-intr \
                  vmx-exit-nosave-debugctl vmx-exit-load-perf-global-ctrl vmx-exit-ack-intr \
                  vmx-exit-save-pat vmx-exit-load-pat vmx-exit-save-efer vmx-exit-load-efer \
                  vmx-exit-save-preemption-timer vmx-entry-noload-debugctl vmx-entry-ia32e-mode \
                  vmx-entry-load-perf-global-ctrl vmx-entry-load-pat vmx-entry-load-efer \
                  vmx-store-lma vmx-activity-hlt vmx-vmwrite-vmexit-fields vmx-ept-execonly \
                  vmx-page-walk-4 vmx-ept-2mb vmx-ept-1gb vmx-invept vmx-eptad \
                  vmx-invept-single-context vmx-invept-all-context vmx-invvpid \
                  vmx-invvpid-single-addr vmx-invvpid-all-context \
                  vmx-invept-single-context-noglobals vmx-ins-outs vmx-true-ctls \
                  vmx-eptp-switching",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Broadwell-noTSX"),
            None,
            &[
                Prop::Off("hle"),
                Prop::Off("rtm"),
                Prop::ModelId("Intel Core Processor (Broadwell, no TSX)"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Broadwell-IBRS"),
            None,
            &[
                Prop::On("hle"),
                Prop::On("rtm"),
                Prop::On("spec-ctrl"),
                Prop::ModelId("Intel Core Processor (Broadwell, IBRS)"),
            ],
        ),
        VersionDef::new(
            4,
            Some("Broadwell-noTSX-IBRS"),
            None,
            &[
                Prop::Off("hle"),
                Prop::Off("rtm"),
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 fma cx16 pcid sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave avx f16c rdrand fsgsbase bmi1 hle avx2 smep bmi2 \
              erms invpcid rtm rdseed adx smap syscall nx rdtscp lm lahf-lm abm 3dnowprefetch \
              xsaveopt xsavec xgetbv1 arat",
    msr_features: "vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
                  vmx-rdpmc-exit vmx-rdtsc-exit vmx-cr3-load-noexit vmx-cr3-store-noexit \
                  vmx-cr8-load-exit vmx-cr8-store-exit vmx-flexpriority vmx-vnmi-pending \
                  vmx-movdr-exit vmx-io-exit vmx-io-bitmap vmx-mtf vmx-msr-bitmap \
                  vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls vmx-apicv-xapic vmx-ept \
                  vmx-desc-exit vmx-rdtscp-exit vmx-vpid vmx-wbinvd-exit vmx-unrestricted-guest \
                  vmx-rdrand-exit vmx-invpcid-exit vmx-vmfunc vmx-shadow-vmcs vmx-rdseed-exit \
                  vmx-pml vmx-intr-exit vmx-nmi-exit vmx-vnmi vmx-preemption-timer \
                  vmx-exit-nosave-debugctl vmx-exit-load-perf-global-ctrl vmx-exit-ack-intr \
                  vmx-exit-save-pat vmx-exit-load-pat vmx-exit-save-efer vmx-exit-load-efer \
                  vmx-exit-save-preemption-timer vmx-entry-noload-debugctl vmx-entry-ia32e-mode \
                  vmx-entry-load-perf-global-ctrl vmx-entry-load-pat vmx-entry-load-efer \
                  vmx-store-lma vmx-activity-hlt vmx-vmwrite-vmexit-fields vmx-ept-execonly \
                  vmx-page-walk-4 vmx-ept-2mb vmx-ept-1gb vmx-invept vmx-eptad \
                  vmx-invept-single-context vmx-invept-all-context vmx-invvpid \
                  vmx-invvpid-single-addr vmx-invvpid-all-context \
                  vmx-invept-single-context-noglobals vmx-ins-outs vmx-true-ctls \
                  vmx-eptp-switching",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Skylake-Client-IBRS"),
            None,
            &[
                Prop::On("spec-ctrl"),
                Prop::ModelId("Intel Core Processor (Skylake, IBRS)"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Skylake-Client-noTSX-IBRS"),
            None,
            &[
                Prop::Off("hle"),
                Prop::Off("rtm"),
                Prop::ModelId("Intel Core Processor (Skylake, IBRS, no TSX)"),
            ],
        ),
        VersionDef::new(
            4,
            None,
            Some("IBRS, XSAVES, no TSX"),
            &[Prop::On("xsaves"), Prop::On("vmx-xsaves")],
        ),
    ],
};
