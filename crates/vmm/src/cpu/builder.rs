//! Builds each vCPU's CPUID table from what KVM supports, stamped with the vCPU's identity:
//! its APIC ID and the topology and cache leaves QEMU would give it.
//!
//! This is the one place a vCPU's CPUID is assembled; the model and topology encoders feed it.

use super::cache::CacheModel;
use super::cpuid::{find, CpuidEntry};
use super::topology::leaves::{CpuVendor, TopologyContext, TopologyFlags};
use super::topology::apply::apply_topology;
use super::topology::CpuTopology;

/// What every vCPU's table is built from.
#[derive(Debug, Clone)]
pub struct CpuidContext<'a> {
    /// KVM_GET_SUPPORTED_CPUID.
    pub supported: &'a [CpuidEntry],
    pub topology: &'a CpuTopology,
}

/// The vendor named by CPUID leaf 0 (EBX, EDX, ECX spell it).
pub fn vendor_of(entries: &[CpuidEntry]) -> CpuVendor {
    let Some(e) = find(entries, 0, 0) else {
        return CpuVendor::Other;
    };
    let mut id = Vec::with_capacity(12);
    for r in [e.ebx, e.edx, e.ecx] {
        id.extend_from_slice(&r.to_le_bytes());
    }
    CpuVendor::from_vendor_id(&String::from_utf8_lossy(&id))
}

/// The CPUID table for the vCPU whose APIC ID is `apic_id`.
pub fn vcpu_cpuid(ctx: &CpuidContext, apic_id: u32) -> Vec<CpuidEntry> {
    let mut t = ctx.supported.to_vec();
    let caches = CacheModel::legacy();
    let tctx = TopologyContext {
        vendor: vendor_of(&t),
        topology: ctx.topology,
        caches: &caches,
        flags: TopologyFlags::default(),
        apic_id,
    };
    apply_topology(&tctx, &mut t);
    t
}
