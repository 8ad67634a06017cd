//! ACPI tables for the guest: RSDP, XSDT, FACS, FADT, DSDT, MADT, and (with guest NUMA) SRAT
//! and SLIT, built from a plain description of the platform into bytes placed at a guest
//! address.
//!
//! Nothing here touches guest memory or KVM: [`build`] validates an [`AcpiPlatform`] and
//! returns the blob, RSDP first, with every table's address. Content follows what QEMU 7.2
//! builds for `-M pc` where the platforms overlap (see each table's module). Fixed ports and
//! addresses come from `memory::layout`; the caller copies the blob to guest memory and
//! reserves the range in the e820 map.

mod aml;
mod cpus;
mod dsdt;
mod fadt;
mod madt;
mod sdt;
mod srat;

#[cfg(test)]
mod iasl_tests;
#[cfg(test)]
mod qemu_tests;

pub use aml::{Aml, AmlError, InterruptFlags, Resource};
pub use srat::{qemu_memory_affinity, MemoryHotplugRegion, HOLE_640K_END, HOLE_640K_START};

use crate::memory::layout;
use sdt::OemIds;
use std::collections::{HashMap, HashSet};
use thiserror::Error;

/// One vCPU slot as the firmware tables describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiCpu {
    /// The ACPI processor UID (the vCPU index).
    pub uid: u32,
    /// The local APIC ID (x2APIC entries are used when it is above 254).
    pub apic_id: u32,
    /// Present at boot; slots between `--smp N` and maxcpus are not enabled (hotplug).
    pub enabled: bool,
    /// Guest NUMA node (proximity domain) this vCPU belongs to, when guest NUMA is on.
    pub node: Option<u32>,
}

/// A guest NUMA node's memory range (one SRAT Memory Affinity structure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiMemoryAffinity {
    pub node: u32,
    pub base: u64,
    pub length: u64,
    /// Memory Affinity flag bit 0. QEMU pads its SRAT with disabled all-zero entries, which
    /// [`qemu_memory_affinity`] reproduces; real ranges are enabled.
    pub enabled: bool,
    /// Memory Affinity flag bit 1.
    pub hotpluggable: bool,
}

/// What the tables must describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiPlatform {
    pub cpus: Vec<AcpiCpu>,
    /// SRAT memory affinity ranges; empty means no SRAT.
    pub memory_affinity: Vec<AcpiMemoryAffinity>,
    /// SLIT distance matrix, row-major, `n * n` entries; empty means no SLIT.
    pub distances: Vec<u8>,
    /// OEM ID written in every table header (6 bytes, padded).
    pub oem_id: [u8; 6],
    /// The virtio-mmio transports that have a device, listed in the DSDT.
    pub virtio_mmio: Vec<AcpiVirtioMmio>,
}

/// One virtio-mmio transport as the DSDT describes it (QEMU microvm's `VRnn` device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiVirtioMmio {
    /// The transport's slot (the device's `_UID` and name).
    pub slot: u32,
    pub base: u32,
    pub size: u32,
    pub gsi: u32,
}

/// Where one table sits in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePlacement {
    /// The table signature ("RSDP" for the root pointer, whose own signature is 8 bytes).
    pub signature: [u8; 4],
    /// Guest-physical address.
    pub address: u64,
    /// Length in bytes.
    pub length: usize,
}

/// The built tables: copy `bytes` to guest-physical `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTables {
    /// Guest-physical address of `bytes[0]`, which is the RSDP.
    pub base: u64,
    pub bytes: Vec<u8>,
    /// Every table in blob order, RSDP first.
    pub tables: Vec<TablePlacement>,
}

impl AcpiTables {
    /// Guest-physical address of the RSDP (16-byte aligned, inside the BIOS scan area).
    pub fn rsdp_address(&self) -> u64 {
        self.base
    }

    /// Guest-physical address of the table with `signature`.
    pub fn address(&self, signature: &[u8; 4]) -> Option<u64> {
        self.placement(signature).map(|p| p.address)
    }

