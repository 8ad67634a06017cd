use super::*;

/// A tiny libvirt map: two vendors, five features (one without a QEMU name), one model.
pub(crate) fn map() -> LibvirtCpuMap {
    let mut m = LibvirtCpuMap::default();
    m.add_file(
        "x86_vendors.xml",
        "<cpus><vendor name='Intel' string='GenuineIntel'/><vendor name='AMD' string='AuthenticAMD'/></cpus>",
    )
    .unwrap();
    m.add_file(
        "x86_features.xml",
        "<cpus>\
<feature name='sse2'><cpuid eax_in='0x01' edx='0x04000000'/></feature>\
<feature name='pclmuldq'><cpuid eax_in='0x01' ecx='0x00000002'/></feature>\
<feature name='osxsave'><cpuid eax_in='0x01' ecx='0x08000000'/></feature>\
<feature name='tsc_adjust'><alias name='tsc-adjust' source='qemu'/><cpuid eax_in='0x07' ecx_in='0x00' ebx='0x00000002'/></feature>\
<feature name='vmx'><cpuid eax_in='0x01' ecx='0x00000020'/></feature>\
<feature name='hypervisor'><cpuid eax_in='0x01' ecx='0x80000000'/></feature>\
</cpus>",
    )
    .unwrap();
    m.add_file(
        "x86_Tiny.xml",
        "<cpus><model name='Tiny'><vendor name='Intel'/><feature name='sse2'/><feature name='pclmuldq'/></model></cpus>",
    )
    .unwrap();
    m
}

#[test]
fn reads_capabilities_cpu() {
    let xml = "<capabilities><host><cpu><arch>x86_64</arch><model>Tiny</model><vendor>Intel</vendor>\
<signature family='6' model='45' stepping='7'/><topology sockets='1' dies='1' cores='8' threads='2'/>\
<feature name='vmx'/><feature name='osxsave'/><feature name='tsc_adjust'/><feature name='hypervisor'/>\
</cpu></host></capabilities>";
    let d = parse_libvirt_xml(xml, "caps.xml", &map()).unwrap();
    assert_eq!(d.len(), 1);
    let d = &d[0];
    assert_eq!(d.vendor, "GenuineIntel");
    assert_eq!(
        (d.family, d.model, d.stepping),
        (Some(6), Some(45), Some(7))
    );
    assert_eq!(d.libvirt_model.as_deref(), Some("Tiny"));
    // QEMU names, QEMU table order; `hypervisor` is never compared.
    assert_eq!(d.features, ["sse2", "pclmulqdq", "vmx", "tsc-adjust"]);
    assert_eq!(d.libvirt_only, ["osxsave"]);
}

#[test]
fn reads_several_cpus_and_policies() {
    let xml = "<?xml version='1.0'?>\n<cpu><model>Tiny</model><feature policy='disable' name='pclmuldq'/></cpu>\n\
<cpu mode='custom'><vendor>AMD</vendor><feature policy='require' name='sse2'/></cpu>";
    let d = parse_libvirt_xml(xml, "two.xml", &map()).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].source, "two.xml#1");
    assert_eq!(d[0].vendor, "GenuineIntel");
    assert_eq!(d[0].features, ["sse2"]);
    assert_eq!(d[1].vendor, "AuthenticAMD");
}

#[test]
fn domcapabilities_host_model() {
    let xml = "<domainCapabilities><cpu><mode name='host-passthrough' supported='yes'/>\
<mode name='host-model' supported='yes'><model fallback='forbid'>Tiny</model><vendor>Intel</vendor>\
<feature policy='require' name='vmx'/></mode></cpu></domainCapabilities>";
    let d = parse_libvirt_xml(xml, "dom.xml", &map()).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].features, ["sse2", "pclmulqdq", "vmx"]);
}

#[test]
fn xml_errors_name_the_element() {
    let e = |xml: &str| {
        parse_libvirt_xml(xml, "h.xml", &map())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        e("<cpu><model>Tiny</model><feature name='nope'/></cpu>"),
        format!(
            "h.xml: <feature>: unknown feature 'nope' (not in libvirt's CPU map {})",
            LibvirtCpuMap::dir().display()
        )
    );
    assert_eq!(
        e("<cpu><arch>aarch64</arch><feature name='sse2'/></cpu>"),
        "h.xml: <arch>: 'aarch64' is not x86_64"
    );
    assert_eq!(
        e("<cpu><feature policy='maybe' name='sse2'/></cpu>"),
        "h.xml: <feature>: policy 'maybe' of 'sse2' is not require, force, optional, disable or forbid"
    );
    assert_eq!(
        e("<host><topology/></host>"),
        "h.xml: no <cpu> element with a <model> or <feature> (expected libvirt host CPU XML)"
    );
}

#[test]
fn json_round_trip_and_errors() {
    let d = HostCpuDesc {
        arch: "x86_64".into(),
        vendor: "GenuineIntel".into(),
        family: Some(6),
        model: Some(167),
        stepping: Some(1),
        model_name: Some("Test".into()),
        features: vec!["sse2".into(), "avx".into()],
        source: "kvm".into(),
        libvirt_model: None,
        libvirt_only: vec![],
    };
    let back = parse_json(&d.to_json(), "h.json").unwrap();
    assert_eq!(back[0].features, d.features);
    assert_eq!(back[0].source, "h.json");
    let bad = d.to_json().replace("\"avx\"", "\"avx9\"");
    assert_eq!(
        parse_json(&bad, "h.json").unwrap_err().to_string(),
        "h.json: unknown CPU feature 'avx9' (not a QEMU 7.2 feature name)"
    );
    assert!(parse_json("{\"arch\": 1}", "h.json")
        .unwrap_err()
        .to_string()
        .starts_with("h.json: not a host CPU description"));
}

#[test]
fn comparable_drops_kvm_words_and_hypervisor() {
    let mut s = FeatureSet::new();
    for f in [
        "sse2",
        "hypervisor",
        "kvmclock",
        "rdctl-no",
        "vmx-exit-nosave-debugctl",
    ] {
        assert!(s.set_named(f, true), "{f}");
    }
    assert_eq!(comparable(&s).names(), ["sse2", "rdctl-no"]);
}

/// Host CPU XML nesting deeper than the parser's limit, or larger than 1 MiB, is refused
/// before parsing (100000 levels used to overflow the stack).
#[test]
fn deep_or_huge_host_xml_is_refused_before_parsing() {
    let deep = format!(
        "<capabilities>\n<host>{}{}</host></capabilities>",
        "<x>".repeat(100_000),
        "</x>".repeat(100_000)
    );
    assert_eq!(
        parse_libvirt_xml(&deep, "caps.xml", &map())
            .unwrap_err()
            .to_string(),
        "caps.xml: not well-formed XML: line 2: refused before parsing: elements nest deeper \
         than the limit of 256 levels"
    );
    let big = format!(
        "<cpu><model>Tiny</model></cpu><!--{}-->",
        " ".repeat(1 << 20)
    );
    assert_eq!(
        parse_libvirt_xml(&big, "big.xml", &map())
            .unwrap_err()
            .to_string(),
        format!(
            "big.xml: not well-formed XML: line 1: refused before parsing: the document is {} \
             bytes, more than the limit of 1048576 bytes (1 MiB)",
            big.len()
        )
    );
    // Non-ASCII names are plain unknown names.
    let e = parse_libvirt_xml("<cpu><model>Tïny</model></cpu>", "u.xml", &map()).unwrap_err();
    assert!(
        e.to_string().contains("'Tïny' is not in libvirt's CPU map"),
        "{e}"
    );
}
