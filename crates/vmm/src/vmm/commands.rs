//! The VMM thread's side of the control plane: [`Controller`] is the running VM as QMP
//! commands see it (`control::view::VmView`), built over the VMM, its vCPU handles (which it
//! owns: the list grows as vCPUs are hot-plugged), the pause/stop state and the QMP server.
//! Every request arrives here as a `Command` (whatever the transport) and runs on this
//! thread; what each command does is its own module's business (`control::commands`). Also
//! the guest events vCPU threads pass on (CPU ejects, `_OST` reports) and the event that
//! says how the VM ended.
//!
//! Plugging slot N creates its vCPU here, on the emulator thread (KVM_CREATE_VCPU with the
//! slot's APIC ID, then the slot's CPUID table and the boot MSRs, as a boot AP gets them),
//! and starts its thread `CPU N/KVM`, pinned per `--vcpu-pin N` or `--cpuset`, else with the
//! affinity the boot vCPUs started with (not the emulator pin this thread may carry). A slot
//! whose vCPU the guest ejected earlier reuses that parked vCPU instead. Only then does the
//! CPU hotplug block show the slot present and the GPE tell the guest.
//!
//! `migrate` turns dirty logging on and hands the job to the dormant `migration` thread
//! (`migration::worker`, under its own seccomp filter; `migration::precopy`) and keeps what
//! it shares with it; the thread's messages wake the event loop ([`Controller::migration_fd`]), and
//! its hand-over runs the final phase here: park every vCPU as `stop` does, send the last
//! pages and the state (`vmm::migrate`), then stay paused (`postmigrate`) or, on a failure,
//! resume. With capability `pause-before-switchover` the parked VM first waits in
//! `pre-switchover`: the stream is kept here ([`Switchover`]) and the event loop goes on
//! serving QMP until `migrate-continue` (the final phase, on the loop's next turn) or
//! `migrate_cancel` (the VM resumes).
//!
//! `stop` parks every vCPU (the pause state machine in `vcpu::thread`) and returns once they
//! are all parked. The power button sets PWRBTN_STS in PM1a and, when the guest enabled
//! PWRBTN_EN, pulses the SCI (IRQ 9) through its irqfd. Ending the VM (`system_reset`,
//! `quit`) finishes the run loop with outcome Reset or Quit.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Vmm;
use crate::config::cputune::{SchedInfo, SchedParam};
use crate::control::commands::cpu_slot::{guest_ejected, guest_ost, type_name, CpuSlots};
use crate::control::qmp::{Event, ShutdownCause};
use crate::control::view::{
    BalloonStatus, EmulatorThread, EndRequest, HostCpuView, RunState, VcpuThread, VmError, VmView,
};
use crate::control::{Command, QmpError, QmpServer};
use crate::cpu::topology::CpuTopology;
use crate::devices::cpu_hotplug::{CpuHotplug, CpuHotplugError};
use crate::devices::GuestEvent;
use crate::host::cpus::CpusetSource;
use crate::host::thread::{self as host_thread, ThreadError};
use crate::host::vmcgroup::{CgroupCpuStat, CgroupError, Group};
use crate::host::Host;
use crate::machine::stats::{KvmStat, StatsError, StatsFd};
use crate::memory::layout::GPE_CPU_HOTPLUG_BIT;
use crate::migration::precopy::{Job, Sender, Shared, ToEmulator};
use crate::migration::worker::Worker;
use crate::migration::{
    MigrationCapabilities, MigrationError, MigrationInfo, MigrationParameters, MigrationStatus,
    MigrationUri,
};
use crate::monitor::sample::{read_thread, HostNodeCpus, ThreadSample};
use crate::util::cpulist::cpulist;
use crate::vcpu::affinity::{check_cpus, AffinityError};
use crate::vcpu::info::{read_vcpu, VcpuInfo};
use crate::vcpu::thread::{spawn, VcpuShared};
use crate::vcpu::{VcpuHandle, VcpuRunState, VcpuSetup, VmControl, VmOutcome};

