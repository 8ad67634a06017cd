//! The emulator thread's event loop while the VM runs, keyed by [`Source`]: stop signals,
//! the VM's stop event (a vCPU or a command ended it), guest events vCPU threads pass on
//! (CPU ejects, `_OST` reports), the serial watcher's wake-up, queued QMP requests, the
//! migration thread's messages, and console input, which is fed into COM1's FIFO as room frees up.
//! Each iteration polls the sources that are live, then handles each ready one by name.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::commands::Controller;
use super::run::{RunOptions, StopSignals};
use super::term::{EscapeState, Input, RawMode};
use super::Vmm;
use crate::control::{HmpServer, MetricsServer, QmpServer};
use crate::devices::{console, Bus};
use crate::vcpu::{VmControl, VmOutcome};

/// Whether stdin feeds the guest's COM1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Console {
    /// stdin goes to COM1; a terminal is put in raw mode and `Ctrl-A x` quits.
    Stdin,
    /// No console input.
    #[default]
    Detached,
}

/// A reader of the guest's serial output that wants to be woken: `fd` becomes readable
/// when there is something to look at; `on_ready` is called then (it must consume what
/// made `fd` readable) and once more after the VM has ended.
pub struct SerialWatch<'a> {
    pub fd: RawFd,
    pub on_ready: Box<dyn FnMut() + 'a>,
}

/// What the emulator thread waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// SIGINT, SIGTERM or SIGHUP (the signalfd).
    StopSignal,
    /// The VM is ending (`VmControl::stop_evt`).
    VmStop,
    /// A vCPU thread queued a guest event (`VmControl::guest_evt`).
    GuestEvent,
    /// The serial watcher's fd.
    SerialWatch,
    /// A QMP request is queued.
    Qmp,
    /// A scrape of the metrics endpoint is queued.
    Metrics,
    /// A human monitor command is queued.
    Monitor,
    /// Console input (or its end).
    Stdin,
    /// The migration thread said something (`Controller::migration_events`).
    Migration,
}

/// One `poll(2)` over the live sources.
#[derive(Default)]
struct Poll {
    fds: Vec<libc::pollfd>,
    sources: Vec<Source>,
}

impl Poll {
    fn watch(&mut self, source: Source, fd: RawFd) {
        self.fds.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        self.sources.push(source);
    }

    /// Waits until a source is ready or `timeout` passes; returns the ready sources.
    fn wait(&mut self, timeout: Option<Duration>) -> std::io::Result<Vec<Source>> {
        let timeout = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: fds is a valid array of pollfd for its length.
        let n = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(self
            .fds
            .iter()
            .zip(&self.sources)
            .filter(|(fd, _)| fd.revents & (libc::POLLIN | libc::POLLHUP) != 0)
            .map(|(_, &source)| source)
            .collect())
    }
}

/// Keyboard input on its way to COM1.
struct ConsoleInput {
    open: bool,
    raw: Option<RawMode>,
    escape: EscapeState,
    /// Bytes read but not yet taken by the UART's FIFO.
    pending: Vec<u8>,
}

/// How often to retry while input waits for room in the UART's FIFO.
const FIFO_RETRY: Duration = Duration::from_millis(10);

impl ConsoleInput {
    fn new(console: Console) -> ConsoleInput {
        let open = console == Console::Stdin;
        ConsoleInput {
            open,
            raw: if open {
                RawMode::enter(libc::STDIN_FILENO)
            } else {
                None
            },
            escape: EscapeState::default(),
            pending: Vec::new(),
        }
    }

    /// Whether to read stdin now (not while earlier input still waits for the FIFO).
    fn wants_input(&self) -> bool {
        self.open && self.pending.is_empty()
    }

    fn poll_timeout(&self) -> Option<Duration> {
        (!self.pending.is_empty()).then_some(FIFO_RETRY)
    }

    /// Reads what stdin has and queues it for the guest; `Input::Quit` when the user typed
    /// the quit escape.
    fn read(&mut self) -> Input {
        let mut buf = [0u8; 256];
        // SAFETY: reading into a stack buffer of the given size.
        let r = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            self.open = false;
            return Input::Guest(Vec::new());
        }
        let bytes = &buf[..r as usize];
        let filtered = if self.raw.is_some() {
            self.escape.filter(bytes)
        } else {
            Input::Guest(bytes.to_vec())
        };
        match &filtered {
            Input::Guest(b) | Input::Quit(b) => self.pending.extend(b),
        }
        filtered
    }

    /// Moves as much pending input into COM1's receive FIFO as fits.
    fn feed(&mut self, bus: &Bus) {
        if self.pending.is_empty() {
            return;
        }
        let mut uart = bus.com1.lock().unwrap_or_else(|p| p.into_inner());
        let room = uart.fifo_capacity().min(self.pending.len());
        if room > 0 && uart.enqueue_raw_bytes(&self.pending[..room]).is_ok() {
            self.pending.drain(..room);
        }
    }
}

/// The control sockets whose requests the emulator thread runs.
pub(super) struct Sockets<'a> {
    pub qmp: Option<&'a QmpServer>,
    pub metrics: Option<&'a MetricsServer>,
    pub monitor: Option<&'a HmpServer>,
}

