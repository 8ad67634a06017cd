//! One thread per vCPU running the KVM_RUN loop, and how the VMM stops them.
//!
//! A kick is `immediate_exit` plus a signal: the signal handler sets `kvm_run.immediate_exit`
//! through a thread-local pointer, so a kick that lands just before KVM_RUN still makes it
//! return at once (KVM API docs, "immediate_exit"). The loop then sees the stop flag.
//!
//! Each vCPU is a small state machine (Running → Paused → Running ... → Finished), driven
//! by the kick: `VmControl::request_pause` sets the pause flag and the VMM thread kicks every
//! vCPU; a kicked vCPU sees the flag, parks on a condition variable (it does not spin) and
//! counts itself parked; `resume` and `finish` wake it. A vCPU pinned by the user sets its
//! own affinity before its first KVM_RUN, so it never runs guest code anywhere else.
//!
//! A vCPU the guest ejected (CPU hot-unplug) parks the same way on its own flag
//! ([`VcpuHandle::eject`]): KVM cannot destroy a vCPU, so its thread waits, visible as
//! [`VcpuRunState::Ejected`], until the slot is plugged again ([`VcpuHandle::replug`]). Then
//! the thread itself puts the vCPU back in the state of a newly created application
//! processor (KVM_MP_STATE_UNINITIALIZED: it waits for INIT/SIPI) and runs it again.
//!
//! Events the guest raises that are not the end of the VM (a CPU eject, an `_OST` report)
//! go to the emulator thread through a bounded queue and its eventfd
//! ([`VmControl::take_guest_events`]).
//!
//! Stopping has a deadline ([`STOP_DEADLINE`]): a vCPU that does not leave KVM_RUN (or is
//! blocked elsewhere) is reported and left to the process exit, never waited on forever.
//! Each vCPU thread holds the guest RAM ([`GuestRam`]) alive for as long as it runs, so
//! nothing the main thread drops can unmap memory a vCPU still uses; a [`VcpuHandle`]
//! dropped before it was stopped stops its thread (with the deadline) on drop.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_mp_state, kvm_run, KVM_MP_STATE_UNINITIALIZED};
use kvm_ioctls::VcpuFd;

use crate::machine::stats::{StatsError, StatsFd};
use thiserror::Error;
use vmm_sys_util::eventfd::EventFd;

use super::configure::set_msrs;
use super::dump::format_registers;
use super::exit::{handle_exit, ExitAction, VcpuFault};
use crate::devices::{Bus, GuestEvent};
use crate::host::vmcgroup::VmCgroup;
use crate::machine::{kvm_call, MachineError};
use crate::memory::GuestRam;

/// How long stopping vCPU threads may take in all before rvmm gives up on the ones left.
pub const STOP_DEADLINE: Duration = Duration::from_secs(2);

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmOutcome {
    /// The guest powered off (ACPI S5).
    Poweroff,
    /// The guest wrote this value to isa-debug-exit (`--machine debug-exit=on`).
    DebugExit(u32),
    /// The guest reset itself (i8042 or the FADT reset register).
    Reset,
    /// The user quit (Ctrl-A x, QMP `quit`).
    Quit,
    /// SIGINT/SIGTERM/SIGHUP.
    Signal(i32),
    /// A vCPU could not go on.
    Fault {
        vcpu: u32,
        fault: VcpuFault,
        detail: String,
    },
}

impl VmOutcome {
    /// The process exit status: 0 for orderly ends, 1 for faults, and QEMU's
    /// `(value << 1) | 1` (as the low 8 bits a process exit status keeps) for isa-debug-exit.
    pub fn exit_code(&self) -> i32 {
        match self {
            VmOutcome::Fault { .. } => 1,
            VmOutcome::DebugExit(value) => ((value << 1) | 1) as i32 & 0xff,
            _ => 0,
        }
    }
}

/// The pause request and how many vCPUs have parked for it.
#[derive(Debug, Default)]
struct PauseState {
    requested: bool,
    parked: usize,
}

