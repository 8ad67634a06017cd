//! Tests for `topology`: synthetic CPUID in QEMU's shapes, with the IDs Linux 6.1 derives
//! written out by hand.

use super::*;
use crate::probe::decode::CpuDump;
use crate::probe::synth::{Regs, Style, Topo};

fn dumps(regs: Vec<Regs>) -> Vec<CpuDump> {
    regs.into_iter()
        .enumerate()
        .map(|(i, leaves)| CpuDump {
            index: i as u32,
            leaves,
        })
        .collect()
}

/// (apic, package, die, core) of one CPU.
type Ids = (u32, u32, u32, u32);

/// Ids per CPU, the method of CPU 0, the counts and the thread ranks.
fn ids(topo: Topo, style: Style) -> (Vec<Ids>, Method, Counts, Vec<usize>) {
    let cpus = dumps(topo.cpus(style));
    let topos: Vec<CpuTopology> = cpus.iter().map(|c| derive(&Leaves::new(c))).collect();
    let (counts, ranks) = count(&topos);
    (
        topos
            .iter()
            .map(|t| (t.apic_id, t.package, t.die, t.core))
            .collect(),
        topos[0].method,
        counts,
        ranks,
    )
}

fn counts(sockets: usize, dies: usize, cores_per_die: usize, threads: usize) -> Counts {
    Counts {
        sockets,
        dies_per_socket: dies,
        cores_per_die,
        cores_per_socket: dies * cores_per_die,
        threads_per_core: threads,
    }
}

#[test]
fn leaf_0b_two_sockets_two_cores_two_threads() {
    let (ids, method, c, ranks) = ids(Topo::new(2, 1, 2, 2), Style::Intel0b);
    assert_eq!(method, Method::Leaf0b);
    assert_eq!(
        ids,
        [
            (0, 0, 0, 0),
            (1, 0, 0, 0),
            (2, 0, 0, 1),
            (3, 0, 0, 1),
            (4, 1, 0, 0),
            (5, 1, 0, 0),
            (6, 1, 0, 1),
            (7, 1, 0, 1),
        ]
    );
    assert_eq!(c, counts(2, 1, 2, 2));
    assert_eq!(ranks, [0, 1, 0, 1, 0, 1, 0, 1]);
}

#[test]
fn leaf_1f_two_dies() {
    // 1 socket x 2 dies x 2 cores x 2 threads: APIC IDs 0-7, SMT shift 1, core shift 2,
    // die shift 3. Linux 6.1's core_id spans the dies (0-3), die_id is bit 2.
    let (ids, method, c, _) = ids(Topo::new(1, 2, 2, 2), Style::Intel1f);
    assert_eq!(method, Method::Leaf1f);
    assert_eq!(
        ids,
        [
            (0, 0, 0, 0),
            (1, 0, 0, 0),
            (2, 0, 0, 1),
            (3, 0, 0, 1),
            (4, 0, 1, 2),
            (5, 0, 1, 2),
            (6, 0, 1, 3),
            (7, 0, 1, 3),
        ]
    );
    assert_eq!(c, counts(1, 2, 2, 2));
}

#[test]
fn leaf_0b_alone_does_not_see_dies() {
    // Same 2-die guest without leaf 1FH: the die bits fold into core_id, die_id stays 0.
    let (ids, method, c, _) = ids(Topo::new(1, 2, 2, 1), Style::Intel0b);
    assert_eq!(method, Method::Leaf0b);
    assert_eq!(
        ids,
        [(0, 0, 0, 0), (1, 0, 0, 1), (2, 0, 0, 2), (3, 0, 0, 3)]
    );
    assert_eq!(c, counts(1, 1, 4, 1));
}

#[test]
fn three_cores_pad_the_apic_id() {
    // 2 sockets x 3 cores: the core field is 2 bits wide, so APIC IDs skip 3.
    let (ids, _, c, _) = ids(Topo::new(2, 1, 3, 1), Style::Intel0b);
    assert_eq!(
        ids,
        [
            (0, 0, 0, 0),
            (1, 0, 0, 1),
            (2, 0, 0, 2),
            (4, 1, 0, 0),
            (5, 1, 0, 1),
            (6, 1, 0, 2),
        ]
    );
    assert_eq!(c, counts(2, 1, 3, 1));
}

