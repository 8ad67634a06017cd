//! `rvmm cpu-baseline` and `rvmm cpu-compare` checked against libvirt itself: Debian's
//! libvirt-clients runs `virsh -c test:///default cpu-baseline` with no daemon. Both are fed
//! the same libvirt host CPU XMLs (tests/data/hosts/*.xml: SandyBridge, IvyBridge, Haswell,
//! Skylake-SP, Icelake-SP, EPYC Naples and Rome hosts as `virsh capabilities` shows them),
//! alone and in mixed groups.
//!
//! What must agree: the CPU each side describes. rvmm's libvirt XML is fed back to
//! `virsh cpu-baseline --features`, which expands it into the full feature list exactly as
//! it expands its own answer; both lists must be equal. The chosen model may differ: rvmm picks
//! the most capable model every host runs without disabling anything, libvirt the model
//! that needs the fewest feature changes and may disable some; each group lists both
//! choices and, where they differ, why.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::{repo, rvmm, text};
use serde_json::Value;

fn hosts_dir() -> PathBuf {
    repo().join("crates/rvmm/tests/data/hosts")
}

fn virsh() -> Command {
    let path = "/usr/bin/virsh";
    assert!(
        std::path::Path::new(path).exists(),
        "virsh is missing: run scripts/deps.sh (Debian's libvirt-clients)"
    );
    let mut c = Command::new(path);
    c.args(["-q", "-c", "test:///default"]);
    c
}

