//! One model of the host, read from one filesystem root.
//!
//! [`Host`] is the snapshot both `rvmm host` (`report`) and the VM build (pinning checks,
//! huge page pools, NUMA binding, the memory-size check) ask: each fact has one type and
//! one reader, and every reader takes a [`HostFs`] (`/` on a real host, a fixture tree in
//! tests), so the report and the build cannot disagree about the same host. A fact is read
//! the first time it is asked for and kept, so a VM start reads only what it checks.
//!
//! The facts and their modules: `cpus` (which CPUs exist, are online, isolated, and allowed
//! by this process's cpuset), `cpuinfo` (what they are: vendor, model, flags, topology),
//! `numa` (nodes with CPUs, memory, distances and per-node huge page pools), `memory`
//! (meminfo, overcommit, global huge page pools in bytes, THP, KSM, hugetlbfs mounts),
//! `cgroups` (mounted hierarchies, the process's cpuset), `iov` (IOMMU groups, SR-IOV) and
//! `virt` (the KVM modules and device as `rvmm host` reports them). `kvm` opens /dev/kvm and
//! holds what KVM can give a guest; it is passed beside the snapshot, since the VM build
//! keeps its fd. `thread` is not a host fact: it reads and sets one thread's placement;
//! nor is `perf`, which counts one thread's PMU and software events, nor `tap`, which opens
//! the tap devices of virtio-net.
//! Deciding what the facts allow is left to the callers (`vcpu::affinity`,
//! `memory::backing`, `memory::numa`, `vmm`).

use std::cell::OnceCell;

pub mod cgroups;
pub mod cpuinfo;
pub mod cpus;
pub mod iov;
pub mod kvm;
pub mod memory;
pub mod numa;
pub mod perf;
pub mod report;
pub mod sysfs;
pub mod tap;
pub mod thread;
pub mod virt;
pub mod vmcgroup;

pub use kvm::{KvmError, KvmHost};
pub use sysfs::HostFs;

use cgroups::HostCgroups;
use cpuinfo::{CpuInfo, CpuInfoError};
use cpus::{CpusError, HostCpus};
use iov::HostIov;
use memory::HostMemory;
use numa::HostNuma;

/// The host as read from one [`HostFs`], each fact read once, when first asked for.
#[derive(Debug, Default)]
pub struct Host {
    fs: HostFs,
    cgroups: OnceCell<HostCgroups>,
    cpus: OnceCell<HostCpus>,
    cpu_info: OnceCell<CpuInfo>,
    numa: OnceCell<HostNuma>,
    memory: OnceCell<HostMemory>,
    iov: OnceCell<HostIov>,
}

impl Host {
    /// The host under `fs`.
    pub fn new(fs: HostFs) -> Host {
        Host {
            fs,
            ..Default::default()
        }
    }

    /// The running host.
    pub fn real() -> Host {
        Host::new(HostFs::real())
    }

    /// The root the facts are read from.
    pub fn fs(&self) -> &HostFs {
        &self.fs
    }

    /// The mounted cgroup hierarchies.
    pub fn cgroups(&self) -> &HostCgroups {
        self.cgroups.get_or_init(|| HostCgroups::read(&self.fs))
    }

    /// The CPU sets (possible, online, isolated, allowed by the cpuset).
    pub fn cpus(&self) -> Result<&HostCpus, CpusError> {
        if let Some(cpus) = self.cpus.get() {
            return Ok(cpus);
        }
        let cpus = HostCpus::read(&self.fs, self.cgroups())?;
        Ok(self.cpus.get_or_init(|| cpus))
    }

    /// What the CPUs are and where the online ones sit.
    pub fn cpu_info(&self) -> Result<&CpuInfo, HostError> {
        if let Some(info) = self.cpu_info.get() {
            return Ok(info);
        }
        let info = CpuInfo::read(&self.fs, &self.cpus()?.online)?;
        Ok(self.cpu_info.get_or_init(|| info))
    }

    /// The NUMA nodes.
    pub fn numa(&self) -> &HostNuma {
        self.numa.get_or_init(|| HostNuma::read(&self.fs))
    }

    /// Memory, huge page pools, THP and KSM.
    pub fn memory(&self) -> &HostMemory {
        self.memory.get_or_init(|| HostMemory::read(&self.fs))
    }

    /// IOMMU groups and SR-IOV devices.
    pub fn iov(&self) -> &HostIov {
        self.iov.get_or_init(|| HostIov::read(&self.fs))
    }

    /// This snapshot with its CPU sets given rather than read (tests, fake hosts).
    pub fn with_cpus(self, cpus: HostCpus) -> Host {
        let _ = self.cpus.set(cpus);
        self
    }

    /// This snapshot with its NUMA nodes given rather than read.
    pub fn with_numa(self, numa: HostNuma) -> Host {
        let _ = self.numa.set(numa);
        self
    }

    /// This snapshot with its memory given rather than read.
    pub fn with_memory(self, memory: HostMemory) -> Host {
        let _ = self.memory.set(memory);
        self
    }
}

/// A host fact that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Cpus(#[from] CpusError),
    #[error(transparent)]
    CpuInfo(#[from] CpuInfoError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_facts_are_not_read_and_missing_ones_read_empty() {
        let host = Host::new(HostFs::at("/nonexistent-root")).with_numa(HostNuma::default());
        assert!(host.numa().nodes.is_empty());
        assert_eq!(*host.memory(), HostMemory::default());
        assert!(host.cpus().is_err());
        let cpus = HostCpus {
            online: vec![0],
            ..Default::default()
        };
        let host = host.with_cpus(cpus.clone());
        assert_eq!(host.cpus().unwrap(), &cpus);
    }

    #[test]
    fn the_running_host_reads() {
        let host = Host::real();
        let cpus = host.cpus().unwrap();
        assert!(!cpus.online.is_empty() && !cpus.allowed.is_empty());
        assert_eq!(host.cpu_info().unwrap().places.len(), cpus.online.len());
        assert!(!host.numa().nodes.is_empty());
        assert!(host.memory().total > 0);
    }
}
