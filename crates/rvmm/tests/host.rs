//! `rvmm host` checked against the tools users trust on this very host: `nproc`, `lscpu`,
//! /proc/meminfo and `numactl -H` (scripts/deps.sh installs numactl and util-linux), and
//! `rvmm host --cpu-json` against `rvmm cpu-models` and `rvmm cpu-compare`.
//!
//! Memory figures move while the tests run (page cache, ballooning): sizes are checked to
//! lie between two readings of the reference tool taken before and after rvmm's.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{failed_cleanly, is_kvm_pvm, kvm_available, rvmm, text};
use serde_json::Value;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run scripts/deps.sh)"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{cmd:?}: {stderr}");
    stdout
}

fn host_json() -> Value {
    serde_json::from_str(&run(rvmm().args(["host", "--json"]))).unwrap()
}

/// `lscpu` as key → value.
fn lscpu() -> BTreeMap<String, String> {
    run(Command::new("lscpu").env("LC_ALL", "C"))
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// /proc/meminfo as key → kB.
fn meminfo() -> BTreeMap<String, u64> {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

fn within(value: u64, a: u64, b: u64, what: &str) {
    let (lo, hi) = (a.min(b), a.max(b));
    // 1% slack for what moved between the reads.
    assert!(
        value >= lo - lo / 100 && value <= hi + hi / 100,
        "{what}: rvmm {value} is not between the reference readings {lo} and {hi}"
    );
}

#[test]
fn cpu_figures_match_nproc_and_lscpu() {
    let h = host_json();
    let nproc: usize = run(&mut Command::new("nproc")).trim().parse().unwrap();
    assert_eq!(h["sched"]["allowed_cpus"].as_array().unwrap().len(), nproc);
    let l = lscpu();
    let n = |v: &Value| v.as_u64().unwrap().to_string();
    assert_eq!(
        h["cpus"]["online"].as_array().unwrap().len().to_string(),
        l["CPU(s)"]
    );
    assert_eq!(h["cpus"]["vendor_id"].as_str().unwrap(), l["Vendor ID"]);
    assert_eq!(h["cpus"]["model_name"].as_str().unwrap(), l["Model name"]);
    assert_eq!(n(&h["cpus"]["family"]), l["CPU family"]);
    assert_eq!(n(&h["cpus"]["model"]), l["Model"]);
    assert_eq!(n(&h["cpus"]["stepping"]), l["Stepping"]);
    assert_eq!(n(&h["cpus"]["counts"]["sockets"]), l["Socket(s)"]);
    assert_eq!(
        n(&h["cpus"]["counts"]["cores_per_socket"]),
        l["Core(s) per socket"]
    );
    assert_eq!(
        n(&h["cpus"]["counts"]["threads_per_core"]),
        l["Thread(s) per core"]
    );
    if let Some(nodes) = l.get("NUMA node(s)") {
        assert_eq!(
            h["numa"]["nodes"].as_array().unwrap().len().to_string(),
            *nodes
        );
    }
    // lscpu's flags are /proc/cpuinfo's.
    let flags: Vec<&str> = l["Flags"].split_whitespace().collect();
    let ours: Vec<&str> = h["cpus"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut sorted = flags.clone();
    sorted.sort_unstable();
    assert_eq!(ours, sorted);
}

#[test]
fn memory_figures_match_proc_meminfo() {
    let before = meminfo();
    let h = host_json();
    let after = meminfo();
    let p = &h["pages"];
    within(
        p["mem_total"].as_u64().unwrap() >> 10,
        before["MemTotal"],
        after["MemTotal"],
        "MemTotal",
    );
    assert_eq!(p["default_size_kib"].as_u64(), Some(before["Hugepagesize"]));
    let pool = p["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pool| pool["size_kib"].as_u64() == Some(before["Hugepagesize"]))
        .expect("a pool of the default huge page size");
    assert_eq!(pool["total"].as_u64(), Some(before["HugePages_Total"]));
    assert_eq!(pool["free"].as_u64(), Some(before["HugePages_Free"]));
}

/// `numactl -H` as (node lines without sizes, node → size MB, node → free MB).
fn numactl() -> (Vec<String>, BTreeMap<u32, u64>, BTreeMap<u32, u64>) {
    let text = run(Command::new("numactl").arg("-H"));
    let mut fixed = Vec::new();
    let mut size = BTreeMap::new();
    let mut free = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match (f.first(), f.get(2)) {
            (Some(&"node"), Some(&"size:")) => {
                size.insert(f[1].parse().unwrap(), f[3].parse().unwrap());
            }
            (Some(&"node"), Some(&"free:")) => {
                free.insert(f[1].parse().unwrap(), f[3].parse().unwrap());
            }
            _ => fixed.push(l.to_string()),
        }
    }
    (fixed, size, free)
}

#[test]
fn numa_matches_numactl() {
    let (fixed, size_before, free_before) = numactl();
    let h = host_json();
    let (_, size_after, free_after) = numactl();
    // Our text part of `rvmm host`, the same renderer, against numactl's lines.
    let ours = run(rvmm().arg("host"));
    let section: Vec<String> = ours
        .split("NUMA (as numactl --hardware)\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l).to_string())
        .filter(|l| !l.contains(" size: ") && !l.contains(" free: "))
        .collect();
    assert_eq!(section, fixed);
    for node in h["numa"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_u64().unwrap() as u32;
        within(
            node["mem_total"].as_u64().unwrap() >> 20,
            size_before[&id],
            size_after[&id],
            "node size",
        );
        within(
            node["mem_free"].as_u64().unwrap() >> 20,
            free_before[&id],
            free_after[&id],
            "node free",
        );
    }
}

#[test]
fn kvm_section_says_how_kvm_works_here() {
    if !kvm_available("kvm_section_says_how_kvm_works_here") {
        return;
    }
    let out = run(rvmm().arg("host"));
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let hw = flags
        .lines()
        .any(|l| l.starts_with("flags") && (l.contains(" vmx") || l.contains(" svm")));
    if is_kvm_pvm() && !hw {
        assert!(
            out.contains(
                "/dev/kvm works while /proc/cpuinfo shows no vmx/svm, because this is kvm-pvm"
            ),
            "{out}"
        );
        assert!(out.contains("CPU flags:           none (no vmx or svm in /proc/cpuinfo)"));
    }
    assert!(out.contains("KVM API version:     12"));
    assert!(out.contains("7 of 7 that rvmm needs present"), "{out}");
    for section in [
        "Virtualization\n",
        "\nCPU\n",
        "\nNUMA",
        "\nMemory\n",
        "\nI/O virtualization\n",
        "\nScheduling\n",
    ] {
        assert!(out.contains(section), "{section}");
    }
}

#[test]
fn cpu_json_agrees_with_cpu_models_and_compare() {
    if !kvm_available("cpu_json_agrees_with_cpu_models_and_compare") {
        return;
    }
    let desc: Value = serde_json::from_str(&run(rvmm().args(["host", "--cpu-json"]))).unwrap();
    let features: Vec<&str> = desc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in &features {
        assert!(vmm::cpu::features::canonical_name(f).is_some(), "{f}");
    }
    let path = std::env::temp_dir().join(format!("rvmm-host-{}.json", std::process::id()));
    std::fs::write(&path, desc.to_string()).unwrap();
    // A model rvmm cpu-models calls usable compares as identical or superset against this
    // host's description, and an unusable one as incompatible, for every built-in version.
    let models: Value = serde_json::from_str(&run(rvmm().args(["cpu-models", "--json"]))).unwrap();
    let mut disagree = Vec::new();
    for m in models["models"].as_array().unwrap() {
        if m["kind"] != "versioned" {
            continue;
        }
        let name = m["name"].as_str().unwrap();
        let cmp: Value = serde_json::from_str(&run(rvmm()
            .args(["cpu-compare", name, "--json", "--host"])
            .arg(&path)))
        .unwrap();
        let verdict = cmp[0]["verdict"].as_str().unwrap();
        if m["usable"].as_bool().unwrap() != (verdict != "incompatible") {
            disagree.push(format!(
                "{name}: cpu-models usable={}, cpu-compare {verdict} {:?}",
                m["usable"], cmp[0]["missing"]
            ));
        }
    }
    // The baseline of this host alone is the closest model `rvmm host` names; where no named
    // model runs unchanged (kvm-pvm on AMD lacks even SSE3), both say so.
    let h = host_json();
    let mut baseline = rvmm();
    baseline.args(["cpu-baseline", "--json"]).arg(&path);
    if h["closest_model"].is_null() {
        let out = baseline.output().unwrap();
        let _ = std::fs::remove_file(&path);
        let (_, stderr) = failed_cleanly(&out, "cpu-baseline (a host no named model fits)");
        assert!(
            stderr.contains("the hosts share no named CPU model"),
            "{stderr}"
        );
    } else {
        let b: Value = serde_json::from_str(&run(&mut baseline)).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(b["model"], h["closest_model"][0]);
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}
