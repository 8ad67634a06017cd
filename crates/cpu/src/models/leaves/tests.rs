//! Unit tests for the model CPUID leaves and the version/brand encoders.

use super::*;
use crate::models::expand::{expand, Accel, CpuRequest};
use crate::models::DefaultVersion;
use crate::support::testing::host;

fn cpu(model: &str, pmu: Option<bool>) -> ExpandedCpu {
    let req = CpuRequest {
        model,
        changes: &[],
        pmu,
        default_version: DefaultVersion::V1,
        dies: 1,
    };
    expand(&req, Accel::Tcg).unwrap()
}

fn find(entries: &[CpuidEntry], function: u32, index: u32) -> CpuidEntry {
    *entries
        .iter()
        .find(|e| e.function == function && e.index == index)
        .unwrap_or_else(|| panic!("leaf {function:#x}.{index} missing"))
}

#[test]
fn version_encoding_follows_the_sdm() {
    assert_eq!(encode_version(6, 60, 4), 0x0003_06c4); // Haswell
    assert_eq!(encode_version(23, 49, 0), 0x0083_0f10); // EPYC-Rome: family 0FH + 08H
    assert_eq!(encode_version(15, 107, 1), 0x0006_0fb1); // qemu64
    assert_eq!(decode_version(0x0083_0f10), (23, 49, 0));
    assert_eq!(decode_version(0x0003_06c4), (6, 60, 4));
}

#[test]
fn brand_string_is_nul_padded_little_endian() {
    let r = brand_regs("Intel Core Processor (Haswell)");
    assert_eq!(r[0], u32::from_le_bytes(*b"Inte"));
    assert_eq!(r[7], u32::from_le_bytes(*b"l)\0\0"));
    assert_eq!(&r[8..], &[0; 4]);
    let long = brand_regs(&"x".repeat(60));
    assert_eq!(long[11], u32::from_le_bytes(*b"xxxx"));
}

#[test]
fn haswell_leaves() {
    let c = cpu("Haswell", None);
    let e = model_leaves(&c, &c.features, &host());
    let l0 = find(&e, 0, 0);
    assert_eq!(
        (l0.eax, l0.ebx, l0.edx, l0.ecx),
        (0xd, 0x756e_6547, 0x4965_6e69, 0x6c65_746e)
    );
    let l1 = find(&e, 1, 0);
    assert_eq!(l1.eax, 0x0003_06c4);
    assert_eq!(
        l1.ebx, 0x800,
        "CLFLUSH line size 8 quadwords; topology fields are the builder's"
    );
    assert_eq!(l1.ecx, c.features.word(W::Cpuid1Ecx) as u32);
    assert_ne!(l1.ecx & (1 << 31), 0, "hypervisor");
    let l7 = find(&e, 7, 0);
    assert_eq!(l7.flags, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
    assert_eq!(l7.ebx, c.features.word(W::Cpuid7_0Ebx) as u32);
    assert_eq!(
        find(&e, 0xA, 0),
        CpuidEntry {
            function: 0xA,
            ..Default::default()
        },
        "pmu=off"
    );
    let xsave = find(&e, 0xD, 0);
    assert_eq!(
        (xsave.eax, xsave.ecx),
        (0b111, 0x340),
        "x87|SSE|AVX; AVX area ends at 0x240 + 0x100"
    );
    let ext = find(&e, 0x8000_0001, 0);
    assert_eq!(ext.eax, 0x0003_06c4);
    assert_eq!(ext.edx & AMD_ALIASES as u32, 0, "Intel: no 01H:EDX mirror");
    assert_eq!(find(&e, 0x8000_0002, 0).eax, u32::from_le_bytes(*b"Inte"));
    assert_eq!(
        find(&e, 0x8000_0008, 0).eax,
        0x3028,
        "QEMU -M pc: 40 physical bits for a named model, 48 linear bits without LA57"
    );
    assert_eq!(
        find(&e, 5, 0).ecx,
        0b11,
        "MONITOR leaf: EMX and IBE, as QEMU"
    );
    assert!(
        e.iter().all(|x| !(x.function == 7 && x.index == 1)),
        "no 07H.1 while 07H.0:EAX (the last subleaf) is 0"
    );
    // Nothing above level 0DH or xlevel 80000008H.
    assert!(e
        .iter()
        .all(|x| x.function <= 0xd || x.function >= 0x4000_0000));
    assert!(e
        .iter()
        .filter(|x| x.function >= 0x8000_0000)
        .all(|x| x.function <= 0x8000_0008));
}

#[test]
fn pmu_on_passes_kvm_leaf_a_and_pdcm() {
    let mut c = cpu("Skylake-Server", Some(true));
    c.features.set_named("pdcm", true);
    let e = model_leaves(&c, &c.features, &host());
    assert_eq!(find(&e, 0xA, 0).eax, 0x0730_0402);
    assert_ne!(find(&e, 1, 0).ecx & CPUID_1_ECX_PDCM, 0);
    c.pmu = false;
    let e = model_leaves(&c, &c.features, &host());
    assert_eq!(
        find(&e, 1, 0).ecx & CPUID_1_ECX_PDCM,
        0,
        "pmu=off hides PDCM"
    );
    assert_eq!(find(&e, 0xA, 0).eax, 0);
}

#[test]
fn amd_mirrors_leaf_1_edx_and_reports_svm() {
    let c = cpu("EPYC", None);
    let e = model_leaves(&c, &c.features, &host());
    let l1 = find(&e, 1, 0);
    let ext = find(&e, 0x8000_0001, 0);
    assert_eq!(ext.edx & AMD_ALIASES as u32, l1.edx & AMD_ALIASES as u32);
    assert_eq!(l1.eax, 0x0080_0f12);
    let svm = find(&e, 0x8000_000A, 0);
    assert_eq!((svm.eax, svm.ebx), (1, 0x10));
    assert_eq!(svm.edx, c.features.word(W::Svm) as u32);
}
