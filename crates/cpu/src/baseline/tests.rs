use super::*;

/// What `--cpu MODEL[,+feat...]` parses into (the VMM's parser; only `+feat` here).
fn parse_cpu(text: &str) -> Result<CpuSpec, ()> {
    let mut items = text.split(',');
    let model = items.next().ok_or(())?.to_string();
    let changes = items
        .map(|i| i.strip_prefix('+').map(|f| (f.to_string(), true)).ok_or(()))
        .collect::<Result<_, _>>()?;
    Ok(CpuSpec {
        model,
        changes,
        ..CpuSpec::default()
    })
}

/// A host whose features are exactly `model`'s definition plus `extra`.
fn host(model: &str, extra: &[&str], vendor: &str) -> HostCpuDesc {
    let Some(ModelRef::Builtin { def, version }) = lookup(model) else {
        panic!("{model}");
    };
    let mut set = model_features(def, version.unwrap_or(1));
    for f in extra {
        assert!(set.set_named(f, true), "{f}");
    }
    HostCpuDesc {
        arch: "x86_64".into(),
        vendor: vendor.into(),
        family: None,
        model: None,
        stepping: None,
        model_name: None,
        features: set.names().iter().map(|s| s.to_string()).collect(),
        source: format!("{model}-host"),
        libvirt_model: None,
        libvirt_only: vec![],
    }
}

const INTEL: &str = "GenuineIntel";
const AMD: &str = "AuthenticAMD";

#[test]
fn haswell_and_sandybridge_share_sandybridge() {
    let b = baseline(&[
        host("Haswell-v1", &["vmx", "abm"], INTEL),
        host("SandyBridge-v1", &["vmx"], INTEL),
    ])
    .unwrap();
    assert_eq!(b.model, "SandyBridge-v1");
    assert_eq!(b.alias.as_deref(), Some("SandyBridge"));
    assert_eq!(b.extra, ["vmx"]);
    assert_eq!(b.cpu_string(), "SandyBridge-v1,+vmx");
}

#[test]
fn one_host_is_its_own_model_and_newest_version_wins() {
    // Skylake-Client-v4 is v3 plus spec-ctrl/ssbd-era features; its host runs v1..v4 and
    // v4 has the most features.
    let b = baseline(&[host("Skylake-Client-v4", &[], INTEL)]).unwrap();
    assert_eq!(b.model, "Skylake-Client-v4");
    assert!(b.extra.is_empty(), "{:?}", b.extra);
    assert_eq!(b.alias, None);
}

#[test]
fn vendors_must_match() {
    let e = baseline(&[
        host("Haswell-v1", &[], INTEL),
        host("EPYC-v1", &[], "AuthenticAMD"),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cpu-baseline: CPU vendors do not match: Haswell-v1-host is GenuineIntel, EPYC-v1-host is AuthenticAMD"
    );
    assert_eq!(
        baseline(&[]).unwrap_err().to_string(),
        "cpu-baseline: no host CPU descriptions given"
    );
}

#[test]
fn compare_verdicts() {
    let haswell = host("Haswell-v1", &[], INTEL);
    let c = compare(&parse_cpu("Haswell").unwrap(), &haswell).unwrap();
    assert_eq!(
        (c.verdict, c.model.as_str()),
        (Verdict::Identical, "Haswell-v1")
    );
    let c = compare(&parse_cpu("Haswell-noTSX").unwrap(), &haswell).unwrap();
    assert_eq!(c.verdict, Verdict::Superset);
    assert_eq!(c.extra, ["hle", "rtm"]);
    let c = compare(&parse_cpu("Haswell,+avx512f").unwrap(), &haswell).unwrap();
    assert_eq!(c.verdict, Verdict::Incompatible);
    assert_eq!(c.missing, ["avx512f"]);
    let snb = host("SandyBridge-v1", &[], INTEL);
    let c = compare(&parse_cpu("IvyBridge").unwrap(), &snb).unwrap();
    assert_eq!(c.missing, ["f16c", "rdrand", "fsgsbase", "smep", "erms"]);
    assert_eq!(
        compare(&parse_cpu("host").unwrap(), &snb).unwrap_err().to_string(),
        "cpu-compare: 'host' is not a named model; compare a model such as Haswell or Skylake-Client-v4"
    );
}

#[test]
fn libvirt_xml_uses_libvirt_names() {
    let map = crate::hostdesc::tests::map();
    let b = Baseline {
        vendor: INTEL.into(),
        model: "Tiny-v1".into(),
        alias: Some("Tiny".into()),
        extra: vec![],
        libvirt_only: vec!["osxsave".into()],
        common: vec![
            "sse2".into(),
            "vmx".into(),
            "tsc-adjust".into(),
            "avx".into(),
        ],
        note: None,
    };
    let expected = [
        "<cpu mode='custom' match='exact'>",
        "  <model fallback='forbid'>Tiny</model>",
        "  <vendor>Intel</vendor>",
        "  <feature policy='require' name='osxsave'/>",
        "  <feature policy='require' name='tsc_adjust'/>",
        "  <feature policy='require' name='vmx'/>",
        "  <feature policy='disable' name='pclmuldq'/>",
        "  <!-- common features libvirt has no name for: avx -->",
        "</cpu>",
    ];
    assert_eq!(b.libvirt_xml(&map), expected.join("\n") + "\n");
}

/// An incomplete AMD host description (no `lm`, as a hand-trimmed libvirt XML may be): no
/// named AMD model fits (the 64-bit ones need `lm`, athlon and phenom `3dnow`), and the
/// fallback to a generic 32-bit model (kvm32) says why.
#[test]
fn fallback_to_a_generic_model_says_why() {
    let mut h = host("EPYC-v1", &[], AMD);
    h.features.retain(|f| f != "lm");
    let b = baseline(&[h.clone()]).unwrap();
    assert_eq!(b.model, "kvm32-v1");
    let note = b.note.as_deref().expect("a note for the generic fallback");
    assert_eq!(
        note,
        format!(
            "no named AuthenticAMD model fits every host, so the baseline is QEMU's generic \
             kvm32-v1 plus {} features; no one feature is missing for every named AuthenticAMD \
             model (closest: Opteron_G1-v1 lacks lm; Opteron_G2-v1 lacks lm; Opteron_G3-v1 \
             lacks lm)",
            b.extra.len()
        )
    );
    // Serialized only when there is one.
    let json = serde_json::to_value(&b).unwrap();
    assert_eq!(json["note"].as_str(), Some(note));
    let named = baseline(&[host("EPYC-v1", &[], AMD)]).unwrap();
    assert_eq!(named.note, None);
    assert!(serde_json::to_value(&named).unwrap().get("note").is_none());
}
