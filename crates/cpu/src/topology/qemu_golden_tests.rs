//! Golden tests: the topology and cache leaves of real QEMU 7.2 CPUID tables.
//!
//! Each file in testdata/ is what QEMU 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18) passed to
//! KVM_SET_CPUID2 for every vCPU, captured with an LD_PRELOAD shim around ioctl() while
//! running `qemu-system-x86_64 -M pc -accel kvm -S -smp ... -cpu ...` on this project's
//! Intel host, and trimmed to leaves 0, 1, 2, 4, 0xB, 0x1F, 0x80000000, 0x80000001,
//! 0x80000005, 0x80000006, 0x80000008, 0x8000001D, 0x8000001E. Lines: `vcpu <KVM vcpu id
//! = APIC ID>`, then `function index flags eax ebx ecx edx` in hex. Under KVM QEMU gives
//! every named model the host's vendor (GenuineIntel here) unless `vendor=` is set.
//!
//! Each test erases everything topology-derived from QEMU's table, runs
//! [`apply_topology`], and expects QEMU's table back, entry for entry and in order.

use super::apply::apply_topology;
use super::leaves::{CpuVendor, TopologyContext, TopologyFlags, LEAF1_EDX_HTT};
use crate::cache::CacheModel;
use crate::cpuid::CpuidEntry;

struct Golden {
    name: &'static str,
    data: &'static str,
    smp: &'static str,
    model: &'static str,
    flags: TopologyFlags,
}

const ON: TopologyFlags = TopologyFlags {
    l3_cache: true,
    cpuid_0xb: true,
    vendor_cpuid_only: true,
};
const NO_L3: TopologyFlags = TopologyFlags {
    l3_cache: false,
    ..ON
};

macro_rules! golden {
    ($file:literal, $smp:literal, $model:literal, $flags:expr) => {
        Golden {
            name: $file,
            data: include_str!(concat!("testdata/", $file, ".txt")),
            smp: $smp,
            model: $model,
            flags: $flags,
        }
    };
}

fn goldens() -> Vec<Golden> {
    vec![
        // -cpu qemu64
        golden!(
            "qemu64_4_s1_c2_t2",
            "4,sockets=1,cores=2,threads=2",
            "qemu64",
            ON
        ),
        golden!(
            "qemu64_6_s1_c3_t2",
            "6,sockets=1,cores=3,threads=2",
            "qemu64",
            ON
        ),
        golden!(
            "qemu64_8_s2_d2_c2_t1",
            "8,sockets=2,dies=2,cores=2,threads=1",
            "qemu64",
            ON
        ),
        // -cpu qemu64,l3-cache=off,cpuid-0xb=off
        golden!(
            "qemu64_2_nol3_no0xb",
            "2,sockets=1,cores=2,threads=1", // captured with `-smp 2`, which QEMU resolves so
            "qemu64",
            TopologyFlags {
                l3_cache: false,
                cpuid_0xb: false,
                vendor_cpuid_only: true,
            }
        ),
        // -cpu EPYC (vendor GenuineIntel under KVM on this host)
        golden!(
            "epyc_12_s2_c3_t2",
            "12,sockets=2,cores=3,threads=2",
            "EPYC",
            ON
        ),
        // -cpu EPYC,vendor=AuthenticAMD
        golden!(
            "epyc_amd_12_s2_c3_t2",
            "12,sockets=2,cores=3,threads=2",
            "EPYC",
            ON
        ),
        // -cpu Haswell
        golden!(
            "haswell_16_max24_s2_d3_c2_t2",
            "16,maxcpus=24,sockets=2,dies=3,cores=2,threads=2",
            "Haswell",
            ON
        ),
        // -cpu EPYC-Milan,vendor=AuthenticAMD
        golden!(
            "milan_amd_8_s1_d2_c2_t2",
            "8,sockets=1,dies=2,cores=2,threads=2",
            "EPYC-Milan",
            ON
        ),
        // -cpu EPYC-Rome
        golden!("rome_1", "1", "EPYC-Rome", ON),
        // -cpu EPYC-Rome,vendor=AuthenticAMD,l3-cache=off
        golden!(
            "rome_amd_nol3_3_max12_s2_c3_t2",
            "3,maxcpus=12,sockets=2,cores=3,threads=2",
            "EPYC-Rome",
            NO_L3
        ),
        // -cpu Skylake-Client,l3-cache=off
        golden!(
            "skylake_nol3_6_s1_d3_c1_t2",
            "6,sockets=1,dies=3,cores=1,threads=2",
            "Skylake-Client",
            NO_L3
        ),
    ]
}

