//! Builds each vCPU's CPUID table: the CPU model (expanded as QEMU 7.2 expands it under KVM,
//! filtered against what this host's KVM supports) plus KVM's hypervisor leaves, then the
//! topology and cache leaves stamped with the vCPU's APIC ID.
//!
//! This is the one place a vCPU's CPUID is assembled. `plan` runs once per VM (and yields
//! QEMU's warnings); `vcpu_cpuid` runs once per vCPU.

use thiserror::Error;

use super::cache::CacheModel;
use super::cpuid::CpuidEntry;
use super::filter::{apply_check, filter_cpu, FilterError, FilterResult, HostCpuSupport};
use super::models::expand::{expand, Accel, ExpandError, ExpandedCpu, HostIdentity};
use super::models::leaves::model_leaves;
use super::models::DefaultVersion;
use super::topology::apply::apply_topology;
use super::topology::leaves::{CpuVendor, TopologyContext, TopologyFlags};
use super::topology::CpuTopology;
use crate::config::cpu::CpuConfig;

/// CPUID.40000000H: the hypervisor's maximum leaf and signature ("KVMKVMKVM\0\0\0"), as
/// KVM documents it (Documentation/virt/kvm/x86/cpuid.rst).
const KVM_CPUID_SIGNATURE: u32 = 0x4000_0000;
const KVM_CPUID_FEATURES: u32 = 0x4000_0001;
const KVM_SIGNATURE: &[u8; 12] = b"KVMKVMKVM\0\0\0";

/// Why the CPU cannot be built as asked.
#[derive(Debug, Error)]
pub enum BuilderError {
    #[error(transparent)]
    Expand(#[from] ExpandError),
    #[error(transparent)]
    Enforce(#[from] FilterError),
}

/// The CPU every vCPU of a VM shares: the expanded model and its leaves before topology.
#[derive(Debug, Clone)]
pub struct CpuPlan {
    pub expanded: ExpandedCpu,
    pub filter: FilterResult,
    /// QEMU's warnings, in QEMU's order: dependency drops, then unsupported features.
    pub warnings: Vec<String>,
    /// The model's leaves, filtered, with the hypervisor leaves; topology not yet applied.
    pub base: Vec<CpuidEntry>,
    pub caches: CacheModel,
}

/// How unversioned model names resolve: as QEMU's current pc/q35 machine types do (v1).
pub const DEFAULT_VERSION: DefaultVersion = DefaultVersion::V1;

/// Expands and filters `cpu` for this host.
pub fn plan(
    cpu: &CpuConfig,
    dies: u32,
    host: &HostCpuSupport,
    identity: &HostIdentity,
) -> Result<CpuPlan, BuilderError> {
    let expanded = expand(
        &cpu.request(DEFAULT_VERSION, dies),
        Accel::Kvm { host, identity },
    )?;
    let filter = filter_cpu(&expanded, host);
    let mut warnings = cpu.warnings.clone();
    warnings.extend(expanded.dependency_warnings.iter().cloned());
    warnings.extend(apply_check(cpu.check, &filter)?);
    let mut base = model_leaves(&expanded, &filter.kept, host);
    let sig = |i: usize| u32::from_le_bytes(KVM_SIGNATURE[i..i + 4].try_into().expect("4 bytes"));
    base.push(CpuidEntry {
        function: KVM_CPUID_SIGNATURE,
        eax: KVM_CPUID_FEATURES,
        ebx: sig(0),
        ecx: sig(4),
        edx: sig(8),
        ..Default::default()
    });
    base.sort_by_key(|e| (e.function, e.index));
    let caches = match expanded.cache_info {
        Some(_) => {
            CacheModel::for_model(expanded.versioned_name.as_deref().unwrap_or(&expanded.name))
        }
        None => CacheModel::legacy(),
    };
    Ok(CpuPlan {
        expanded,
        filter,
        warnings,
        base,
        caches,
    })
}

/// The CPUID table for the vCPU whose APIC ID is `apic_id`.
pub fn vcpu_cpuid(plan: &CpuPlan, topology: &CpuTopology, apic_id: u32) -> Vec<CpuidEntry> {
    let mut t = plan.base.clone();
    let vendor_id = String::from_utf8_lossy(&plan.expanded.vendor.0).into_owned();
    let ctx = TopologyContext {
        vendor: CpuVendor::from_vendor_id(&vendor_id),
        topology,
        caches: &plan.caches,
        flags: TopologyFlags::default(),
        apic_id,
    };
    apply_topology(&ctx, &mut t);
    t
}
