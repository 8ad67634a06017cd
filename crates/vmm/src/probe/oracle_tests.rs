//! Oracle tests: real QEMU 7.2 CPUID and ACPI tables, each with what Debian 12's Linux 6.1
//! itself reported for them (crates/vmm/tests/probe_oracle, see the header of each file).
//! The decoder must agree with the kernel on every CPU's package, die and core, on lscpu's
//! threads per core and sockets, on NUMA nodes and distances, on family/model/stepping and
//! cpuid level, and on every feature flag our table names.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::probe::decode::parse;
use crate::probe::flags::FEATURES;
use crate::util::cpulist::{cpulist, parse_cpulist};

/// The value after `prefix` on the first line that starts with it.
fn after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

fn sys<'a>(text: &'a str, cpu: usize, key: &str) -> &'a str {
    after(text, &format!("SYS cpu={cpu} {key} "))
        .unwrap_or_else(|| panic!("no SYS cpu={cpu} {key}"))
}

/// Checks one fixture; returns the view for file-specific checks.
fn check(name: &str) -> (GuestView, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/probe_oracle")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let v = GuestView::from_dump(&parse(&text).unwrap()).unwrap();
    assert!(v.warnings.is_empty(), "{name}: {:?}", v.warnings);

    for c in &v.cpus {
        let i = c.cpu as usize;
        let linux = (
            sys(&text, i, "physical_package_id"),
            sys(&text, i, "die_id"),
            sys(&text, i, "core_id"),
        );
        let ours = (c.package.to_string(), c.die.to_string(), c.core.to_string());
        assert_eq!(
            (linux.0, linux.1, linux.2),
            (ours.0.as_str(), ours.1.as_str(), ours.2.as_str()),
            "{name}: cpu {i} (package, die, core)"
        );
    }
    let threads = (0..v.vcpus)
        .map(|i| {
            parse_cpulist(sys(&text, i, "thread_siblings_list"))
                .unwrap()
                .len()
        })
        .max()
        .unwrap();
    assert_eq!(
        threads, v.topology.counts.threads_per_core,
        "{name}: threads"
    );
    let sockets: BTreeSet<&str> = (0..v.vcpus)
        .map(|i| sys(&text, i, "core_siblings_list"))
        .collect();
    assert_eq!(sockets.len(), v.topology.counts.sockets, "{name}: sockets");

    assert_eq!(
        after(&text, "cpu family\t:"),
        Some(v.family.to_string().as_str())
    );
    assert_eq!(
        after(&text, "model\t\t:"),
        Some(v.model.to_string().as_str())
    );
    assert_eq!(
        after(&text, "stepping\t:"),
        Some(v.stepping.to_string().as_str())
    );
    assert_eq!(
        after(&text, "cpuid level\t:"),
        Some(v.cpuid_level.to_string().as_str())
    );
    let cpuinfo: BTreeSet<&str> = after(&text, "CPUINFO flags\t\t:")
        .unwrap()
        .split_whitespace()
        .collect();
    let named: BTreeSet<&str> = FEATURES
        .iter()
        .map(|f| f.name)
        .filter(|n| cpuinfo.contains(n))
        .collect();
    let mut ours: BTreeSet<&str> = v.flags.iter().copied().collect();
    // amd.c init_amd: "3DNow or LM implies PREFETCHW", a flag Linux sets without the CPUID
    // bit; our flags are the raw bits.
    if v.vendor == "AuthenticAMD" && (ours.contains("lm") || ours.contains("3dnow")) {
        ours.insert("3dnowprefetch");
    }
    assert_eq!(ours, named, "{name}: flags");
    let linux_nodes = text.lines().filter(|l| l.contains(" cpulist ")).count();
    let Some(numa) = &v.numa else {
        // No SRAT: Linux makes one dummy node 0 holding every CPU.
        assert_eq!(linux_nodes, 1, "{name}: nodes");
        let all: Vec<u32> = (0..v.vcpus as u32).collect();
        assert_eq!(
            after(&text, "NODE 0 cpulist "),
            Some(cpulist(&all).as_str())
        );
        return (v, text);
    };
    assert_eq!(numa.nodes.len(), linux_nodes, "{name}: nodes");
    for n in &numa.nodes {
        let node = n.node;
        if let Some(list) = after(&text, &format!("NODE {node} cpulist ")) {
            assert_eq!(list, cpulist(&n.cpus), "{name}: node {node} cpus");
        }
        if let Some(d) = after(&text, &format!("NODE {node} distance ")) {
            let ours: Vec<String> = n.distances.iter().map(u8::to_string).collect();
            assert_eq!(d, ours.join(" "), "{name}: node {node} distances");
        }
    }

    (v, text)
}

#[test]
fn amd_qemu64_counts_threads_as_cores() {
    // AuthenticAMD without TopologyExtensions but with CmpLegacy: Linux 6.1 takes the APIC ID
    // bits below ApicIdSize as the core, so 2 cores x 2 threads shows as 4 cores.
    let (v, _) = check("amd-qemu64-2s2c2t.txt");
    assert_eq!(v.topology.method, topology::Method::Amd);
    assert_eq!(
        (
            v.topology.counts.cores_per_socket,
            v.topology.counts.threads_per_core
        ),
        (4, 1)
    );
}

#[test]
fn intel_leaf_0b() {
    let (v, _) = check("intel-leaf0b-2s2c2t.txt");
    assert_eq!(v.topology.method, topology::Method::Leaf0b);
    assert_eq!(v.topology.counts.sockets, 2);
}

#[test]
fn intel_leaf_1f_dies() {
    let (v, _) = check("intel-leaf1f-1s2d2c2t.txt");
    assert_eq!(v.topology.method, topology::Method::Leaf1f);
    assert_eq!(v.topology.counts.dies_per_socket, 2);
}

#[test]
fn intel_three_cores() {
    let (v, _) = check("intel-leaf0b-1s3c2t.txt");
    assert_eq!(v.topology.counts.cores_per_socket, 3);
}

#[test]
fn intel_legacy_level_4() {
    let (v, _) = check("intel-legacy-level4-2s2c2t.txt");
    assert_eq!(v.topology.method, topology::Method::Legacy);
    assert_eq!(v.topology.counts.threads_per_core, 2);
}

#[test]
fn numa_two_nodes_with_slit() {
    let (v, _) = check("intel-numa-2nodes-slit.txt");
    let n = &v.numa.as_ref().unwrap().nodes;
    assert_eq!(n[0].distances, [10, 21]);
    assert!(v.render().contains(
        "NUMA       node 0: cpus 0-1, 1023.625 MiB\n           node 1: cpus 2-3, 1024 MiB\n"
    ));
}

#[test]
fn numa_half_online() {
    // -smp 4,maxcpus=8: QEMU lists 8 MADT slots (4 enabled) and all 8 in the SRAT; node 1's
    // CPUs are all hotplug slots, and Linux shows it with no CPUs.
    let (v, _) = check("intel-numa-4of8-online.txt");
    let m = v.madt.as_ref().unwrap();
    assert_eq!((m.slots, m.enabled), (8, 4));
    let n = &v.numa.as_ref().unwrap().nodes;
    assert_eq!((n[1].cpus.len(), n[1].apic_ids.len()), (0, 4));
}
