//! What a QMP command may see and do of the running VM, and nothing more: run state
//! (pause, resume), the ACPI power button, ending the VM, events, the present vCPUs with
//! their threads and affinities, pinning, vCPU hotplug (plugging a slot, asking the guest
//! to give one back, parking what it ejected), the VM's resolved topology and CPU model,
//! the host CPU facts model queries need, and what the VM costs the host (KVM statistics,
//! thread figures). The VMM thread implements [`VmView`] over the real
//! VM (`vmm::commands`); the commands' unit tests implement it over plain data.
//!
//! Errors keep their types here and become QMP `GenericError`s (with the same text) only
//! when a command answers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::commands::cpu_slot::CpuSlots;
use super::error::QmpError;
use super::qmp::Event;
use crate::config::cputune::{SchedInfo, SchedParam};
use crate::cpu::filter::HostCpuSupport;
use crate::cpu::models::expand::HostIdentity;
use crate::cpu::topology::CpuTopology;
use crate::host::thread::ThreadError;
use crate::host::vmcgroup::CgroupCpuStat;
use crate::machine::stats::KvmStat;
use crate::monitor::sample::{HostNodeCpus, ThreadSample};
use crate::vcpu::affinity::AffinityError;
use crate::vcpu::info::VcpuInfo;

/// Why the VM could not do what a command asked.
#[derive(Debug, Error)]
pub(crate) enum VmError {
    #[error("only {parked} of {total} vCPUs stopped within {seconds} s; the VM keeps running")]
    PauseTimeout {
        parked: usize,
        total: usize,
        seconds: u64,
    },
    #[error("raising the SCI: {0}")]
    Sci(std::io::Error),
    #[error(transparent)]
    Sched(#[from] ThreadError),
    #[error(transparent)]
    HostCpus(#[from] crate::host::cpus::CpusError),
    #[error(transparent)]
    Affinity(#[from] AffinityError),
    /// Creating or configuring a hot-plugged vCPU failed.
    #[error("vCPU {vcpu}: {source}")]
    CreateVcpu {
        vcpu: u32,
        source: crate::machine::MachineError,
    },
    #[error("vCPU {vcpu}: starting its thread: {source}")]
    SpawnVcpu {
        vcpu: u32,
        source: crate::vcpu::SpawnError,
    },
    /// The CPU hotplug register block refused the request.
    #[error("CPU hotplug: {0}")]
    Hotplug(String),
    /// KVM's binary statistics could not be read.
    #[error("{0}")]
    Stats(String),
    /// QEMU's PIIX-PM text for an unplug before the guest switched the CPU hotplug block to
    /// its modern mode.
    #[error("acpi: device unplug request for not supported device type: {type_name}")]
    UnplugUnsupported { type_name: String },
    /// The VM runs in the cgroup it was started in.
    #[error("the VM has no cgroup of its own (it was started with --cgroup off, or --cgroup auto found no writable cpu controller): its scheduler parameters cannot be read or set")]
    NoCgroup,
    /// Reading or writing the VM's cgroup failed.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// The snapshot could not be taken (the text names the file or the device).
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A migration could not start (the text says why).
    #[error("migrate: {0}")]
    Migration(String),
    /// A migration command that does not fit the migration's state (the text says why;
    /// QEMU's texts where it has one).
    #[error("{0}")]
    MigrationState(String),
    /// announce-self's NICs (the text names the one not found).
    #[error("{0}")]
    Announce(String),
}

impl From<VmError> for QmpError {
    fn from(e: VmError) -> Self {
        QmpError::generic(e.to_string())
    }
}

/// The run states rvmm reports (a subset of QEMU's RunState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    /// Every vCPU parked by `stop`.
    Paused,
    /// `rvmm run --incoming`: built, waiting for the migration source (nothing runs).
    Inmigrate,
    /// Migrated away: paused for good on the source (`cont` would run it again, as QEMU).
    Postmigrate,
}

/// How a command ends the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndRequest {
    /// `system_reset` (rvmm has no in-place reset yet).
    Reset,
    /// `quit`.
    Quit,
}

/// A present vCPU and its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VcpuThread {
    pub index: u32,
    pub thread_id: i32,
}

/// A thread of the process that is not a vCPU (the main loop, the QMP threads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EmulatorThread {
    pub thread_id: i32,
    /// The thread's name (`comm`).
    pub name: String,
    pub affinity: Vec<u32>,
}

