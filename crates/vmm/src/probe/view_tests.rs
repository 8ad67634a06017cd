//! Tests for `view` and `render`: synthetic dumps with MADT/SRAT/SLIT built byte by byte.

use super::*;
use crate::probe::acpi_parse::{MadtNmi, MadtProcessor};
use crate::probe::decode::parse;
use crate::probe::synth::*;

const GIB: u64 = 1 << 30;

fn view(cpus: &[Regs], tables: &[Vec<u8>]) -> GuestView {
    GuestView::from_dump(&parse(&dump_text(cpus, tables)).unwrap()).unwrap()
}

/// QEMU's usual MADT for `n` enabled vCPUs plus `hotplug` disabled slots.
fn qemu_madt(apic_ids: &[u32], enabled: usize) -> Vec<u8> {
    let mut e: Vec<Vec<u8>> = apic_ids
        .iter()
        .enumerate()
        .map(|(i, id)| madt_lapic(i as u8, *id as u8, u32::from(i < enabled)))
        .collect();
    e.push(madt_ioapic(0, 0xfec0_0000, 0));
    e.push(madt_iso(0, 2, 0));
    e.push(madt_iso(5, 5, 0xd));
    e.push(madt_lapic_nmi(0xff, 0, 1));
    madt(&e)
}

#[test]
fn four_vcpus_one_socket() {
    let topo = Topo::new(1, 1, 4, 1);
    let v = view(
        &topo.cpus(Style::Intel0b),
        &[qemu_madt(&topo.apic_ids(), 4)],
    );
    assert_eq!(v.vcpus, 4);
    assert_eq!(v.vendor, "GenuineIntel");
    assert_eq!(v.brand, "QEMU Virtual CPU version 2.5+");
    assert_eq!((v.family, v.model, v.stepping), (15, 107, 1));
    assert_eq!((v.cpuid_level, v.xlevel), (0xd, 0x8000_0008));
    assert_eq!(v.hypervisor.as_deref(), Some("KVMKVMKVM"));
    assert_eq!(
        v.flags,
        [
            "fpu",
            "tsc",
            "cx8",
            "apic",
            "sse",
            "sse2",
            "ht",
            "syscall",
            "nx",
            "lm",
            "pni",
            "x2apic",
            "hypervisor",
            "lahf_lm",
            "avx2",
            "xsaveopt"
        ]
    );
    let m = v.madt.as_ref().unwrap();
    assert_eq!((m.slots, m.enabled), (4, 4));
    assert_eq!(m.table.ioapics.len(), 1);
    assert_eq!(m.table.overrides.len(), 2);
    assert_eq!(
        m.table.nmis,
        [MadtNmi {
            kind: "lapic",
            target: 0xff,
            flags: 0,
            lint: 1
        }]
    );
    assert!(v.numa.is_none());
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    assert_eq!(
        v.render(),
        "\
vCPUs      4 online (MADT: 4 enabled of 4 slots)
vendor     GenuineIntel
model name QEMU Virtual CPU version 2.5+
family     15  model 107  stepping 1   (cpuid level 0xd, xlevel 0x80000008)
topology   1 socket x 1 die x 4 cores x 1 thread   (4 cores per socket; CPUID leaf 0xb)
hypervisor KVMKVMKVM (max leaf 0x40000001)
flags      fpu tsc cx8 apic sse sse2 ht syscall nx lm pni x2apic hypervisor lahf_lm avx2 xsaveopt
CPU  APIC  SOCKET  DIE  CORE  THREAD  NODE
0    0     0       0    0     0       -
1    1     0       0    1     0       -
2    2     0       0    2     0       -
3    3     0       0    3     0       -
"
    );
}

/// 2 sockets x 2 cores x 2 threads, 6 of 8 vCPUs online, one NUMA node per socket, node 1
/// with hot-pluggable memory.
fn numa_guest() -> (Vec<Regs>, Vec<Vec<u8>>) {
    let topo = Topo::new(2, 1, 2, 2);
    let ids = topo.apic_ids();
    let mut cpus = topo.cpus(Style::Intel0b);
    cpus.truncate(6);
    let mut srat_entries: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| srat_lapic(id / 4, *id as u8, true))
        .collect();
    srat_entries.push(srat_mem(0, 0, 0xa0000, 1));
    srat_entries.push(srat_mem(0, 0x10_0000, GIB - 0x10_0000, 1));
    srat_entries.push(srat_mem(1, GIB, GIB, 1));
    srat_entries.push(srat_mem(1, 0x1_0000_0000, 2 * GIB, 3));
    srat_entries.push(srat_mem(0, 0, 0, 0));
    let tables = vec![
        qemu_madt(&ids, 6),
        srat(&srat_entries),
        slit(&[&[10, 21], &[21, 10]]),
    ];
    (cpus, tables)
}

