//! ACPI tables for the guest: RSDP, XSDT, FADT, DSDT, MADT, and (with guest NUMA) SRAT and
//! SLIT, built from a plain description of the platform into bytes placed at a guest address.
//!
//! Nothing here touches guest memory or KVM: `build` returns the blob and where its RSDP is.

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

/// A guest NUMA node's memory range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiMemoryAffinity {
    pub node: u32,
    pub base: u64,
    pub length: u64,
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
}
