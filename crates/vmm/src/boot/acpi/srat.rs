//! Guest NUMA tables: the SRAT (ACPI 6.x §5.2.16) with processor and memory affinity, the
//! SLIT (§5.2.17) distance matrix, and [`qemu_memory_affinity`], which splits node memory
//! into SRAT ranges exactly as QEMU 7.2's `build_srat` (hw/i386/acpi-build.c) does for `pc`.
//!
//! The SRAT is laid out as QEMU's: table revision 1, the first reserved dword 1, every
//! possible vCPU slot listed (all with the Enabled flag, present or not) in slot order,
//! then the memory ranges in the caller's order. The caller decides the ranges.

use super::sdt::{OemIds, Sdt};
use super::{AcpiError, AcpiMemoryAffinity, AcpiPlatform};

/// SRAT revision (QEMU 7.2 writes 1 for x86).
const SRAT_REVISION: u8 = 1;
/// SLIT revision.
const SLIT_REVISION: u8 = 1;
/// The SRAT's first reserved field after the header: 1 "for backward compatibility"
/// (ACPI 6.x Table 5.61), as QEMU writes it.
const SRAT_RESERVED1: u32 = 1;

/// Static resource allocation structure types (ACPI 6.x §5.2.16).
mod entry {
    pub const PROCESSOR_APIC_AFFINITY: u8 = 0;
    pub const MEMORY_AFFINITY: u8 = 1;
    pub const PROCESSOR_X2APIC_AFFINITY: u8 = 2;
    pub const PROCESSOR_APIC_AFFINITY_LEN: u8 = 16;
    pub const MEMORY_AFFINITY_LEN: u8 = 40;
    pub const PROCESSOR_X2APIC_AFFINITY_LEN: u8 = 24;
}

/// Processor affinity flags bit 0: Enabled (Tables 5.63, 5.67).
const PROCESSOR_ENABLED: u32 = 1 << 0;
/// Memory affinity flags (Table 5.65): bit 0 Enabled, bit 1 Hot Pluggable.
const MEMORY_ENABLED: u32 = 1 << 0;
const MEMORY_HOTPLUGGABLE: u32 = 1 << 1;

/// SLIT: distance from a node to itself (ACPI 6.x §5.2.17: "normalized to 10").
pub const LOCAL_DISTANCE: u8 = 10;

/// Start of the legacy VGA/BIOS hole (640 KiB): QEMU's `HOLE_640K_START`.
pub const HOLE_640K_START: u64 = 640 * 1024;
/// End of the legacy hole (1 MiB): QEMU's `HOLE_640K_END`.
pub const HOLE_640K_END: u64 = 1024 * 1024;
/// Where RAM above the 32-bit PCI/MMIO hole resumes.
const FOUR_GIB: u64 = 1 << 32;

/// QEMU puts an APIC ID in a Processor Local APIC/SAPIC Affinity structure (one byte)
/// below 255, else in a Processor Local x2APIC Affinity structure.
const XAPIC_AFFINITY_ID_MAX: u32 = 254;

/// The memory hotplug (device memory) region QEMU describes after the node ranges: enabled,
/// hot-pluggable, in the last node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryHotplugRegion {
    pub base: u64,
    pub size: u64,
}

/// The SRAT memory affinity ranges QEMU 7.2 `-M pc` builds for `nodes` laid out back to back
/// in guest RAM, with `below_4g_ram` bytes of RAM below the 32-bit hole.
///
/// `nodes` is `(node id, memory size)` in node order, as QEMU walks `-numa node,mem=`;
/// `below_4g_ram` is QEMU's `below_4g_mem_size`: all RAM when it is under the hole start,
/// else the hole start (for rvmm, `min(ram, layout::MMIO_GAP_START)`). The algorithm:
///
/// 1. Nodes take consecutive guest-physical ranges from address 0.
/// 2. A range that crosses 640 KiB is cut there: `[base, 640K)` is listed, the rest
///    resumes at 1 MiB with its remaining length (the 384 KiB under the hole is not
///    listed and not moved: the node just ends 384 KiB short). If the range ends inside
///    640K..1M, only the low part is listed and the next node starts at 1 MiB.
/// 3. A range that crosses `below_4g_ram` is cut there: `[base, below_4g_ram)` is listed
///    and the rest moves to 4 GiB; later nodes follow it above 4 GiB.
/// 4. Empty pieces are skipped.
/// 5. While fewer than `nodes.len() + 2` ranges were listed, QEMU pads with all-zero
///    disabled entries (node 0, base 0, length 0, flags 0) for old guests.
/// 6. With a hotplug region (QEMU: `maxmem` above `-m`), one more entry covers it, in the
///    last node, enabled and hot-pluggable.
///
/// For two 128 MiB nodes and 256 MiB of RAM: node 0 `[0, 0xa0000)` and
/// `[0x100000, 0x8000000)`, node 1 `[0x8000000, 0x10000000)`, then one padding entry.
pub fn qemu_memory_affinity(
    nodes: &[(u32, u64)],
    below_4g_ram: u64,
    hotplug: Option<MemoryHotplugRegion>,
) -> Result<Vec<AcpiMemoryAffinity>, AcpiError> {
    let mut out = Vec::new();
    if nodes.is_empty() {
        return Ok(out);
    }
    let range = |node: u32, base: u64, length: u64| AcpiMemoryAffinity {
        node,
        base,
        length,
        enabled: true,
        hotpluggable: false,
    };
    let mut next_base = 0u64;
    for &(node, size) in nodes {
        let mut base = next_base;
        let mut len = size;
        next_base = base.checked_add(len).ok_or(AcpiError::NodeMemoryOverflow)?;

        if base <= HOLE_640K_START && next_base > HOLE_640K_START {
            len -= next_base - HOLE_640K_START;
            if len > 0 {
                out.push(range(node, base, len));
            }
            if next_base <= HOLE_640K_END {
                next_base = HOLE_640K_END;
                continue;
            }
            base = HOLE_640K_END;
            len = next_base - HOLE_640K_END;
        }

        if base <= below_4g_ram && next_base > below_4g_ram {
            len -= next_base - below_4g_ram;
            if len > 0 {
                out.push(range(node, base, len));
            }
            base = FOUR_GIB;
            len = next_base - below_4g_ram;
            next_base = base.checked_add(len).ok_or(AcpiError::NodeMemoryOverflow)?;
        }

        if len > 0 {
            out.push(range(node, base, len));
        }
    }
    while out.len() < nodes.len() + 2 {
        out.push(AcpiMemoryAffinity {
            node: 0,
            base: 0,
            length: 0,
            enabled: false,
            hotpluggable: false,
        });
    }
    if let Some(h) = hotplug.filter(|h| h.size > 0) {
        let last_node = nodes[nodes.len() - 1].0;
        out.push(AcpiMemoryAffinity {
            node: last_node,
            base: h.base,
            length: h.size,
            enabled: true,
            hotpluggable: true,
        });
    }
    Ok(out)
}

