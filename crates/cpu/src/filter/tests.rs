//! Unit tests for the host filter, against a synthetic host.

use super::*;
use crate::support::testing::host;

fn set(names: &[&str]) -> FeatureSet {
    let mut s = FeatureSet::new();
    for n in names {
        assert!(s.set_named(n, true), "{n}");
    }
    s
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
    use crate::models::expand::{expand, Accel, CpuRequest};
    use crate::models::DefaultVersion;
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
