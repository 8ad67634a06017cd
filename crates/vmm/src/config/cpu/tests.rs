//! Unit tests for the --cpu grammar and its error texts.

use super::*;
use crate::cpu::models::DefaultVersion;

fn ch(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(n, on)| (n.to_string(), *on)).collect()
}

#[test]
fn full_grammar() {
    let c = parse_cpu("Haswell,+aes,-hle,x2apic=off,pmu=on,enforce").unwrap();
    assert_eq!(c.model, "Haswell");
    assert_eq!(
        c.changes,
        ch(&[("x2apic", false), ("aes", true), ("hle", false)])
    );
    assert_eq!(c.pmu, Some(true));
    assert_eq!(c.check, Check::Enforce);
    assert!(c.warnings.is_empty());
}

#[test]
fn legacy_plus_minus_apply_last_as_in_qemu() {
    let c = parse_cpu("qemu64,-x2apic,x2apic=on,+x2apic").unwrap();
    // Properties first, then every +feat, then every -feat: x2apic ends up off.
    assert_eq!(
        c.changes,
        ch(&[("x2apic", true), ("x2apic", true), ("x2apic", false)])
    );
    assert_eq!(
        c.warnings,
        [
            "Ambiguous CPU model string. Don't mix both \"-x2apic\" and \"x2apic=on\"",
            "Compatibility of ambiguous CPU model strings won't be kept on future QEMU versions",
        ]
    );
}

#[test]
fn names_normalize_like_qemu() {
    let c = parse_cpu("Haswell,sse4_1=off,tsc_deadline=off,+lahf_lm,fma,,").unwrap();
    assert_eq!(
        c.changes,
        ch(&[
            ("sse4.1", false),
            ("tsc-deadline", false),
            ("fma", true),
            ("lahf-lm", true)
        ])
    );
    assert_eq!(
        parse_cpu("Haswell,+tsc_deadline").unwrap_err().to_string(),
        "--cpu: unknown CPU feature 'tsc_deadline' (did you mean tsc-deadline?)"
    );
}

#[test]
fn check_defaults_to_warn() {
    assert_eq!(parse_cpu("qemu64").unwrap().check, Check::Warn);
    assert_eq!(parse_cpu("qemu64,check").unwrap().check, Check::Warn);
    assert_eq!(parse_cpu("qemu64,check=off").unwrap().check, Check::None);
    assert_eq!(
        parse_cpu("qemu64,enforce,enforce=off").unwrap().check,
        Check::Warn
    );
    assert_eq!(parse_cpu("qemu64,pmu").unwrap().pmu, Some(true));
    assert_eq!(CpuConfig::default().model, "qemu64");
}

#[test]
fn errors_name_option_value_and_rule() {
    assert_eq!(
        parse_cpu("Haswel").unwrap_err().to_string(),
        "--cpu: unknown CPU model 'Haswel' (did you mean Haswell, Haswell-v1?)"
    );
    assert_eq!(
        parse_cpu("Pentium4").unwrap_err().to_string(),
        "--cpu: unknown CPU model 'Pentium4' (did you mean pentium, pentium2?)"
    );
    assert_eq!(
        parse_cpu("Haswell,+avx3").unwrap_err().to_string(),
        "--cpu: unknown CPU feature 'avx3' (did you mean avx, avx2?)"
    );
    assert_eq!(
        parse_cpu("Haswell,qqqqqqqqqqqq=on")
            .unwrap_err()
            .to_string(),
        "--cpu: unknown CPU feature 'qqqqqqqqqqqq'"
    );
    assert_eq!(
        parse_cpu("Haswell,hle=maybe").unwrap_err().to_string(),
        "--cpu: invalid value 'maybe' for 'hle': expected on or off"
    );
    assert_eq!(
        parse_cpu("Haswell,pmu=2").unwrap_err().to_string(),
        "--cpu: invalid value '2' for 'pmu': expected on or off"
    );
    assert_eq!(
        parse_cpu("Haswell,+").unwrap_err().to_string(),
        "--cpu: empty feature name in '+'"
    );
    assert_eq!(parse_cpu("").unwrap_err(), CpuConfigError::Empty);
}

#[test]
fn request_carries_the_config() {
    let c = parse_cpu("EPYC,-svm,pmu=off").unwrap();
    let r = c.request(DefaultVersion::Latest, 2);
    assert_eq!((r.model, r.pmu, r.dies), ("EPYC", Some(false), 2));
    assert_eq!(r.changes, &ch(&[("svm", false)])[..]);
}
