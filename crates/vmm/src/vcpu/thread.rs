//! One thread per vCPU running the KVM_RUN loop, and how the VMM stops them.
//!
//! A kick is `immediate_exit` plus a signal: the signal handler sets `kvm_run.immediate_exit`
//! through a thread-local pointer, so a kick that lands just before KVM_RUN still makes it
//! return at once (KVM API docs, "immediate_exit"). The loop then sees the stop flag.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kvm_bindings::kvm_run;
use kvm_ioctls::VcpuFd;
use vmm_sys_util::eventfd::EventFd;

use super::dump::format_registers;
use super::exit::{handle_exit, ExitAction, VcpuFault};
use crate::devices::{Bus, GuestEvent};

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmOutcome {
    /// The guest powered off (ACPI S5 or the debug-exit port).
    Poweroff,
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
    /// The process exit status: 0 for orderly ends, 1 for faults.
    pub fn exit_code(&self) -> i32 {
        match self {
            VmOutcome::Fault { .. } => 1,
            _ => 0,
        }
    }
}

/// State shared by the VMM thread and every vCPU thread.
pub struct VmControl {
    stop: AtomicBool,
    outcome: Mutex<Option<VmOutcome>>,
    /// Signalled when the VM should stop; the emulator thread polls it.
    pub stop_evt: EventFd,
}

impl VmControl {
    pub fn new() -> std::io::Result<Self> {
        Ok(VmControl {
            stop: AtomicBool::new(false),
            outcome: Mutex::new(None),
            stop_evt: EventFd::new(libc::EFD_NONBLOCK)?,
        })
    }

    /// Records why the VM ends (the first reason wins) and wakes the VMM thread.
    pub fn finish(&self, outcome: VmOutcome) {
        let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        if o.is_none() {
            *o = Some(outcome);
        }
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.stop_evt.write(1);
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

/// A running vCPU thread.
pub struct VcpuHandle {
    pub index: u32,
    thread: Option<JoinHandle<()>>,
    /// The thread's kernel TID (0 until the thread has started).
    pub tid: Arc<AtomicI32>,
}

impl VcpuHandle {
    /// Interrupts KVM_RUN on this vCPU.
    pub fn kick(&self) {
        if let Some(t) = &self.thread {
            use std::os::unix::thread::JoinHandleExt;
            // SAFETY: the pthread is alive until joined (we join only in `join`).
            unsafe { libc::pthread_kill(t.as_pthread_t(), kick_signal()) };
        }
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Spawns the thread for vCPU `index`, named as QEMU names them (`CPU N/KVM`).
pub fn spawn(
    index: u32,
    mut vcpu: VcpuFd,
    bus: Arc<Bus>,
    control: Arc<VmControl>,
) -> std::io::Result<VcpuHandle> {
    let tid = Arc::new(AtomicI32::new(0));
    let tid2 = tid.clone();
    let thread = std::thread::Builder::new()
        .name(format!("CPU {index}/KVM"))
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid2.store(unsafe { libc::gettid() }, Ordering::SeqCst);
            KVM_RUN_PTR.with(|c| c.set(vcpu.get_kvm_run() as *mut kvm_run));
            run_loop(index, &mut vcpu, &bus, &control);
            KVM_RUN_PTR.with(|c| c.set(std::ptr::null_mut()));
        })?;
    Ok(VcpuHandle {
        index,
        thread: Some(thread),
        tid,
    })
}

fn run_loop(index: u32, vcpu: &mut VcpuFd, bus: &Bus, control: &VmControl) {
    while !control.stopping() {
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
