//! The seccomp sandbox (`--sandbox on|off|log`): one allow-list filter per thread role,
//! no-new-privileges, and a SIGSYS handler that names the forbidden call.
//!
//! [`init`] runs once, early in `rvmm run`, on the main thread before any other thread
//! starts: it sets PR_SET_NO_NEW_PRIVS (inherited by every thread created afterwards),
//! compiles the five filters (so a compile error is a clean startup error), installs the
//! SIGSYS handler and records the mode. Each thread then calls [`apply`] with its role as
//! its first act, before it handles anything the guest or a client controls:
//!
//! | role | threads | where |
//! | --- | --- | --- |
//! | [`Role::Vcpu`] | `CPU N/KVM` | start of the vCPU thread, before the first KVM_RUN |
//! | [`Role::Control`] | `qmp-accept` (and `qmp-in-N` / `qmp-out-N`, which inherit it), `metrics` | start of the accept thread, of the metrics thread |
//! | [`Role::Main`] | the emulator thread (event loop, QMP commands) | after setup, before the event loop |
//! | [`Role::Io`] | preallocation workers, `console-out` | start of each worker; the console writer after blocking signals |
//! | [`Role::Migration`] | `migration` (the source's pre-copy) | start of the thread, which `rvmm run` starts dormant before the emulator thread applies [`Role::Main`]; it then waits for a `migrate` |
//!
//! A thread created by a filtered thread inherits its creator's filter (the kernel copies
//! it), so no thread of a running VM is unfiltered. A call outside the allow-list:
//! - `on`: SECCOMP_RET_TRAP, so the kernel sends SIGSYS; the handler writes
//!   `rvmm: seccomp: thread 'NAME' made a forbidden system call NR (NAME); exiting` to
//!   stderr with raw write(2) and ends the process with [`EXIT_FORBIDDEN`] (159 = 128 +
//!   SIGSYS, the status a shell shows for a process killed by SIGSYS).
//! - `log`: SECCOMP_RET_LOG, the call goes through and the kernel logs it (dmesg / audit:
//!   `type=1326 ... comm="CPU 0/KVM" ... syscall=41`), to find what a filter misses.
//! - `off`: no filter (no-new-privileges is still set).
//!
//! Without [`init`] (the library used by tests, `rvmm` commands other than `run`), the
//! mode is `off` and [`apply`] does nothing.

mod filters;
mod handler;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use seccompiler::BpfProgram;
use thiserror::Error;

pub use filters::{compile, Role};
pub use handler::syscall_name;

/// The exit status after a forbidden system call under `--sandbox on` (128 + SIGSYS).
pub const EXIT_FORBIDDEN: i32 = 128 + libc::SIGSYS;

/// The exit status when a thread could not install its filter (the process does not run
/// unfiltered code when the sandbox was asked for).
pub const EXIT_SETUP_FAILED: i32 = 1;

/// Test hook: `RVMM_SANDBOX_SELFTEST=<role>` (vcpu, control, main, io, migration) makes the
/// first thread of that role call socket(2) right after its filter is applied, with
/// arguments its filter forbids (every role but `migration` forbids socket(2) outright;
/// `migration` forbids a packet socket); tests use it to see a real thread of a real VM die
/// with the message.
pub const SELFTEST_ENV: &str = "RVMM_SANDBOX_SELFTEST";

/// `--sandbox`: whether and how the threads are filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Filters on; a forbidden call ends the process with a message.
    #[default]
    On,
    /// No filters.
    Off,
    /// Filters that let every call through and log those outside the allow-list.
    Log,
}