/// How long `stop` waits for every vCPU to park.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The VMM thread's view of the running VM, for commands.
pub(super) struct Controller<'a> {
    vmm: &'a Vmm,
    /// Every vCPU thread: the boot vCPUs, then each hot-plugged one as it was created
    /// (ejected ones stay, parked).
    handles: Vec<VcpuHandle>,
    control: Arc<VmControl>,
    server: Option<&'a QmpServer>,
    /// Which slots hold a vCPU, with ids and QOM paths.
    slots: CpuSlots,
    /// The affinity the boot vCPUs started with (`--cpuset`, else the process's), for
    /// hot-plugged vCPUs without a pin of their own.
    vcpu_affinity: Option<Vec<u32>>,
    /// The VM's topology, resolved once for its lifetime.
    topology: CpuTopology,
    /// vCPUs pinned explicitly (at start or since), with their CPUs: the set the
    /// shared-CPU warning looks at.
    pinned: BTreeMap<u32, Vec<u32>>,
    /// Whether the event that ends the VM (SHUTDOWN, or RESET for system_reset) went out.
    final_event_sent: bool,
    /// The VM's KVM statistics (or why this kernel has none).
    vm_stats: Result<StatsFd, StatsError>,
    /// The current or last migration's shared state.
    migration: Option<Arc<Shared>>,
    migration_params: MigrationParameters,
    /// Migrated away: paused for good (until `cont`).
    postmigrate: bool,
    /// The dormant `migration` thread (`migration::worker`), started under its own filter.
    migration_worker: Worker,
    migration_caps: MigrationCapabilities,
    /// A migration paused in `pre-switchover`, waiting for `migrate-continue`.
    switchover: Option<Switchover>,
}

/// A migration whose source is paused and waits (capability `pause-before-switchover`).
struct Switchover {
    sender: Sender,
    /// When the vCPUs were parked (`downtime` counts from here).
    paused: Instant,
    /// Whether the VM ran before the pause (it runs again if the migration fails).
    was_running: bool,
    /// `migrate-continue` came: the final phase runs on the next turn of the event loop.
    continued: bool,
}

impl<'a> Controller<'a> {
    pub(super) fn new(
        vmm: &'a Vmm,
        handles: Vec<VcpuHandle>,
        control: Arc<VmControl>,
        server: Option<&'a QmpServer>,
        vcpu_affinity: Option<Vec<u32>>,
        migration_worker: Worker,
    ) -> Self {
        let pinned = vmm
            .config
            .pinning
            .vcpus
            .iter()
            .map(|p| (p.vcpu, p.cpus.clone()))
            .collect();
        Controller {
            vmm,
            // A restored VM's as saved.
            slots: (vmm.restored_slots.clone())
                .unwrap_or_else(|| CpuSlots::boot(handles.len() as u32)),
            handles,
            control,
            server,
            vcpu_affinity,
            topology: vmm.config.smp.topology(),
            pinned,
            final_event_sent: false,
            vm_stats: vmm.vm.stats(),
            migration: None,
            migration_params: vmm.migration_settings.0,
            postmigrate: false,
            migration_worker,
            migration_caps: vmm.migration_settings.1,
            switchover: None,
        }
    }

    /// Whether a migration is under way.
    fn migrating(&self) -> bool {
        self.migration
            .as_ref()
            .is_some_and(|m| !m.info().status.is_some_and(MigrationStatus::finished))
    }

    /// The migration thread's wake-up fd while there is a migration.
    pub(super) fn migration_fd(&self) -> Option<RawFd> {
        self.migration.as_ref().map(|m| m.wake.as_raw_fd())
    }

    /// Handles what the migration thread said: status events, its end, the final phase.
    pub(super) fn migration_events(&mut self) {
        let Some(shared) = self.migration.clone() else {
            return;
        };
        for m in shared.take() {
            match m {
                // Capability `events` off: no MIGRATION event, as in QEMU.
                ToEmulator::Status(status) if self.migration_caps.events => {
                    self.emit(Event::Migration {
                        status: status.as_str(),
                    })
                }
                ToEmulator::Status(_) => {}
                ToEmulator::Ended => {
                    self.stop_dirty_log();
                    let info = shared.info().clone();
                    eprintln!(
                        "rvmm: warning: migration {}: {}; the VM keeps running",
                        info.status.map_or("failed", |s| s.as_str()),
                        info.error_desc.unwrap_or_default()
                    );
                }
                ToEmulator::Final(sender) => self.finish_migration(*sender),
            }
        }
        if self.switchover.as_ref().is_some_and(|p| p.continued) {
            if let Some(pending) = self.switchover.take() {
                self.switchover_now(pending);
            }
        }
    }

