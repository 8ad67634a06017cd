//! Unit tests for model expansion (accelerator defaults, user changes, dependencies, levels).

use super::*;
use crate::cpuid::CpuidEntry;
use crate::support::testing::host;

fn identity() -> HostIdentity {
    HostIdentity {
        vendor: VendorId::INTEL,
        family: 6,
        model: 143,
        stepping: 8,
        model_id: "Intel(R) Xeon(R) Processor".to_string(),
    }
}

fn req<'a>(model: &'a str, changes: &'a [(String, bool)]) -> CpuRequest<'a> {
    CpuRequest {
        model,
        changes,
        pmu: None,
        default_version: DefaultVersion::V1,
        dies: 1,
    }
}

fn changes(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(n, on)| (n.to_string(), *on)).collect()
}

#[test]
fn tcg_expansion_of_haswell() {
    let cpu = expand(&req("Haswell", &[]), Accel::Tcg).unwrap();
    assert_eq!(cpu.versioned_name.as_deref(), Some("Haswell-v1"));
    assert_eq!(cpu.vendor, VendorId::INTEL);
    assert_eq!(
        (cpu.level, cpu.xlevel, cpu.xlevel2, cpu.level_func7),
        (0xd, 0x8000_0008, 0, 0)
    );
    let f = &cpu.features;
    assert_eq!(
        f.has_named("vme"),
        Some(false),
        "tcg_default_props turn vme off"
    );
    assert_eq!(f.has_named("hypervisor"), Some(true));
    assert_eq!(f.has_named("hle"), Some(true));
    // No vmx in CPUID.01H:ECX, so every VMX capability bit is pruned.
    assert_eq!(f.has_named("vmx-ept"), Some(false));
    assert_eq!(f.word(FeatureWord::VmxEptVpidCaps), 0);
    // XCR0: x87, SSE, AVX.
    assert_eq!(f.word(FeatureWord::XsaveXcr0Lo), 0b111);
    assert!(!cpu.pmu);
}

#[test]
fn kvm_defaults_and_host_vendor_apply_to_builtin_models() {
    let h = host();
    let id = identity();
    let cpu = expand(
        &req("EPYC", &[]),
        Accel::Kvm {
            host: &h,
            identity: &id,
        },
    )
    .unwrap();
    assert_eq!(
        cpu.vendor,
        VendorId::INTEL,
        "QEMU gives named models the host's vendor under KVM"
    );
    assert_eq!((cpu.family, cpu.model), (23, 1));
    let f = &cpu.features;
    for (name, on) in [
        ("kvmclock", true),
        ("kvm-pv-eoi", true),
        ("x2apic", true),
        ("svm", false),
        ("monitor", false),
    ] {
        assert_eq!(f.has_named(name), Some(on), "{name}");
    }
    assert_eq!(f.has_named("npt"), Some(false), "npt depends on svm");
    assert_eq!(cpu.xlevel, 0x8000_001e);
}

#[test]
fn user_changes_apply_in_order_and_count_as_user_features() {
    let c = changes(&[
        ("x2apic", true),
        ("avx512-bf16", true),
        ("x2apic", false),
        ("hle", false),
    ]);
    let cpu = expand(&req("Haswell-v4", &c), Accel::Tcg).unwrap();
    assert_eq!(cpu.features.has_named("x2apic"), Some(false));
    assert_eq!(cpu.features.has_named("hle"), Some(false));
    assert_eq!(
        cpu.level_func7, 1,
        "CPUID.(7,1):EAX in use raises the leaf-7 subleaf count"
    );
    assert_eq!(cpu.user_features.has_named("hle"), Some(true));
    assert_eq!(cpu.stepping, 1);
}

#[test]
fn dependencies_drop_and_warn_only_for_user_bits() {
    let c = changes(&[("vmx-ept", true), ("vmx-vpid", true)]);
    let cpu = expand(&req("Haswell", &c), Accel::Tcg).unwrap();
    assert_eq!(cpu.features.has_named("vmx-ept"), Some(false));
    assert_eq!(
        cpu.dependency_warnings,
        [
            "This feature depends on other features that were not requested: MSR(48BH).vmx-ept [bit 1]",
            "This feature depends on other features that were not requested: MSR(48BH).vmx-vpid [bit 5]",
        ]
    );
    let with_vmx = changes(&[("vmx", true)]);
    let cpu = expand(&req("Haswell", &with_vmx), Accel::Tcg).unwrap();
    assert_eq!(cpu.features.has_named("vmx-ept"), Some(true));
    assert!(cpu.dependency_warnings.is_empty());
}

