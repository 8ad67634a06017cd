//! Running a built VM: place the threads (`--cpuset`, `--vcpu-pin`, `--emulator-pin`), start
//! the QMP server, the metrics endpoint and the vCPU threads, hand over to the emulator thread's event loop
//! (`event_loop`), then stop and join every vCPU, send the final event, close the control
//! socket and say how the VM ended.
//!
//! Every wait on the way out has a deadline: the vCPU threads get
//! [`STOP_DEADLINE`](crate::vcpu::thread::STOP_DEADLINE) in all (those left are named on
//! stderr and ended by the process exit), the console's last bytes [`CONSOLE_FLUSH`].

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use vmm_sys_util::signal::{block_signal, unblock_signal};

use super::commands::{pin_emulator_threads, Controller};
use super::event_loop::{Console, EventLoop, SerialWatch, Sockets};
use super::{Vmm, VmmError};
use crate::control::qmp::Version;
use crate::control::{HmpServer, MetricsServer, QmpServer};
use crate::devices::console;
use crate::host::thread as host_thread;
use crate::vcpu::thread::{self, install_kick_handler, spawn, StopReport, VcpuShared};
use crate::vcpu::{VcpuHandle, VmControl, VmOutcome};

/// How long the guest's last console bytes may take to reach stdout as the VM ends.
pub(super) const CONSOLE_FLUSH: Duration = Duration::from_millis(500);

/// How to run.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Whether stdin feeds COM1 (raw mode and Ctrl-A x when it is a terminal).
    pub console: Console,
    /// A reader of the guest's serial output to wake (the probe's dump markers).
    pub serial_watch: Option<SerialWatch<'a>>,
    /// A human monitor socket (`--monitor unix:PATH`, QEMU's `-monitor`).
    pub monitor: Option<std::path::PathBuf>,
    /// Called once the control sockets listen and the vCPUs run, before the console is
    /// taken over and the sandbox applies (`-daemonize` tells its parent here).
    pub on_started: Option<Box<dyn FnOnce() + 'a>>,
}

const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn io_err(what: &'static str) -> impl Fn(std::io::Error) -> VmmError {
    move |source| VmmError::Io { what, source }
}

/// SIGINT/SIGTERM/SIGHUP, blocked in every thread we start and read from a signalfd.
pub(super) struct StopSignals {
    fd: OwnedFd,
}

impl StopSignals {
    fn new() -> Result<StopSignals, VmmError> {
        for s in STOP_SIGNALS {
            block_signal(s).map_err(VmmError::BlockSignals)?;
        }
        // SAFETY: a zeroed sigset is valid input for sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t we own.
        unsafe { libc::sigemptyset(&mut set) };
        for s in STOP_SIGNALS {
            // SAFETY: as above; s is a valid signal number.
            unsafe { libc::sigaddset(&mut set, s) };
        }
        // SAFETY: creating a new signalfd from a valid set.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(VmmError::Io {
                what: "signalfd",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(StopSignals { fd })
    }

    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The signal that arrived, if one did.
    pub(super) fn read(&self) -> Option<i32> {
        // SAFETY: zeroed siginfo is a valid buffer; we read at most its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        // SAFETY: reading into our own struct of the right size.
        let r = unsafe {
            libc::read(
                self.fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            )
        };
        (r > 0).then_some(info.ssi_signo as i32)
    }
}

/// Once the VM has ended, the stop signals act as usual again: a process still blocked in
/// its last output (a stdout nobody drains) ends on the next SIGTERM instead of ignoring it.
impl Drop for StopSignals {
    fn drop(&mut self) {
        for s in STOP_SIGNALS {
            let _ = unblock_signal(s);
        }
    }
}

