//! Unit tests of each encoder against values worked out by hand from QEMU 7.2's
//! `cpu_x86_cpuid()` for several topologies (the golden tests check whole tables).

use super::apply::{apply_topology, replace_leaf};
use super::cache_leaves::*;
use super::leaves::*;
use super::CpuTopology;
use crate::cache::{CacheModel, EPYC_CACHES, EPYC_MILAN_CACHES};
use crate::cpuid::CpuidEntry;

fn topo(text: &str) -> CpuTopology {
    super::explicit(text).1
}

fn ctx<'a>(
    t: &'a CpuTopology,
    caches: &'a CacheModel,
    vendor: CpuVendor,
    apic_id: u32,
) -> TopologyContext<'a> {
    TopologyContext {
        vendor,
        topology: t,
        caches,
        flags: TopologyFlags::default(),
        apic_id,
    }
}

fn regs(e: &CpuidEntry) -> [u32; 4] {
    [e.eax, e.ebx, e.ecx, e.edx]
}

const LEGACY: CacheModel = CacheModel::legacy();

#[test]
fn leaf_1_apic_id_count_and_htt() {
    let t = topo("6,sockets=1,cores=3,threads=2");
    let mut e = CpuidEntry {
        function: 1,
        ebx: 0xffff_ffff,
        ..CpuidEntry::default()
    };
    patch_leaf_0x1(&ctx(&t, &LEGACY, CpuVendor::Intel, 5), &mut e);
    assert_eq!((e.ebx, e.edx), (0x0506_0800, 1 << 28));

    // One vCPU: no count, HTT left as the model had it.
    let t = topo("1");
    let mut e = CpuidEntry {
        function: 1,
        edx: 1 << 28,
        ..CpuidEntry::default()
    };
    patch_leaf_0x1(&ctx(&t, &LEGACY, CpuVendor::Intel, 0), &mut e);
    assert_eq!((e.ebx, e.edx), (0x0000_0800, 1 << 28));

    // Dies do not count (QEMU 7.2 uses cores * threads); the APIC ID keeps its low byte.
    let t = topo("sockets=2,dies=4,cores=2");
    let mut e = CpuidEntry::default();
    patch_leaf_0x1(&ctx(&t, &LEGACY, CpuVendor::Intel, 300), &mut e);
    assert_eq!(e.ebx, 0x2c02_0800);
}

#[test]
fn leaf_0xb_and_0x1f_levels() {
    let t = topo("8,sockets=2,dies=2,cores=2,threads=1");
    let c = ctx(&t, &LEGACY, CpuVendor::Intel, 5);
    let b: Vec<_> = leaf_0xb(&c).iter().map(regs).collect();
    assert_eq!(b, [[0, 1, 0x100, 5], [2, 2, 0x201, 5], [0, 0, 0x002, 5]]);
    let f: Vec<_> = leaf_0x1f(&c).iter().map(regs).collect();
    assert_eq!(
        f,
        [
            [0, 1, 0x100, 5],
            [1, 2, 0x201, 5],
            [2, 4, 0x502, 5],
            [0, 0, 0x003, 5]
        ]
    );
    assert!(leaf_0x1f(&c)
        .iter()
        .enumerate()
        .all(|(i, e)| e.index == i as u32 && e.flags == 1));

    let t = topo("12,sockets=2,cores=3,threads=2");
    let c = ctx(&t, &LEGACY, CpuVendor::Intel, 9);
    let b: Vec<_> = leaf_0xb(&c).iter().map(regs).collect();
    assert_eq!(b, [[1, 2, 0x100, 9], [3, 6, 0x201, 9], [0, 0, 0x002, 9]]);
    assert!(leaf_0x1f(&c).is_empty(), "0x1F only with dies > 1");

    let mut off = c;
    off.flags.cpuid_0xb = false;
    assert_eq!(
        leaf_0xb(&off),
        vec![CpuidEntry {
            function: 0xB,
            flags: 1,
            ..CpuidEntry::default()
        }]
    );
}

#[test]
fn leaf_4_sharing_and_core_count() {
    let t = topo("6,sockets=1,cores=3,threads=2");
    let c = ctx(&t, &LEGACY, CpuVendor::Intel, 0);
    let eax: Vec<u32> = leaf_0x4(&c).iter().map(|e| e.eax).collect();
    // cores - 1 = 2 in [31:26]; L2 shared by threads (2), L3 by 1 << die_offset (8).
    assert_eq!(eax, [0x0800_0121, 0x0800_0122, 0x0800_4143, 0x0801_c163, 0]);
    let l3 = leaf_0x4(&c)[3];
    assert_eq!((l3.ebx, l3.ecx, l3.edx), (0x03c0_003f, 0x3fff, 0b110));

    let mut no_l3 = c;
    no_l3.flags.l3_cache = false;
    let subleaves: Vec<u32> = leaf_0x4(&no_l3).iter().map(|e| e.index).collect();
    assert_eq!(subleaves, [0, 1, 2, 3]);
    assert_eq!(regs(&leaf_0x4(&no_l3)[3]), [0; 4]);

    let amd = ctx(&t, &LEGACY, CpuVendor::Amd, 0);
    assert_eq!(
        leaf_0x4(&amd),
        vec![CpuidEntry {
            function: 4,
            flags: 1,
            ..CpuidEntry::default()
        }]
    );
    let mut shown = amd;
    shown.flags.vendor_cpuid_only = false;
    assert_eq!(leaf_0x4(&shown).len(), 5);
}