    /// Turns dirty logging off after a migration that ended before its final phase.
    fn stop_dirty_log(&self) {
        if let Err(e) = self.vmm.vm.dirty_log(self.vmm.ram.clone()).disable() {
            eprintln!("rvmm: warning: migration: turning dirty logging off: {e}");
        }
    }

    /// Pre-copy is over: every vCPU is parked (STOP), then either the final phase runs at
    /// once, or (capability `pause-before-switchover`) the migration waits in
    /// `pre-switchover` for `migrate-continue` while this thread goes on serving QMP.
    fn finish_migration(&mut self, sender: Sender) {
        let was_running = self.run_state() == RunState::Running;
        if was_running {
            if let Err(e) = self.pause() {
                let pending = Switchover {
                    sender,
                    paused: Instant::now(),
                    was_running: false,
                    continued: false,
                };
                self.end_migration(pending, Err(MigrationError::Protocol(e.to_string())));
                return;
            }
            self.emit(Event::Stop);
        }
        let pending = Switchover {
            sender,
            paused: Instant::now(),
            was_running,
            continued: false,
        };
        if self.migration_caps.pause_before_switchover {
            pending
                .sender
                .shared
                .set_status(MigrationStatus::PreSwitchover);
            self.switchover = Some(pending);
        } else {
            self.switchover_now(pending);
        }
    }

    /// The final phase (`vmm::migrate::final_phase`): the last pages and the state sent,
    /// DONE awaited.
    fn switchover_now(&mut self, mut pending: Switchover) {
        // A `cont` during the wait ran the guest again: park it first (the downtime counts
        // from this pause).
        if self.run_state() == RunState::Running {
            if let Err(e) = self.pause() {
                pending.was_running = false;
                self.end_migration(pending, Err(MigrationError::Protocol(e.to_string())));
                return;
            }
            self.emit(Event::Stop);
            pending.paused = Instant::now();
            pending.was_running = true;
        }
        // An eject the guest made is carried out first (as for a snapshot).
        self.guest_events();
        let result =
            super::migrate::final_phase(self.vmm, &self.handles, &self.slots, &mut pending.sender);
        self.end_migration(pending, result);
    }

    /// The migration's end, either way: postmigrate, or on a failure (or a cancel in
    /// `pre-switchover`) the VM resumes if it ran before.
    fn end_migration(&mut self, pending: Switchover, result: Result<(), MigrationError>) {
        let Switchover {
            mut sender,
            paused,
            was_running,
            ..
        } = pending;
        let shared = sender.shared.clone();
        sender.stop_logging();
        {
            let mut info = shared.info();
            info.total_time = Some(sender.start.elapsed().as_millis() as u64);
            if result.is_ok() {
                info.downtime = Some(paused.elapsed().as_millis() as u64);
                if let Some(r) = &mut info.ram {
                    r.remaining = 0;
                }
            }
        }
        match result {
            Ok(()) => {
                self.postmigrate = true;
                shared.set_status(MigrationStatus::Completed);
            }
            Err(e) => {
                sender.conn.shutdown();
                if was_running && !matches!(e, MigrationError::DisksNotBack { .. }) {
                    self.resume();
                    self.emit(Event::Resume);
                }
                let status = if matches!(e, MigrationError::Cancelled) {
                    MigrationStatus::Cancelled
                } else {
                    MigrationStatus::Failed
                };
                shared.info().error_desc = Some(e.to_string());
                shared.set_status(status);
                eprintln!(
                    "rvmm: warning: migration {}: {e}; the VM keeps running",
                    status.as_str()
                );
            }
        }
    }

    /// Runs one command.
    pub(super) fn execute(&mut self, command: &Command) -> Result<Value, QmpError> {
        command.execute(self)
    }

    /// The vCPU threads back, to stop them at the end of the run.
    pub(super) fn into_handles(self) -> Vec<VcpuHandle> {
        self.handles
    }

    /// Handles what vCPU threads passed on: a CPU the guest ejected parks and
    /// DEVICE_DELETED goes out; an `_OST` report becomes ACPI_DEVICE_OST.
    pub(super) fn guest_events(&mut self) {
        for event in self.control.take_guest_events() {
            self.guest_event(event);
        }
    }