#[test]
fn automatic_levels() {
    let c = changes(&[("svm", true)]);
    let cpu = expand(&req("qemu32", &c), Accel::Tcg).unwrap();
    assert_eq!(cpu.xlevel, 0x8000_000A);
    let c = changes(&[("intel-pt", true)]);
    assert_eq!(expand(&req("Haswell", &c), Accel::Tcg).unwrap().level, 0x14);
    let mut r = req("Haswell", &[]);
    r.dies = 2;
    assert_eq!(expand(&r, Accel::Tcg).unwrap().level, 0x1F);
    let mut r = req("EPYC", &[]);
    r.dies = 2;
    assert_eq!(
        expand(&r, Accel::Tcg).unwrap().level,
        0xd,
        "AMD keeps its level with dies"
    );
}

#[test]
fn host_takes_everything_kvm_offers() {
    let h = host();
    let id = identity();
    let c = changes(&[("avx2", false)]);
    let cpu = expand(
        &req("host", &c),
        Accel::Kvm {
            host: &h,
            identity: &id,
        },
    )
    .unwrap();
    assert_eq!(cpu.model_id, "Intel(R) Xeon(R) Processor");
    assert_eq!((cpu.family, cpu.model, cpu.stepping), (6, 143, 8));
    assert_eq!((cpu.level, cpu.xlevel), (0xd, 0x8000_0008));
    assert!(cpu.pmu);
    let f = &cpu.features;
    assert_eq!(f.has_named("avx"), Some(true));
    assert_eq!(f.has_named("avx2"), Some(false), "the user's -avx2 wins");
    assert_eq!(f.has_named("rdctl-no"), Some(true));
    assert_eq!(f.has_named("topoext"), Some(false), "never auto-enabled");
    assert_eq!(f.has_named("kvm-hint-dedicated"), Some(false));
    assert_eq!(
        expand(&req("max", &[]), Accel::Tcg),
        Err(ExpandError::NeedsKvm("max".into()))
    );
}

#[test]
fn errors_name_the_bad_value() {
    assert_eq!(
        expand(&req("Haswel", &[]), Accel::Tcg)
            .unwrap_err()
            .to_string(),
        "--cpu: unknown CPU model 'Haswel'"
    );
    let c = changes(&[("avx3", true)]);
    assert_eq!(
        expand(&req("Haswell", &c), Accel::Tcg)
            .unwrap_err()
            .to_string(),
        "--cpu: unknown CPU feature 'avx3'"
    );
}

#[test]
fn host_identity_from_cpuid() {
    let brand = super::super::leaves::brand_regs("Intel(R) Xeon(R) Processor");
    let mut entries = vec![
        CpuidEntry {
            function: 0,
            eax: 0x1b,
            ebx: 0x756e_6547,
            edx: 0x4965_6e69,
            ecx: 0x6c65_746e,
            ..Default::default()
        },
        CpuidEntry {
            function: 1,
            eax: 0x000806f8,
            ..Default::default()
        },
    ];
    for (i, leaf) in (0x8000_0002..=0x8000_0004u32).enumerate() {
        let r = &brand[4 * i..4 * i + 4];
        entries.push(CpuidEntry {
            function: leaf,
            eax: r[0],
            ebx: r[1],
            ecx: r[2],
            edx: r[3],
            ..Default::default()
        });
    }
    assert_eq!(HostIdentity::from_cpuid(&entries), Some(identity()));
}

#[test]
fn migratable_masks_are_the_named_bits() {
    use crate::features::name_of;
    for word in FeatureWord::all() {
        let named = (0..64u8)
            .filter(|&b| name_of(word, b).is_some())
            .fold(0u64, |r, b| r | 1u64 << b);
        let expected = match word {
            W::Cpuid8000_0007Edx => named & !(1 << 8),
            W::XsaveXcr0Lo => 0b11 | (1 << 2) | (0b11 << 3) | (0b111 << 5) | (1 << 9),
            _ => named,
        };
        assert_eq!(migratable(word), expected, "{word:?}");
    }
    assert_eq!(
        migratable(W::Cpuid8000_0007Edx) & (1 << 8),
        0,
        "invtsc is not migratable"
    );
    assert_eq!(migratable(W::Cpuid1Edx) & 1, 1, "fpu is");
}
