//! Unit tests of the SRAT/SLIT encoders, the QEMU memory-splitting helper and the distance
//! checks. Byte-for-byte comparisons with QEMU's own tables are in `qemu_tests.rs`.

use super::super::sdt::tests::{byte_sum, le};
use super::super::tests::{cpus, platform, two_node_platform};
use super::super::{build, AcpiCpu};
use super::*;
use crate::memory::layout;

const OEM: OemIds = OemIds { oem_id: *b"RVMM  " };
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn enabled(node: u32, base: u64, length: u64) -> AcpiMemoryAffinity {
    AcpiMemoryAffinity {
        node,
        base,
        length,
        enabled: true,
        hotpluggable: false,
    }
}

fn padding() -> AcpiMemoryAffinity {
    AcpiMemoryAffinity {
        node: 0,
        base: 0,
        length: 0,
        enabled: false,
        hotpluggable: false,
    }
}

#[test]
fn two_nodes_fields() {
    let t = build_srat(&two_node_platform(), &OEM);
    assert_eq!(&t[0..4], b"SRAT");
    assert_eq!(t[8], 1);
    assert_eq!(le(&t, 4, 4) as usize, t.len());
    assert_eq!(t.len(), 48 + 4 * 16 + 4 * 40);
    assert_eq!(byte_sum(&t), 0);
    assert_eq!(le(&t, 36, 4), 1, "reserved dword");
    assert_eq!(le(&t, 40, 8), 0, "reserved qword");
    for i in 0..4usize {
        let e = 48 + 16 * i;
        let node = (i / 2) as u8;
        assert_eq!(
            &t[e..e + 16],
            &[0, 16, node, i as u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
    let mem = 48 + 64;
    let ranges: Vec<(u64, u64, u64, u64)> = (0..4)
        .map(|i| {
            let e = mem + 40 * i;
            assert_eq!(t[e], 1);
            assert_eq!(t[e + 1], 40);
            (
                le(&t, e + 2, 4),
                le(&t, e + 8, 8),
                le(&t, e + 16, 8),
                le(&t, e + 28, 4),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        [
            (0, 0, 0xa_0000, 1),
            (0, 0x10_0000, 0x7f0_0000, 1),
            (1, 0x800_0000, 0x800_0000, 1),
            (0, 0, 0, 0),
        ]
    );
}

#[test]
fn x2apic_affinity_and_large_domains() {
    let mut p = platform(vec![
        AcpiCpu {
            uid: 0,
            apic_id: 0,
            enabled: true,
            node: Some(0x0102_0304),
        },
        AcpiCpu {
            uid: 1,
            apic_id: 300,
            enabled: false,
            node: Some(7),
        },
    ]);
    p.memory_affinity = vec![AcpiMemoryAffinity {
        hotpluggable: true,
        ..enabled(7, 0x1_0000_0000, 0x4000_0000)
    }];
    let t = build_srat(&p, &OEM);
    // Proximity domain split into [7:0] and [31:8].
    assert_eq!(
        &t[48..64],
        &[0, 16, 0x04, 0, 1, 0, 0, 0, 0, 0x03, 0x02, 0x01, 0, 0, 0, 0]
    );
    // x2APIC affinity: type 2, length 24, domain, x2APIC ID, flags Enabled (even though the
    // slot is not present at boot, as QEMU), clock domain.
    let x = 64;
    assert_eq!(&t[x..x + 4], &[2, 24, 0, 0]);
    assert_eq!(le(&t, x + 4, 4), 7);
    assert_eq!(le(&t, x + 8, 4), 300);
    assert_eq!(le(&t, x + 12, 4), 1);
    assert_eq!(&t[x + 16..x + 24], &[0; 8]);
    let m = x + 24;
    assert_eq!(le(&t, m + 2, 4), 7);
    assert_eq!(le(&t, m + 8, 8), 0x1_0000_0000);
    assert_eq!(le(&t, m + 16, 8), 0x4000_0000);
    assert_eq!(le(&t, m + 28, 4), 0b11, "enabled | hotpluggable");
    assert_eq!(t.len(), m + 40);
}

#[test]
fn slit_two_nodes() {
    let t = build_slit(&[10, 21, 21, 10], &OEM);
    assert_eq!(&t[0..4], b"SLIT");
    assert_eq!(t[8], 1);
    assert_eq!(t.len(), 48);
    assert_eq!(le(&t, 4, 4), 48);
    assert_eq!(le(&t, 36, 8), 2);
    assert_eq!(&t[44..], &[10, 21, 21, 10]);
    assert_eq!(byte_sum(&t), 0);
}

#[test]
fn qemu_split_two_nodes_below_4g() {
    let m = qemu_memory_affinity(&[(0, 128 * MIB), (1, 128 * MIB)], 256 * MIB, None).unwrap();
    assert_eq!(
        m,
        [
            enabled(0, 0, 0xa_0000),
            enabled(0, 0x10_0000, 0x7f0_0000),
            enabled(1, 0x800_0000, 0x800_0000),
            padding(),
        ]
    );
}

#[test]
fn qemu_split_across_the_32bit_hole() {
    // -m 5G on rvmm's layout: 3 GiB below the gap, 2 GiB above 4 GiB.
    let nodes = [(0, GIB), (1, 5 * GIB / 2), (2, 3 * GIB / 2)];
    let m = qemu_memory_affinity(&nodes, layout::MMIO_GAP_START, None).unwrap();
    assert_eq!(
        m,
        [
            enabled(0, 0, 0xa_0000),
            enabled(0, MIB, GIB - MIB),
            enabled(1, GIB, 2 * GIB),
            enabled(1, 4 * GIB, GIB / 2),
            enabled(2, 4 * GIB + GIB / 2, 3 * GIB / 2),
        ]
    );
}

#[test]
fn qemu_split_node_starting_at_the_hole() {
    // Node 1 starts exactly at the end of low RAM: all of it moves above 4 GiB.
    let m = qemu_memory_affinity(&[(0, 3 * GIB), (1, GIB)], 3 * GIB, None).unwrap();
    assert_eq!(
        m,
        [
            enabled(0, 0, 0xa_0000),
            enabled(0, MIB, 3 * GIB - MIB),
            enabled(1, 4 * GIB, GIB),
            padding(),
        ]
    );
}

#[test]
fn qemu_split_small_first_nodes() {
    // Node 0 ends inside the 640K-1M hole (QEMU's "rare case"): node 1 starts at 1 MiB.
    // Node 2 is smaller than 640K and sits below the hole entirely.
    let m = qemu_memory_affinity(
        &[(0, 512 * 1024), (1, 256 * 1024), (2, 255 * MIB)],
        256 * MIB,
        None,
    )
    .unwrap();
    assert_eq!(
        m,
        [
            enabled(0, 0, 512 * 1024),
            enabled(1, 512 * 1024, 128 * 1024),
            enabled(2, MIB, 255 * MIB),
            padding(),
            padding(),
        ]
    );
}

#[test]
fn qemu_hotplug_region_goes_to_the_last_node() {
    let hotplug = MemoryHotplugRegion {
        base: 4 * GIB,
        size: 3 * GIB,
    };
    let m =
        qemu_memory_affinity(&[(0, 128 * MIB), (3, 128 * MIB)], 256 * MIB, Some(hotplug)).unwrap();
    assert_eq!(m.len(), 5);
    assert_eq!(m[3], padding());
    assert_eq!(
        m[4],
        AcpiMemoryAffinity {
            hotpluggable: true,
            ..enabled(3, 4 * GIB, 3 * GIB)
        }
    );
    assert_eq!(qemu_memory_affinity(&[], 0, Some(hotplug)).unwrap(), []);
    assert_eq!(
        qemu_memory_affinity(&[(0, u64::MAX), (1, 2)], 3 * GIB, None),
        Err(AcpiError::NodeMemoryOverflow)
    );
}

#[test]
fn distance_errors() {
    let err = |distances: Vec<u8>| {
        let mut p = two_node_platform();
        p.distances = distances;
        build(&p, layout::ACPI_START).unwrap_err().to_string()
    };
    assert_eq!(
        err(vec![10, 20, 20]),
        "ACPI: the SLIT distance matrix has 3 entries; it must be n * n for n nodes"
    );
    assert_eq!(
        err(vec![10, 20, 20, 11]),
        "ACPI: SLIT distance from node 1 to itself is 11; the local distance must be 10"
    );
    assert_eq!(
        err(vec![10, 9, 20, 10]),
        "ACPI: SLIT distance from node 0 to node 1 is 9; values below 10 are reserved"
    );
    assert_eq!(
        err(vec![10]),
        "ACPI: node 1 (used by vCPU uid 2) is outside the 1x1 SLIT distance matrix"
    );
    let mut p = two_node_platform();
    p.cpus.iter_mut().for_each(|c| c.node = Some(0));
    p.distances = vec![10];
    assert_eq!(
        build(&p, layout::ACPI_START).unwrap_err().to_string(),
        "ACPI: node 1 (used by memory affinity range 2) is outside the 1x1 SLIT distance matrix"
    );
    // A SLIT without an SRAT is accepted (Linux ignores it) and still listed.
    let mut p = platform(cpus(2));
    p.distances = vec![10, 255, 255, 10];
    let t = build(&p, layout::ACPI_START).unwrap();
    assert_eq!(&t.table(b"SLIT").unwrap()[44..], &[10, 255, 255, 10]);
}