    fn guest_event(&mut self, event: GuestEvent) {
        match event {
            GuestEvent::CpuEject { slot } => guest_ejected(self, slot),
            GuestEvent::CpuOst {
                slot,
                event,
                status,
            } => guest_ost(self, slot, event, status),
            GuestEvent::BalloonChange { actual } => {
                let bytes = self
                    .vmm
                    .config
                    .memory
                    .saturating_sub(u64::from(actual) << 12);
                self.emit(Event::BalloonChange { actual: bytes });
            }
            // Ends of the VM never come this way (the vCPU thread finishes the VM).
            GuestEvent::Poweroff | GuestEvent::Reset | GuestEvent::DebugExit(_) => {}
        }
    }

    fn cpu_hotplug(&self) -> std::sync::MutexGuard<'_, CpuHotplug> {
        self.vmm
            .bus
            .cpu_hotplug
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, index: u32) -> Option<&VcpuHandle> {
        self.handles.iter().find(|h| h.index == index)
    }

    /// Creates, configures and starts the vCPU of slot `index`.
    fn create_vcpu(&mut self, index: u32) -> Result<(), VmError> {
        let create = |source| VmError::CreateVcpu {
            vcpu: index,
            source,
        };
        let table = self
            .vmm
            .cpu_tables
            .slot_table(index)
            .ok_or(VmError::Hotplug(format!("no vCPU slot {index}")))?;
        let fd = self.vmm.vm.create_vcpu(table.apic_id).map_err(create)?;
        crate::vcpu::configure(
            &fd,
            &VcpuSetup {
                index,
                cpuid: &table.entries,
                msrs: &self.vmm.boot_msrs,
                boot: None,
            },
        )
        .map_err(create)?;
        crate::vcpu::configure::refresh_apic_map(&fd).map_err(create)?;
        let pin = self
            .vmm
            .config
            .pinning
            .for_vcpu(index)
            .map(<[u32]>::to_vec)
            .or_else(|| self.vcpu_affinity.clone());
        if let Some(cg) = &self.vmm.cgroup {
            cg.prepare_vcpu(index, self.vmm.config.pinning.for_vcpu(index))
                .map_err(cgroup_error)?;
        }
        let shared = VcpuShared {
            bus: self.vmm.bus.clone(),
            control: self.control.clone(),
            ram: self.vmm.ram.clone(),
            boot_msrs: self.vmm.boot_msrs.clone(),
            cgroup: self.vmm.cgroup.clone(),
        };
        let handle = spawn(index, fd, shared, pin).map_err(|source| VmError::SpawnVcpu {
            vcpu: index,
            source,
        })?;
        self.handles.push(handle);
        Ok(())
    }

    /// Tells the guest about a hotplug event (GPE0 bit 2), pulsing the SCI when it
    /// enabled that bit.
    fn raise_hotplug_gpe(&self) -> Result<(), VmError> {
        let raise = self
            .vmm
            .bus
            .gpe
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .raise(GPE_CPU_HOTPLUG_BIT);
        if raise {
            self.vmm.sci.write(1).map_err(VmError::Sci)?;
        }
        Ok(())
    }

    /// Sends the event for how the VM ended, unless a command already did.
    pub(super) fn emit_end(&mut self, outcome: &VmOutcome) {
        if self.final_event_sent {
            return;
        }
        self.final_event_sent = true;
        let cause = match outcome {
            VmOutcome::Poweroff | VmOutcome::DebugExit(_) => ShutdownCause::GuestShutdown,
            VmOutcome::Reset => ShutdownCause::GuestReset,
            VmOutcome::Quit => ShutdownCause::HostUi,
            VmOutcome::Signal(_) => ShutdownCause::HostSignal,
            VmOutcome::Fault { .. } => ShutdownCause::HostError,
        };
        self.emit(Event::Shutdown(cause));
    }
}