/// Builds the SRAT. `validate` has checked that every vCPU has a node.
pub fn build_srat(platform: &AcpiPlatform, oem: &OemIds) -> Vec<u8> {
    let mut t = Sdt::new(b"SRAT", SRAT_REVISION, oem);
    t.u32(SRAT_RESERVED1).u64(0);
    for cpu in &platform.cpus {
        let domain = cpu.node.unwrap_or(0);
        if cpu.apic_id <= XAPIC_AFFINITY_ID_MAX {
            let [d0, d1, d2, d3] = domain.to_le_bytes();
            t.u8(entry::PROCESSOR_APIC_AFFINITY)
                .u8(entry::PROCESSOR_APIC_AFFINITY_LEN)
                .u8(d0) // Proximity Domain [7:0]
                .u8(cpu.apic_id as u8)
                .u32(PROCESSOR_ENABLED)
                .u8(0) // Local SAPIC EID
                .bytes(&[d1, d2, d3]) // Proximity Domain [31:8]
                .u32(0); // Clock Domain
        } else {
            t.u8(entry::PROCESSOR_X2APIC_AFFINITY)
                .u8(entry::PROCESSOR_X2APIC_AFFINITY_LEN)
                .u16(0) // Reserved
                .u32(domain)
                .u32(cpu.apic_id)
                .u32(PROCESSOR_ENABLED)
                .u32(0) // Clock Domain
                .u32(0); // Reserved
        }
    }
    for m in &platform.memory_affinity {
        let mut flags = 0;
        if m.enabled {
            flags |= MEMORY_ENABLED;
        }
        if m.hotpluggable {
            flags |= MEMORY_HOTPLUGGABLE;
        }
        t.u8(entry::MEMORY_AFFINITY)
            .u8(entry::MEMORY_AFFINITY_LEN)
            .u32(m.node)
            .u16(0) // Reserved
            .u64(m.base) // Base Address Low, High
            .u64(m.length) // Length Low, High
            .u32(0) // Reserved
            .u32(flags)
            .u64(0); // Reserved
    }
    t.finish()
}

/// Builds the SLIT from a validated row-major `n * n` matrix.
pub fn build_slit(distances: &[u8], oem: &OemIds) -> Vec<u8> {
    let mut t = Sdt::new(b"SLIT", SLIT_REVISION, oem);
    t.u64(matrix_order(distances) as u64).bytes(distances);
    t.finish()
}

/// `n` such that `n * n == len` (rounded down).
fn matrix_order(distances: &[u8]) -> usize {
    distances.len().isqrt()
}

/// Checks the SLIT matrix: square, 10 on the diagonal, no reserved values (0-9) elsewhere,
/// and covering every node the vCPUs and memory ranges name.
pub fn validate_distances(platform: &AcpiPlatform) -> Result<(), AcpiError> {
    let d = &platform.distances;
    if d.is_empty() {
        return Ok(());
    }
    let n = matrix_order(d);
    if n * n != d.len() {
        return Err(AcpiError::DistancesNotSquare { len: d.len() });
    }
    for src in 0..n {
        for dst in 0..n {
            let value = d[src * n + dst];
            if src == dst && value != LOCAL_DISTANCE {
                return Err(AcpiError::BadLocalDistance { src, value });
            }
            if src != dst && value < LOCAL_DISTANCE {
                return Err(AcpiError::BadRemoteDistance { src, dst, value });
            }
        }
    }
    let outside = |node: u32| usize::try_from(node).map_or(true, |v| v >= n);
    for cpu in &platform.cpus {
        if let Some(node) = cpu.node.filter(|node| outside(*node)) {
            return Err(AcpiError::NodeOutsideSlit {
                node,
                user: format!("vCPU uid {}", cpu.uid),
                count: n,
            });
        }
    }
    for (index, m) in platform.memory_affinity.iter().enumerate() {
        if m.enabled && outside(m.node) {
            return Err(AcpiError::NodeOutsideSlit {
                node: m.node,
                user: format!("memory affinity range {index}"),
                count: n,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "srat_tests.rs"]
mod tests;