/// Guest events queued for the emulator thread at most; more are dropped (and counted)
/// until it catches up, so a guest writing a register in a loop cannot grow rvmm's memory.
pub const GUEST_EVENT_QUEUE: usize = 1024;

/// State shared by the VMM thread and every vCPU thread.
pub struct VmControl {
    stop: AtomicBool,
    outcome: Mutex<Option<VmOutcome>>,
    /// Signalled when the VM should stop; the emulator thread polls it.
    pub stop_evt: EventFd,
    pause: Mutex<PauseState>,
    /// Wakes parked vCPUs (resume, finish, replug) and the VMM thread waiting for them to
    /// park.
    pause_cv: Condvar,
    /// Guest events for the emulator thread (CPU ejects, `_OST` reports), oldest first.
    guest_events: Mutex<VecDeque<GuestEvent>>,
    /// Signalled when `guest_events` has something; the emulator thread polls it.
    pub guest_evt: EventFd,
    /// Guest events dropped because the queue was full.
    guest_events_dropped: AtomicU64,
}

impl VmControl {
    pub fn new() -> std::io::Result<Self> {
        Ok(VmControl {
            stop: AtomicBool::new(false),
            outcome: Mutex::new(None),
            stop_evt: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
            pause: Mutex::new(PauseState::default()),
            pause_cv: Condvar::new(),
            guest_events: Mutex::new(VecDeque::new()),
            guest_evt: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
            guest_events_dropped: AtomicU64::new(0),
        })
    }