/// What KVM on this host offers CPU models, for the model queries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostCpuView<'a> {
    pub support: &'a HostCpuSupport,
    pub identity: &'a HostIdentity,
}

/// The running VM as commands see it.
pub(crate) trait VmView {
    /// The VM's `--name`.
    fn name(&self) -> Option<&str>;
    /// The vCPU topology, resolved once for the VM's lifetime.
    fn topology(&self) -> &CpuTopology;
    /// The `--cpu` model name.
    fn cpu_model(&self) -> &str;
    /// What the host's KVM offers CPU models.
    fn host_cpu(&self) -> HostCpuView<'_>;

    /// Paused (by `stop`) or running.
    fn run_state(&self) -> RunState;
    /// Parks every vCPU; returns once they all are.
    fn pause(&mut self) -> Result<(), VmError>;
    /// Lets parked vCPUs run again.
    fn resume(&mut self);
    /// Runs a VM that migrated away again (`cont` in postmigrate): its disks and taps are
    /// taken back from the destination first; an error names what is still held there.
    fn resume_after_migration(&mut self) -> Result<(), VmError> {
        Err(VmError::Migration(
            "this VM cannot run again after its migration".into(),
        ))
    }
    /// Presses the ACPI power button.
    fn press_power_button(&mut self) -> Result<(), VmError>;
    /// Ends the VM. The caller has sent the event that says so.
    fn end(&mut self, how: EndRequest);
    /// Sends an event to every negotiated client.
    fn emit(&mut self, event: Event);

    /// The present vCPUs (plugged and not ejected), in QEMU's order (creation order).
    fn vcpus(&self) -> Vec<VcpuThread>;
    /// Which slots hold a vCPU, with their ids and QOM paths.
    fn cpu_slots(&self) -> &CpuSlots;
    /// The same, to record a plug or an eject.
    fn cpu_slots_mut(&mut self) -> &mut CpuSlots;
    /// Gives the empty slot `index` a vCPU waiting for INIT/SIPI (a new one, or the parked
    /// one the guest ejected from it earlier), marks it present in the CPU hotplug block and
    /// raises the hotplug GPE.
    fn plug_vcpu(&mut self, index: u32) -> Result<(), VmError>;
    /// Asks the guest to eject the vCPU in slot `index` (remove event and GPE).
    fn request_unplug(&mut self, index: u32) -> Result<(), VmError>;
    /// Stops the vCPU in slot `index` running guest code and parks its thread (the guest
    /// ejected it; KVM cannot destroy a vCPU).
    fn eject_vcpu(&mut self, index: u32);
    /// One present vCPU as the kernel sees its thread.
    fn vcpu_info(&self, vcpu: VcpuThread) -> Result<VcpuInfo, VmError>;
    /// The pin the configuration gives vCPU slot `index` (`--vcpu-pin`, else `--cpuset`).
    fn configured_pin(&self, index: u32) -> Option<Vec<u32>>;
    /// vCPUs pinned explicitly (at start or since), with their CPUs.
    fn explicit_pins(&self) -> Vec<(u32, Vec<u32>)>;
    /// Checks `cpus` exist, are online and are ours; returns warnings. `what` names the
    /// request in messages (`vcpupin 1 0-3`).
    fn check_host_cpus(&self, what: &str, cpus: &[u32]) -> Result<Vec<String>, VmError>;
    /// The number of possible host CPUs (the width of an affinity map).
    fn host_cpu_count(&self) -> Result<u32, VmError>;
    /// A vCPU thread's affinity.
    fn affinity(&self, vcpu: VcpuThread) -> Result<Vec<u32>, VmError>;
    /// The main thread's affinity (what threads started without a pin inherit).
    fn main_affinity(&self) -> Result<Vec<u32>, VmError>;
    /// Pins a present vCPU and records the pin.
    fn pin_vcpu(&mut self, vcpu: VcpuThread, cpus: &[u32]) -> Result<(), VmError>;
    /// The threads that are not vCPUs, with their affinities.
    fn emulator_threads(&self) -> Result<Vec<EmulatorThread>, VmError>;
    /// Pins every thread that is not a vCPU.
    fn pin_emulator(&mut self, cpus: &[u32]) -> Result<(), VmError>;