impl VmView for Controller<'_> {
    fn snapshot(
        &mut self,
        dir: &std::path::Path,
        stopped: bool,
    ) -> Result<crate::control::commands::snapshot::SnapshotReply, VmError> {
        // An eject the guest made is carried out first: the saved slots are then those
        // the CPU hotplug block shows.
        self.guest_events();
        super::snapshot::save(self.vmm, &self.handles, &self.slots, dir, stopped)
            .map_err(VmError::Snapshot)
    }

    fn name(&self) -> Option<&str> {
        self.vmm.config.name.as_deref()
    }

    fn topology(&self) -> &CpuTopology {
        &self.topology
    }

    fn cpu_model(&self) -> &str {
        &self.vmm.config.cpu.model
    }

    fn host_cpu(&self) -> HostCpuView<'_> {
        HostCpuView {
            support: &self.vmm.host.cpu_support,
            identity: &self.vmm.host.identity,
        }
    }

    fn run_state(&self) -> RunState {
        if self.postmigrate && self.control.pause_requested() {
            RunState::Postmigrate
        } else if self.control.pause_requested() {
            RunState::Paused
        } else {
            RunState::Running
        }
    }

    fn pause(&mut self) -> Result<(), VmError> {
        self.control.request_pause();
        // Ejected vCPUs are parked already, on their own flag.
        let live: Vec<&VcpuHandle> = self
            .handles
            .iter()
            .filter(|h| !h.is_finished() && !h.is_ejected())
            .collect();
        let deadline = Instant::now() + PAUSE_TIMEOUT;
        loop {
            for h in &live {
                if h.run_state() == VcpuRunState::Running {
                    h.kick();
                }
            }
            if self
                .control
                .wait_parked(live.len(), Duration::from_millis(10))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.control.resume();
                return Err(VmError::PauseTimeout {
                    parked: self.control.parked(),
                    total: live.len(),
                    seconds: PAUSE_TIMEOUT.as_secs(),
                });
            }
        }
    }

    fn resume(&mut self) {
        self.postmigrate = false;
        self.control.resume();
    }

    fn resume_after_migration(&mut self) -> Result<(), VmError> {
        super::migrate::take_locks(&self.vmm.virtio).map_err(|e| {
            // None kept: what was taken goes back, for the destination that runs.
            let _ = super::migrate::release_locks(self.vmm);
            VmError::Migration(format!(
                "cannot run again: the destination still holds what the migration handed \
                 over ({e}); stop the destination first"
            ))
        })?;
        super::snapshot::resume_devices(self.vmm);
        self.resume();
        Ok(())
    }

    fn migrate(&mut self, uri: &str) -> Result<(), VmError> {
        if self.migrating() {
            return Err(VmError::Migration(
                "a migration is already in progress (query-migrate follows it)".into(),
            ));
        }
        if self.postmigrate {
            return Err(VmError::Migration(
                "the VM has migrated away already (postmigrate)".into(),
            ));
        }
        let parsed = MigrationUri::parse(uri).map_err(|e| VmError::Migration(e.to_string()))?;
        parsed
            .check_sandboxed()
            .map_err(|e| VmError::Migration(e.to_string()))?;
        let hello = super::migrate::hello(self.vmm, &self.handles).map_err(VmError::Migration)?;
        let shared = Shared::new()
            .map_err(|e| VmError::Migration(format!("the migration's eventfd: {e}")))?;
        shared.set_status(MigrationStatus::Setup);
        // Dirty logging is turned on and off here: the migration thread's filter has no
        // KVM_SET_USER_MEMORY_REGION.
        let log = self.vmm.vm.dirty_log(self.vmm.ram.clone());
        log.enable()
            .map_err(|e| VmError::Migration(format!("turning dirty logging on: {e}")))?;
        let job = Job {
            uri: parsed,
            hello,
            ram: self.vmm.ram.clone(),
            log,
            params: self.migration_params,
            shared: shared.clone(),
            start: Instant::now(),
        };
        if let Err(e) = self.migration_worker.submit(job) {
            self.stop_dirty_log();
            return Err(VmError::Migration(e.to_string()));
        }
        self.migration = Some(shared);
        Ok(())
    }

    fn query_migrate(&self) -> MigrationInfo {
        self.migration
            .as_ref()
            .map(|m| m.info().clone())
            .unwrap_or_default()
    }

    fn migration_parameters(&self) -> MigrationParameters {
        self.migration_params
    }

    fn set_migration_parameters(&mut self, p: MigrationParameters) {
        self.migration_params = p;
    }

    fn migrate_cancel(&mut self) {
        if let Some(m) = &self.migration {
            m.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        // Waiting in pre-switchover: nothing has left but pages; the destination sees the
        // stream close and fails.
        if let Some(pending) = self.switchover.take_if(|p| !p.continued) {
            self.end_migration(pending, Err(MigrationError::Cancelled));
        }
    }

    fn migration_capabilities(&self) -> MigrationCapabilities {
        self.migration_caps
    }

    fn set_migration_capabilities(&mut self, c: MigrationCapabilities) -> Result<(), VmError> {
        if self.migrating() {
            return Err(VmError::MigrationState(
                "There's a migration process in progress".into(),
            ));
        }
        self.migration_caps = c;
        Ok(())
    }

    fn migrate_continue(&mut self, state: MigrationStatus) -> Result<(), VmError> {
        let current = self.migration.as_ref().and_then(|m| m.info().status);
        let waiting = self.switchover.as_mut().filter(|p| !p.continued);
        match waiting {
            Some(pending) if current == Some(state) && state == MigrationStatus::PreSwitchover => {
                // The final phase runs on the next turn of the event loop (woken by the
                // status change), after this command's reply.
                pending.continued = true;
                pending.sender.shared.set_status(MigrationStatus::Device);
                Ok(())
            }
            _ => Err(VmError::MigrationState(format!(
                "Migration not in expected state: {} (migrate-continue {{\"state\": \"{}\"}} \
                 lets a migration waiting in that state go on; only pre-switchover waits, \
                 with capability pause-before-switchover)",
                current.map_or("none", MigrationStatus::as_str),
                state.as_str(),
            ))),
        }
    }

    fn announce_self(
        &mut self,
        params: crate::config::announce::AnnounceParams,
        interfaces: Option<&[String]>,
    ) -> Result<(), VmError> {
        let targets =
            crate::devices::virtio::announce::choose(&self.vmm.announce_targets(), interfaces)
                .map_err(|e| VmError::Announce(e.to_string()))?;
        self.vmm.announcer.start(targets, params);
        Ok(())
    }

    fn press_power_button(&mut self) -> Result<(), VmError> {
        let raise = self
            .vmm
            .bus
            .pm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .press_power_button();
        if raise {
            self.vmm.sci.write(1).map_err(VmError::Sci)?;
        }
        Ok(())
    }

    fn end(&mut self, how: EndRequest) {
        self.final_event_sent = true;
        self.control.finish(match how {
            EndRequest::Reset => VmOutcome::Reset,
            EndRequest::Quit => VmOutcome::Quit,
        });
    }

    fn emit(&mut self, event: Event) {
        if let Some(s) = self.server {
            s.emit(event);
        }
    }

    fn vcpus(&self) -> Vec<VcpuThread> {
        self.slots
            .iter()
            .filter_map(|c| self.handle(c.index))
            .filter(|h| !h.is_ejected())
            .map(|h| VcpuThread {
                index: h.index,
                thread_id: h.thread_id(),
            })
            .collect()
    }

    fn cpu_slots(&self) -> &CpuSlots {
        &self.slots
    }

    fn cpu_slots_mut(&mut self) -> &mut CpuSlots {
        &mut self.slots
    }

    fn plug_vcpu(&mut self, index: u32) -> Result<(), VmError> {
        // The destination checked the source's vCPUs when the migration began.
        if self.migrating() {
            return Err(VmError::Hotplug(
                "a migration is in progress; plug vCPUs before or after it".into(),
            ));
        }
        // The vCPU exists (waiting for INIT/SIPI) before the guest can see the slot enabled.
        match self.handle(index) {
            Some(h) if h.is_finished() => return Err(AffinityError::Exited { vcpu: index }.into()),
            Some(h) => h.replug(),
            None => self.create_vcpu(index)?,
        }
        let plugged = self.cpu_hotplug().plug(index);
        if let Err(e) = plugged {
            // Not reachable while the slot table and the block agree; the vCPU is parked
            // again rather than left running in a slot the guest does not see.
            self.eject_vcpu(index);
            return Err(VmError::Hotplug(e.to_string()));
        }
        self.raise_hotplug_gpe()
    }

    fn request_unplug(&mut self, index: u32) -> Result<(), VmError> {
        let requested = self.cpu_hotplug().request_unplug(index);
        match requested {
            Ok(()) => self.raise_hotplug_gpe(),
            // QEMU's PIIX-PM has no unplug for CPUs until the guest switches to the modern
            // interface.
            Err(CpuHotplugError::LegacyMode) => Err(VmError::UnplugUnsupported {
                type_name: type_name(&self.vmm.config.cpu.model),
            }),
            Err(e) => Err(VmError::Hotplug(e.to_string())),
        }
    }

    fn eject_vcpu(&mut self, index: u32) {
        if let Some(h) = self.handle(index) {
            h.eject();
        }
    }

    fn vcpu_info(&self, vcpu: VcpuThread) -> Result<VcpuInfo, VmError> {
        check_alive(&self.handles, vcpu.index)?;
        let paused = self
            .handles
            .iter()
            .find(|h| h.index == vcpu.index)
            .is_some_and(|h| h.run_state() == VcpuRunState::Paused);
        Ok(read_vcpu(vcpu.index, vcpu.thread_id, paused)?)
    }

    fn configured_pin(&self, index: u32) -> Option<Vec<u32>> {
        self.vmm.config.pinning.for_vcpu(index).map(<[u32]>::to_vec)
    }

    fn explicit_pins(&self) -> Vec<(u32, Vec<u32>)> {
        self.pinned
            .iter()
            .map(|(&v, cpus)| (v, cpus.clone()))
            .collect()
    }

    fn check_host_cpus(&self, what: &str, cpus: &[u32]) -> Result<Vec<String>, VmError> {
        let host = Host::real();
        let mut host_cpus = host.cpus()?.clone();
        // In its own cgroup the process's cpuset is a pin (emulator's, vcpuN's): the CPUs
        // the VM may use are its scope's.
        if let Some((file, allowed)) = self.vmm.cgroup.as_ref().and_then(|cg| cg.scope_cpus()) {
            host_cpus.allowed = allowed;
            host_cpus.allowed_source = CpusetSource::Cgroup(file);
        }
        Ok(check_cpus(what, cpus, &host_cpus)?)
    }

    fn host_cpu_count(&self) -> Result<u32, VmError> {
        Ok(Host::real().cpus()?.width())
    }

    fn affinity(&self, vcpu: VcpuThread) -> Result<Vec<u32>, VmError> {
        check_alive(&self.handles, vcpu.index)?;
        Ok(host_thread::get_affinity(vcpu.thread_id)?)
    }

    fn main_affinity(&self) -> Result<Vec<u32>, VmError> {
        Ok(host_thread::get_affinity(std::process::id() as i32)?)
    }

    fn pin_vcpu(&mut self, vcpu: VcpuThread, cpus: &[u32]) -> Result<(), VmError> {
        check_alive(&self.handles, vcpu.index)?;
        // v1 cpuset bounds the affinity: the group's CPUs first.
        if let Some(cg) = &self.vmm.cgroup {
            cg.set_vcpu_cpus(vcpu.index, cpus).map_err(cgroup_error)?;
        }
        host_thread::set_affinity(vcpu.thread_id, cpus)?;
        self.pinned.insert(vcpu.index, cpus.to_vec());
        Ok(())
    }

    fn emulator_threads(&self) -> Result<Vec<EmulatorThread>, VmError> {
        let pid = std::process::id() as i32;
        let mut threads = Vec::new();
        for tid in emulator_threads(&self.handles)? {
            // A thread may end between listing and reading.
            if let (Ok(stat), Ok(affinity)) = (
                host_thread::task_stat(pid, tid),
                host_thread::get_affinity(tid),
            ) {
                threads.push(EmulatorThread {
                    thread_id: tid,
                    name: stat.comm,
                    affinity,
                });
            }
        }
        Ok(threads)
    }

    fn pin_emulator(&mut self, cpus: &[u32]) -> Result<(), VmError> {
        if let Some(cg) = &self.vmm.cgroup {
            cg.set_emulator_cpus(cpus).map_err(cgroup_error)?;
        }
        Ok(pin_emulator_threads(&self.handles, cpus)?)
    }

    fn vm_kvm_stats(&self) -> Result<Vec<KvmStat>, VmError> {
        let fd = self
            .vm_stats
            .as_ref()
            .map_err(|e| VmError::Stats(e.to_string()))?;
        fd.sample().map_err(|e| VmError::Stats(e.to_string()))
    }

    fn vcpu_kvm_stats(&self, vcpu: VcpuThread) -> Result<Vec<KvmStat>, VmError> {
        check_alive(&self.handles, vcpu.index)?;
        let handle = self
            .handle(vcpu.index)
            .ok_or(VmError::Stats(format!("no vCPU {}", vcpu.index)))?;
        let fd = handle.stats().map_err(|e| VmError::Stats(e.to_string()))?;
        fd.sample().map_err(|e| VmError::Stats(e.to_string()))
    }

    fn thread_sample(&self, thread_id: i32) -> Result<ThreadSample, VmError> {
        Ok(read_thread(std::process::id() as i32, thread_id)?)
    }

    fn guest_node(&self, index: u32) -> Option<(u32, Vec<u32>)> {
        let numa = &self.vmm.numa;
        let node = *numa.cpu_nodes.get(index as usize)?;
        let host = numa
            .nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(|n| n.host.as_ref())
            .map(|h| h.nodes.clone())
            .unwrap_or_default();
        Some((node, host))
    }

    fn host_nodes(&self) -> Vec<HostNodeCpus> {
        Host::real()
            .numa()
            .nodes
            .iter()
            .map(|n| HostNodeCpus {
                node: n.id,
                cpus: cpulist(&n.cpus),
            })
            .collect()
    }

    fn schedinfo(&self) -> Result<SchedInfo, VmError> {
        let cg = self.vmm.cgroup.as_ref().ok_or(VmError::NoCgroup)?;
        cg.schedinfo().map_err(cgroup_error)
    }

    fn set_schedinfo(&mut self, changes: &[SchedParam]) -> Result<SchedInfo, VmError> {
        let cg = self.vmm.cgroup.as_ref().ok_or(VmError::NoCgroup)?;
        cg.set(changes).map_err(cgroup_error)?;
        cg.schedinfo().map_err(cgroup_error)
    }

    fn vcpu_cgroup(&self, index: u32) -> Option<CgroupCpuStat> {
        self.vmm.cgroup.as_ref()?.cpu_stat(Group::Vcpu(index)).ok()
    }

    fn balloon(&self) -> Option<BalloonStatus> {
        let b = self.vmm.balloon.as_ref()?;
        Some(BalloonStatus {
            ram: self.vmm.config.memory,
            target: b.target(),
            actual: b.actual(),
        })
    }

    fn set_balloon_target(&mut self, pages: u32) {
        let Some(b) = &self.vmm.balloon else {
            return;
        };
        b.set_target(pages);
        // The balloon is the last virtio device.
        if let Some(h) = self
            .vmm
            .virtio
            .iter()
            .rev()
            .find(|h| h.device_id == crate::devices::virtio::balloon::DEVICE_ID)
        {
            h.config_changed();
        }
    }
}