/// Parses a dump into (APIC ID, table) per vCPU.
fn parse_dump(text: &str) -> Vec<(u32, Vec<CpuidEntry>)> {
    let hex = |s: &str| u32::from_str_radix(s, 16).expect("hex field");
    let mut out: Vec<(u32, Vec<CpuidEntry>)> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["vcpu", id] => out.push((id.parse().expect("vcpu id"), Vec::new())),
            [f, i, fl, a, b, c, d] => out.last_mut().expect("vcpu line first").1.push(CpuidEntry {
                function: hex(f),
                index: hex(i),
                flags: hex(fl),
                eax: hex(a),
                ebx: hex(b),
                ecx: hex(c),
                edx: hex(d),
            }),
            _ => panic!("bad golden line {line:?}"),
        }
    }
    out
}

fn vendor_of(table: &[CpuidEntry]) -> CpuVendor {
    let leaf0 = table.iter().find(|e| e.function == 0).expect("leaf 0");
    let mut id = Vec::new();
    for reg in [leaf0.ebx, leaf0.edx, leaf0.ecx] {
        id.extend_from_slice(&reg.to_le_bytes());
    }
    CpuVendor::from_vendor_id(std::str::from_utf8(&id).expect("ascii vendor"))
}

/// QEMU's table with every topology-derived value removed or zeroed. None of the golden
/// models has HTT or CmpLegacy among its own features, so both bits come from topology.
fn erase_topology(table: &[CpuidEntry]) -> Vec<CpuidEntry> {
    const REPLACED: [u32; 8] = [
        2,
        4,
        0xB,
        0x1F,
        0x8000_0005,
        0x8000_0006,
        0x8000_001D,
        0x8000_001E,
    ];
    let mut out: Vec<CpuidEntry> = table
        .iter()
        .filter(|e| !REPLACED.contains(&e.function))
        .copied()
        .collect();
    for e in &mut out {
        match e.function {
            1 => {
                e.ebx = 0;
                LEAF1_EDX_HTT.set_flag(&mut e.edx, false);
            }
            0x8000_0001 => e.ecx &= !0b10,
            0x8000_0008 => e.ecx = 0,
            _ => {}
        }
    }
    out
}

#[test]
fn apply_topology_reproduces_qemu_7_2_tables() {
    for golden in goldens() {
        let (cpus, topology) = super::explicit(golden.smp);
        let caches = CacheModel::for_caches(crate::models::model_caches(golden.model));
        let vcpus = parse_dump(golden.data);
        assert_eq!(
            vcpus.len() as u32,
            cpus,
            "{}: one table per present vCPU",
            golden.name
        );
        for (index, (apic_id, expected)) in vcpus.iter().enumerate() {
            let what = format!("{} vcpu {apic_id}", golden.name);
            assert_eq!(
                topology.apic_id(index as u32),
                *apic_id,
                "{what}: APIC ID of index {index}"
            );
            let ctx = TopologyContext {
                vendor: vendor_of(expected),
                topology: &topology,
                caches: &caches,
                flags: golden.flags,
                apic_id: *apic_id,
            };
            let mut table = erase_topology(expected);
            apply_topology(&ctx, &mut table);
            for (got, want) in table.iter().zip(expected) {
                assert_eq!(got, want, "{what}");
            }
            assert_eq!(table.len(), expected.len(), "{what}: entry count");
        }
    }
}

#[test]
fn goldens_cover_both_vendors_and_every_leaf() {
    let mut vendors = Vec::new();
    let mut leaves = std::collections::BTreeSet::new();
    for golden in goldens() {
        for (_, table) in parse_dump(golden.data) {
            vendors.push(vendor_of(&table));
            leaves.extend(table.iter().map(|e| e.function));
        }
    }
    assert!(vendors.contains(&CpuVendor::Intel) && vendors.contains(&CpuVendor::Amd));
    for leaf in [
        2,
        4,
        0xB,
        0x1F,
        0x8000_0005,
        0x8000_0006,
        0x8000_001D,
        0x8000_001E,
    ] {
        assert!(leaves.contains(&leaf), "no golden has leaf {leaf:#x}");
    }
}