#[test]
fn numa_nodes_from_srat_and_slit() {
    let (cpus, tables) = numa_guest();
    let v = view(&cpus, &tables);
    let numa = v.numa.as_ref().unwrap();
    assert_eq!(
        numa.nodes,
        [
            NumaNode {
                node: 0,
                proximity_domain: 0,
                cpus: vec![0, 1, 2, 3],
                apic_ids: vec![0, 1, 2, 3],
                memory_bytes: GIB - 0x60000,
                hotpluggable_bytes: 0,
                distances: vec![10, 21],
            },
            NumaNode {
                node: 1,
                proximity_domain: 1,
                cpus: vec![4, 5],
                apic_ids: vec![4, 5, 6, 7],
                memory_bytes: GIB,
                hotpluggable_bytes: 2 * GIB,
                distances: vec![21, 10],
            },
        ]
    );
    assert_eq!(numa.slit, Some(vec![vec![10, 21], vec![21, 10]]));
    assert_eq!(numa.memory_affinity.len(), 5);
    let nodes: Vec<Option<u32>> = v.cpus.iter().map(|c| c.node).collect();
    assert_eq!(
        nodes,
        [Some(0), Some(0), Some(0), Some(0), Some(1), Some(1)]
    );
    let m = v.madt.as_ref().unwrap();
    assert_eq!((m.slots, m.enabled), (8, 6));
    assert_eq!(
        m.table.processors[6],
        MadtProcessor {
            kind: "lapic",
            uid: 6,
            apic_id: 6,
            enabled: false,
            online_capable: false
        }
    );
    // Six online of a 2x2x2 machine: 3 distinct cores over 2 sockets, and lscpu's integer
    // division says 1 core per socket.
    assert_eq!(v.topology.counts.sockets, 2);
    assert_eq!(v.topology.counts.cores_per_socket, 1);
    assert_eq!(v.topology.counts.threads_per_core, 2);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let text = v.render();
    assert!(text.contains(
        "topology   2 sockets x 1 die x 1 core x 2 threads   (1 core per socket; CPUID leaf 0xb; uneven: 6 online, not 4)\n"
    ));
    let tail: Vec<&str> = text.lines().skip(8).collect();
    assert_eq!(
        tail,
        [
            "0    0     0       0    0     0       0",
            "1    1     0       0    0     1       0",
            "2    2     0       0    1     0       0",
            "3    3     0       0    1     1       0",
            "4    4     1       0    0     0       1",
            "5    5     1       0    0     1       1",
            "NUMA       node 0: cpus 0-3, 1023.625 MiB",
            "           node 1: cpus 4-5, 1024 MiB + 2048 MiB hotpluggable (SRAT APIC IDs 4-7: 4 slots)",
            "distances  node  0   1",
            "           0     10  21",
            "           1     21  10",
        ]
    );
    assert!(text.starts_with("vCPUs      6 online (MADT: 6 enabled of 8 slots)\n"));
}

#[test]
fn linux_numbers_nodes_by_first_appearance() {
    // Proximity domains 7 then 3: Linux calls them nodes 0 and 1; the SLIT is by domain.
    let topo = Topo::new(2, 1, 1, 1);
    let mut rows = vec![vec![20u8; 8]; 8];
    for (i, row) in rows.iter_mut().enumerate() {
        row[i] = 10;
    }
    rows[7][3] = 33;
    rows[3][7] = 34;
    let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
    let tables = vec![
        srat(&[
            srat_x2apic(7, 0, true),
            srat_lapic(3, 1, true),
            srat_lapic(9, 2, false),
            srat_mem(3, 0, GIB, 1),
        ]),
        slit(&row_refs),
    ];
    let v = view(&topo.cpus(Style::Intel0b), &tables);
    let nodes = &v.numa.as_ref().unwrap().nodes;
    let got: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n.node,
                n.proximity_domain,
                n.cpus.clone(),
                n.memory_bytes,
                n.distances.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, 7, vec![0], 0, vec![10, 33]),
            (1, 3, vec![1], GIB, vec![34, 10]),
        ]
    );
    assert!(v.render().contains(
        "NUMA       node 0 (proximity domain 7): cpus 0, 0 MiB\n           node 1 (proximity domain 3): cpus 1, 1024 MiB\n"
    ));
}

