//! `rvmm cpu-models`, `--expand` and `rvmm run --dry-run [--show-cpuid]`.
//!
//! The oracle for which models run here is QEMU 7.2 itself: `query-cpu-definitions` under
//! `-accel kvm` reports each model's `unavailable-features` on this host, which must equal
//! what `rvmm cpu-models --json` reports. The flag list must equal `-cpu help`'s.

mod common;

use std::collections::BTreeMap;

use common::{kvm_available, qemu, qemu_qmp, rvmm, text};
use serde_json::Value;

fn run_ok(args: &[&str]) -> String {
    let out = rvmm().args(args).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "rvmm {args:?}: {stderr}");
    stdout
}

/// QEMU's `query-cpu-definitions` under KVM: name → unavailable features, in QEMU's order
/// with repeats dropped (QEMU lists a name twice when two filtered bits carry it).
fn qemu_definitions() -> BTreeMap<String, Vec<String>> {
    let answers = qemu_qmp(&["-accel", "kvm"], &[("query-cpu-definitions", None)]);
    let list = answers[0]["return"]
        .as_array()
        .unwrap_or_else(|| panic!("QEMU gave no query-cpu-definitions answer: {answers:?}"));
    list.iter()
        .map(|m| {
            let mut feats: Vec<String> = Vec::new();
            for f in m["unavailable-features"].as_array().unwrap() {
                let f = f.as_str().unwrap().to_string();
                if !feats.contains(&f) {
                    feats.push(f);
                }
            }
            (m["name"].as_str().unwrap().to_string(), feats)
        })
        .collect()
}