#[test]
fn legacy_leaves_1_and_4() {
    // Level 4: CPUID.1:EBX[23:16] = 4 logical, CPUID.4:EAX[31:26] = 1 (2 cores).
    let (ids, method, c, _) = ids(Topo::new(2, 1, 2, 2), Style::IntelLegacy);
    assert_eq!(method, Method::Legacy);
    assert_eq!(
        ids,
        [
            (0, 0, 0, 0),
            (1, 0, 0, 0),
            (2, 0, 0, 1),
            (3, 0, 0, 1),
            (4, 1, 0, 0),
            (5, 1, 0, 0),
            (6, 1, 0, 1),
            (7, 1, 0, 1),
        ]
    );
    assert_eq!(c, counts(2, 1, 2, 2));
}

#[test]
fn legacy_without_htt_is_one_core_per_package() {
    // 4 sockets of 1 core: no HTT bit, so package = APIC ID and core 0.
    let (ids, method, c, _) = ids(Topo::new(4, 1, 1, 1), Style::IntelLegacy);
    assert_eq!(method, Method::Flat);
    assert_eq!(
        ids,
        [(0, 0, 0, 0), (1, 1, 0, 0), (2, 2, 0, 0), (3, 3, 0, 0)]
    );
    assert_eq!(c, counts(4, 1, 1, 1));
}

#[test]
fn amd_without_leaf_0b() {
    // AMD family 17H, 2 sockets x 3 cores x 2 threads: ApicIdSize 3 (80000008H:ECX[15:12]),
    // core_id from 8000001EH:EBX[7:0], die_id = node id 8000001EH:ECX[7:0] (one per socket).
    let (ids, method, c, ranks) = ids(Topo::new(2, 1, 3, 2), Style::Amd);
    assert_eq!(method, Method::Amd);
    assert_eq!(
        ids,
        [
            (0, 0, 0, 0),
            (1, 0, 0, 0),
            (2, 0, 0, 1),
            (3, 0, 0, 1),
            (4, 0, 0, 2),
            (5, 0, 0, 2),
            (8, 1, 1, 0),
            (9, 1, 1, 0),
            (10, 1, 1, 1),
            (11, 1, 1, 1),
            (12, 1, 1, 2),
            (13, 1, 1, 2),
        ]
    );
    assert_eq!(c, counts(2, 1, 3, 2));
    assert_eq!(ranks, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
}

#[test]
fn amd_with_leaf_0b_uses_it() {
    // AMD with TopologyExtensions and a valid leaf 0BH: detect_extended_topology wins; with
    // no die level in 0BH the node ID from 8000001EH stays as die_id.
    let topo = Topo::new(2, 1, 2, 1);
    let mut regs = topo.cpus(Style::Amd);
    for (r, apic) in regs.iter_mut().zip(topo.apic_ids()) {
        r.insert((0xb, 0), [0, 1, 0x100, apic]);
        r.insert((0xb, 1), [1, 2, 0x201, apic]);
        r.insert((0xb, 2), [0, 0, 0x2, apic]);
    }
    let topos: Vec<CpuTopology> = dumps(regs)
        .iter()
        .map(|c| derive(&Leaves::new(c)))
        .collect();
    assert_eq!(topos[0].method, Method::Leaf0b);
    let got: Vec<_> = topos
        .iter()
        .map(|t| (t.apic_id, t.package, t.die, t.core))
        .collect();
    assert_eq!(
        got,
        [(0, 0, 0, 0), (1, 0, 0, 1), (2, 1, 1, 0), (3, 1, 1, 1)]
    );
}

#[test]
fn invalid_leaf_0b_falls_back() {
    // Leaf 0BH present but subleaf 0 EBX = 0: Linux ignores it and uses leaves 1 and 4, with
    // the APIC ID from CPUID.1:EBX[31:24].
    let topo = Topo::new(1, 1, 2, 1);
    let mut regs = topo.cpus(Style::Intel0b);
    for r in &mut regs {
        r.insert((0xb, 0), [0, 0, 0x100, 0x55]);
    }
    let cpus = dumps(regs);
    let t: Vec<_> = cpus.iter().map(|c| derive(&Leaves::new(c))).collect();
    assert_eq!(extended_leaf(&Leaves::new(&cpus[1])), None);
    assert_eq!(apic_id(&Leaves::new(&cpus[1])), 1);
    assert_eq!(
        t[1],
        CpuTopology {
            apic_id: 1,
            package: 0,
            die: 0,
            core: 1,
            method: Method::Legacy
        }
    );
}

#[test]
fn count_order_matches_linux() {
    assert_eq!(
        [0, 1, 2, 3, 4, 5, 8, 9, 255, 256].map(count_order),
        [0, 0, 1, 2, 2, 3, 3, 4, 8, 8]
    );
}
