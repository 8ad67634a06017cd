//! The emulator thread's loop while a VM runs: place the threads (`--cpuset`, `--vcpu-pin`,
//! `--emulator-pin`), start the QMP server and the vCPU threads, forward console input,
//! react to SIGINT/SIGTERM/SIGHUP, to the guest's serial "PROBE-" lines and to QMP requests
//! (executed here, on this thread), then stop and join every vCPU, send the final event,
//! close the control socket and say how the VM ended.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use vmm_sys_util::signal::block_signal;

use super::commands::{pin_emulator_threads, Controller};
use super::term::{EscapeState, Input, RawMode};
use super::{Vmm, VmmError};
use crate::control::qmp::Version;
use crate::control::QmpServer;
use crate::host::sched;
use crate::vcpu::thread::{install_kick_handler, spawn};
use crate::vcpu::{VcpuHandle, VmControl, VmOutcome};

/// Called with the serial output so far each time a `PROBE-` line completes.
pub type SerialListener<'a> = Box<dyn FnMut(&[u8]) + 'a>;

/// How to run.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Forward stdin to COM1 (raw mode and Ctrl-A x when it is a terminal).
    pub console_input: bool,
    /// Sees the captured serial output (probe guest).
    pub serial_listener: Option<SerialListener<'a>>,
}

const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn io_err(what: &'static str) -> impl Fn(std::io::Error) -> VmmError {
    move |source| VmmError::Io { what, source }
}

/// A signalfd for the stop signals (which are blocked in every thread we start).
fn stop_signalfd() -> Result<i32, VmmError> {
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
    Ok(fd)
}

pub(super) fn run(vmm: &mut Vmm, mut options: RunOptions) -> Result<VmOutcome, VmmError> {
    for s in STOP_SIGNALS {
        block_signal(s).map_err(|e| VmmError::Io {
            what: "blocking signals",
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    let sigfd = stop_signalfd()?;
    install_kick_handler().map_err(io_err("installing the vCPU kick handler"))?;
    let control = Arc::new(VmControl::new().map_err(io_err("stop eventfd"))?);

    // --cpuset covers every thread: set it on this one before any other starts, and they
    // inherit it.
    if let Some(cpus) = &vmm.config.pinning.cpuset {
        sched::set_affinity(0, cpus)?;
    }
    // The control socket exists before the vCPUs run, so a client can watch from the start.
    let server = match &vmm.config.qmp {
        Some(path) => Some(QmpServer::start(path, Version::rvmm())?),
        None => None,
    };

    let mut handles: Vec<VcpuHandle> = Vec::new();
    for (index, vcpu) in std::mem::take(&mut vmm.vcpus).into_iter().enumerate() {
        let pin = vmm
            .config
            .pinning
            .vcpus
            .iter()
            .find(|p| p.vcpu == index as u32)
            .map(|p| p.cpus.clone());
        match spawn(index as u32, vcpu, vmm.bus.clone(), control.clone(), pin) {
            Ok(h) => handles.push(h),
            Err(e) => {
                control.finish(VmOutcome::Quit);
                stop_all(&mut handles);
                return Err(VmmError::Io {
                    what: "spawning a vCPU thread",
                    source: e,
                });
            }
        }
    }
    // Every thread that is not a vCPU (this one, the QMP accept thread) is an emulator
    // thread; threads started later inherit from them.
    if let Some(cpus) = &vmm.config.pinning.emulator {
        if let Err(e) = pin_emulator_threads(&handles, cpus) {
            control.finish(VmOutcome::Quit);
            stop_all(&mut handles);
            return Err(e.into());
        }
    }
    let vmm: &Vmm = vmm;
    let mut controller = Controller::new(vmm, &handles, &control, server.as_ref());

    let raw = if options.console_input {
        RawMode::enter(libc::STDIN_FILENO)
    } else {
        None
    };
    let mut escape = EscapeState::default();
    let mut stdin_open = options.console_input;
    let mut pending_input: Vec<u8> = Vec::new();

    while !control.stopping() {
        let mut fds = vec![
            libc::pollfd {
                fd: sigfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: control.stop_evt.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: vmm.serial_marker.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if let Some(s) = &server {
            fds.push(libc::pollfd {
                fd: s.wake_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let stdin_slot = fds.len();
        if stdin_open && pending_input.is_empty() {
            fds.push(libc::pollfd {
                fd: libc::STDIN_FILENO,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // Wake periodically while console input waits for room in the UART's FIFO.
        let timeout = if pending_input.is_empty() { -1 } else { 10 };
        // SAFETY: fds is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            control.finish(VmOutcome::Quit);
            break;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            // SAFETY: zeroed siginfo is a valid buffer; we read at most its size.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: reading into our own struct of the right size.
            let r = unsafe {
                libc::read(
                    sigfd,
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            };
            if r > 0 {
                control.finish(VmOutcome::Signal(info.ssi_signo as i32));
            }
        }
        if fds[2].revents & libc::POLLIN != 0 {
            let _ = vmm.serial_marker.read();
            if let (Some(listener), Some(out)) =
                (options.serial_listener.as_mut(), vmm.serial_output())
            {
                listener(&out);
            }
        }
        if let Some(s) = &server {
            if fds[3].revents & libc::POLLIN != 0 {
                while let Some(request) = s.next_request() {
                    let result = controller.execute(&request.command);
                    request.respond(result);
                }
            }
        }
        if fds.len() > stdin_slot && fds[stdin_slot].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            let mut buf = [0u8; 256];
            // SAFETY: reading into a stack buffer of the given size.
            let r = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                stdin_open = false;
            } else {
                let bytes = &buf[..r as usize];
                let filtered = if raw.is_some() {
                    escape.filter(bytes)
                } else {
                    Input::Guest(bytes.to_vec())
                };
                match filtered {
                    Input::Guest(b) => pending_input.extend(b),
                    Input::Quit(b) => {
                        pending_input.extend(b);
                        control.finish(VmOutcome::Quit);
                    }
                }
            }
        }
        if !pending_input.is_empty() {
            let mut uart = vmm.bus.com1.lock().unwrap_or_else(|p| p.into_inner());
            let room = uart.fifo_capacity().min(pending_input.len());
            if room > 0 && uart.enqueue_raw_bytes(&pending_input[..room]).is_ok() {
                pending_input.drain(..room);
            }
        }
    }

    let outcome = control.outcome().unwrap_or(VmOutcome::Quit);
    controller.emit_end(&outcome);
    drop(controller);
    stop_all(&mut handles);
    if let Some(s) = server {
        s.shutdown();
    }
    drop(raw);
    // SAFETY: closing the signalfd we created.
    unsafe { libc::close(sigfd) };
    // Output captured after the last marker (e.g. the final lines) reaches the listener too.
    if let (Some(listener), Some(out)) = (options.serial_listener.as_mut(), vmm.serial_output()) {
        listener(&out);
    }
    Ok(outcome)
}

/// Kicks every vCPU out of KVM_RUN (all at once, so stopping 64 vCPUs costs one wait, not
/// 64), re-kicking stragglers every millisecond, then joins each thread.
fn stop_all(handles: &mut [VcpuHandle]) {
    for h in handles.iter().filter(|h| !h.is_finished()) {
        h.kick();
    }
    for h in handles.iter_mut() {
        let mut waited = Duration::ZERO;
        while !h.is_finished() && waited < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_micros(50));
            waited += Duration::from_micros(50);
            if waited.as_micros() % 1000 == 0 {
                h.kick();
            }
        }
        h.join();
    }
}