/// A cgroup error as a command's (its text starts with "cgroup:" or names the option).
fn cgroup_error(e: CgroupError) -> VmError {
    VmError::Cgroup(e.to_string().trim_start_matches("cgroup: ").to_string())
}

/// Refuses to act on (or read) the thread of a vCPU that has exited: its thread id is stale (the
/// kernel may have given it to another thread).
fn check_alive(handles: &[VcpuHandle], index: u32) -> Result<(), AffinityError> {
    match handles.iter().find(|h| h.index == index) {
        Some(h) if h.is_finished() => Err(AffinityError::Exited { vcpu: index }),
        _ => Ok(()),
    }
}

/// This process's threads that are not vCPUs: the main loop, the QMP threads, ...
pub(super) fn emulator_threads(handles: &[VcpuHandle]) -> Result<Vec<i32>, ThreadError> {
    let vcpu_tids: Vec<i32> = handles.iter().map(|h| h.thread_id()).collect();
    Ok(host_thread::own_threads()?
        .into_iter()
        .filter(|t| !vcpu_tids.contains(t))
        .collect())
}

/// Pins every emulator thread to `cpus`. Threads created later by a pinned thread inherit
/// its affinity (the QMP accept thread starts every client thread).
pub(super) fn pin_emulator_threads(
    handles: &[VcpuHandle],
    cpus: &[u32],
) -> Result<(), ThreadError> {
    for tid in emulator_threads(handles)? {
        match host_thread::set_affinity(tid, cpus) {
            Ok(()) => {}
            // The thread ended after we listed it.
            Err(ThreadError::SetAffinity { ref error, .. })
                if error.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcpu::thread::exited_handle_for_test;

    #[test]
    fn an_exited_vcpu_is_not_pinned() {
        let handles = [exited_handle_for_test(3)];
        assert_eq!(
            check_alive(&handles, 3).unwrap_err().to_string(),
            "vCPU 3 has exited"
        );
        assert!(check_alive(&handles, 4).is_ok(), "not ours to judge");
    }
}