/// The hosts concatenated into one file, as `virsh cpu-baseline` takes them.
fn group_file(hosts: &[&str]) -> PathBuf {
    let mut text = String::new();
    for h in hosts {
        text.push_str(&std::fs::read_to_string(hosts_dir().join(format!("{h}.xml"))).unwrap());
    }
    let path = std::env::temp_dir().join(format!(
        "rvmm-baseline-{}-{}.xml",
        std::process::id(),
        hosts.join("+")
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// `virsh cpu-baseline [--features] FILE`: its stdout, or its error.
fn virsh_baseline(file: &PathBuf, features: bool) -> Result<String, String> {
    let mut c = virsh();
    c.arg("cpu-baseline");
    if features {
        c.arg("--features");
    }
    let out = c.arg(file).output().expect("run virsh");
    let (stdout, stderr) = text(&out);
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

/// The `<model>` of a libvirt CPU XML.
fn model_of(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .find(|n| n.has_tag_name("model"))
        .and_then(|n| n.text())
        .unwrap_or("")
        .to_string()
}

/// The features `virsh cpu-baseline --features` lists with policy `require`.
fn required(xml: &str) -> BTreeSet<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("feature") && n.attribute("policy") == Some("require"))
        .filter_map(|n| n.attribute("name").map(String::from))
        .collect()
}

/// One group: the hosts, libvirt's model, rvmm's QEMU model and the libvirt model rvmm
/// writes, and why the choices differ (empty when they agree).
struct Group {
    hosts: &'static [&'static str],
    libvirt: &'static str,
    rvmm: &'static str,
    rvmm_libvirt: &'static str,
    why: &'static str,
}

const NO_DISABLE: &str = "libvirt picks the model needing the fewest changes even if that means \
disabling features the hosts lack; rvmm only picks a model every host runs as defined, so a guest \
started with its --cpu string never asks for a feature a host lacks";

const GROUPS: &[Group] = &[
    Group {
        hosts: &["sandybridge"],
        libvirt: "SandyBridge-IBRS",
        rvmm: "SandyBridge-v2",
        rvmm_libvirt: "SandyBridge-IBRS",
        why: "",
    },
    Group {
        hosts: &["ivybridge"],
        libvirt: "IvyBridge-IBRS",
        rvmm: "IvyBridge-v2",
        rvmm_libvirt: "IvyBridge-IBRS",
        why: "",
    },
    Group {
        hosts: &["haswell"],
        libvirt: "Haswell-noTSX-IBRS",
        rvmm: "Haswell-v4",
        rvmm_libvirt: "Haswell-noTSX-IBRS",
        why: "",
    },
    Group {
        hosts: &["skylake"],
        libvirt: "Skylake-Server-IBRS",
        rvmm: "Skylake-Server-v2",
        rvmm_libvirt: "Skylake-Server-IBRS",
        why: "",
    },
    Group {
        hosts: &["icelake"],
        libvirt: "Icelake-Server",
        rvmm: "Icelake-Server-v2",
        rvmm_libvirt: "Icelake-Server-noTSX",
        why: NO_DISABLE,
    },
    Group {
        hosts: &["epyc-naples"],
        libvirt: "EPYC-IBPB",
        rvmm: "EPYC-v3",
        rvmm_libvirt: "EPYC-IBPB",
        why: "the same CPU: QEMU's EPYC-v3 is EPYC-IBPB plus xsaves, perfctr-core, clzero and \
xsaveerptr, which this host has, so rvmm names the newer QEMU version; libvirt has no model \
for it and lists those four as extra features",
    },
    Group {
        hosts: &["epyc-rome"],
        libvirt: "EPYC-Rome",
        rvmm: "EPYC-Rome-v2",
        rvmm_libvirt: "EPYC-Rome",
        why: "the same CPU: QEMU's EPYC-Rome-v2 is EPYC-Rome (v1) plus ibrs and amd-ssbd, which \
this host has; libvirt has no model for v2 and lists the two as extra features",
    },
    Group {
        hosts: &["sandybridge", "ivybridge", "haswell"],
        libvirt: "SandyBridge-IBRS",
        rvmm: "SandyBridge-v2",
        rvmm_libvirt: "SandyBridge-IBRS",
        why: "",
    },
    Group {
        hosts: &["haswell", "skylake"],
        libvirt: "Haswell-noTSX-IBRS",
        rvmm: "Haswell-v4",
        rvmm_libvirt: "Haswell-noTSX-IBRS",
        why: "",
    },
    Group {
        hosts: &["skylake", "icelake"],
        libvirt: "Skylake-Server-IBRS",
        rvmm: "Skylake-Server-v5",
        rvmm_libvirt: "Skylake-Server-noTSX-IBRS",
        why: NO_DISABLE,
    },
    Group {
        hosts: &["ivybridge", "icelake"],
        libvirt: "IvyBridge-IBRS",
        rvmm: "IvyBridge-v2",
        rvmm_libvirt: "IvyBridge-IBRS",
        why: "",
    },
    Group {
        hosts: &["epyc-naples", "epyc-rome"],
        libvirt: "EPYC-IBPB",
        rvmm: "EPYC-v3",
        rvmm_libvirt: "EPYC-IBPB",
        why: "as for epyc-naples alone: EPYC-v3 is EPYC-IBPB plus features both hosts have",
    },
    Group {
        hosts: &["sandybridge", "ivybridge", "haswell", "skylake", "icelake"],
        libvirt: "SandyBridge-IBRS",
        rvmm: "SandyBridge-v2",
        rvmm_libvirt: "SandyBridge-IBRS",
        why: "",
    },
];

fn rvmm_baseline(hosts: &[&str]) -> Value {
    let mut c = rvmm();
    c.arg("cpu-baseline").arg("--json");
    for h in hosts {
        c.arg(hosts_dir().join(format!("{h}.xml")));
    }
    let out = c.output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "rvmm cpu-baseline {hosts:?}: {stderr}"
    );
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn baselines_match_libvirt() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for g in GROUPS {
        let file = group_file(g.hosts);
        let lv = virsh_baseline(&file, false)
            .unwrap_or_else(|e| panic!("virsh cpu-baseline {:?}: {e}", g.hosts));
        let lv_model = model_of(&lv);
        let ours = rvmm_baseline(g.hosts);
        let our_model = ours["model"].as_str().unwrap().to_string();
        let our_xml = ours["libvirt_xml"].as_str().unwrap().to_string();
        let our_lv_model = model_of(&our_xml);
        report.push(format!(
            "{:?}: libvirt {lv_model}, rvmm {our_model} (libvirt XML {our_lv_model}){}",
            g.hosts,
            if g.why.is_empty() {
                String::new()
            } else {
                format!(" — differs: {}", g.why)
            }
        ));
        if lv_model != g.libvirt || our_model != g.rvmm || our_lv_model != g.rvmm_libvirt {
            failures.push(format!(
                "{:?}: expected libvirt {} / rvmm {} ({}), got libvirt {lv_model} / rvmm {our_model} ({our_lv_model})",
                g.hosts, g.libvirt, g.rvmm, g.rvmm_libvirt
            ));
        }
        // QEMU knows libvirt's model names as aliases: a choice differs when the libvirt
        // model rvmm writes differs, or libvirt's model is another QEMU version than rvmm's.
        let differs = g.libvirt != g.rvmm_libvirt
            || vmm::cpu::availability::resolved_name(g.libvirt).as_deref() != Some(g.rvmm);
        if differs == g.why.is_empty() {
            failures.push(format!(
                "{:?}: a difference needs a reason, agreement none",
                g.hosts
            ));
        }
        // The CPU both describe: libvirt's expansion of its answer and of ours.
        let lv_full = required(&virsh_baseline(&file, true).unwrap());
        let as_host = our_xml.replacen(
            "<cpu mode='custom' match='exact'>",
            "<cpu>\n  <arch>x86_64</arch>",
            1,
        );
        let ours_file = file.with_extension("rvmm.xml");
        std::fs::write(&ours_file, &as_host).unwrap();
        let ours_full = required(
            &virsh_baseline(&ours_file, true)
                .unwrap_or_else(|e| panic!("virsh reading rvmm's XML {as_host}: {e}")),
        );
        let _ = std::fs::remove_file(&ours_file);
        let _ = std::fs::remove_file(&file);
        let only_lv: Vec<&String> = lv_full.difference(&ours_full).collect();
        let only_ours: Vec<&String> = ours_full.difference(&lv_full).collect();
        if !only_lv.is_empty() || !only_ours.is_empty() {
            failures.push(format!(
                "{:?}: features only in libvirt's baseline: {only_lv:?}; only in rvmm's: {only_ours:?}",
                g.hosts
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mixed_vendors_fail_on_both_sides() {
    let file = group_file(&["haswell", "epyc-rome"]);
    let lv = virsh_baseline(&file, false).unwrap_err();
    let _ = std::fs::remove_file(&file);
    assert!(lv.contains("CPU vendors do not match"), "{lv}");
    let out = rvmm()
        .arg("cpu-baseline")
        .arg(hosts_dir().join("haswell.xml"))
        .arg(hosts_dir().join("epyc-rome.xml"))
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("CPU vendors do not match"), "{stderr}");
}

#[test]
fn baseline_text_prints_cpu_string_and_xml() {
    let out = rvmm()
        .arg("cpu-baseline")
        .arg(hosts_dir().join("haswell.xml"))
        .arg(hosts_dir().join("skylake.xml"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[1], "model: Haswell-v4 (Haswell-noTSX-IBRS)");
    let cpu = lines.iter().find(|l| l.starts_with("--cpu ")).unwrap();
    assert!(cpu.starts_with("--cpu Haswell-v4,+"), "{cpu}");
    // Every extra feature is one QEMU accepts: the string parses as --cpu.
    let spec = cpu.trim_start_matches("--cpu ");
    vmm::config::cpu::parse_cpu(spec).unwrap();
    assert!(stdout.contains("<model fallback='forbid'>Haswell-noTSX-IBRS</model>"));
}

#[test]
fn cpu_compare_with_libvirt_hosts() {
    // virsh's test driver has no cpu-compare (virConnectCompareCPU): say so, compare rvmm
    // with the hosts' own definitions instead.
    let out = virsh()
        .arg("cpu-compare")
        .arg(hosts_dir().join("haswell.xml"))
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    if !out.status.success() {
        eprintln!(
            "virsh -c test:///default cpu-compare is unavailable: {}",
            stderr.trim()
        );
    }
    let compare = |cpu: &str, host: &str| {
        let out = rvmm()
            .args(["cpu-compare", cpu, "--host"])
            .arg(hosts_dir().join(format!("{host}.xml")))
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        stdout.trim().to_string()
    };
    let h = hosts_dir().join("haswell.xml").display().to_string();
    assert!(compare("Haswell-noTSX-IBRS", "haswell")
        .starts_with(&format!("{h}: superset of Haswell-v4 (the host also has: ")));
    assert_eq!(
        compare("Haswell", "haswell"),
        format!("{h}: incompatible with Haswell-v1 (the host lacks: hle rtm)")
    );
    let s = hosts_dir().join("sandybridge.xml").display().to_string();
    assert_eq!(
        compare("IvyBridge-IBRS,-erms", "sandybridge"),
        format!("{s}: incompatible with IvyBridge-v2 (the host lacks: f16c rdrand fsgsbase smep)")
    );
}

/// An incomplete AMD host description (no `lm`, no 3DNow!): no named AMD model fits, and
/// the fallback to QEMU's generic kvm32 is explained on stderr and in the JSON (issue 11).
#[test]
fn generic_fallback_explains_itself() {
    let dir = common::tempdir("baseline-fallback");
    let file = dir.join("amd.json");
    std::fs::write(
        &file,
        r#"{"arch":"x86_64","vendor":"AuthenticAMD","features":["fpu","vme","de","pse","tsc",
"msr","pae","mce","cx8","apic","sep","mtrr","pge","mca","cmov","pat","pse36","clflush","mmx",
"fxsr","sse","sse2","pni","cx16","syscall","nx"]}"#,
    )
    .unwrap();
    let note = "no named AuthenticAMD model fits every host, so the baseline is QEMU's generic \
                kvm32-v1 plus 3 features; no one feature is missing for every named \
                AuthenticAMD model (closest: Opteron_G1-v1 lacks lm; athlon-v1 lacks mmxext \
                3dnowext 3dnow; Opteron_G2-v1 lacks lm lahf-lm svm)";
    let out = rvmm()
        .args(["cpu-baseline", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.trim_end(), format!("rvmm: note: {note}"));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["model"], "kvm32-v1");
    assert_eq!(v["note"], note);
    let out = rvmm().arg("cpu-baseline").arg(&file).output().unwrap();
    let (stdout, stderr) = text(&out);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("model: kvm32-v1"), "{stdout}");
    assert_eq!(stderr.trim_end(), format!("rvmm: note: {note}"));
}