impl SandboxMode {
    /// Parses `on`, `off` or `log` (QEMU's `-sandbox on|off`, plus `log`).
    pub fn parse(s: &str) -> Result<SandboxMode, SandboxError> {
        match s {
            "on" => Ok(SandboxMode::On),
            "off" => Ok(SandboxMode::Off),
            "log" => Ok(SandboxMode::Log),
            _ => Err(SandboxError::BadMode(s.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::On => "on",
            SandboxMode::Off => "off",
            SandboxMode::Log => "log",
        }
    }
}

/// Why the sandbox could not be set up.
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("--sandbox: '{0}' is not a mode (expected on, off or log)")]
    BadMode(String),
    #[error("--sandbox: the sandbox was already set up (mode {0})")]
    AlreadySet(&'static str),
    #[error("--sandbox: setting no-new-privileges: {0}")]
    NoNewPrivs(#[source] std::io::Error),
    #[error("--sandbox: building the {role} filter: {reason}")]
    Compile { role: &'static str, reason: String },
    #[error("--sandbox: installing the SIGSYS handler: {0}")]
    Handler(#[source] std::io::Error),
    #[error(
        "--sandbox {mode}: the kernel does not support seccomp filters ({source}); \
         use --sandbox off to run without them"
    )]
    Unsupported {
        mode: &'static str,
        source: std::io::Error,
    },
    #[error("--sandbox: applying the {role} filter: {reason}")]
    Apply { role: &'static str, reason: String },
}

struct State {
    mode: SandboxMode,
    /// One compiled program per role, indexed by `Role as usize`.
    programs: Vec<BpfProgram>,
    selftest: Option<Role>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// The mode [`init`] set, or `off` before (and without) it.
pub fn mode() -> SandboxMode {
    STATE.get().map_or(SandboxMode::Off, |s| s.mode)
}

/// Sets PR_SET_NO_NEW_PRIVS on this thread (threads created later inherit it).
pub fn set_no_new_privs() -> Result<(), SandboxError> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(SandboxError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Sets up the sandbox for this process: call once, from the main thread, before any
/// other thread starts. No-new-privileges is set in every mode.
pub fn init(mode: SandboxMode) -> Result<(), SandboxError> {
    if let Some(s) = STATE.get() {
        return Err(SandboxError::AlreadySet(s.mode.as_str()));
    }
    set_no_new_privs()?;
    let mut programs = Vec::new();
    if mode != SandboxMode::Off {
        check_kernel(mode)?;
        for role in Role::ALL {
            programs.push(compile(role, mode)?);
        }
        if mode == SandboxMode::On {
            handler::install().map_err(SandboxError::Handler)?;
        }
    }
    let selftest = std::env::var(SELFTEST_ENV)
        .ok()
        .and_then(|v| Role::ALL.into_iter().find(|r| r.name() == v));
    STATE
        .set(State {
            mode,
            programs,
            selftest,
        })
        .map_err(|s| SandboxError::AlreadySet(s.mode.as_str()))
}

/// Whether the kernel has seccomp filters (PR_GET_SECCOMP fails with EINVAL without
/// CONFIG_SECCOMP).
fn check_kernel(mode: SandboxMode) -> Result<(), SandboxError> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    if rc < 0 {
        return Err(SandboxError::Unsupported {
            mode: mode.as_str(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Installs `role`'s filter on the calling thread, as the mode set by [`init`] says;
/// nothing when the mode is `off` or [`init`] was not called.
pub fn try_apply(role: Role) -> Result<(), SandboxError> {
    let Some(state) = STATE.get() else {
        return Ok(());
    };
    if state.mode == SandboxMode::Off {
        return Ok(());
    }
    seccompiler::apply_filter(&state.programs[role as usize]).map_err(|e| SandboxError::Apply {
        role: role.name(),
        reason: e.to_string(),
    })?;
    if state.selftest == Some(role) {
        selftest_forbidden_call();
    }
    Ok(())
}

/// The hook every thread calls as its first act: [`try_apply`], and if the filter cannot be
/// installed, one line on stderr and exit status [`EXIT_SETUP_FAILED`] — a thread that was
/// to be filtered never runs without its filter.
pub fn apply(role: Role) {
    if let Err(e) = try_apply(role) {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        eprintln!("rvmm: thread '{name}': {e}");
        // SAFETY: _exit ends the process at once; no Rust state is used after it.
        unsafe { libc::_exit(EXIT_SETUP_FAILED) };
    }
}

/// The self-test's forbidden call: socket(2), which no role's filter allows with these
/// arguments.
fn selftest_forbidden_call() {
    // SAFETY: socket takes integer arguments; a descriptor it returns (if the filter let it
    // through) is closed at once.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}