    /// The bytes of the table with `signature`.
    pub fn table(&self, signature: &[u8; 4]) -> Option<&[u8]> {
        let p = self.placement(signature)?;
        let start = usize::try_from(p.address - self.base).ok()?;
        self.bytes.get(start..start + p.length)
    }

    fn placement(&self, signature: &[u8; 4]) -> Option<&TablePlacement> {
        self.tables.iter().find(|p| &p.signature == signature)
    }
}

/// Errors building the tables. Each names the element, the bad value and the rule.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AcpiError {
    #[error("ACPI: the platform has no vCPUs; the MADT needs at least one")]
    NoCpus,
    #[error("ACPI: no vCPU is enabled; the boot vCPU must be present in the MADT")]
    NoEnabledCpu,
    #[error("ACPI: vCPU uid {uid} appears twice; processor UIDs must be unique")]
    DuplicateUid { uid: u32 },
    #[error("ACPI: APIC ID {apic_id} appears twice (vCPU uids {first} and {second})")]
    DuplicateApicId {
        apic_id: u32,
        first: u32,
        second: u32,
    },
    #[error(
        "ACPI: vCPU uid {uid} is above {max}, the last the DSDT's processor device names \
         (C000-CFFF) can number"
    )]
    UidTooLarge { uid: u32, max: u32 },
    #[error(
        "ACPI: vCPU uid {uid} has no NUMA node; with guest NUMA (an SRAT) every vCPU slot \
         needs one"
    )]
    CpuWithoutNode { uid: u32 },
    #[error(
        "ACPI: memory affinity range {index} (node {node}, base {base:#x}, length {length:#x}) \
         runs past the end of the 64-bit address space"
    )]
    MemoryRangeOverflow {
        index: usize,
        node: u32,
        base: u64,
        length: u64,
    },
    #[error("ACPI: NUMA node memory sizes sum past the end of the 64-bit address space")]
    NodeMemoryOverflow,
    #[error("ACPI: the SLIT distance matrix has {len} entries; it must be n * n for n nodes")]
    DistancesNotSquare { len: usize },
    #[error(
        "ACPI: SLIT distance from node {src} to itself is {value}; the local distance must be 10"
    )]
    BadLocalDistance { src: usize, value: u8 },
    #[error(
        "ACPI: SLIT distance from node {src} to node {dst} is {value}; values below 10 are \
         reserved"
    )]
    BadRemoteDistance { src: usize, dst: usize, value: u8 },
    #[error(
        "ACPI: node {node} (used by {user}) is outside the {count}x{count} SLIT distance matrix"
    )]
    NodeOutsideSlit {
        node: u32,
        user: String,
        count: usize,
    },
    #[error("ACPI: table base {base:#x} is not 16-byte aligned; the RSDP scan needs that")]
    MisalignedBase { base: u64 },
    #[error(
        "ACPI: the tables ({size} bytes at {base:#x}) do not fit in the ACPI area \
         {start:#x}..{end:#x}; fewer vCPU slots (maxcpus) make them smaller: each costs a \
         MADT entry and its processor device in the DSDT"
    )]
    DoesNotFit {
        size: usize,
        base: u64,
        start: u64,
        end: u64,
    },
    #[error("ACPI: DSDT: {0}")]
    Aml(#[from] AmlError),
}

/// Alignment of the RSDP (ACPI 6.x §5.2.5.1: found on a 16-byte boundary).
const RSDP_ALIGN: usize = 16;
/// Alignment of the FACS (ACPI 6.x §5.2.10: "64-byte aligned").
const FACS_ALIGN: usize = 64;
/// Alignment we give the other tables.
const TABLE_ALIGN: usize = 8;