#[test]
fn usable_models_match_qemu_query_cpu_definitions() {
    if !kvm_available("usable_models_match_qemu_query_cpu_definitions") {
        return;
    }
    let ours: Value = serde_json::from_str(&run_ok(&["cpu-models", "--json"])).unwrap();
    let qemu = qemu_definitions();
    let models = ours["models"].as_array().unwrap();
    assert_eq!(models.len(), qemu.len());
    let mut diffs = Vec::new();
    for m in models {
        let name = m["name"].as_str().unwrap();
        let mut unavailable: Vec<String> = Vec::new();
        for f in m["unavailable_features"].as_array().unwrap() {
            let f = f.as_str().unwrap().to_string();
            if !unavailable.contains(&f) {
                unavailable.push(f);
            }
        }
        assert_eq!(
            m["usable"].as_bool().unwrap(),
            unavailable.is_empty(),
            "{name}"
        );
        match qemu.get(name) {
            Some(q) if *q == unavailable => {}
            Some(q) => diffs.push(format!("{name}: QEMU {q:?}, rvmm {unavailable:?}")),
            None => diffs.push(format!("{name}: not in QEMU's list")),
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn text_lists_every_model_with_qemus_description_and_qemus_flags() {
    let ours = run_ok(&["cpu-models"]);
    let out = qemu().args(["-cpu", "help"]).output().unwrap();
    let (help, _) = text(&out);
    // Model lines: `x86 NAME  DESCRIPTION` in QEMU; `x86 NAME YES|NO DESCRIPTION` in rvmm.
    let qemu_models: Vec<(String, String)> = help
        .lines()
        .filter_map(|l| l.strip_prefix("x86 "))
        .map(|l| {
            let (name, desc) = l.split_once(' ').unwrap();
            (name.to_string(), desc.trim().to_string())
        })
        .collect();
    let our_models: Vec<(String, String)> = ours
        .lines()
        .filter_map(|l| l.strip_prefix("x86 "))
        .map(|l| {
            let mut parts = l.splitn(2, ' ');
            let name = parts.next().unwrap().to_string();
            let rest = parts.next().unwrap().trim_start();
            let desc = rest
                .strip_prefix("yes")
                .or_else(|| rest.strip_prefix("no"))
                .unwrap_or(rest);
            (name, desc.trim().to_string())
        })
        .collect();
    assert_eq!(our_models, qemu_models);
    let flags = |t: &str| t[t.find("Recognized CPUID flags:").unwrap()..].to_string();
    assert_eq!(flags(&ours), flags(&help));
}

#[test]
fn expand_prints_the_unfiltered_feature_set() {
    let v: Value = serde_json::from_str(&run_ok(&[
        "cpu-models",
        "--expand",
        "Haswell-noTSX",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["resolves_to"], "Haswell-v2");
    let features: Vec<&str> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in ["avx2", "fma", "x2apic", "tsc-deadline", "kvmclock"] {
        assert!(features.contains(&f), "{f}: {features:?}");
    }
    assert!(!features.contains(&"hle"));
    let v: Value = serde_json::from_str(&run_ok(&[
        "cpu-models",
        "--expand",
        "Haswell,-avx2,+avx512f",
        "--json",
    ]))
    .unwrap();
    let features: Vec<&str> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(!features.contains(&"avx2") && features.contains(&"avx512f"));
    let out = rvmm()
        .args(["cpu-models", "--expand", "Haswel"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr,
        "rvmm: --cpu: unknown CPU model 'Haswel' (did you mean Haswell, Haswell-v1?)\n"
    );
}

#[test]
fn dry_run_prints_the_resolved_configuration_without_kvm() {
    let out = rvmm()
        .args([
            "run",
            "--smp",
            "4,sockets=2,cores=2",
            "--cpu",
            "Haswell-noTSX,+avx512f,-hle",
            "-m",
            "1G",
            "--name",
            "vm1",
            "--append",
            "mode=halt",
            "--dry-run",
        ])
        .env("RVMM_KVM_DEVICE", "/nonexistent/kvm")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "name: vm1\nboot: probe\nkernel: -\ninitrd: -\ncmdline: mode=halt\n\
smp: cpus=4 maxcpus=4 sockets=2 dies=1 cores=2 threads=1\ncpu.model: Haswell-noTSX\n\
cpu.resolved: Haswell-v2\ncpu.features: +avx512f,-hle\ncpu.pmu: default\ncpu.check: check\n\
memory: 1G (1073741824 bytes)\nmemory.hugepages: off\nmemory.mem-path: -\nmemory.prealloc: off\n\
memory.merge: default\nmemory.thp: default\nmemory.shared: off\nnuma.nodes: 0\nnuma.distances: -\n\
pinning.cpuset: -\npinning.emulator: -\ncgroup: auto /rvmm.slice/rvmm-vm1.scope\nballoon: off\n\
flags: --name vm1 --append mode=halt --smp 4,maxcpus=4,sockets=2,dies=1,cores=2,threads=1 \
--cpu Haswell-noTSX,+avx512f,-hle -m 1G\n"
    );
    let out = rvmm().args(["run", "--show-cpuid"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--show-cpuid needs --dry-run");
}

#[test]
fn show_cpuid_prints_one_table_per_vcpu() {
    if !kvm_available("show_cpuid_prints_one_table_per_vcpu") {
        return;
    }
    let stdout = run_ok(&[
        "run",
        "--smp",
        "3,sockets=1,cores=2,threads=2,maxcpus=4",
        "--dry-run",
        "--show-cpuid",
    ]);
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("vCPU ")).collect();
    assert_eq!(headers.len(), 3, "{stdout}");
    // threads=2: APIC IDs 0, 1, 2 (SMT bit 0, core bit 1).
    for (i, h) in headers.iter().enumerate() {
        assert!(h.starts_with(&format!("vCPU {i} (APIC ID {i}): ")), "{h}");
    }
    // Each table's CPUID.01H:EBX[31:24] is its vCPU's initial APIC ID, and
    // CPUID.(EAX=0BH,ECX=0):EDX its x2APIC ID.
    let mut vcpu = 0u32;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("vCPU ") {
            vcpu = rest.split(' ').next().unwrap().parse().unwrap();
            continue;
        }
        let f: Vec<u32> = line
            .split_whitespace()
            .filter_map(|t| t.strip_prefix("0x"))
            .map(|h| u32::from_str_radix(h, 16).unwrap())
            .collect();
        if f.len() != 7 {
            continue;
        }
        let (function, index, ebx, edx) = (f[0], f[1], f[4], f[6]);
        if function == 1 {
            assert_eq!(ebx >> 24, vcpu);
        }
        if function == 0xB && index == 0 {
            assert_eq!(edx, vcpu);
        }
    }
}