#[test]
fn leaf_2_descriptors() {
    let t = topo("1");
    let c = ctx(&t, &LEGACY, CpuVendor::Intel, 0);
    let e = leaf_0x2(&c);
    assert_eq!((regs(&e), e.flags), ([1, 0, 0x4d, 0x002c_307d], 6));
    let mut no_l3 = c;
    no_l3.flags.l3_cache = false;
    assert_eq!(regs(&leaf_0x2(&no_l3)), [1, 0, 0, 0x002c_307d]);
    let epyc = CacheModel::uniform(EPYC_CACHES);
    assert_eq!(
        regs(&leaf_0x2(&ctx(&t, &epyc, CpuVendor::Intel, 0))),
        [1, 0, 0x4b, 0x002c_ff80]
    );
    assert_eq!(
        regs(&leaf_0x2(&ctx(&t, &LEGACY, CpuVendor::Amd, 0))),
        [0; 4]
    );
    assert_eq!(
        regs(&leaf_0x2(&ctx(&t, &LEGACY, CpuVendor::Other, 0)))[3],
        0x002c_307d
    );
}

#[test]
fn amd_l1_l2_l3_leaves() {
    let t = topo("1");
    let c = ctx(&t, &LEGACY, CpuVendor::Amd, 0);
    assert_eq!(
        regs(&leaf_0x80000005(&c)),
        [0x01ff_01ff, 0x01ff_01ff, 0x4002_0140, 0x4002_0140]
    );
    assert_eq!(
        regs(&leaf_0x80000006(&c)),
        [0, 0x4200_4200, 0x0200_8140, 0x0080_8140]
    );
    let epyc = CacheModel::uniform(EPYC_CACHES);
    let c = ctx(&t, &epyc, CpuVendor::Amd, 0);
    assert_eq!(regs(&leaf_0x80000005(&c))[2..], [0x2008_0140, 0x4004_0140]);
    assert_eq!(regs(&leaf_0x80000006(&c))[2..], [0x0200_6140, 0x0040_8140]);
    let milan = CacheModel::uniform(EPYC_MILAN_CACHES);
    let mut c = ctx(&t, &milan, CpuVendor::Amd, 0);
    assert_eq!(leaf_0x80000006(&c).edx, 0x0100_8140);
    c.flags.l3_cache = false;
    assert_eq!(leaf_0x80000006(&c).edx, 0);
}

#[test]
fn leaf_0x80000001_cmp_legacy_and_0x80000008_nc() {
    let t = topo("12,sockets=2,cores=3,threads=2");
    for (vendor, cmp_legacy) in [
        (CpuVendor::Amd, 2),
        (CpuVendor::Other, 2),
        (CpuVendor::Intel, 0),
    ] {
        let mut e = CpuidEntry {
            ecx: 1 << 22,
            ..CpuidEntry::default()
        };
        patch_leaf_0x80000001(&ctx(&t, &LEGACY, vendor, 0), &mut e);
        assert_eq!(e.ecx, (1 << 22) | cmp_legacy, "{vendor:?}");
    }
    let mut e = CpuidEntry::default();
    patch_leaf_0x80000008(&ctx(&t, &LEGACY, CpuVendor::Amd, 0), &mut e);
    assert_eq!(e.ecx, 0x3005);

    let single = topo("4,sockets=4");
    let mut e = CpuidEntry {
        ecx: 0xdead,
        ..CpuidEntry::default()
    };
    patch_leaf_0x80000008(&ctx(&single, &LEGACY, CpuVendor::Amd, 3), &mut e);
    patch_leaf_0x80000001(&ctx(&single, &LEGACY, CpuVendor::Amd, 3), &mut e);
    assert_eq!(e.ecx, 0);
}

#[test]
fn leaf_0x8000001d_sharing() {
    let t = topo("12,sockets=2,cores=3,threads=2");
    let c = ctx(&t, &LEGACY, CpuVendor::Amd, 0);
    let eax: Vec<u32> = leaf_0x8000001d(&c).iter().map(|e| e.eax).collect();
    // L1/L2 shared by threads (2), L3 by cores * threads (6); the AMD legacy L1 is 2-way.
    assert_eq!(eax, [0x4121, 0x4122, 0x4043, 0x1_4163, 0]);
    assert_eq!(leaf_0x8000001d(&c)[0].ebx, 0x0040_003f);
    let mut no_l3 = c;
    no_l3.flags.l3_cache = false;
    assert_eq!(
        leaf_0x8000001d(&no_l3)[3].eax,
        0x1_4163,
        "L3 stays in 0x8000001D"
    );
}

