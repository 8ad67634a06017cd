//! The KVM edge of a vCPU's CPUID: the `cpu` crate's plain `CpuidEntry` tables to
//! `kvm_bindings::CpuId` for KVM_SET_CPUID2 (reading KVM_GET_SUPPORTED_CPUID is `host::kvm`'s), and the
//! configuration's CPU request for the table builder. Building the tables is the `cpu`
//! crate's (`cpu::builder`); this module only converts.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};
use thiserror::Error;

use crate::config::VmConfig;
use crate::cpu::builder::{self, BuilderError, VmCpuRequest, VmCpuTables};
use crate::cpu::cpuid::CpuidEntry;
use crate::cpu::identity::HostIdentity;
use crate::cpu::support::HostCpuSupport;

/// Why a CPUID table cannot be handed to KVM.
#[derive(Debug, Error)]
pub enum CpuidError {
    #[error("CPUID table has {0} entries, more than KVM accepts")]
    TooMany(usize),
}

/// Converts our table into the KVM_SET_CPUID2 argument.
pub fn to_kvm(entries: &[CpuidEntry]) -> Result<CpuId, CpuidError> {
    let kvm_entries: Vec<kvm_cpuid_entry2> = entries
        .iter()
        .map(|e| kvm_cpuid_entry2 {
            function: e.function,
            index: e.index,
            flags: e.flags,
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
            ..Default::default()
        })
        .collect();
    CpuId::from_entries(&kvm_entries).map_err(|_| CpuidError::TooMany(entries.len()))
}

/// What `config` asks of the CPU table builder: `--cpu`, the `--smp` topology and its
/// boot vCPUs.
pub fn cpu_request(config: &VmConfig) -> VmCpuRequest<'_> {
    VmCpuRequest {
        cpu: &config.cpu,
        topology: config.smp.topology(),
        boot_vcpus: config.smp.cpus,
    }
}

/// Every boot vCPU's CPUID table for `config` (see `cpu::builder::tables_for`): what the
/// VM build hands to KVM and `rvmm run --dry-run --show-cpuid` prints.
pub fn tables_for(
    config: &VmConfig,
    host: &HostCpuSupport,
    identity: &HostIdentity,
) -> Result<VmCpuTables, BuilderError> {
    builder::tables_for(&cpu_request(config), host, identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::cpuid::KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

    #[test]
    fn entries_survive_the_round_trip_through_kvm() {
        let entries = vec![
            CpuidEntry {
                function: 7,
                index: 1,
                flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                eax: 1,
                ebx: 2,
                ecx: 3,
                edx: 4,
            },
            CpuidEntry {
                function: 0x8000_0000,
                eax: 0x8000_0008,
                ..Default::default()
            },
        ];
        let kvm = to_kvm(&entries).unwrap();
        assert_eq!(
            kvm.as_slice()[0].flags,
            kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        );
        assert_eq!(crate::host::kvm::from_kvm(&kvm), entries);
    }
}
