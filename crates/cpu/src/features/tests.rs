//! Unit tests for the feature tables and lookups.

use super::*;

#[test]
fn words_are_indexed_in_qemu_order() {
    for (i, info) in WORDS.iter().enumerate() {
        assert_eq!(info.word.index(), i, "{}", info.qemu_name);
    }
    assert_eq!(WORDS[0].qemu_name, "FEAT_1_EDX");
    assert_eq!(WORDS[FEATURE_WORD_COUNT - 1].qemu_name, "FEAT_XSAVE_XSS_HI");
}

#[test]
fn tables_hold_every_qemu_name() {
    // QEMU 7.2 names 221 CPUID bits and 100 MSR bits (kvmclock and
    // vmx-invept-single-context are two bits each).
    assert_eq!(CPUID_FEATURES.len(), 221);
    assert_eq!(MSR_FEATURES.len(), 100);
    assert!(CPUID_FEATURES
        .iter()
        .all(|f| !f.word.is_msr() && f.bit < 32));
    assert!(MSR_FEATURES.iter().all(|f| f.word.is_msr()));
}

#[test]
fn lookups_return_qemu_locations() {
    let hle = feature_by_name("hle").unwrap();
    assert_eq!((hle.word, hle.bit), (FeatureWord::Cpuid7_0Ebx, 4));
    assert_eq!(hle.cpuid_location(), Some((7, Some(0), CpuidReg::Ebx)));
    let rdctl = feature_by_name("rdctl-no").unwrap();
    assert_eq!((rdctl.msr_index(), rdctl.bit), (Some(0x10A), 0));
    let ins_outs = feature_by_name("vmx-ins-outs").unwrap();
    assert_eq!((ins_outs.word, ins_outs.bit), (FeatureWord::VmxBasic, 54));
    assert_eq!(feature_by_name("lahf_lm").unwrap().name, "lahf-lm");
    assert_eq!(feature_by_name("sse4_1").unwrap().name, "sse4.1");
    assert_eq!(feature_by_name("sse4-2").unwrap().name, "sse4.2");
    assert_eq!(feature_by_name("xd").unwrap().name, "nx");
    assert_eq!(
        feature_by_name("sse41"),
        None,
        "QEMU 7.2 has no sse41 alias"
    );
    assert_eq!(
        feature_by_name("tsc_deadline"),
        None,
        "only key=value turns _ into -"
    );
    assert_eq!(normalize_property_name("tsc_deadline"), "tsc-deadline");
}

#[test]
fn two_bit_properties_cover_both_bits() {
    assert_eq!(feature_mask("kvmclock"), Some((FeatureWord::Kvm, 0b1001)));
    assert_eq!(
        feature_mask("vmx-invept-single-context"),
        Some((FeatureWord::VmxEptVpidCaps, (1 << 25) | (1 << 41)))
    );
    let mut set = FeatureSet::new();
    set.insert(FeatureWord::Kvm, 1);
    assert_eq!(set.has_named("kvmclock"), Some(false));
    assert!(set.set_named("kvmclock", true));
    assert_eq!(set.word(FeatureWord::Kvm), 0b1001);
    assert_eq!(set.names(), ["kvmclock"]);
    assert_eq!(name_of(FeatureWord::Kvm, 3), Some("kvmclock"));
}

#[test]
fn descriptions_match_qemu_format() {
    assert_eq!(FeatureWord::Cpuid1Ecx.description(), "CPUID.01H:ECX");
    assert_eq!(FeatureWord::Cpuid7_0Ebx.description(), "CPUID.07H:EBX");
    assert_eq!(FeatureWord::Cpuid7_1Eax.description(), "CPUID.07H:EAX");
    assert_eq!(
        FeatureWord::Cpuid8000_0001Edx.description(),
        "CPUID.80000001H:EDX"
    );
    assert_eq!(FeatureWord::Xsave.description(), "CPUID.0DH:EAX");
    assert_eq!(FeatureWord::Kvm.description(), "CPUID.40000001H:EAX");
    assert_eq!(FeatureWord::ArchCapabilities.description(), "MSR(10AH)");
    assert_eq!(FeatureWord::CoreCapability.description(), "MSR(CFH)");
    assert_eq!(FeatureWord::VmxSecondaryCtls.description(), "MSR(48BH)");
}

#[test]
fn nearest_names_rank_by_distance_then_prefix() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    let names = accepted_names();
    assert_eq!(
        nearest_names("avx3", names.iter().copied(), 2),
        ["avx", "avx2"]
    );
    assert_eq!(
        nearest_names("sse4_1", names.iter().copied(), 1),
        ["sse4_1"]
    );
    assert!(nearest_names("zzzzzzzzzz", names.iter().copied(), 3).is_empty());
    let models = ["Haswell", "Haswell-v1", "Broadwell"];
    assert_eq!(
        nearest_names("Haswel", models, 2),
        ["Haswell", "Haswell-v1"]
    );
}

#[test]
fn set_operations_and_bit_order() {
    let mut a = FeatureSet::new();
    a.set_named("hle", true);
    a.set_named("fpu", true);
    a.set_named("rdctl-no", true);
    let mut b = FeatureSet::new();
    b.set_named("hle", true);
    assert_eq!(a.difference(&b).names(), ["fpu", "rdctl-no"]);
    assert_eq!(a.intersection(&b).names(), ["hle"]);
    assert_eq!(
        a.bits().collect::<Vec<_>>(),
        [
            (FeatureWord::Cpuid1Edx, 0),
            (FeatureWord::Cpuid7_0Ebx, 4),
            (FeatureWord::ArchCapabilities, 0)
        ]
    );
    assert!(!a.set_named("no-such-feature", true));
    assert!(FeatureSet::new().is_empty());
}

#[test]
fn every_named_bit_has_a_typed_id() {
    for f in all_features() {
        let id = ids::ALL.iter().find(|id| id.name == f.name);
        assert!(
            id.is_some_and(|id| id.word == f.word && id.mask & f.mask() != 0),
            "{} has no id",
            f.name
        );
    }
    assert_eq!(ids::SSE4_1.name, "sse4.1");
    assert_eq!(ids::_3DNOW.name, "3dnow");
    assert_eq!(ids::KVMCLOCK.mask, 1 << 0 | 1 << 3);
}
