//! Builds each vCPU's CPUID table: the CPU model (expanded as QEMU 7.2 expands it under KVM,
//! filtered against what this host's KVM supports) plus KVM's hypervisor leaves, then the
//! topology and cache leaves stamped with the vCPU's APIC ID.
//!
//! This is the one place a vCPU's CPUID is assembled. `plan` runs once per VM (and yields
//! QEMU's warnings); `vcpu_cpuid` runs once per vCPU.

use crate::cpuid::KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
use thiserror::Error;

use super::cache::CacheModel;
use super::cpuid::CpuidEntry;
use super::filter::{apply_check, filter_cpu, FilterError, FilterResult, HostCpuSupport};
use super::models::expand::{expand, Accel, ExpandError, ExpandedCpu, HostIdentity};
use super::models::leaves::model_leaves;
use super::models::DefaultVersion;
use super::topology::apply::apply_topology;
use super::topology::leaves::{hyperthreading_warning, CpuVendor, TopologyContext, TopologyFlags};
use super::topology::CpuTopology;
use crate::features::ids;
use crate::spec::CpuSpec;

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
    /// QEMU's warnings, in QEMU's order: the `--cpu` text's own, dependency drops, then
    /// unsupported features; `tables_for` adds the AMD-without-TopoExt hyperthreading one.
    pub warnings: Vec<String>,
    /// The model's leaves, filtered, with the hypervisor leaves; topology not yet applied.
    pub base: Vec<CpuidEntry>,
    pub caches: CacheModel,
}

/// How unversioned model names resolve: as QEMU's current pc/q35 machine types do (v1).
pub const DEFAULT_VERSION: DefaultVersion = DefaultVersion::V1;

/// Expands and filters `cpu` for this host.
pub fn plan(
    cpu: &CpuSpec,
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
    let caches = CacheModel::for_caches(expanded.cache_info);
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
    trim_like_qemu(&mut t);
    t
}

/// XSAVE leaf 0DH's last subleaf.
const XSAVE_LAST_SUBLEAF: u32 = 63;

/// Shapes the table as QEMU's kvm_arch_init_vcpu does, so the two can be compared entry for
/// entry: plain leaves (no subleaves, no flags) that are all zero are left out (KVM answers
/// zeros for a missing leaf anyway), while leaf 2 (STATEFUL_FUNC) stays even when it is all
/// zero, as it is for an AMD vendor; and the 0DH list ends with an all-zero subleaf 63,
/// which QEMU's subleaf loop always leaves behind.
fn trim_like_qemu(t: &mut Vec<CpuidEntry>) {
    t.retain(|e| e.flags != 0 || e.regs() != [0; 4]);
    let level = t.iter().find(|e| e.function == 0).map_or(0, |e| e.eax);
    if level >= 0xd
        && !t
            .iter()
            .any(|e| e.function == 0xd && e.index == XSAVE_LAST_SUBLEAF)
    {
        let at = t.iter().position(|e| e.function > 0xd).unwrap_or(t.len());
        t.insert(
            at,
            CpuidEntry {
                function: 0xd,
                index: XSAVE_LAST_SUBLEAF,
                flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                ..Default::default()
            },
        );
    }
}

/// One vCPU's CPUID table, exactly as handed to KVM_SET_CPUID2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuCpuid {
    /// The vCPU's index (0 is the boot CPU).
    pub index: u32,
    /// Its initial APIC ID, which is also its KVM vCPU id.
    pub apic_id: u32,
    pub entries: Vec<CpuidEntry>,
}

/// The CPU of a whole VM: the shared plan and the table of every vCPU present at boot.
#[derive(Debug, Clone)]
pub struct VmCpuTables {
    pub plan: CpuPlan,
    pub topology: CpuTopology,
    pub vcpus: Vec<VcpuCpuid>,
}