#[test]
fn leaf_0x8000001e_ids() {
    let t = topo("12,sockets=2,cores=3,threads=2");
    // APIC ID 9 = package 1, core 0, thread 1; die offset 3, so NodeId = 9 >> 3 = 1.
    assert_eq!(
        regs(&leaf_0x8000001e(&ctx(&t, &LEGACY, CpuVendor::Amd, 9))),
        [9, 0x100, 1, 0]
    );
    let t = topo("16,sockets=2,dies=2,cores=2,threads=2");
    // APIC ID 13 = package 1, die 1, core 0, thread 1; NodeId = 13 >> 2 = 3, 2 dies.
    assert_eq!(
        regs(&leaf_0x8000001e(&ctx(&t, &LEGACY, CpuVendor::Amd, 13))),
        [13, 0x100, 0x103, 0]
    );
    let t = topo("300,sockets=1,cores=300");
    assert_eq!(
        regs(&leaf_0x8000001e(&ctx(&t, &LEGACY, CpuVendor::Amd, 255))),
        [255, 0xff, 0, 0]
    );
    assert_eq!(
        regs(&leaf_0x8000001e(&ctx(&t, &LEGACY, CpuVendor::Amd, 256))),
        [0; 4]
    );
}

#[test]
fn vendor_and_warning() {
    assert_eq!(CpuVendor::from_vendor_id("GenuineIntel"), CpuVendor::Intel);
    assert_eq!(CpuVendor::from_vendor_id("AuthenticAMD"), CpuVendor::Amd);
    assert_eq!(CpuVendor::from_vendor_id("HygonGenuine"), CpuVendor::Other);
    assert_eq!(
        hyperthreading_warning(CpuVendor::Amd, false, 2).as_deref(),
        Some(
            "This family of AMD CPU doesn't support hyperthreading(2); configure --smp properly \
             or enable the topoext feature"
        )
    );
    assert_eq!(hyperthreading_warning(CpuVendor::Amd, true, 2), None);
    assert_eq!(hyperthreading_warning(CpuVendor::Intel, false, 2), None);
    assert_eq!(hyperthreading_warning(CpuVendor::Amd, false, 1), None);
}

fn leafs(entries: &[CpuidEntry]) -> Vec<(u32, u32)> {
    entries.iter().map(|e| (e.function, e.index)).collect()
}

fn bare(function: u32, eax: u32) -> CpuidEntry {
    CpuidEntry {
        function,
        eax,
        ..CpuidEntry::default()
    }
}

#[test]
fn replace_leaf_keeps_ranges_in_order() {
    let mut table = vec![
        bare(0x4000_0000, 0),
        bare(0, 0xd),
        bare(1, 0),
        bare(0xd, 0),
        bare(0x8000_0000, 0),
    ];
    replace_leaf(
        &mut table,
        0xB,
        vec![
            bare(0xB, 0),
            CpuidEntry {
                index: 1,
                ..bare(0xB, 0)
            },
        ],
    );
    replace_leaf(&mut table, 0x8000_001E, vec![bare(0x8000_001E, 0)]);
    replace_leaf(&mut table, 1, Vec::new());
    assert_eq!(
        leafs(&table),
        [
            (0x4000_0000, 0),
            (0, 0),
            (0xB, 0),
            (0xB, 1),
            (0xd, 0),
            (0x8000_0000, 0),
            (0x8000_001E, 0)
        ]
    );
}

#[test]
fn apply_respects_levels_and_inserts_missing_leaves() {
    let t = topo("4,sockets=1,cores=2,threads=2");
    let c = ctx(&t, &LEGACY, CpuVendor::Amd, 3);
    // Basic level 4, extended level 0x80000008; leaf 1 and 0x80000008 missing.
    let mut table = vec![bare(0, 4), bare(0x8000_0000, 0x8000_0008)];
    apply_topology(&c, &mut table);
    assert_eq!(
        leafs(&table),
        [
            (0, 0),
            (1, 0),
            (2, 0),
            (4, 0),
            (0x8000_0000, 0),
            (0x8000_0001, 0),
            (0x8000_0005, 0),
            (0x8000_0006, 0),
            (0x8000_0008, 0)
        ]
    );
    assert_eq!(table[1].ebx, 0x0304_0800);
    assert_eq!(table[8].ecx, 0x2003);
    // No leaf 0 / 0x80000000: nothing is written.
    let mut table = vec![bare(1, 0)];
    apply_topology(&c, &mut table);
    assert_eq!(table, vec![bare(1, 0)]);
}