    /// Queues a guest event for the emulator thread and wakes it (a vCPU thread calls
    /// this). Returns false if the queue was full and the event was dropped.
    pub fn post_guest_event(&self, event: GuestEvent) -> bool {
        let mut q = self.guest_events.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= GUEST_EVENT_QUEUE {
            self.guest_events_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.push_back(event);
        drop(q);
        let _ = self.guest_evt.write(1);
        true
    }

    /// Every queued guest event, oldest first (the emulator thread calls this when
    /// `guest_evt` is readable).
    pub fn take_guest_events(&self) -> Vec<GuestEvent> {
        let _ = self.guest_evt.read();
        let mut q = self.guest_events.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }

    /// How many guest events were dropped because the queue was full.
    pub fn guest_events_dropped(&self) -> u64 {
        self.guest_events_dropped.load(Ordering::Relaxed)
    }

    /// Wakes every thread waiting on the pause condition (parked, ejected or waiting for
    /// parks) to look at its flags again.
    fn wake_parked(&self) {
        let _guard = self.pause_state();
        self.pause_cv.notify_all();
    }

    /// Called by a vCPU thread the guest ejected: waits until it is plugged again
    /// (`ejected` cleared) or the VM stops.
    fn park_ejected(&self, ejected: &AtomicBool) {
        let mut st = self.pause_state();
        while ejected.load(Ordering::SeqCst) && !self.stopping() {
            st = self.pause_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn pause_state(&self) -> std::sync::MutexGuard<'_, PauseState> {
        self.pause.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records why the VM ends (the first reason wins) and wakes the VMM thread and any
    /// parked vCPU.
    pub fn finish(&self, outcome: VmOutcome) {
        let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        if o.is_none() {
            *o = Some(outcome);
        }
        drop(o);
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.stop_evt.write(1);
        // Taking the lock orders this wake-up after a parking vCPU's check of `stopping`.
        let _guard = self.pause_state();
        self.pause_cv.notify_all();
    }

    /// Asks every vCPU to park at its next exit; the caller then kicks them.
    pub fn request_pause(&self) {
        self.pause_state().requested = true;
    }

    /// Lets parked vCPUs run again.
    pub fn resume(&self) {
        self.pause_state().requested = false;
        self.pause_cv.notify_all();
    }

    /// Whether a pause is requested (the VM is, or is becoming, paused).
    pub fn pause_requested(&self) -> bool {
        self.pause_state().requested
    }

    /// How many vCPUs are parked now.
    pub fn parked(&self) -> usize {
        self.pause_state().parked
    }

    /// Waits until `count` vCPUs are parked or `timeout` passes; true if they all parked.
    pub fn wait_parked(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.pause_state();
        while st.parked < count && st.requested && !self.stopping() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .pause_cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.parked >= count
    }

    /// Called by a vCPU thread: parks until the pause ends or the VM stops, running the
    /// jobs posted for its vCPU meanwhile ([`VcpuHandle::run_parked`]).
    fn park(&self, slot: &SlotFlags, vcpu: &mut VcpuFd) {
        let mut st = self.pause_state();
        st.parked += 1;
        self.pause_cv.notify_all();
        while st.requested && !self.stopping() {
            // The poster sets the flag before it takes this lock to wake us, so a job is
            // either seen here or its wake-up finds us waiting.
            if slot.job_pending.swap(false, Ordering::SeqCst) {
                drop(st);
                let job = slot.job.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(job) = job {
                    job(vcpu);
                }
                st = self.pause_state();
                continue;
            }
            st = self.pause_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.parked -= 1;
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn outcome(&self) -> Option<VmOutcome> {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

thread_local! {
    static KVM_RUN_PTR: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal.
pub fn kick_signal() -> i32 {
    libc::SIGRTMIN()
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let p = KVM_RUN_PTR.with(|c| c.get());
    if !p.is_null() {
        // SAFETY: the pointer is this thread's own mapped kvm_run, set before its first
        // KVM_RUN and valid until the thread's VcpuFd is dropped (after it is cleared).
        unsafe { (*p).immediate_exit = 1 };
    }
}

/// Installs the kick handler (once per process).
pub fn install_kick_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid start; we fill in the handler and flags.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = kick_handler as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: sa is fully initialised; the handler only touches a thread-local byte.
    let r = unsafe { libc::sigaction(kick_signal(), &sa, std::ptr::null_mut()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Where a vCPU thread is in its life (`VcpuHandle::run_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VcpuRunState {
    /// In or around KVM_RUN.
    Running = 0,
    /// Parked for a VM-wide pause.
    Paused = 1,
    /// The thread has left its loop.
    Finished = 2,
    /// Parked because the guest ejected the vCPU (CPU hot-unplug); a later plug of its
    /// slot runs it again.
    Ejected = 3,
}

impl VcpuRunState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => VcpuRunState::Running,
            1 => VcpuRunState::Paused,
            3 => VcpuRunState::Ejected,
            _ => VcpuRunState::Finished,
        }
    }
}

/// Work for a parked vCPU's thread, on its vCPU (saving its state for a snapshot).
type VcpuJob = Box<dyn FnOnce(&mut VcpuFd) + Send>;

/// A vCPU's hotplug flags and its job slot, shared by its handle and its thread.
#[derive(Default)]
struct SlotFlags {
    /// The guest ejected the vCPU: its thread parks.
    ejected: AtomicBool,
    /// Plugged again after an eject: the thread resets the vCPU before running it.
    reset: AtomicBool,
    /// A job for the parked thread, and whether one was posted since it last looked.
    job: Mutex<Option<VcpuJob>>,
    job_pending: AtomicBool,
}

/// A running vCPU thread. Dropping it stops and joins the thread (see [`stop_all`]).
pub struct VcpuHandle {
    pub index: u32,
    thread: Option<JoinHandle<()>>,
    /// The thread's kernel TID (known once `spawn` returns).
    pub tid: Arc<AtomicI32>,
    state: Arc<AtomicU8>,
    control: Arc<VmControl>,
    slot: Arc<SlotFlags>,
    /// The vCPU's KVM statistics, opened before its first KVM_RUN (the ioctl would wait
    /// for a running vCPU); the error when this kernel has none.
    stats: Result<Arc<StatsFd>, Arc<StatsError>>,
}

impl VcpuHandle {
    /// The vCPU's KVM binary statistics.
    pub fn stats(&self) -> Result<&StatsFd, &StatsError> {
        match &self.stats {
            Ok(s) => Ok(s),
            Err(e) => Err(e),
        }
    }

    /// Parks the vCPU the guest ejected: it stops running guest code at its next exit (it
    /// is kicked now) and its thread waits until [`replug`](Self::replug).
    pub fn eject(&self) {
        self.slot.ejected.store(true, Ordering::SeqCst);
        self.kick();
    }

    /// Runs an ejected vCPU again as a new application processor: its thread resets it to
    /// wait for INIT/SIPI, then enters KVM_RUN.
    pub fn replug(&self) {
        self.slot.reset.store(true, Ordering::SeqCst);
        self.slot.ejected.store(false, Ordering::SeqCst);
        self.control.wake_parked();
    }

    /// Whether the guest ejected this vCPU (and it was not plugged again since).
    pub fn is_ejected(&self) -> bool {
        self.slot.ejected.load(Ordering::SeqCst)
    }

    /// Runs `f` on this vCPU's own thread while the VM is paused (the thread owns the
    /// vCPU fd) and returns its result; `None` if the vCPU is not parked for the pause or
    /// did not answer within `timeout`.
    pub fn run_parked<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut VcpuFd) -> R + Send + 'static,
        timeout: Duration,
    ) -> Option<R> {
        if self.run_state() != VcpuRunState::Paused {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        *self.slot.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(move |v| {
            let _ = tx.send(f(v));
        }));
        self.slot.job_pending.store(true, Ordering::SeqCst);
        self.control.wake_parked();
        rx.recv_timeout(timeout).ok()
    }

    /// Interrupts KVM_RUN on this vCPU.
    pub fn kick(&self) {
        if let Some(t) = &self.thread {
            use std::os::unix::thread::JoinHandleExt;
            // SAFETY: the pthread is alive until joined (we join only in `join`).
            unsafe { libc::pthread_kill(t.as_pthread_t(), kick_signal()) };
        }
    }

    /// The thread's kernel TID.
    pub fn thread_id(&self) -> i32 {
        self.tid.load(Ordering::SeqCst)
    }

    /// Running, paused or finished.
    pub fn run_state(&self) -> VcpuRunState {
        VcpuRunState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Joins the thread if it has ended; false (and nothing waited for) if it still runs.
    fn join_finished(&mut self) -> bool {
        match self.thread.take() {
            Some(t) if t.is_finished() => {
                let _ = t.join();
                true
            }
            Some(t) => {
                self.thread = Some(t);
                false
            }
            None => true,
        }
    }

    /// Joins a thread that is ending by itself before its first KVM_RUN (a failed start).
    fn join_ending(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Leaves a thread that did not stop to the process exit (the JoinHandle is dropped,
    /// which detaches it; it is never kicked again).
    fn abandon(&mut self) {
        self.thread = None;
    }
}

impl Drop for VcpuHandle {
    fn drop(&mut self) {
        if self.join_finished() {
            return;
        }
        // Not stopped by its owner (an error path, an unwinding caller): the first reason
        // to end wins, so this changes nothing if the VM is already ending.
        self.control.finish(VmOutcome::Quit);
        let left = stop_all(std::slice::from_mut(self), STOP_DEADLINE);
        if !left.is_empty() {
            eprintln!("{}", StopReport(&left));
        }
    }
}

/// A handle whose thread has ended (for tests of what refuses an exited vCPU).
#[cfg(test)]
pub(crate) fn exited_handle_for_test(index: u32) -> VcpuHandle {
    VcpuHandle {
        index,
        thread: None,
        tid: Arc::new(AtomicI32::new(0)),
        state: Arc::new(AtomicU8::new(VcpuRunState::Finished as u8)),
        control: Arc::new(VmControl::new().expect("eventfd")),
        slot: Arc::default(),
        stats: Err(Arc::new(no_stats_for_test())),
    }
}

#[cfg(test)]
fn no_stats_for_test() -> StatsError {
    StatsError::Malformed("a test handle has no vCPU".into())
}

/// The vCPUs that did not stop in time, as rvmm reports them.
pub struct StopReport<'a>(pub &'a [u32]);

impl std::fmt::Display for StopReport<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(u32::to_string).collect();
        let s = if self.0.len() == 1 { "" } else { "s" };
        write!(
            f,
            "rvmm: vCPU thread{s} {} did not stop within {} s; exiting without {}",
            list.join(", "),
            STOP_DEADLINE.as_secs(),
            if self.0.len() == 1 { "it" } else { "them" }
        )
    }
}

/// Stops every vCPU thread once the VM is ending ([`VmControl::finish`] was called): kicks
/// them all out of KVM_RUN at once (so stopping 64 vCPUs costs one wait, not 64), re-kicks
/// stragglers every millisecond, and joins each one that ended within `deadline` in all.
/// Returns the indexes of the threads that did not end; they are detached, and the process
/// exit ends them.
pub fn stop_all(handles: &mut [VcpuHandle], deadline: Duration) -> Vec<u32> {
    const POLL: Duration = Duration::from_micros(50);
    const REKICK: Duration = Duration::from_millis(1);
    let start = Instant::now();
    let mut last_kick = start;
    for h in handles.iter().filter(|h| !h.is_finished()) {
        h.kick();
    }
    while handles.iter().any(|h| !h.is_finished()) && start.elapsed() < deadline {
        std::thread::sleep(POLL);
        if last_kick.elapsed() >= REKICK {
            last_kick = Instant::now();
            for h in handles.iter().filter(|h| !h.is_finished()) {
                h.kick();
            }
        }
    }
    let mut left = Vec::new();
    for h in handles.iter_mut() {
        if !h.join_finished() {
            h.abandon();
            left.push(h.index);
        }
    }
    left
}

/// Why a vCPU thread did not start.
#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("{0}")]
    Thread(#[source] std::io::Error),
    /// `--vcpu-pin`: the thread could not set its own affinity.
    #[error("vCPU {vcpu}: {source}")]
    Pin {
        vcpu: u32,
        source: crate::host::thread::ThreadError,
    },
    #[error("vCPU {vcpu}: the thread ended before starting")]
    Vanished { vcpu: u32 },
    /// The thread could not join its cgroup.
    #[error("vCPU {vcpu}: {source}")]
    Cgroup {
        vcpu: u32,
        source: crate::host::vmcgroup::CgroupError,
    },
}

/// What a vCPU thread runs with, besides its vCPU: shared with the VMM and every other
/// vCPU.
pub struct VcpuShared {
    pub bus: Arc<Bus>,
    pub control: Arc<VmControl>,
    /// Guest RAM, held by the thread until it ends.
    pub ram: Arc<GuestRam>,
    /// The boot MSRs, set again when a replugged vCPU is reset (as QEMU's CPU reset puts
    /// them back).
    pub boot_msrs: Arc<[(u32, u64)]>,
    /// The VM's cgroup, whose `vcpuN` (made already) the thread joins first thing, before
    /// its pin (v1 cpuset limits the affinity a thread may take); dropped once joined.
    pub cgroup: Option<Arc<VmCgroup>>,
}

/// Spawns the thread for vCPU `index`, named as QEMU names them (`CPU N/KVM`). It joins
/// its cgroup when the VM has one. With `pin`, the thread sets its own affinity before its
/// first KVM_RUN. Returns once the thread has
/// published its TID (and pinned itself); a failed pin ends the thread and is returned.
pub fn spawn(
    index: u32,
    mut vcpu: VcpuFd,
    shared: VcpuShared,
    pin: Option<Vec<u32>>,
) -> Result<VcpuHandle, SpawnError> {
    let VcpuShared {
        bus,
        control,
        ram,
        boot_msrs,
        cgroup,
    } = shared;
    let stats = StatsFd::open_vcpu(&vcpu).map(Arc::new).map_err(Arc::new);
    let tid = Arc::new(AtomicI32::new(0));
    let state = Arc::new(AtomicU8::new(VcpuRunState::Running as u8));
    let slot = Arc::new(SlotFlags::default());
    let (tid2, state2, control2, slot2) =
        (tid.clone(), state.clone(), control.clone(), slot.clone());
    let (started_tx, started_rx) = std::sync::mpsc::channel::<Result<(), SpawnError>>();
    let thread = std::thread::Builder::new()
        .name(format!("CPU {index}/KVM"))
        .spawn(move || {
            // Guest RAM stays mapped while this thread may run guest code.
            let _ram = ram;
            let control = control2;
            // SAFETY: gettid has no preconditions.
            let own_tid = unsafe { libc::gettid() };
            tid2.store(own_tid, Ordering::SeqCst);
            if let Some(cg) = cgroup {
                if let Err(source) = cg.place_vcpu(index, own_tid) {
                    state2.store(VcpuRunState::Finished as u8, Ordering::SeqCst);
                    let _ = started_tx.send(Err(SpawnError::Cgroup {
                        vcpu: index,
                        source,
                    }));
                    return;
                }
            }
            if let Some(cpus) = &pin {
                if let Err(source) = crate::host::thread::set_affinity(0, cpus) {
                    state2.store(VcpuRunState::Finished as u8, Ordering::SeqCst);
                    let _ = started_tx.send(Err(SpawnError::Pin {
                        vcpu: index,
                        source,
                    }));
                    return;
                }
            }
            crate::sandbox::apply(crate::sandbox::Role::Vcpu);
            let _ = started_tx.send(Ok(()));
            KVM_RUN_PTR.with(|c| c.set(vcpu.get_kvm_run() as *mut kvm_run));
            let flags = LoopFlags {
                state: &state2,
                slot: &slot2,
                boot_msrs: &boot_msrs,
            };
            run_loop(index, &mut vcpu, &bus, &control, flags);
            KVM_RUN_PTR.with(|c| c.set(std::ptr::null_mut()));
            state2.store(VcpuRunState::Finished as u8, Ordering::SeqCst);
        })
        .map_err(SpawnError::Thread)?;
    let mut handle = VcpuHandle {
        index,
        thread: Some(thread),
        tid,
        state,
        control,
        slot,
        stats,
    };
    match started_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            handle.join_ending();
            Err(e)
        }
        Err(_) => {
            handle.join_ending();
            Err(SpawnError::Vanished { vcpu: index })
        }
    }
}

/// A vCPU thread's own state words.
#[derive(Clone, Copy)]
struct LoopFlags<'a> {
    state: &'a AtomicU8,
    slot: &'a SlotFlags,
    boot_msrs: &'a [(u32, u64)],
}

/// Puts a vCPU back in the state a newly plugged application processor has: the boot MSRs,
/// and waiting for INIT/SIPI (the INIT resets its registers and local APIC).
fn reset_for_plug(vcpu: &VcpuFd, index: u32, boot_msrs: &[(u32, u64)]) -> Result<(), MachineError> {
    set_msrs(vcpu, index, boot_msrs)?;
    kvm_call(
        "KVM_SET_MP_STATE",
        vcpu.set_mp_state(kvm_mp_state {
            mp_state: KVM_MP_STATE_UNINITIALIZED,
        }),
    )
}

fn run_loop(index: u32, vcpu: &mut VcpuFd, bus: &Bus, control: &VmControl, flags: LoopFlags) {
    let LoopFlags {
        state,
        slot,
        boot_msrs,
    } = flags;
    while !control.stopping() {
        if slot.ejected.load(Ordering::SeqCst) {
            state.store(VcpuRunState::Ejected as u8, Ordering::SeqCst);
            control.park_ejected(&slot.ejected);
            state.store(VcpuRunState::Running as u8, Ordering::SeqCst);
            continue;
        }
        if slot.reset.swap(false, Ordering::SeqCst) {
            if let Err(e) = reset_for_plug(vcpu, index, boot_msrs) {
                control.finish(VmOutcome::Fault {
                    vcpu: index,
                    fault: VcpuFault::Unexpected(format!("resetting the replugged vCPU: {e}")),
                    detail: String::new(),
                });
                continue;
            }
        }
        if control.pause_requested() {
            state.store(VcpuRunState::Paused as u8, Ordering::SeqCst);
            control.park(slot, vcpu);
            state.store(VcpuRunState::Running as u8, Ordering::SeqCst);
            continue;
        }
        let action = match vcpu.run() {
            Ok(exit) => handle_exit(exit, bus),
            Err(e) if e.errno() == libc::EINTR => {
                vcpu.set_kvm_immediate_exit(0);
                ExitAction::Interrupted
            }
            Err(e) if e.errno() == libc::EAGAIN => ExitAction::Continue,
            Err(e) => ExitAction::Fault(VcpuFault::Unexpected(format!("KVM_RUN failed: {e}"))),
        };
        match action {
            ExitAction::Continue | ExitAction::Interrupted => {}
            ExitAction::Guest(GuestEvent::Poweroff) => control.finish(VmOutcome::Poweroff),
            ExitAction::Guest(GuestEvent::Reset) => control.finish(VmOutcome::Reset),
            ExitAction::Guest(GuestEvent::DebugExit(value)) => {
                control.finish(VmOutcome::DebugExit(value))
            }
            // The emulator thread's business (vCPU hotplug, the balloon's events).
            ExitAction::Guest(
                event @ (GuestEvent::CpuEject { .. }
                | GuestEvent::CpuOst { .. }
                | GuestEvent::BalloonChange { .. }),
            ) => {
                control.post_guest_event(event);
            }
            ExitAction::Fault(fault) => {
                let detail = fault_detail(vcpu, &fault);
                control.finish(VmOutcome::Fault {
                    vcpu: index,
                    fault,
                    detail,
                });
            }
        }
    }
}

/// Registers, plus the internal-error suberror and data when there is one.
fn fault_detail(vcpu: &mut VcpuFd, fault: &VcpuFault) -> String {
    let mut out = String::new();
    if *fault == VcpuFault::InternalError {
        // SAFETY: exit_reason was KVM_EXIT_INTERNAL_ERROR, so `internal` is the live member.
        let internal = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal };
        let n = (internal.ndata as usize).min(internal.data.len());
        let what = match internal.suberror {
            1 => " (emulation failure)",
            2 => " (simultaneous exception)",
            3 => " (delivery event)",
            _ => "",
        };
        out.push_str(&format!(
            "suberror {}{what}, data {:x?}\n",
            internal.suberror,
            &internal.data[..n]
        ));
    }
    match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(r), Ok(s)) => out.push_str(&format_registers(&r, &s)),
        (Err(e), _) | (_, Err(e)) => out.push_str(&format!("(registers unavailable: {e})")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handle over a plain thread that runs `body` (no KVM: stopping and joining only
    /// look at the thread).
    fn handle(
        index: u32,
        control: &Arc<VmControl>,
        body: impl FnOnce() + Send + 'static,
    ) -> VcpuHandle {
        VcpuHandle {
            index,
            thread: Some(std::thread::spawn(body)),
            tid: Arc::new(AtomicI32::new(0)),
            state: Arc::new(AtomicU8::new(VcpuRunState::Running as u8)),
            control: control.clone(),
            slot: Arc::default(),
            stats: Err(Arc::new(no_stats_for_test())),
        }
    }

    #[test]
    fn stop_all_gives_up_on_a_thread_that_never_stops_and_names_it() {
        install_kick_handler().unwrap();
        let control = Arc::new(VmControl::new().unwrap());
        let release = Arc::new(AtomicBool::new(false));
        let (c, r) = (control.clone(), release.clone());
        let mut handles = vec![
            // Stops as a vCPU does.
            handle(0, &control, move || {
                while !c.stopping() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }),
            // Ignores the stop (as a vCPU stuck outside KVM_RUN would).
            handle(1, &control, move || {
                while !r.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }),
        ];
        control.finish(VmOutcome::Quit);
        assert_eq!(stop_all(&mut handles, Duration::from_millis(100)), [1]);
        assert!(
            handles.iter().all(|h| h.thread.is_none()),
            "joined or let go"
        );
        release.store(true, Ordering::SeqCst);
        assert_eq!(
            StopReport(&[1]).to_string(),
            "rvmm: vCPU thread 1 did not stop within 2 s; exiting without it"
        );
        assert_eq!(
            StopReport(&[0, 3]).to_string(),
            "rvmm: vCPU threads 0, 3 did not stop within 2 s; exiting without them"
        );
    }

    #[test]
    fn a_dropped_handle_stops_the_vm_and_joins_its_thread() {
        install_kick_handler().unwrap();
        let control = Arc::new(VmControl::new().unwrap());
        let ended = Arc::new(AtomicBool::new(false));
        let (c, e) = (control.clone(), ended.clone());
        let h = handle(0, &control, move || {
            while !c.stopping() {
                std::thread::sleep(Duration::from_millis(1));
            }
            e.store(true, Ordering::SeqCst);
        });
        drop(h);
        assert!(control.stopping());
        assert_eq!(control.outcome(), Some(VmOutcome::Quit));
        assert!(ended.load(Ordering::SeqCst), "joined: the thread had ended");
    }

    #[test]
    fn guest_events_queue_in_order_and_are_bounded() {
        use std::os::fd::AsRawFd;
        let control = VmControl::new().unwrap();
        let readable = |c: &VmControl| {
            let mut fd = libc::pollfd {
                fd: c.guest_evt.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no wait.
            unsafe { libc::poll(&mut fd, 1, 0) == 1 }
        };
        assert!(!readable(&control));
        assert!(control.post_guest_event(GuestEvent::CpuEject { slot: 2 }));
        assert!(control.post_guest_event(GuestEvent::CpuOst {
            slot: 2,
            event: 3,
            status: 0
        }));
        assert!(readable(&control));
        assert_eq!(
            control.take_guest_events(),
            [
                GuestEvent::CpuEject { slot: 2 },
                GuestEvent::CpuOst {
                    slot: 2,
                    event: 3,
                    status: 0
                }
            ]
        );
        assert!(
            !readable(&control),
            "taking the events consumes the wake-up"
        );
        for slot in 0..GUEST_EVENT_QUEUE as u32 {
            assert!(control.post_guest_event(GuestEvent::CpuEject { slot }));
        }
        assert!(!control.post_guest_event(GuestEvent::CpuEject { slot: 0 }));
        assert_eq!(control.guest_events_dropped(), 1);
        assert_eq!(control.take_guest_events().len(), GUEST_EVENT_QUEUE);
    }

    /// An ejected vCPU's thread waits on its flag through pauses and resumes, and leaves
    /// when it is plugged again or the VM stops.
    #[test]
    fn an_ejected_vcpu_parks_until_replugged_or_stopped() {
        install_kick_handler().unwrap();
        let control = Arc::new(VmControl::new().unwrap());
        let parked_thread = |h: &VcpuHandle| {
            let (c, slot, done) = (
                control.clone(),
                h.slot.clone(),
                Arc::new(AtomicBool::new(false)),
            );
            let d = done.clone();
            let t = std::thread::spawn(move || {
                c.park_ejected(&slot.ejected);
                d.store(true, Ordering::SeqCst);
            });
            (t, done)
        };
        let h = handle(5, &control, || {});
        h.eject();
        assert!(h.is_ejected());
        let (t, done) = parked_thread(&h);
        control.request_pause();
        control.resume();
        assert!(!done.load(Ordering::SeqCst) || !h.is_ejected());
        h.replug();
        t.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
        assert!(!h.is_ejected());
        assert!(
            h.slot.reset.load(Ordering::SeqCst),
            "the thread resets it first"
        );

        h.eject();
        let (t, done) = parked_thread(&h);
        control.finish(VmOutcome::Quit);
        t.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
    }

    #[test]
    fn debug_exit_status_is_qemus() {
        assert_eq!(VmOutcome::DebugExit(0).exit_code(), 1);
        assert_eq!(VmOutcome::DebugExit(0x31).exit_code(), 0x63);
        assert_eq!(VmOutcome::DebugExit(0xffff_ffff).exit_code(), 0xff);
        assert_eq!(VmOutcome::Poweroff.exit_code(), 0);
    }
}
