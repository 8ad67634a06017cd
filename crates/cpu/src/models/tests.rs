//! Unit tests for the model tables, lookup and version resolution.

use super::*;
use crate::features::{canonical_name, feature_mask, ids, name_of};

#[test]
fn every_name_in_the_tables_is_a_qemu_feature() {
    // The tables name features by typed id (a misspelt name does not compile); each id is
    // QEMU's property of that name with all its bits.
    for id in ids::ALL {
        assert_eq!(canonical_name(id.name), Some(id.name), "{}", id.name);
        assert_eq!(
            feature_mask(id.name),
            Some((id.word, id.mask)),
            "{}",
            id.name
        );
    }
    for def in MODELS {
        for (word, bit) in def.base_features().bits() {
            assert!(
                name_of(word, bit).is_some() || def.unnamed_bits.contains(&(word, bit)),
                "{}: {word:?}[{bit}]",
                def.name
            );
        }
        for v in def.versions() {
            for prop in v.props {
                if let Prop::On(id) | Prop::Off(id) = prop {
                    assert!(
                        canonical_name(id.name).is_some(),
                        "{}-v{}: {}",
                        def.name,
                        v.version,
                        id.name
                    );
                }
            }
        }
    }
}

#[test]
fn tables_respect_qemu_invariants() {
    assert_eq!(MODELS.len(), 38);
    for def in MODELS {
        // x86_register_cpudef_types asserts both of these.
        assert!(def.model_id.len() <= 48, "{}", def.name);
        let ext = def.base_features().word(FeatureWord::Cpuid8000_0001Edx);
        assert_eq!(ext & crate::filter::AMD_ALIASES, 0, "{}", def.name);
        let versions: Vec<u32> = def.versions().iter().map(|v| v.version).collect();
        assert_eq!(
            versions,
            (1..=def.last_version()).collect::<Vec<_>>(),
            "{}",
            def.name
        );
    }
}

#[test]
fn lookup_follows_qemu_class_names() {
    let haswell = lookup("Haswell").unwrap();
    assert!(matches!(haswell, ModelRef::Builtin { def, version: None } if def.name == "Haswell"));
    assert!(matches!(
        lookup("Haswell-noTSX"),
        Some(ModelRef::Builtin {
            version: Some(2),
            ..
        })
    ));
    assert!(matches!(
        lookup("Haswell-v4"),
        Some(ModelRef::Builtin {
            version: Some(4),
            ..
        })
    ));
    assert!(matches!(
        lookup("EPYC-IBPB"),
        Some(ModelRef::Builtin {
            version: Some(2),
            ..
        })
    ));
    assert_eq!(lookup("Haswell-v5"), None);
    assert_eq!(
        lookup("haswell"),
        None,
        "QEMU's class lookup is case-sensitive"
    );
    assert_eq!(lookup("SapphireRapids"), None, "added in QEMU 8.0");
    assert_eq!(lookup("host"), Some(ModelRef::Host));
    assert_eq!(lookup("max"), Some(ModelRef::Max));
    assert_eq!(all_names().len(), 132);
}

#[test]
fn versions_apply_cumulatively() {
    let def = match lookup("Haswell").unwrap() {
        ModelRef::Builtin { def, .. } => def,
        _ => unreachable!(),
    };
    assert_eq!(resolve_version(def, None, DefaultVersion::V1), 1);
    assert_eq!(resolve_version(def, None, DefaultVersion::Latest), 4);
    let v1 = resolve(def, 1).unwrap();
    assert_eq!((v1.family, v1.model, v1.stepping), (6, 60, 4));
    assert_eq!(v1.features.has_named("hle"), Some(true));
    assert_eq!(v1.features.has_named("hypervisor"), Some(true));
    let v2 = resolve(def, 2).unwrap();
    assert_eq!(v2.features.has_named("hle"), Some(false));
    assert_eq!(v2.stepping, 1);
    assert_eq!(v2.model_id, "Intel Core Processor (Haswell, no TSX)");
    // v4 inherits spec-ctrl from v3 and drops TSX again.
    let v4 = resolve(def, 4).unwrap();
    assert_eq!(v4.features.has_named("spec-ctrl"), Some(true));
    assert_eq!(v4.features.has_named("rtm"), Some(false));
    assert_eq!(resolve(def, 5), None);
}

#[test]
fn msr_features_come_from_the_tables() {
    let def = MODELS
        .iter()
        .find(|d| d.name == "Cascadelake-Server")
        .unwrap();
    let v1 = resolve(def, 1).unwrap();
    assert_eq!(v1.features.has_named("arch-capabilities"), Some(false));
    let v2 = resolve(def, 2).unwrap();
    for name in [
        "arch-capabilities",
        "rdctl-no",
        "ibrs-all",
        "skip-l1dfl-vmentry",
        "mds-no",
    ] {
        assert_eq!(v2.features.has_named(name), Some(true), "{name}");
    }
    // IA32_VMX_EPT_VPID_CAP bit 14 (WB memory type) has no name but is in the definition.
    let (word, _) = feature_mask("vmx-ept-execonly").unwrap();
    assert!(v2.features.contains(word, 1 << 14));
    assert_eq!(def.cache_info, None);
    let epyc = MODELS.iter().find(|d| d.name == "EPYC-Rome").unwrap();
    assert_eq!(epyc.cache_info, Some(ModelCaches::EpycRome));
    assert_eq!(
        epyc.cache_info.map(ModelCaches::qemu_name),
        Some("epyc_rome_cache_info")
    );
}

#[test]
fn vendor_registers_round_trip() {
    let (ebx, edx, ecx) = VendorId::INTEL.regs();
    assert_eq!((ebx, edx, ecx), (0x756e_6547, 0x4965_6e69, 0x6c65_746e));
    assert_eq!(VendorId::from_regs(ebx, edx, ecx), VendorId::INTEL);
    assert_eq!(VendorId::AMD.as_string(), "AuthenticAMD");
    assert!(VendorId::AMD.is_amd() && !VendorId::HYGON.is_amd());
}

#[test]
fn versioned_names_are_matched_exactly() {
    assert_eq!(versioned_number("Haswell-v4", "Haswell"), Some(4));
    assert_eq!(versioned_number("EPYC-Rome-v12", "EPYC-Rome"), Some(12));
    for bad in [
        "Haswell-v04",
        "Haswell-v+4",
        "Haswell-v",
        "Haswell-4",
        "Haswellv4",
        "Haswell",
    ] {
        assert_eq!(versioned_number(bad, "Haswell"), None, "{bad}");
    }
    assert!(lookup("Haswell-v04").is_none() && lookup("EPYC-v0").is_none());
    // Every registered name resolves to itself.
    for name in all_names() {
        assert!(lookup(&name).is_some(), "{name}");
    }
}
