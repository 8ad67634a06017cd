//! Unit tests for QEMU's fixups of what KVM reports, against a synthetic host.

use super::testing::host;
use super::*;

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