/// Builds every table for `platform` into one blob to be copied at guest-physical `base`.
///
/// Layout: RSDP, XSDT, FACS, FADT, DSDT, MADT, then SRAT and SLIT when present. The blob
/// must fit in `layout::ACPI_START..layout::ACPI_END` (the BIOS area Linux scans for the
/// RSDP when there is no EFI).
pub fn build(platform: &AcpiPlatform, base: u64) -> Result<AcpiTables, AcpiError> {
    validate(platform)?;
    if base % RSDP_ALIGN as u64 != 0 {
        return Err(AcpiError::MisalignedBase { base });
    }
    let oem = OemIds {
        oem_id: platform.oem_id,
    };

    // Tables that do not point at others are built first; their sizes fix the layout.
    let dsdt = dsdt::build(platform, &oem)?;
    let madt = madt::build(&platform.cpus, &oem);
    let srat = (!platform.memory_affinity.is_empty()).then(|| srat::build_srat(platform, &oem));
    let slit =
        (!platform.distances.is_empty()).then(|| srat::build_slit(&platform.distances, &oem));

    let mut xsdt_entries = 2; // FADT, MADT.
    xsdt_entries += usize::from(srat.is_some()) + usize::from(slit.is_some());

    let mut offset = 0usize;
    let mut place = |len: usize, align: usize| {
        let at = offset.next_multiple_of(align);
        offset = at + len;
        at
    };
    let rsdp_off = place(fadt::RSDP_LEN, RSDP_ALIGN);
    let xsdt_off = place(sdt::HEADER_LEN + 8 * xsdt_entries, TABLE_ALIGN);
    let facs_off = place(fadt::FACS_LEN, FACS_ALIGN);
    let fadt_off = place(fadt::FADT_LEN, TABLE_ALIGN);
    let dsdt_off = place(dsdt.len(), TABLE_ALIGN);
    let madt_off = place(madt.len(), TABLE_ALIGN);
    let srat_off = srat.as_ref().map(|t| place(t.len(), TABLE_ALIGN));
    let slit_off = slit.as_ref().map(|t| place(t.len(), TABLE_ALIGN));
    let size = offset;

    let end = base.checked_add(size as u64);
    if base < layout::ACPI_START || end.is_none_or(|e| e > layout::ACPI_END) {
        return Err(AcpiError::DoesNotFit {
            size,
            base,
            start: layout::ACPI_START,
            end: layout::ACPI_END,
        });
    }
    let addr = |off: usize| base + off as u64;

    let fadt = fadt::build_fadt(
        &fadt::FadtAddresses {
            facs: addr(facs_off),
            dsdt: addr(dsdt_off),
        },
        platform.cpus.len(),
        &oem,
    );
    let facs = fadt::build_facs();
    let mut pointed = vec![addr(fadt_off), addr(madt_off)];
    pointed.extend(srat_off.map(addr));
    pointed.extend(slit_off.map(addr));
    let xsdt = fadt::build_xsdt(&pointed, &oem);
    let rsdp = fadt::build_rsdp(addr(xsdt_off), &oem);

    let mut bytes = vec![0u8; size];
    let mut tables = Vec::new();
    let mut put = |signature: &[u8; 4], off: usize, table: &[u8]| {
        bytes[off..off + table.len()].copy_from_slice(table);
        tables.push(TablePlacement {
            signature: *signature,
            address: addr(off),
            length: table.len(),
        });
    };
    put(b"RSDP", rsdp_off, &rsdp);
    put(b"XSDT", xsdt_off, &xsdt);
    put(b"FACS", facs_off, &facs);
    put(b"FACP", fadt_off, &fadt);
    put(b"DSDT", dsdt_off, &dsdt);
    put(b"APIC", madt_off, &madt);
    if let (Some(off), Some(t)) = (srat_off, &srat) {
        put(b"SRAT", off, t);
    }
    if let (Some(off), Some(t)) = (slit_off, &slit) {
        put(b"SLIT", off, t);
    }
    Ok(AcpiTables {
        base,
        bytes,
        tables,
    })
}