/// The emulator thread's state while the VM runs.
pub(super) struct EventLoop<'a, 'o> {
    vmm: &'a Vmm,
    control: &'a VmControl,
    controller: Controller<'a>,
    server: Option<&'a QmpServer>,
    metrics: Option<&'a MetricsServer>,
    monitor: Option<&'a HmpServer>,
    signals: &'a StopSignals,
    serial_watch: Option<SerialWatch<'o>>,
    console: ConsoleInput,
    /// stdout did not drain once: the serial watcher no longer waits for it.
    console_stuck: bool,
}

/// How long the serial watcher waits for the echoed output to reach stdout.
const WATCH_FLUSH: Duration = Duration::from_millis(200);

impl<'a, 'o> EventLoop<'a, 'o> {
    pub(super) fn new(
        vmm: &'a Vmm,
        control: &'a VmControl,
        controller: Controller<'a>,
        sockets: Sockets<'a>,
        signals: &'a StopSignals,
        options: RunOptions<'o>,
    ) -> Self {
        EventLoop {
            vmm,
            control,
            controller,
            server: sockets.qmp,
            metrics: sockets.metrics,
            monitor: sockets.monitor,
            signals,
            serial_watch: options.serial_watch,
            console: ConsoleInput::new(options.console),
            console_stuck: false,
        }
    }

    /// Handles events until the VM is stopping.
    pub(super) fn run(&mut self) {
        while !self.control.stopping() {
            let mut poll = self.live_sources();
            match poll.wait(self.console.poll_timeout()) {
                Ok(ready) => {
                    for source in ready {
                        self.handle(source);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.control.finish(VmOutcome::Quit);
                    break;
                }
            }
            self.console.feed(&self.vmm.bus);
        }
    }

    /// The command executor and the serial watcher back, for the end of the run; leaves
    /// raw mode.
    pub(super) fn finish(self) -> (Controller<'a>, Option<SerialWatch<'o>>) {
        (self.controller, self.serial_watch)
    }

    /// Lets the guest output echoed so far reach stdout before the serial watcher prints
    /// (its lines must follow the ones they are about). A stdout that does not drain within
    /// [`WATCH_FLUSH`] is not waited for again.
    fn flush_console(&mut self) {
        if self.console_stuck {
            return;
        }
        if let Some(out) = console::stdout_if_started() {
            self.console_stuck = !out.flush(WATCH_FLUSH);
        }
    }

    fn live_sources(&self) -> Poll {
        let mut poll = Poll::default();
        poll.watch(Source::StopSignal, self.signals.fd());
        poll.watch(Source::VmStop, self.control.stop_evt.as_raw_fd());
        poll.watch(Source::GuestEvent, self.control.guest_evt.as_raw_fd());
        if let Some(w) = &self.serial_watch {
            poll.watch(Source::SerialWatch, w.fd);
        }
        if let Some(s) = self.server {
            poll.watch(Source::Qmp, s.wake_fd());
        }
        if let Some(m) = self.metrics {
            poll.watch(Source::Metrics, m.wake_fd());
        }
        if let Some(m) = self.monitor {
            poll.watch(Source::Monitor, m.wake_fd());
        }
        if self.console.wants_input() {
            poll.watch(Source::Stdin, libc::STDIN_FILENO);
        }
        if let Some(fd) = self.controller.migration_fd() {
            poll.watch(Source::Migration, fd);
        }
        poll
    }

    fn handle(&mut self, source: Source) {
        match source {
            Source::StopSignal => {
                if let Some(signal) = self.signals.read() {
                    self.control.finish(VmOutcome::Signal(signal));
                }
            }
            // The loop condition sees it.
            Source::VmStop => {}
            Source::GuestEvent => self.controller.guest_events(),
            Source::SerialWatch => {
                self.flush_console();
                if let Some(w) = &mut self.serial_watch {
                    (w.on_ready)();
                }
            }
            Source::Qmp => {
                if let Some(s) = self.server {
                    while let Some(request) = s.next_request() {
                        let result = self.controller.execute(&request.command);
                        request.respond(result);
                    }
                }
            }
            // The metrics endpoint's scrapes run the same commands as QMP clients'.
            Source::Metrics => {
                if let Some(m) = self.metrics {
                    while let Some(request) = m.next_request() {
                        let result = self.controller.execute(&request.command);
                        request.respond(result);
                    }
                }
            }
            // The monitor's commands are QMP commands too.
            Source::Monitor => {
                if let Some(m) = self.monitor {
                    while let Some(request) = m.next_request() {
                        let result = self.controller.execute(&request.command);
                        request.respond(result);
                    }
                }
            }
            Source::Migration => self.controller.migration_events(),
            Source::Stdin => {
                if let Input::Quit(_) = self.console.read() {
                    self.control.finish(VmOutcome::Quit);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EventFd;

    #[test]
    fn poll_names_the_ready_sources() {
        let stop = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).unwrap();
        let qmp = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).unwrap();
        let mut poll = Poll::default();
        poll.watch(Source::VmStop, stop.as_raw_fd());
        poll.watch(Source::Qmp, qmp.as_raw_fd());
        assert_eq!(poll.wait(Some(Duration::ZERO)).unwrap(), []);
        qmp.write(1).unwrap();
        assert_eq!(
            poll.wait(Some(Duration::from_millis(100))).unwrap(),
            [Source::Qmp]
        );
        stop.write(1).unwrap();
        assert_eq!(poll.wait(None).unwrap(), [Source::VmStop, Source::Qmp]);
    }
}
