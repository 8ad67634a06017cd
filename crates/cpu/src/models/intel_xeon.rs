//! QEMU 7.2's Intel Xeon models Skylake-Server, Cascadelake-Server and Cooperlake.
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! space-separated QEMU names in QEMU's word and bit order, CPUID features and feature-MSR
//! features apart; checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::{ModelDef, Prop, VendorId, VersionDef};
use crate::features::FeatureWord as W;

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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 fma cx16 pcid sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave avx f16c rdrand fsgsbase bmi1 hle avx2 smep bmi2 \
              erms invpcid rtm avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd \
              avx512bw avx512vl pku syscall nx pdpe1gb rdtscp lm lahf-lm abm 3dnowprefetch \
              xsaveopt xsavec xgetbv1 arat",
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
                  vmx-invept-single-context-noglobals vmx-ins-outs vmx-true-ctls",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Skylake-Server-IBRS"),
            None,
            &[
                Prop::Off("clflushopt"),
                Prop::On("spec-ctrl"),
                Prop::ModelId("Intel Xeon Processor (Skylake, IBRS)"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Skylake-Server-noTSX-IBRS"),
            None,
            &[
                Prop::Off("hle"),
                Prop::Off("rtm"),
                Prop::ModelId("Intel Xeon Processor (Skylake, IBRS, no TSX)"),
            ],
        ),
        VersionDef::new(
            4,
            None,
            Some("IBRS, EPT switching, no TSX"),
            &[Prop::On("vmx-eptp-switching")],
        ),
        VersionDef::new(
            5,
            None,
            Some("IBRS, XSAVES, EPT switching, no TSX"),
            &[Prop::On("xsaves"), Prop::On("vmx-xsaves")],
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 fma cx16 pcid sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave avx f16c rdrand fsgsbase bmi1 hle avx2 smep bmi2 \
              erms invpcid rtm avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd \
              avx512bw avx512vl pku avx512vnni spec-ctrl ssbd syscall nx pdpe1gb rdtscp lm \
              lahf-lm abm 3dnowprefetch xsaveopt xsavec xgetbv1 arat",
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
                  vmx-invept-single-context-noglobals vmx-ins-outs vmx-true-ctls",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            None,
            Some("ARCH_CAPABILITIES"),
            &[
                Prop::On("arch-capabilities"),
                Prop::On("rdctl-no"),
                Prop::On("ibrs-all"),
                Prop::On("skip-l1dfl-vmentry"),
                Prop::On("mds-no"),
            ],
        ),
        VersionDef::new(
            3,
            Some("Cascadelake-Server-noTSX"),
            Some("ARCH_CAPABILITIES, no TSX"),
            &[Prop::Off("hle"), Prop::Off("rtm")],
        ),
        VersionDef::new(
            4,
            None,
            Some("ARCH_CAPABILITIES, EPT switching, no TSX"),
            &[Prop::On("vmx-eptp-switching")],
        ),
        VersionDef::new(
            5,
            None,
            Some("ARCH_CAPABILITIES, EPT switching, XSAVES, no TSX"),
            &[Prop::On("xsaves"), Prop::On("vmx-xsaves")],
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 fma cx16 pcid sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave avx f16c rdrand fsgsbase bmi1 hle avx2 smep bmi2 \
              erms invpcid rtm avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd \
              avx512bw avx512vl pku avx512vnni spec-ctrl stibp arch-capabilities ssbd \
              avx512-bf16 syscall nx pdpe1gb rdtscp lm lahf-lm abm 3dnowprefetch xsaveopt \
              xsavec xgetbv1 arat",
    msr_features: "rdctl-no ibrs-all skip-l1dfl-vmentry mds-no pschange-mc-no taa-no \
                  vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit vmx-invlpg-exit vmx-mwait-exit \
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
            None,
            Some("XSAVES"),
            &[Prop::On("xsaves"), Prop::On("vmx-xsaves")],
        ),
    ],
};