/// Checks the platform description against what the tables can express.
fn validate(platform: &AcpiPlatform) -> Result<(), AcpiError> {
    let cpus = &platform.cpus;
    if cpus.is_empty() {
        return Err(AcpiError::NoCpus);
    }
    if !cpus.iter().any(|c| c.enabled) {
        return Err(AcpiError::NoEnabledCpu);
    }
    let mut uids = HashSet::new();
    let mut apic_ids = HashMap::new();
    for cpu in cpus {
        if cpu.uid > cpus::MAX_CPU_UID {
            return Err(AcpiError::UidTooLarge {
                uid: cpu.uid,
                max: cpus::MAX_CPU_UID,
            });
        }
        if !uids.insert(cpu.uid) {
            return Err(AcpiError::DuplicateUid { uid: cpu.uid });
        }
        if let Some(first) = apic_ids.insert(cpu.apic_id, cpu.uid) {
            return Err(AcpiError::DuplicateApicId {
                apic_id: cpu.apic_id,
                first,
                second: cpu.uid,
            });
        }
    }
    if !platform.memory_affinity.is_empty() {
        if let Some(cpu) = cpus.iter().find(|c| c.node.is_none()) {
            return Err(AcpiError::CpuWithoutNode { uid: cpu.uid });
        }
    }
    for (index, m) in platform.memory_affinity.iter().enumerate() {
        if m.base.checked_add(m.length).is_none() {
            return Err(AcpiError::MemoryRangeOverflow {
                index,
                node: m.node,
                base: m.base,
                length: m.length,
            });
        }
    }
    srat::validate_distances(platform)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::sdt::tests::{byte_sum, le};
    use super::*;

    /// `n` enabled vCPUs with APIC ID = uid and no NUMA.
    pub fn cpus(n: u32) -> Vec<AcpiCpu> {
        (0..n)
            .map(|i| AcpiCpu {
                uid: i,
                apic_id: i,
                enabled: true,
                node: None,
            })
            .collect()
    }

    pub fn platform(cpus: Vec<AcpiCpu>) -> AcpiPlatform {
        AcpiPlatform {
            cpus,
            memory_affinity: vec![],
            distances: vec![],
            oem_id: *b"RVMM  ",
            virtio_mmio: vec![],
        }
    }

    /// The 2-node platform of the QEMU comparison: 4 vCPUs, 2 x 128 MiB, distance 21.
    pub fn two_node_platform() -> AcpiPlatform {
        let mut cpus = cpus(4);
        for c in &mut cpus {
            c.node = Some(c.uid / 2);
        }
        AcpiPlatform {
            cpus,
            memory_affinity: qemu_memory_affinity(
                &[(0, 128 << 20), (1, 128 << 20)],
                256 << 20,
                None,
            )
            .unwrap(),
            distances: vec![10, 21, 21, 10],
            oem_id: *b"RVMM  ",
            virtio_mmio: vec![],
        }
    }

    #[test]
    fn layout_and_pointers() {
        let t = build(&two_node_platform(), layout::ACPI_START).unwrap();
        let sigs: Vec<&[u8; 4]> = t.tables.iter().map(|p| &p.signature).collect();
        assert_eq!(
            sigs,
            [b"RSDP", b"XSDT", b"FACS", b"FACP", b"DSDT", b"APIC", b"SRAT", b"SLIT"]
        );
        assert_eq!(t.rsdp_address(), 0xe_0000);
        assert_eq!(&t.bytes[..8], b"RSD PTR ");
        assert_eq!(t.address(b"XSDT"), Some(0xe_0028));
        assert_eq!(t.address(b"FACS").unwrap() % 64, 0);
        for p in &t.tables {
            if &p.signature != b"RSDP" {
                assert_eq!(p.address % 8, 0, "{:?}", p.signature);
            }
            if &p.signature != b"RSDP" && &p.signature != b"FACS" {
                let table = t.table(&p.signature).unwrap();
                assert_eq!(&table[..4], &p.signature);
                assert_eq!(le(table, 4, 4) as usize, p.length);
                assert_eq!(byte_sum(table), 0, "{:?}", p.signature);
            }
        }
        let rsdp = t.table(b"RSDP").unwrap();
        assert_eq!(le(rsdp, 24, 8), t.address(b"XSDT").unwrap());
        let xsdt = t.table(b"XSDT").unwrap();
        assert_eq!(xsdt.len(), 36 + 4 * 8);
        let listed: Vec<u64> = (0..4).map(|i| le(xsdt, 36 + 8 * i, 8)).collect();
        assert_eq!(
            listed,
            [b"FACP", b"APIC", b"SRAT", b"SLIT"].map(|s| t.address(s).unwrap())
        );
        let fadt = t.table(b"FACP").unwrap();
        assert_eq!(le(fadt, 36, 4), t.address(b"FACS").unwrap());
        assert_eq!(le(fadt, 40, 4), t.address(b"DSDT").unwrap());
        assert_eq!(le(fadt, 140, 8), t.address(b"DSDT").unwrap());
        assert_eq!(t.bytes.len() as u64, {
            let last = t.tables.last().unwrap();
            last.address + last.length as u64 - t.base
        });
    }

    #[test]
    fn without_numa_there_is_no_srat_or_slit() {
        let t = build(&platform(cpus(2)), layout::ACPI_START).unwrap();
        assert_eq!(t.table(b"SRAT"), None);
        assert_eq!(t.table(b"SLIT"), None);
        let xsdt = t.table(b"XSDT").unwrap();
        assert_eq!(le(xsdt, 4, 4), 36 + 16);
        assert_eq!(le(xsdt, 36, 8), t.address(b"FACP").unwrap());
        assert_eq!(le(xsdt, 44, 8), t.address(b"APIC").unwrap());
    }

    #[test]
    fn validation_errors() {
        let err = |p: &AcpiPlatform| build(p, layout::ACPI_START).unwrap_err().to_string();
        assert_eq!(
            err(&platform(vec![])),
            "ACPI: the platform has no vCPUs; the MADT needs at least one"
        );
        let mut c = cpus(2);
        c.iter_mut().for_each(|c| c.enabled = false);
        assert_eq!(
            err(&platform(c)),
            "ACPI: no vCPU is enabled; the boot vCPU must be present in the MADT"
        );
        let mut c = cpus(3);
        c[2].uid = 1;
        assert_eq!(
            err(&platform(c)),
            "ACPI: vCPU uid 1 appears twice; processor UIDs must be unique"
        );
        let mut c = cpus(3);
        c[2].apic_id = 0;
        assert_eq!(
            err(&platform(c)),
            "ACPI: APIC ID 0 appears twice (vCPU uids 0 and 2)"
        );
        let mut c = cpus(1);
        c[0].uid = 4096;
        assert_eq!(
            err(&platform(c)),
            "ACPI: vCPU uid 4096 is above 4095, the last the DSDT's processor device names \
             (C000-CFFF) can number"
        );
        let mut p = two_node_platform();
        p.cpus[3].node = None;
        assert_eq!(
            err(&p),
            "ACPI: vCPU uid 3 has no NUMA node; with guest NUMA (an SRAT) every vCPU slot \
             needs one"
        );
        let mut p = two_node_platform();
        p.memory_affinity[1].base = u64::MAX;
        assert_eq!(
            err(&p),
            "ACPI: memory affinity range 1 (node 0, base 0xffffffffffffffff, length \
             0x7f00000) runs past the end of the 64-bit address space"
        );
    }

    #[test]
    fn placement_errors() {
        let p = platform(cpus(1));
        assert_eq!(
            build(&p, layout::ACPI_START + 8).unwrap_err(),
            AcpiError::MisalignedBase { base: 0xe_0008 }
        );
        let size = build(&p, layout::ACPI_START).unwrap().bytes.len();
        assert_eq!(
            build(&p, layout::ACPI_END - 16).unwrap_err().to_string(),
            format!(
                "ACPI: the tables ({size} bytes at 0xffff0) do not fit in the ACPI area \
                 0xe0000..0x100000; fewer vCPU slots (maxcpus) make them smaller: each costs \
                 a MADT entry and its processor device in the DSDT"
            )
        );
        assert!(matches!(
            build(&p, 0x1000),
            Err(AcpiError::DoesNotFit { base: 0x1000, .. })
        ));
        // 1024 slots (x86 Linux's usual KVM_MAX_VCPUS) fit in the 128 KiB area with the
        // hotplug AML (about 113 DSDT bytes per slot, as QEMU's); 4096 (the most the DSDT
        // names allow) do not.
        assert!(build(&platform(cpus(1024)), layout::ACPI_START).is_ok());
        let too_many = build(&platform(cpus(4096)), layout::ACPI_START).map(|_| ());
        assert!(
            matches!(too_many, Err(AcpiError::DoesNotFit { size: 532_848, .. })),
            "{too_many:?}"
        );
    }
}
