//! Executing control commands on the VMM thread: every QMP request arrives here as a
//! `Command` (whatever the transport), acts on the running VM, and returns a QMP value or
//! error. Also the VM's events (`STOP`, `RESUME`, `POWERDOWN`, `RESET`, `SHUTDOWN`).
//!
//! `stop` parks every vCPU (the pause state machine in `vcpu::thread`) and returns once they
//! are all parked. `system_powerdown` presses the ACPI fixed power button: it sets
//! PWRBTN_STS in PM1a and, when the guest enabled PWRBTN_EN, pulses the SCI (IRQ 9) through
//! its irqfd; a guest without an ACPI power button driver (the probe) ignores it, so only
//! the `POWERDOWN` event is certain. `system_reset` ends the VM with outcome Reset (rvmm
//! has no in-place reset yet), after QEMU's `RESET` event. `quit` ends it with outcome
//! Quit, after `SHUTDOWN`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Vmm;
use crate::control::commands::{Command, COMMAND_NAMES};
use crate::control::qmp::{Event, QmpError, ShutdownCause, Version};
use crate::control::{queries, QmpServer};
use crate::cpu::topology::CpuTopology;
use crate::host::{sched, Host};
use crate::util::cpulist::cpulist;
use crate::vcpu::affinity::{check_cpus, shared_cpu_warnings};
use crate::vcpu::info::{read_vcpu, VcpuInfo, VcpuInfoReport, VcpuState};
use crate::vcpu::{VcpuHandle, VcpuRunState, VmControl, VmOutcome};

/// How long `stop` waits for every vCPU to park.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The VMM thread's view of the running VM, for commands.
pub(super) struct Controller<'a> {
    vmm: &'a Vmm,
    handles: &'a [VcpuHandle],
    control: &'a VmControl,
    server: Option<&'a QmpServer>,
    /// vCPUs pinned explicitly (at start or since), with their CPUs: the set the
    /// shared-CPU warning looks at.
    pinned: BTreeMap<u32, Vec<u32>>,
    /// Whether the event that ends the VM (SHUTDOWN, or RESET for system_reset) went out.
    final_event_sent: bool,
}

fn generic(e: impl std::fmt::Display) -> QmpError {
    QmpError::generic(e.to_string())
}

