//! Whether this host can run the VM as configured: the vCPU count against KVM's limits,
//! pinning against the host's CPUs, and guest memory against RAM, swap and the kernel's
//! overcommit policy. Each check returns warnings for the user or an error that names the
//! option, the values and the rule; the facts come from `host` (read by the caller or here
//! through its readers), the rules that need no host from `config`.

use thiserror::Error;

use crate::config::smp::{SmpConfig, SmpError};
use crate::config::PinningConfig;
use crate::host::cpus::CpusError;
use crate::host::memory::HostMemory;
use crate::host::Host;
use crate::memory::backing::BackingPlan;
use crate::vcpu::affinity::{self, AffinityError};

/// A host limit the VM does not fit.
#[derive(Debug, Error)]
pub enum LimitError {
    #[error(transparent)]
    Smp(#[from] SmpError),
    #[error(transparent)]
    HostCpus(#[from] CpusError),
    #[error(transparent)]
    Affinity(#[from] AffinityError),
    #[error("-m: {requested} MiB of guest memory exceeds this host's RAM and swap ({host} MiB) and vm.overcommit_memory is {policy}; use less memory, or set vm.overcommit_memory=1 to allow overcommit")]
    MemoryExceedsHost {
        requested: u64,
        host: u64,
        policy: u32,
    },
}

/// vCPUs against KVM_CAP_MAX_VCPUS / KVM_CAP_NR_VCPUS: QEMU's own warnings, with the
/// overcommit ratio added to the first.
pub(crate) fn vcpus(
    smp: &SmpConfig,
    max_vcpus: u32,
    nr_vcpus: u32,
) -> Result<Vec<String>, LimitError> {
    let mut warnings = Vec::new();
    for (i, mut w) in smp
        .validate_limits(max_vcpus, nr_vcpus)?
        .into_iter()
        .enumerate()
    {
        if i == 0 && smp.cpus > nr_vcpus {
            w.push_str(&format!(
                ": {} vCPUs on {} host CPUs overcommits them {:.1}:1",
                smp.cpus,
                nr_vcpus,
                smp.cpus as f64 / nr_vcpus as f64
            ));
        }
        warnings.push(w);
    }
    Ok(warnings)
}

/// Pinning: every host CPU asked for exists, is online and is in our cpuset.
pub(crate) fn pinning(pinning: &PinningConfig, host: &Host) -> Result<Vec<String>, LimitError> {
    if *pinning == PinningConfig::default() {
        return Ok(Vec::new());
    }
    Ok(affinity::check_plan(pinning, host.cpus()?)?)
}

/// Guest RAM against the host's RAM and swap: refused unless the kernel allows overcommit
/// (`vm.overcommit_memory=1`), then a warning. Huge pages come from their pool, which
/// `memory::backing` checked, so they are not counted here.
pub(crate) fn guest_memory(
    memory: u64,
    backing: &BackingPlan,
    host: &HostMemory,
) -> Result<Option<String>, LimitError> {
    let ceiling = host.total + host.swap_total;
    if backing.huge_page().is_some() || ceiling == 0 || memory <= ceiling {
        return Ok(None);
    }
    if host.overcommit_policy != 1 {
        return Err(LimitError::MemoryExceedsHost {
            requested: memory >> 20,
            host: ceiling >> 20,
            policy: host.overcommit_policy,
        });
    }
    Ok(Some(format!(
        "-m: {} MiB of guest memory overcommits this host ({} MiB of RAM and swap); the guest may be killed if it touches it all",
        memory >> 20,
        ceiling >> 20
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_overcommit_warning_names_the_ratio() {
        let smp = SmpConfig::parse("4").unwrap();
        assert!(vcpus(&smp, 288, 8).unwrap().is_empty());
        let w = vcpus(&smp, 288, 2).unwrap();
        // QEMU warns for the present cpus and for maxcpus; the ratio goes on the first.
        assert_eq!(
            w,
            [
                "Number of SMP cpus requested (4) exceeds the recommended cpus supported by KVM (2): 4 vCPUs on 2 host CPUs overcommits them 2.0:1",
                "Number of hotpluggable cpus requested (4) exceeds the recommended cpus supported by KVM (2)",
            ]
        );
    }

    #[test]
    fn memory_beyond_ram_and_swap_needs_overcommit() {
        let mut host = HostMemory {
            total: 1 << 30,
            available: 1 << 30,
            swap_total: 0,
            overcommit_policy: 0,
            ..HostMemory::default()
        };
        let plan = BackingPlan::anonymous(2 << 30);
        assert_eq!(guest_memory(512 << 20, &plan, &host).unwrap(), None);
        assert_eq!(
            guest_memory(2 << 30, &plan, &host).unwrap_err().to_string(),
            "-m: 2048 MiB of guest memory exceeds this host's RAM and swap (1024 MiB) and vm.overcommit_memory is 0; use less memory, or set vm.overcommit_memory=1 to allow overcommit"
        );
        host.overcommit_policy = 1;
        assert_eq!(
            guest_memory(2 << 30, &plan, &host).unwrap().unwrap(),
            "-m: 2048 MiB of guest memory overcommits this host (1024 MiB of RAM and swap); the guest may be killed if it touches it all"
        );
    }
}