#[test]
fn cross_checks_become_warnings() {
    let topo = Topo::new(1, 1, 3, 1);
    let mut cpus = topo.cpus(Style::Intel0b);
    // cpu 1 lost avx2 and gained nothing; cpu 2 claims cpu 0's APIC ID and another model.
    cpus[1].get_mut(&(7, 0)).unwrap()[1] = 0;
    for sub in 0..3 {
        cpus[2].get_mut(&(0xb, sub)).unwrap()[3] = 0;
    }
    cpus[2].get_mut(&(1, 0)).unwrap()[0] = 0x0006_0fb2;
    let tables = vec![
        // MADT lists APIC IDs 0, 2, 1 and only two enabled.
        madt(&[
            madt_lapic(0, 0, 1),
            madt_lapic(1, 2, 1),
            madt_lapic(2, 1, 0),
        ]),
        srat(&[srat_lapic(0, 0, true), srat_lapic(0, 2, true)]),
        slit(&[&[10]]),
    ];
    let mut text = dump_text(&cpus, &tables);
    text = text.replace("PROBE-END", "PROBE-ERROR ap 2 slow\r\nPROBE-END");
    let v = GuestView::from_dump(&parse(&text).unwrap()).unwrap();
    let err_line = text
        .lines()
        .position(|l| l.starts_with("PROBE-ERROR"))
        .unwrap()
        + 1;
    assert_eq!(
        v.warnings,
        [
            format!("line {err_line}: PROBE-ERROR ap 2 slow"),
            "cpu 1: flags differ from cpu 0's (-avx2)".to_string(),
            "cpu 2: family 15 model 107 stepping 2 differs from cpu 0's family 15 model 107 stepping 1".to_string(),
            "cpus 0 and 2 report the same APIC ID 0".to_string(),
            "the MADT enables 2 processors but 3 vCPUs reported".to_string(),
            "cpu 1 has APIC ID 1 but the MADT's enabled processor 1 has APIC ID 2".to_string(),
            "cpu 1 (APIC ID 1) has no enabled SRAT processor affinity entry".to_string(),
        ]
    );
    assert!(v
        .render()
        .ends_with("warning    cpu 1 (APIC ID 1) has no enabled SRAT processor affinity entry\n"));
}

#[test]
fn invalid_slit_is_ignored_like_linux() {
    let topo = Topo::new(2, 1, 1, 1);
    let tables = vec![
        srat(&[srat_lapic(0, 0, true), srat_lapic(1, 1, true)]),
        slit(&[&[10, 10], &[10, 10]]),
    ];
    let v = view(&topo.cpus(Style::Intel0b), &tables);
    let numa = v.numa.as_ref().unwrap();
    assert_eq!(numa.nodes[0].distances, [10, 20]);
    assert_eq!(numa.nodes[1].distances, [20, 10]);
    assert_eq!(
        v.warnings,
        ["the SLIT is invalid (a diagonal entry is not 10 or an off-diagonal one is not above it); Linux ignores it"]
    );
}

#[test]
fn amd_guest_view() {
    let v = view(&Topo::new(1, 1, 2, 2).cpus(Style::Amd), &[]);
    assert_eq!(v.vendor, "AuthenticAMD");
    assert_eq!((v.family, v.model, v.stepping), (0x17, 1, 2));
    assert!(v.flags.contains(&"topoext") && v.flags.contains(&"cmp_legacy"));
    assert_eq!(v.topology.method, topology::Method::Amd);
    assert!(v.render().contains(
        "topology   1 socket x 1 die x 2 cores x 2 threads   (2 cores per socket; CPUID leaves 0x80000008 and 0x8000001e (AMD))\n"
    ));
    assert!(v.render().starts_with("vCPUs      4 online (no MADT)\n"));
}

#[test]
fn json_shape() {
    let (cpus, tables) = numa_guest();
    let json = serde_json::to_value(view(&cpus, &tables)).unwrap();
    assert_eq!(json["vcpus"], 6);
    assert_eq!(json["topology"]["method"], "leaf0b");
    assert_eq!(json["topology"]["sockets"], 2);
    assert_eq!(json["topology"]["threads_per_core"], 2);
    assert_eq!(json["cpus"][4]["node"], 1);
    assert_eq!(json["cpus"][4]["apic_id"], 4);
    assert_eq!(json["madt"]["slots"], 8);
    assert_eq!(json["madt"]["processors"][0]["kind"], "lapic");
    assert_eq!(json["numa"]["nodes"][1]["hotpluggable_bytes"], 2 * GIB);
    assert_eq!(json["flags"][0], "fpu");
}

#[test]
fn errors() {
    let dump = parse("PROBE-BEGIN v1\nPROBE-END cpus=0\n").unwrap();
    assert_eq!(
        GuestView::from_dump(&dump).unwrap_err().to_string(),
        "the probe dump has no CPUs"
    );
    let cpus = Topo::new(1, 1, 1, 1).cpus(Style::Intel0b);
    let bad = madt(&[vec![0, 6, 0, 0, 1, 0]]);
    let dump = parse(&dump_text(&cpus, &[bad])).unwrap();
    assert_eq!(
        GuestView::from_dump(&dump).unwrap_err().to_string(),
        "ACPI APIC: entry type 0 at offset 44 has length 6, shorter than the 8 bytes of its type"
    );
}