pub(super) fn run(vmm: &mut Vmm, mut options: RunOptions) -> Result<VmOutcome, VmmError> {
    let signals = StopSignals::new()?;
    install_kick_handler().map_err(io_err("installing the vCPU kick handler"))?;
    let control = Arc::new(VmControl::new().map_err(io_err("stop eventfd"))?);

    // --cpuset covers every thread: set it on this one before any other starts, and they
    // inherit it.
    if let Some(cpus) = &vmm.config.pinning.cpuset {
        host_thread::set_affinity(0, cpus)?;
    }
    // What the boot vCPUs inherit, for vCPUs plugged later by this thread once it may
    // carry the emulator pin.
    let vcpu_affinity = host_thread::get_affinity(0).ok();
    // The metrics endpoint and the control socket exist before the vCPUs run, so a client
    // can watch from the start; both are bound here, before the sandbox applies. The
    // endpoint comes first: once the QMP socket is there, so is it (tests rely on that).
    let metrics = match &vmm.config.metrics {
        Some(address) => Some(MetricsServer::start(address)?),
        None => None,
    };
    let server = match &vmm.config.qmp {
        Some(path) => Some(QmpServer::start(path, Version::rvmm())?),
        None => None,
    };
    let monitor = match &options.monitor {
        Some(path) => Some(HmpServer::start(path)?),
        None => None,
    };
    if let Some(listener) = vmm.incoming.take() {
        receive_incoming(vmm, &listener, server.as_ref(), &signals)?;
    }
    let handles = start_vcpus(vmm, &control)?;
    if let Some(started) = options.on_started.take() {
        started();
    }
    let vmm: &Vmm = vmm;
    // The migration thread starts now, before this thread applies Role::Main (whose filter
    // a thread started later would inherit), and applies Role::Migration itself.
    let migration_worker = crate::migration::worker::Worker::start()
        .map_err(io_err("starting the migration thread"))?;
    let controller = Controller::new(
        vmm,
        handles,
        control.clone(),
        server.as_ref(),
        vcpu_affinity,
        migration_worker,
    );

    let mut events = EventLoop::new(
        vmm,
        &control,
        controller,
        Sockets {
            qmp: server.as_ref(),
            metrics: metrics.as_ref(),
            monitor: monitor.as_ref(),
        },
        &signals,
        options,
    );
    crate::sandbox::apply(crate::sandbox::Role::Main);
    events.run();
    let (controller, serial_watch) = events.finish();

    let outcome = control.outcome().unwrap_or(VmOutcome::Quit);
    let mut controller = controller;
    controller.emit_end(&outcome);
    let mut handles = controller.into_handles();
    stop_all(&mut handles);
    vmm.announcer.stop();
    if let Some(s) = server {
        s.shutdown();
    }
    if let Some(m) = metrics {
        m.shutdown();
    }
    if let Some(m) = monitor {
        m.shutdown();
    }
    drop(signals);
    report_console();
    // Output that arrived after the last wake-up (e.g. the final lines) reaches the reader
    // too.
    if let Some(mut watch) = serial_watch {
        (watch.on_ready)();
    }
    Ok(outcome)
}

/// `--incoming`: takes the VM over from the migration source before any vCPU runs, while
/// the QMP socket answers `query-status` with `inmigrate` (other commands wait for the VM:
/// they are refused with a message saying so). Then RESUME goes out.
fn receive_incoming(
    vmm: &mut Vmm,
    listener: &crate::migration::Listener,
    server: Option<&QmpServer>,
    signals: &StopSignals,
) -> Result<(), VmmError> {
    let stop_fd = signals.fd();
    let params = std::sync::Mutex::new(vmm.migration_settings.0);
    let mut caps = vmm.migration_settings.1;
    // The VM is taken over on a thread of its own while this one answers QMP.
    let report = std::thread::scope(|scope| {
        let params = &params;
        let vmm = &mut *vmm;
        let receiver = scope.spawn(move || vmm.receive_incoming(listener, stop_fd, params));
        while !receiver.is_finished() {
            match server {
                Some(server) => serve_inmigrate(server, params, &mut caps),
                None => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        receiver.join().unwrap_or_else(|_| {
            Err(VmmError::Migration(
                "the incoming migration's thread panicked".into(),
            ))
        })
    })?;
    let params = params.into_inner().unwrap_or_else(|p| p.into_inner());
    vmm.migration_settings = (params, caps);
    for w in &report.warnings {
        eprintln!("rvmm: warning: {w}");
    }
    eprintln!(
        "rvmm: migration received: {} vCPUs, {} pages ({} with data) in {} ms; the guest was paused {} ms{}",
        report.vcpus,
        report.pages,
        report.data_pages,
        report.elapsed.as_millis(),
        report.downtime_ns / 1_000_000,
        match report.announced {
            0 => String::new(),
            n => format!(
                "; {n} NIC(s) announced (RARP, {} round(s))",
                params.announce_rounds
            ),
        }
    );
    if let Some(s) = server {
        s.emit(crate::control::qmp::Event::Resume);
    }
    Ok(())
}

/// Answers the QMP requests that arrive within 50 ms while the VM waits for its incoming
/// migration: its status, and the migration parameters and capabilities (QEMU, and libvirt
/// with it, set them on the destination before the migration; the announce parameters
/// rule this VM's announcement when it arrives).
fn serve_inmigrate(
    server: &QmpServer,
    params: &std::sync::Mutex<crate::migration::MigrationParameters>,
    caps: &mut crate::migration::MigrationCapabilities,
) {
    use crate::control::commands::query_status::{RunState, StatusInfo};
    use crate::control::commands::Command;
    let to_value = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| crate::control::QmpError::generic(e.to_string()))
    };
    {
        let mut fds = [libc::pollfd {
            fd: server.wake_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, 50) };
        while let Some(request) = server.next_request() {
            let result = match &request.command {
                Command::QueryStatus(_) => {
                    serde_json::to_value(StatusInfo::of(RunState::Inmigrate))
                        .map_err(|e| crate::control::QmpError::generic(e.to_string()))
                }
                Command::QueryMigrate(_) => Ok(serde_json::json!({})),
                Command::QueryMigrateParameters(_) => {
                    to_value(serde_json::to_value(*params.lock().unwrap_or_else(|p| p.into_inner())))
                }
                Command::MigrateSetParameters(set) => {
                    set.apply(&mut params.lock().unwrap_or_else(|p| p.into_inner()));
                    Ok(serde_json::json!({}))
                }
                Command::QueryMigrateCapabilities(_) => to_value(serde_json::to_value(caps.list())),
                Command::MigrateSetCapabilities(set) => {
                    let mut next = *caps;
                    set.apply(&mut next).map(|()| {
                        *caps = next;
                        serde_json::json!({})
                    })
                }
                c => Err(crate::control::QmpError::generic(format!(
                    "{}: the VM is waiting for an incoming migration (--incoming); only query-status, query-migrate and the migration parameters and capabilities answer until it has arrived",
                    c.name()
                ))),
            };
            request.respond(result);
        }
    }
}

