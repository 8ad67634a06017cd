//! QEMU 7.2's Icelake-Server and the Atom/Xeon Phi server models (Denverton, Snowridge,
//! KnightsMill).
//!
//! Data transcribed from `builtin_x86_defs[]` in QEMU 7.2 target/i386/cpu.c: features as
//! space-separated QEMU names in QEMU's word and bit order, CPUID features and feature-MSR
//! features apart; checked against QEMU's own expansion by tests/cpu_models_qemu.rs.

use super::{ModelDef, Prop, VendorId, VersionDef};
use crate::features::FeatureWord as W;

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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq ssse3 fma cx16 pcid sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave avx f16c rdrand fsgsbase bmi1 hle avx2 smep bmi2 \
              erms invpcid rtm avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd \
              avx512bw avx512vl avx512vbmi umip pku avx512vbmi2 gfni vaes vpclmulqdq avx512vnni \
              avx512bitalg avx512-vpopcntdq la57 spec-ctrl ssbd syscall nx pdpe1gb rdtscp lm \
              lahf-lm abm 3dnowprefetch wbnoinvd xsaveopt xsavec xgetbv1 arat",
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
                  vmx-invept-single-context-noglobals vmx-ins-outs vmx-true-ctls",
    unnamed_bits: &[(W::VmxEptVpidCaps, 14)],
    cache_info: None,
    versions: &[
        VersionDef::new(1, None, None, &[]),
        VersionDef::new(
            2,
            Some("Icelake-Server-noTSX"),
            Some("no TSX"),
            &[Prop::Off("hle"), Prop::Off("rtm")],
        ),
        VersionDef::new(
            3,
            None,
            None,
            &[
                Prop::On("arch-capabilities"),
                Prop::On("rdctl-no"),
                Prop::On("ibrs-all"),
                Prop::On("skip-l1dfl-vmentry"),
                Prop::On("mds-no"),
                Prop::On("pschange-mc-no"),
                Prop::On("taa-no"),
            ],
        ),
        VersionDef::new(
            4,
            None,
            None,
            &[
                Prop::On("sha-ni"),
                Prop::On("avx512ifma"),
                Prop::On("rdpid"),
                Prop::On("fsrm"),
                Prop::On("vmx-rdseed-exit"),
                Prop::On("vmx-pml"),
                Prop::On("vmx-eptp-switching"),
                Prop::Model(106),
            ],
        ),
        VersionDef::new(
            5,
            None,
            Some("XSAVES"),
            &[Prop::On("xsaves"), Prop::On("vmx-xsaves")],
        ),
        VersionDef::new(6, None, Some("5-level EPT"), &[Prop::On("vmx-page-walk-5")]),
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq monitor ssse3 cx16 sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave rdrand fsgsbase smep erms mpx rdseed smap \
              clflushopt sha-ni spec-ctrl arch-capabilities ssbd syscall nx pdpe1gb rdtscp lm \
              lahf-lm 3dnowprefetch xsaveopt xsavec xgetbv1 arat",
    msr_features: "rdctl-no skip-l1dfl-vmentry vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit \
                  vmx-invlpg-exit vmx-mwait-exit vmx-rdpmc-exit vmx-rdtsc-exit \
                  vmx-cr3-load-noexit vmx-cr3-store-noexit vmx-cr8-load-exit vmx-cr8-store-exit \
                  vmx-flexpriority vmx-vnmi-pending vmx-movdr-exit vmx-io-exit vmx-io-bitmap \
                  vmx-mtf vmx-msr-bitmap vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls \
                  vmx-apicv-xapic vmx-ept vmx-desc-exit vmx-rdtscp-exit vmx-apicv-x2apic \
                  vmx-vpid vmx-wbinvd-exit vmx-unrestricted-guest vmx-apicv-register \
                  vmx-apicv-vid vmx-rdrand-exit vmx-invpcid-exit vmx-vmfunc vmx-shadow-vmcs \
                  vmx-rdseed-exit vmx-pml vmx-intr-exit vmx-nmi-exit vmx-vnmi \
                  vmx-preemption-timer vmx-posted-intr vmx-exit-nosave-debugctl \
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
            None,
            Some("no MPX, no MONITOR"),
            &[Prop::Off("monitor"), Prop::Off("mpx")],
        ),
        VersionDef::new(
            3,
            None,
            Some("XSAVES, no MPX, no MONITOR"),
            &[Prop::On("xsaves"), Prop::On("vmx-xsaves")],
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 pni pclmulqdq monitor ssse3 cx16 sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave rdrand fsgsbase smep erms mpx rdseed smap \
              clflushopt clwb sha-ni umip gfni cldemote movdiri movdir64b spec-ctrl \
              arch-capabilities core-capability ssbd syscall nx pdpe1gb rdtscp lm lahf-lm \
              3dnowprefetch xsaveopt xsavec xgetbv1 arat",
    msr_features: "split-lock-detect vmx-vintr-pending vmx-tsc-offset vmx-hlt-exit \
                  vmx-invlpg-exit vmx-mwait-exit vmx-rdpmc-exit vmx-rdtsc-exit \
                  vmx-cr3-load-noexit vmx-cr3-store-noexit vmx-cr8-load-exit vmx-cr8-store-exit \
                  vmx-flexpriority vmx-vnmi-pending vmx-movdr-exit vmx-io-exit vmx-io-bitmap \
                  vmx-mtf vmx-msr-bitmap vmx-monitor-exit vmx-pause-exit vmx-secondary-ctls \
                  vmx-apicv-xapic vmx-ept vmx-desc-exit vmx-rdtscp-exit vmx-apicv-x2apic \
                  vmx-vpid vmx-wbinvd-exit vmx-unrestricted-guest vmx-apicv-register \
                  vmx-apicv-vid vmx-rdrand-exit vmx-invpcid-exit vmx-vmfunc vmx-shadow-vmcs \
                  vmx-rdseed-exit vmx-pml vmx-intr-exit vmx-nmi-exit vmx-vnmi \
                  vmx-preemption-timer vmx-posted-intr vmx-exit-nosave-debugctl \
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
            None,
            None,
            &[
                Prop::Off("mpx"),
                Prop::ModelId("Intel Atom Processor (Snowridge, no MPX)"),
            ],
        ),
        VersionDef::new(
            3,
            None,
            Some("XSAVES, no MPX"),
            &[Prop::On("xsaves"), Prop::On("vmx-xsaves")],
        ),
        VersionDef::new(
            4,
            None,
            Some("no split lock detect, no core-capability"),
            &[Prop::Off("split-lock-detect"), Prop::Off("core-capability")],
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
    features: "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
              mmx fxsr sse sse2 ss pni pclmulqdq ssse3 fma cx16 sse4.1 sse4.2 x2apic movbe \
              popcnt tsc-deadline aes xsave avx f16c rdrand fsgsbase bmi1 avx2 smep bmi2 erms \
              avx512f rdseed adx avx512pf avx512er avx512cd avx512-vpopcntdq avx512-4vnniw \
              avx512-4fmaps syscall nx pdpe1gb rdtscp lm lahf-lm abm 3dnowprefetch xsaveopt \
              arat",
    msr_features: "",
    unnamed_bits: &[],
    cache_info: None,
    versions: &[],
};