    /// The VM's KVM binary statistics with their current values.
    fn vm_kvm_stats(&self) -> Result<Vec<KvmStat>, VmError>;
    /// A present vCPU's KVM binary statistics with their current values.
    fn vcpu_kvm_stats(&self, vcpu: VcpuThread) -> Result<Vec<KvmStat>, VmError>;
    /// One thread of the VMM's process as the host scheduler sees it.
    fn thread_sample(&self, thread_id: i32) -> Result<ThreadSample, VmError>;
    /// The guest NUMA node of vCPU slot `index` and the host nodes that node's memory is
    /// bound to (empty when unbound); `None` without guest NUMA.
    fn guest_node(&self, index: u32) -> Option<(u32, Vec<u32>)>;
    /// The host's NUMA nodes and their CPUs.
    fn host_nodes(&self) -> Vec<HostNodeCpus>;

    /// The VM's scheduler parameters, read back from its cgroup.
    fn schedinfo(&self) -> Result<SchedInfo, VmError>;
    /// Applies `changes` to the VM's cgroup (every change is range-checked when parsed; the
    /// kernel may still refuse one, e.g. a child quota above the VM's) and returns the
    /// parameters after.
    fn set_schedinfo(&mut self, changes: &[SchedParam]) -> Result<SchedInfo, VmError>;
    /// vCPU slot `index`'s group: its quota and throttling; `None` without a cgroup.
    fn vcpu_cgroup(&self, index: u32) -> Option<CgroupCpuStat>;
    /// Writes the paused VM's snapshot into `dir` (`stopped`: it stays paused after).
    fn snapshot(
        &mut self,
        dir: &std::path::Path,
        stopped: bool,
    ) -> Result<super::commands::snapshot::SnapshotReply, VmError>;
    /// Starts a live migration to `uri` on a migration thread (docs/migration.md).
    fn migrate(&mut self, uri: &str) -> Result<(), VmError> {
        Err(VmError::Migration(format!("{uri}: this VM cannot migrate")))
    }
    /// The current or last migration (`{}` before any).
    fn query_migrate(&self) -> crate::migration::MigrationInfo {
        crate::migration::MigrationInfo::default()
    }
    /// The migration parameters.
    fn migration_parameters(&self) -> crate::migration::MigrationParameters {
        crate::migration::MigrationParameters::default()
    }
    /// Sets the migration parameters (for the next migration).
    fn set_migration_parameters(&mut self, _p: crate::migration::MigrationParameters) {}
    /// Cancels the migration under way (nothing to do when none is).
    fn migrate_cancel(&mut self) {}
    /// The migration capabilities.
    fn migration_capabilities(&self) -> crate::migration::MigrationCapabilities {
        crate::migration::MigrationCapabilities::default()
    }
    /// Sets the migration capabilities (refused while a migration is under way).
    fn set_migration_capabilities(
        &mut self,
        _c: crate::migration::MigrationCapabilities,
    ) -> Result<(), VmError> {
        Err(VmError::MigrationState("this VM cannot migrate".into()))
    }
    /// Lets a migration waiting in `state` (only `pre-switchover` waits) go on.
    fn migrate_continue(
        &mut self,
        _state: crate::migration::MigrationStatus,
    ) -> Result<(), VmError> {
        Err(VmError::MigrationState("this VM cannot migrate".into()))
    }

    /// Sends the NICs' self-announcements (all, or those `interfaces` names) in
    /// `params`' rounds, replacing an announcement still running.
    fn announce_self(
        &mut self,
        _params: crate::config::announce::AnnounceParams,
        _interfaces: Option<&[String]>,
    ) -> Result<(), VmError> {
        Err(VmError::Announce("this VM has no NIC".into()))
    }

    /// The balloon, when the VM has one.
    fn balloon(&self) -> Option<BalloonStatus>;
    /// Sets the balloon's target (pages it should hold) and tells the driver.
    fn set_balloon_target(&mut self, pages: u32);
}

/// The balloon as commands see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BalloonStatus {
    /// Guest RAM in bytes.
    pub ram: u64,
    /// The target in 4 KiB pages.
    pub target: u32,
    /// The pages the driver says the balloon holds.
    pub actual: u32,
}

impl BalloonStatus {
    /// The guest's memory as QEMU reports it: RAM less the balloon.
    pub fn actual_bytes(&self) -> u64 {
        self.ram.saturating_sub(u64::from(self.actual) << 12)
    }
}