/// Lets the guest's last console bytes reach stdout (within [`CONSOLE_FLUSH`]) and says how
/// many never did.
fn report_console() {
    let Some(out) = console::stdout_if_started() else {
        return;
    };
    out.flush(CONSOLE_FLUSH);
    let dropped = out.undelivered();
    if dropped > 0 {
        eprintln!("rvmm: console: {dropped} bytes of guest output dropped (stdout not drained)");
    }
}

/// Spawns every vCPU thread, each pinned per `--vcpu-pin`, then pins the emulator threads
/// (this one, the QMP accept thread; threads started later inherit from them). On an
/// error the threads already started are stopped.
fn start_vcpus(vmm: &mut Vmm, control: &Arc<VmControl>) -> Result<Vec<VcpuHandle>, VmmError> {
    let mut handles: Vec<VcpuHandle> = Vec::new();
    let boot_msrs = vmm.boot_msrs.clone();
    // The boot vCPUs (slot = position), then those a restore created in their slots.
    let restored = std::mem::take(&mut vmm.restored_vcpus).into_iter();
    let vcpus = std::mem::take(&mut vmm.vcpus).into_iter().enumerate();
    for (index, vcpu) in vcpus.chain(restored.map(|(slot, fd)| (slot as usize, fd))) {
        // Only an explicit --vcpu-pin: --cpuset is inherited from this thread.
        let pin = vmm
            .config
            .pinning
            .vcpus
            .iter()
            .find(|p| p.vcpu == index as u32)
            .map(|p| p.cpus.clone());
        // Its group's cpuset is its pin, --cpuset included.
        if let Some(cg) = &vmm.cgroup {
            let cpus = vmm.config.pinning.for_vcpu(index as u32);
            if let Err(e) = cg.prepare_vcpu(index as u32, cpus) {
                control.finish(VmOutcome::Quit);
                stop_all(&mut handles);
                return Err(e.into());
            }
        }
        let shared = VcpuShared {
            bus: vmm.bus.clone(),
            control: control.clone(),
            ram: vmm.ram.clone(),
            boot_msrs: boot_msrs.clone(),
            cgroup: vmm.cgroup.clone(),
        };
        match spawn(index as u32, vcpu, shared, pin) {
            Ok(h) => handles.push(h),
            Err(e) => {
                control.finish(VmOutcome::Quit);
                stop_all(&mut handles);
                return Err(VmmError::Spawn(e));
            }
        }
    }
    // A restored VM's boot vCPUs the guest had ejected park at once, as they were.
    if let Some(slots) = &vmm.restored_slots {
        for h in handles.iter().filter(|h| slots.get(h.index).is_none()) {
            h.eject();
        }
    }
    if let Some(cpus) = &vmm.config.pinning.emulator {
        // The group's cpuset first: v1 cpuset bounds the affinity.
        let grouped = match &vmm.cgroup {
            Some(cg) => cg.set_emulator_cpus(cpus).map_err(VmmError::from),
            None => Ok(()),
        };
        if let Err(e) = grouped.and_then(|()| Ok(pin_emulator_threads(&handles, cpus)?)) {
            control.finish(VmOutcome::Quit);
            stop_all(&mut handles);
            return Err(e);
        }
    }
    Ok(handles)
}

/// Stops and joins every vCPU thread within [`thread::STOP_DEADLINE`]; names on stderr
/// those that did not stop (the process exit ends them).
fn stop_all(handles: &mut [VcpuHandle]) {
    let left = thread::stop_all(handles, thread::STOP_DEADLINE);
    if !left.is_empty() {
        eprintln!("{}", StopReport(&left));
    }
}