impl<'a> Controller<'a> {
    pub(super) fn new(
        vmm: &'a Vmm,
        handles: &'a [VcpuHandle],
        control: &'a VmControl,
        server: Option<&'a QmpServer>,
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
            handles,
            control,
            server,
            pinned,
            final_event_sent: false,
        }
    }

    fn emit(&self, event: Event) {
        if let Some(s) = self.server {
            s.emit(event);
        }
    }

    /// Sends the event for how the VM ended, unless a command already did.
    pub(super) fn emit_end(&mut self, outcome: &VmOutcome) {
        if self.final_event_sent {
            return;
        }
        self.final_event_sent = true;
        let cause = match outcome {
            VmOutcome::Poweroff => ShutdownCause::GuestShutdown,
            VmOutcome::Reset => ShutdownCause::GuestReset,
            VmOutcome::Quit => ShutdownCause::HostUi,
            VmOutcome::Signal(_) => ShutdownCause::HostSignal,
            VmOutcome::Fault { .. } => ShutdownCause::HostError,
        };
        self.emit(Event::Shutdown(cause));
    }

    fn paused(&self) -> bool {
        self.control.pause_requested()
    }

    fn topology(&self) -> CpuTopology {
        self.vmm.config.smp.topology()
    }

    /// Runs one command.
    pub(super) fn execute(&mut self, command: &Command) -> Result<Value, QmpError> {
        match command {
            Command::QueryCommands => Ok(Value::Array(
                COMMAND_NAMES.iter().map(|n| json!({"name": n})).collect(),
            )),
            Command::QueryVersion => Ok(Version::rvmm().to_json()),
            Command::QueryName => Ok(match &self.vmm.config.name {
                Some(n) => json!({"name": n}),
                None => json!({}),
            }),
            Command::QueryStatus => Ok(queries::status(self.paused())),
            Command::Stop => self.stop(),
            Command::Cont => {
                if self.paused() {
                    self.control.resume();
                    self.emit(Event::Resume);
                }
                Ok(json!({}))
            }
            Command::SystemPowerdown => {
                let raise = self
                    .vmm
                    .bus
                    .pm
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .press_power_button();
                if raise {
                    self.vmm
                        .sci
                        .write(1)
                        .map_err(|e| generic(format!("raising the SCI: {e}")))?;
                }
                self.emit(Event::Powerdown);
                Ok(json!({}))
            }
            Command::SystemReset => {
                self.emit(Event::Reset(ShutdownCause::HostQmpSystemReset));
                self.final_event_sent = true;
                self.control.finish(VmOutcome::Reset);
                Ok(json!({}))
            }
            Command::Quit => {
                self.emit(Event::Shutdown(ShutdownCause::HostQmpQuit));
                self.final_event_sent = true;
                self.control.finish(VmOutcome::Quit);
                Ok(json!({}))
            }
            Command::QueryCpusFast => {
                let vcpus: Vec<(u32, i32)> = self
                    .handles
                    .iter()
                    .map(|h| (h.index, h.thread_id()))
                    .collect();
                Ok(queries::cpus_fast(&self.topology(), &vcpus))
            }
            Command::QueryHotpluggableCpus => Ok(queries::hotpluggable_cpus(
                &self.topology(),
                self.handles.len() as u32,
                &self.vmm.config.cpu.model,
            )),
            Command::QueryCpuDefinitions => Ok(queries::cpu_definitions(
                &self.vmm.host.cpu_support,
                &self.vmm.host.identity,
            )),
            Command::QueryCpuModelExpansion {
                expansion,
                model,
                props,
            } => queries::model_expansion(
                *expansion,
                model,
                props,
                &self.vmm.host.cpu_support,
                &self.vmm.host.identity,
            ),
            Command::VcpuPin { vcpu, cpus } => self.vcpupin(*vcpu, cpus.as_deref()),
            Command::EmulatorPin { cpus } => self.emulatorpin(cpus.as_deref()),
            Command::VcpuInfo => self.vcpuinfo(),
        }
    }

    /// Parks every vCPU; `STOP` once they all are.
    fn stop(&mut self) -> Result<Value, QmpError> {
        if self.paused() {
            return Ok(json!({}));
        }
        self.control.request_pause();
        let live: Vec<&VcpuHandle> = self.handles.iter().filter(|h| !h.is_finished()).collect();
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
                break;
            }
            if Instant::now() >= deadline {
                self.control.resume();
                return Err(generic(format!(
                    "only {} of {} vCPUs stopped within {} s; the VM keeps running",
                    self.control.parked(),
                    live.len(),
                    PAUSE_TIMEOUT.as_secs()
                )));
            }
        }
        self.emit(Event::Stop);
        Ok(json!({}))
    }

    fn handle(&self, vcpu: u32) -> Result<&VcpuHandle, QmpError> {
        self.handles
            .iter()
            .find(|h| h.index == vcpu)
            .ok_or_else(|| {
                generic(format!(
                    "vCPU {vcpu} does not exist (the VM has vCPUs 0-{})",
                    self.handles.len().saturating_sub(1)
                ))
            })
    }

    /// `__org.rvmm_vcpupin`: optionally pins one vCPU, then reports vCPU affinities.
    fn vcpupin(&mut self, vcpu: Option<u32>, cpus: Option<&[u32]>) -> Result<Value, QmpError> {
        if let Some(v) = vcpu {
            self.handle(v)?;
        }
        let mut warnings = Vec::new();
        if let (Some(v), Some(cpus)) = (vcpu, cpus) {
            let what = format!("vcpupin {v} {}", cpulist(cpus));
            let snapshot = Host::real();
            let host = snapshot.cpus().map_err(generic)?;
            warnings.extend(check_cpus(&what, cpus, host).map_err(generic)?);
            sched::set_affinity(self.handle(v)?.thread_id(), cpus).map_err(generic)?;
            self.pinned.insert(v, cpus.to_vec());
            // Warn about the pairs this pin makes, not about older ones.
            for (&other, other_cpus) in self.pinned.iter().filter(|(&w, _)| w != v) {
                let mine = (v, cpus.to_vec());
                let theirs = (other, other_cpus.clone());
                let pair = if v < other {
                    [mine, theirs]
                } else {
                    [theirs, mine]
                };
                warnings.extend(shared_cpu_warnings("vcpupin", &pair));
            }
        }
        let mut rows = Vec::new();
        for h in self
            .handles
            .iter()
            .filter(|h| vcpu.is_none_or(|v| v == h.index))
        {
            let affinity = sched::get_affinity(h.thread_id()).map_err(generic)?;
            rows.push(
                json!({"vcpu": h.index, "thread-id": h.thread_id(), "cpus": cpulist(&affinity)}),
            );
        }
        Ok(json!({"vcpus": rows, "warnings": warnings}))
    }

    /// `__org.rvmm_emulatorpin`: optionally pins every non-vCPU thread, then reports them.
    fn emulatorpin(&mut self, cpus: Option<&[u32]>) -> Result<Value, QmpError> {
        let mut warnings = Vec::new();
        if let Some(cpus) = cpus {
            let snapshot = Host::real();
            let host = snapshot.cpus().map_err(generic)?;
            warnings.extend(
                check_cpus(&format!("emulatorpin {}", cpulist(cpus)), cpus, host)
                    .map_err(generic)?,
            );
            pin_emulator_threads(self.handles, cpus).map_err(generic)?;
        }
        let pid = std::process::id() as i32;
        let mut threads = Vec::new();
        for tid in emulator_threads(self.handles).map_err(generic)? {
            // A thread may end between listing and reading.
            if let (Ok(stat), Ok(aff)) = (sched::task_stat(pid, tid), sched::get_affinity(tid)) {
                threads.push(json!({"thread-id": tid, "name": stat.comm, "cpus": cpulist(&aff)}));
            }
        }
        let main = sched::get_affinity(pid).map_err(generic)?;
        Ok(json!({"cpus": cpulist(&main), "threads": threads, "warnings": warnings}))
    }

    /// `__org.rvmm_vcpuinfo`: every vCPU slot as the kernel sees its thread.
    fn vcpuinfo(&self) -> Result<Value, QmpError> {
        let snapshot = Host::real();
        let host = snapshot.cpus().map_err(generic)?;
        let mut vcpus = Vec::new();
        for index in 0..self.vmm.config.smp.maxcpus {
            match self.handles.iter().find(|h| h.index == index) {
                Some(h) => {
                    let paused = h.run_state() == VcpuRunState::Paused;
                    vcpus.push(read_vcpu(index, h.thread_id(), paused).map_err(generic)?);
                }
                None => {
                    let affinity = match self.vmm.config.pinning.for_vcpu(index) {
                        Some(c) => c.to_vec(),
                        None => sched::get_affinity(std::process::id() as i32).map_err(generic)?,
                    };
                    vcpus.push(VcpuInfo {
                        vcpu: index,
                        thread_id: None,
                        state: VcpuState::Offline,
                        cpu: None,
                        cpu_time_ns: 0,
                        utime: 0,
                        stime: 0,
                        affinity: cpulist(&affinity),
                    });
                }
            }
        }
        let report = VcpuInfoReport {
            host_cpus: host.width(),
            vcpus,
        };
        serde_json::to_value(&report).map_err(generic)
    }
}

/// This process's threads that are not vCPUs: the main loop, the QMP threads, ...
pub(super) fn emulator_threads(handles: &[VcpuHandle]) -> Result<Vec<i32>, sched::SchedError> {
    let vcpu_tids: Vec<i32> = handles.iter().map(|h| h.thread_id()).collect();
    Ok(sched::own_threads()?
        .into_iter()
        .filter(|t| !vcpu_tids.contains(t))
        .collect())
}

/// Pins every emulator thread to `cpus`. Threads created later by a pinned thread inherit
/// its affinity (the QMP accept thread starts every client thread).
pub(super) fn pin_emulator_threads(
    handles: &[VcpuHandle],
    cpus: &[u32],
) -> Result<(), sched::SchedError> {
    for tid in emulator_threads(handles)? {
        match sched::set_affinity(tid, cpus) {
            Ok(()) => {}
            // The thread ended after we listed it.
            Err(sched::SchedError::SetAffinity { ref error, .. })
                if error.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