impl VmCpuTables {
    /// The table of vCPU slot `index` (boot or hot-pluggable): what a vCPU plugged there
    /// gets, equal to the boot table for a boot slot. None past maxcpus.
    pub fn slot_table(&self, index: u32) -> Option<VcpuCpuid> {
        if index >= self.topology.max_cpus() {
            return None;
        }
        if let Some(boot) = self.vcpus.get(index as usize) {
            return Some(boot.clone());
        }
        let apic_id = self.topology.apic_id(index);
        Some(VcpuCpuid {
            index,
            apic_id,
            entries: vcpu_cpuid(&self.plan, &self.topology, apic_id),
        })
    }
}

/// The CPU of a VM as its configuration asks for it.
#[derive(Debug, Clone, Copy)]
pub struct VmCpuRequest<'a> {
    /// The model and feature changes (`--cpu`).
    pub cpu: &'a CpuSpec,
    /// The topology (`--smp`).
    pub topology: CpuTopology,
    /// vCPUs present at boot: the first `boot_vcpus` slots.
    pub boot_vcpus: u32,
}

/// Every boot vCPU's CPUID table for `request` on a host whose KVM offers `host`: the plan
/// (`plan`), then `vcpu_cpuid` for each of the first `boot_vcpus` APIC IDs. The VMM hands
/// exactly these tables to KVM; `rvmm run --dry-run --show-cpuid` prints them without
/// creating a VM.
pub fn tables_for(
    request: &VmCpuRequest<'_>,
    host: &HostCpuSupport,
    identity: &HostIdentity,
) -> Result<VmCpuTables, BuilderError> {
    let topology = request.topology;
    let mut plan = plan(request.cpu, topology.dies(), host, identity)?;
    // QEMU prints this one at vCPU realize, after the filter's warnings.
    let topoext = plan.filter.kept.has(ids::TOPOEXT);
    let vendor = CpuVendor::from_vendor_id(&plan.expanded.vendor.as_string());
    plan.warnings
        .extend(hyperthreading_warning(vendor, topoext, topology.threads()));
    let vcpus = topology
        .apic_ids()
        .into_iter()
        .take(request.boot_vcpus as usize)
        .zip(0u32..)
        .map(|(apic_id, index)| VcpuCpuid {
            index,
            apic_id,
            entries: vcpu_cpuid(&plan, &topology, apic_id),
        })
        .collect();
    Ok(VmCpuTables {
        plan,
        topology,
        vcpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::testing;
    use crate::topology::explicit;

    use testing::identity;

    #[test]
    fn tables_for_gives_each_boot_vcpu_its_apic_id() {
        let (boot_vcpus, topology) = explicit("3,sockets=2,cores=2,threads=1,maxcpus=4");
        let cpu = CpuSpec::default();
        let request = VmCpuRequest {
            cpu: &cpu,
            topology,
            boot_vcpus,
        };
        let t = tables_for(&request, &testing::host(), &identity()).unwrap();
        assert_eq!(
            t.vcpus
                .iter()
                .map(|v| (v.index, v.apic_id))
                .collect::<Vec<_>>(),
            [(0, 0), (1, 1), (2, 2)]
        );
        for v in &t.vcpus {
            // CPUID.01H:EBX[31:24] is the initial APIC ID (SDM Vol. 2A, CPUID).
            let leaf1 = crate::cpuid::find(&v.entries, 1, 0).unwrap();
            assert_eq!(leaf1.ebx >> 24, v.apic_id);
            // The KVM signature leaf is present in every table.
            let sig = crate::cpuid::find(&v.entries, KVM_CPUID_SIGNATURE, 0).unwrap();
            assert_eq!(sig.ebx.to_le_bytes(), *b"KVMK");
        }
    }

    /// A hot-pluggable slot's table is the one a boot vCPU in that slot gets: the same
    /// request with more boot vCPUs gives the same table.
    #[test]
    fn every_slot_has_the_table_a_boot_vcpu_there_would_get() {
        let cpu = CpuSpec::default();
        let tables = |smp: &str| {
            let (boot_vcpus, topology) = explicit(smp);
            let request = VmCpuRequest {
                cpu: &cpu,
                topology,
                boot_vcpus,
            };
            tables_for(&request, &testing::host(), &identity()).unwrap()
        };
        let one = tables("1,sockets=2,cores=2,threads=1,maxcpus=4");
        let all = tables("4,sockets=2,cores=2,threads=1,maxcpus=4");
        assert_eq!(one.vcpus.len(), 1);
        let slots: Vec<VcpuCpuid> = (0..4).map(|i| one.slot_table(i).unwrap()).collect();
        assert_eq!(slots, all.vcpus);
        assert_eq!(one.slot_table(0).unwrap(), one.vcpus[0]);
        let slot3 = one.slot_table(3).unwrap();
        assert_eq!((slot3.index, slot3.apic_id), (3, 3));
        assert_eq!(
            crate::cpuid::find(&slot3.entries, 1, 0).unwrap().ebx >> 24,
            3
        );
        assert_eq!(one.slot_table(4), None);
    }

    /// QEMU 7.2 (`x86_cpu_realizefn`) warns once when the CPU's vendor is AMD, TopoExt is
    /// off after filtering and there is more than one thread per core; under KVM a named
    /// model has the host's vendor.
    #[test]
    fn amd_threads_without_topoext_warn_like_qemu() {
        let amd = HostIdentity {
            vendor: crate::identity::VendorId::AMD,
            ..identity()
        };
        let warnings = |model: &str, changes: &[(&str, bool)], smp: &str, who: &HostIdentity| {
            let cpu = CpuSpec {
                model: model.to_string(),
                changes: changes.iter().map(|&(n, on)| (n.to_string(), on)).collect(),
                ..CpuSpec::default()
            };
            let (boot_vcpus, topology) = explicit(smp);
            let request = VmCpuRequest {
                cpu: &cpu,
                topology,
                boot_vcpus,
            };
            let t = tables_for(&request, &testing::host(), who).unwrap();
            t.plan
                .warnings
                .iter()
                .filter(|w| w.contains("hyperthreading"))
                .cloned()
                .collect::<Vec<_>>()
        };
        let two_threads = "2,sockets=1,cores=1,threads=2";
        assert_eq!(
            warnings("EPYC", &[("topoext", false)], two_threads, &amd),
            [
                "This family of AMD CPU doesn't support hyperthreading(2); configure --smp \
              properly or enable the topoext feature"
            ]
        );
        assert_eq!(warnings("qemu64", &[], two_threads, &amd).len(), 1);
        assert!(warnings("EPYC", &[], two_threads, &amd).is_empty());
        assert!(warnings("qemu64", &[], "2,sockets=1,cores=2,threads=1", &amd).is_empty());
        assert!(warnings("qemu64", &[], two_threads, &identity()).is_empty());
    }

    /// QEMU's kvm_arch_init_vcpu drops all-zero plain leaves but always passes leaf 2,
    /// which is all zero for an AMD vendor.
    #[test]
    fn zero_leaf_2_stays_like_qemus() {
        let amd = HostIdentity {
            vendor: crate::identity::VendorId::AMD,
            ..identity()
        };
        let cpu = CpuSpec::default();
        let (boot_vcpus, topology) = explicit("1");
        let request = VmCpuRequest {
            cpu: &cpu,
            topology,
            boot_vcpus,
        };
        let t = tables_for(&request, &testing::host(), &amd).unwrap();
        let leaf2 = crate::cpuid::find(&t.vcpus[0].entries, 2, 0).expect("leaf 2");
        assert_eq!(leaf2.regs(), [0; 4]);
        assert!(t.vcpus[0]
            .entries
            .iter()
            .all(|e| e.flags != 0 || e.regs() != [0; 4]));
    }
}
