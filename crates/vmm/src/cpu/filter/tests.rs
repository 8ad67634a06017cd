//! Unit tests for the host filter, against a synthetic host.

use super::testing::host;
use super::*;

fn set(names: &[&str]) -> FeatureSet {
    let mut s = FeatureSet::new();
    for n in names {
        assert!(s.set_named(n, true), "{n}");
    }
    s
}

#[test]
fn kvm_fixups_follow_qemu() {
    let mut h = host();
    let ecx = h.supported_word(FeatureWord::Cpuid1Ecx);
    assert_ne!(
        ecx & CPUID_1_ECX_HYPERVISOR,
        0,
        "hypervisor is always allowed"
    );
    assert_ne!(
        ecx & CPUID_1_ECX_TSC_DEADLINE,
        0,
        "tsc-deadline from the capability"
    );
    assert_ne!(ecx & CPUID_1_ECX_X2APIC, 0);
    assert_eq!(h.supported_word(FeatureWord::Cpuid6Eax), CPUID_6_EAX_ARAT);
    assert_eq!(h.supported_word(FeatureWord::KvmHints), 1);
    // 80000001H:EDX gains the 01H:EDX bits AMD mirrors (fpu, ..., fxsr).
    let ext = h.supported_word(FeatureWord::Cpuid8000_0001Edx);
    assert_eq!(ext & AMD_ALIASES, 0x078b_fbff & AMD_ALIASES);
    assert_ne!(
        h.supported_word(FeatureWord::Cpuid8000_0001Ecx) & CPUID_8000_0001_ECX_TOPOEXT,
        0
    );
    h.irqchip_in_kernel = false;
    let ecx = h.supported_word(FeatureWord::Cpuid1Ecx);
    assert_eq!(ecx & (CPUID_1_ECX_X2APIC | CPUID_1_ECX_TSC_DEADLINE), 0);
    assert_eq!(
        h.supported_word(FeatureWord::Kvm) & KVM_FEATURE_PV_UNHALT,
        0
    );
    h.has_msr_arch_capabilities = false;
    assert_eq!(h.supported_word(FeatureWord::Cpuid7_0Edx), 0);
    h.xcomp_guest_supp = Some(0x6_0000_00e7);
    assert_eq!(h.supported_word(FeatureWord::XsaveXcr0Lo), 0xe7);
    assert_eq!(h.supported_word(FeatureWord::XsaveXcr0Hi), 0x6);
}

#[test]
fn vmx_controls_report_may_be_one_bits() {
    let mut h = host();
    h.msr_features
        .insert(0x48E, (0xfff6_9dfe_u64 << 32) | 0x0401_e172);
    assert_eq!(h.supported_msr(0x48E), 0xfff6_9dfe & !0x0401_e172);
    h.msr_features.insert(0x485, 0x1234);
    assert_eq!(
        h.supported_msr(0x485),
        0x1234,
        "IA32_VMX_MISC is taken as is"
    );
    assert_eq!(
        h.supported_msr(0xCF),
        0,
        "an MSR KVM does not list supports nothing"
    );
}

#[test]
fn filter_keeps_drops_and_words_warnings_like_qemu() {
    let requested = set(&[
        "fpu", "sse4.2", "fma", "hle", "avx2", "rtm", "rdctl-no", "taa-no",
    ]);
    let r = filter(&requested, &host());
    assert_eq!(r.kept.names(), ["fpu", "sse4.2", "avx2", "rdctl-no"]);
    assert_eq!(r.dropped_names(), ["fma", "hle", "rtm", "taa-no"]);
    assert_eq!(
        r.warnings,
        [
            "host doesn't support requested feature: CPUID.01H:ECX.fma [bit 12]",
            "host doesn't support requested feature: CPUID.07H:EBX.hle [bit 4]",
            "host doesn't support requested feature: CPUID.07H:EBX.rtm [bit 11]",
            "host doesn't support requested feature: MSR(10AH).taa-no [bit 8]",
        ]
    );
}

#[test]
fn unnamed_bits_warn_without_a_name() {
    assert_eq!(
        warning_line(HOST_WARNING_PREFIX, FeatureWord::VmxEptVpidCaps, 14),
        "host doesn't support requested feature: MSR(48CH) [bit 14]"
    );
    let mut s = FeatureSet::new();
    s.insert(FeatureWord::VmxEptVpidCaps, 1 << 14);
    assert_eq!(filter(&s, &host()).dropped_names(), ["MSR(48CH)[14]"]);
}

#[test]
fn intel_pt_needs_qemu_minimum_capabilities() {
    let r = filter(&set(&["intel-pt"]), &host());
    assert_eq!(r.dropped_names(), ["intel-pt"]);
    assert_eq!(
        r.warnings,
        ["host doesn't support requested feature: CPUID.07H:EBX.intel-pt [bit 25]"]
    );
}

#[test]
fn check_modes() {
    let r = filter(&set(&["hle"]), &host());
    assert_eq!(apply_check(Check::None, &r), Ok(vec![]));
    assert_eq!(apply_check(Check::Warn, &r).unwrap().len(), 1);
    let err = apply_check(Check::Enforce, &r).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--cpu: enforce: host doesn't support requested features: hle"
    );
    let ok = filter(&set(&["fpu"]), &host());
    assert_eq!(apply_check(Check::Enforce, &ok), Ok(vec![]));
    assert!(
        tsx_broken(true, 6, 63, 2) && !tsx_broken(true, 6, 63, 4) && !tsx_broken(false, 6, 60, 1)
    );
}

#[test]
fn dependency_drops_count_for_enforce() {
    use crate::cpu::models::expand::{expand, Accel, CpuRequest};
    use crate::cpu::models::DefaultVersion;
    let changes = vec![("vmx-ept".to_string(), true)];
    let req = CpuRequest {
        model: "qemu64",
        changes: &changes,
        pmu: None,
        default_version: DefaultVersion::V1,
        dies: 1,
    };
    let cpu = expand(&req, Accel::Tcg).unwrap();
    let r = filter_cpu(&cpu, &host());
    // qemu64 under TCG defaults keeps svm, which the synthetic host lacks.
    assert_eq!(r.dropped_names(), ["svm", "vmx-ept"]);
    assert_eq!(
        r.warnings,
        ["host doesn't support requested feature: CPUID.80000001H:ECX.svm [bit 2]"]
    );
    assert_eq!(
        apply_check(Check::Enforce, &r).unwrap_err().to_string(),
        "--cpu: enforce: host doesn't support requested features: svm, vmx-ept"
    );
    assert!(HostCpuSupport::default().irqchip_in_kernel);
}
