//! Running one VMM process and timing it from outside: when each guest serial line reached
//! its stdout, when it exited, its peak RSS; and, under ptrace, its memory at the moment it
//! exits (after the guest is done, before the kernel frees anything).
//!
//! The clock starts just before `spawn` (fork + exec are part of a VMM's start cost, and the
//! same for both VMMs). A thread reads stdout and stamps each complete line when `read`
//! returns it. The exit time is when `waitid(WNOWAIT)` reports the child gone, so a watchdog
//! that kills a hung child can never hit a recycled PID: the zombie holds it until we reap.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::smaps::{self, GuestRamUse, SmapsError};

/// Why a VMM run could not be measured.
#[derive(Debug, Error)]
pub enum MeasureError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program}: {call} failed: {source}")]
    Sys {
        program: String,
        call: &'static str,
        source: std::io::Error,
    },
    #[error("{program} ran longer than {limit:?} and was killed; its output was:\n{output}")]
    Timeout {
        program: String,
        limit: Duration,
        output: String,
    },
    #[error(
        "{program} exited without printing {expected:?} ({status}); its output was:\n{output}"
    )]
    MissingLine {
        program: String,
        expected: String,
        status: String,
        output: String,
    },
    #[error("{program}: {status}; its output was:\n{output}")]
    Failed {
        program: String,
        status: String,
        output: String,
    },
    #[error("{program}: the exit stop never came (was the process traced?)")]
    NoExitStop { program: String },
    #[error("{program}: {source}")]
    Smaps { program: String, source: SmapsError },
}

/// One line of guest serial output and when it reached the VMM's stdout.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Duration,
    pub text: String,
}

/// How a process ended, as wait(2) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signalled(i32),
}

impl Ending {
    fn from_wait_status(status: i32) -> Ending {
        if libc::WIFSIGNALED(status) {
            Ending::Signalled(libc::WTERMSIG(status))
        } else {
            Ending::Exited(libc::WEXITSTATUS(status))
        }
    }
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Exited(c) => write!(f, "exit status {c}"),
            Ending::Signalled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// What one timed run saw.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// Complete stdout lines with their arrival times (from just before spawn).
    pub lines: Vec<Line>,
    /// When the process was gone.
    pub exit: Duration,
    pub ending: Ending,
    /// Peak resident set (getrusage ru_maxrss), KiB. Not the VMM's own peak when it is
    /// small: std spawns with vfork semantics, and exec records the spawning process's
    /// peak (ours, ~3.6 MiB) into ru_maxrss; `memory_at_exit` reads the VMM's own VmHWM.
    pub max_rss_kib: u64,
    /// stderr, for error messages.
    pub stderr: String,
}

impl RunRecord {
    /// The arrival time of the first line that starts with `prefix`.
    pub fn line_at(&self, prefix: &str) -> Option<Duration> {
        self.lines
            .iter()
            .find(|l| l.text.starts_with(prefix))
            .map(|l| l.at)
    }

    /// The first line's arrival time.
    pub fn first_line(&self) -> Option<Duration> {
        self.lines.first().map(|l| l.at)
    }

    /// stdout and stderr for an error message (the last lines only).
    pub fn output(&self) -> String {
        let mut all: Vec<&str> = self.lines.iter().map(|l| l.text.as_str()).collect();
        all.extend(self.stderr.lines());
        let skip = all.len().saturating_sub(12);
        all[skip..].join("\n")
    }
}

/// The program name of a command, for messages.
pub fn program(cmd: &Command) -> String {
    std::path::Path::new(cmd.get_program())
        .file_name()
        .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned())
}

fn sys_err(cmd: &Command, call: &'static str) -> MeasureError {
    MeasureError::Sys {
        program: program(cmd),
        call,
        source: std::io::Error::last_os_error(),
    }
}

fn read_lines(mut r: impl Read + Send + 'static, start: Instant) -> JoinHandle<Vec<Line>> {
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut partial: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let at = start.elapsed();
                    for &b in &buf[..n] {
                        if b == b'\n' {
                            let text = String::from_utf8_lossy(&partial)
                                .trim_end_matches('\r')
                                .to_string();
                            lines.push(Line { at, text });
                            partial.clear();
                        } else {
                            partial.push(b);
                        }
                    }
                }
            }
        }
        if !partial.is_empty() {
            lines.push(Line {
                at: start.elapsed(),
                text: String::from_utf8_lossy(&partial).into_owned(),
            });
        }
        lines
    })
}

fn read_text(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    })
}

/// Kills `pid` unless told to stand down within `limit`. Returns the sender that stands it
/// down and the thread (true when it killed).
fn watchdog(pid: i32, limit: Duration) -> (mpsc::Sender<()>, JoinHandle<bool>) {
    let (tx, rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || match rx.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // SAFETY: kill has no memory preconditions; the child is not reaped yet (the
            // caller reaps only after this thread is joined), so the PID is still ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        }
        _ => false,
    });
    (tx, t)
}

/// Waits until `pid` has exited without reaping it (the zombie keeps the PID ours).
fn wait_exited_nowait(pid: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid output buffer for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waiting on our own child with a valid siginfo buffer.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reaps `pid`, returning its wait status and peak RSS in KiB.
fn reap(pid: i32) -> std::io::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid output buffer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: reaping our own child into valid buffers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage.ru_maxrss.max(0) as u64));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Runs `cmd` to its end (killing it after `limit`) and records its lines, exit and peak RSS.
pub fn run(cmd: &mut Command, limit: Duration) -> Result<RunRecord, MeasureError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|source| MeasureError::Spawn {
        program: program(cmd),
        source,
    })?;
    let pid = child.id() as i32;
    let out = read_lines(child.stdout.take().expect("stdout is piped"), start);
    let err = read_text(child.stderr.take().expect("stderr is piped"));
    let (stand_down, dog) = watchdog(pid, limit);
    let waited = wait_exited_nowait(pid);
    let exit = start.elapsed();
    let _ = stand_down.send(());
    let killed = dog.join().unwrap_or(false);
    let reaped = reap(pid);
    let record = RunRecord {
        lines: out.join().unwrap_or_default(),
        exit,
        ending: Ending::Exited(0),
        max_rss_kib: 0,
        stderr: err.join().unwrap_or_default(),
    };
    waited.map_err(|source| MeasureError::Sys {
        program: program(cmd),
        call: "waitid",
        source,
    })?;
    let (status, max_rss_kib) = reaped.map_err(|source| MeasureError::Sys {
        program: program(cmd),
        call: "wait4",
        source,
    })?;
    if killed {
        return Err(MeasureError::Timeout {
            program: program(cmd),
            limit,
            output: record.output(),
        });
    }
    Ok(RunRecord {
        ending: Ending::from_wait_status(status),
        max_rss_kib,
        ..record
    })
}

/// Runs `cmd` and checks that it printed a line starting with `expected` and ended with one
/// of the `ok` exit statuses.
pub fn run_expecting(
    cmd: &mut Command,
    expected: &str,
    ok: &[i32],
    limit: Duration,
) -> Result<RunRecord, MeasureError> {
    let r = run(cmd, limit)?;
    if r.line_at(expected).is_none() {
        return Err(MeasureError::MissingLine {
            program: program(cmd),
            expected: expected.into(),
            status: r.ending.to_string(),
            output: r.output(),
        });
    }
    if !matches!(r.ending, Ending::Exited(c) if ok.contains(&c)) {
        return Err(MeasureError::Failed {
            program: program(cmd),
            status: r.ending.to_string(),
            output: r.output(),
        });
    }
    Ok(r)
}

/// A VMM's memory as the process exits: read at its main thread's PTRACE_EVENT_EXIT stop,
/// when the guest has done all it will do; the guest RAM part is read just before the main
/// thread unmaps it, if it does (rvmm does; QEMU leaves it to the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitMemory {
    /// Peak resident set (VmHWM), KiB.
    pub hwm_kib: u64,
    /// Peak resident set as `wait4` reports it (ru_maxrss), KiB: the VMM's own peak, since
    /// the traced child is forked (not vforked), so what exec records for the pre-exec
    /// address space is the child's copy of the bench's anonymous pages, not the bench's
    /// whole peak.
    pub maxrss_kib: u64,
    /// Resident set at exit (VmRSS), KiB, and its anonymous and file-backed parts.
    pub rss_kib: u64,
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
    /// The guest RAM mappings and how much of them is resident.
    pub guest: GuestRamUse,
}

impl ExitMemory {
    /// Peak RSS minus the guest RAM the guest (and the VMM loading it) touched, KiB.
    pub fn overhead_kib(&self) -> u64 {
        self.hwm_kib.saturating_sub(self.guest.rss_kib)
    }
}

const PTRACE_EXIT_EVENT_STATUS: i32 = libc::SIGTRAP | (libc::PTRACE_EVENT_EXIT << 8);

/// Runs `cmd` traced (its main thread only), reads /proc/PID/status and /proc/PID/smaps at
/// its exit stop, and checks it printed `expected`. `guest_bytes` is the guest RAM size,
/// used to pick the guest RAM mappings out of smaps.
pub fn memory_at_exit(
    cmd: &mut Command,
    expected: &str,
    guest_bytes: u64,
    limit: Duration,
) -> Result<ExitMemory, MeasureError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and only makes one
    // async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|source| MeasureError::Spawn {
        program: program(cmd),
        source,
    })?;
    let pid = child.id() as i32;
    let out = read_lines(child.stdout.take().expect("stdout is piped"), start);
    let err = read_text(child.stderr.take().expect("stderr is piped"));
    let (stand_down, dog) = watchdog(pid, limit);
    let traced = trace_to_exit(pid, cmd);
    let _ = stand_down.send(());
    let killed = dog.join().unwrap_or(false);
    let lines = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let record = RunRecord {
        lines,
        exit: start.elapsed(),
        ending: Ending::Exited(0),
        max_rss_kib: 0,
        stderr,
    };
    if killed {
        return Err(MeasureError::Timeout {
            program: program(cmd),
            limit,
            output: record.output(),
        });
    }
    let (texts, status, maxrss_kib) = traced?;
    let ending = Ending::from_wait_status(status);
    if record.line_at(expected).is_none() {
        return Err(MeasureError::MissingLine {
            program: program(cmd),
            expected: expected.into(),
            status: ending.to_string(),
            output: record.output(),
        });
    }
    let Some((status_text, smaps_text)) = texts else {
        return Err(MeasureError::NoExitStop {
            program: program(cmd),
        });
    };
    let field = |name: &str| smaps::status_kib(&status_text, name);
    let smaps_err = |source| MeasureError::Smaps {
        program: program(cmd),
        source,
    };
    Ok(ExitMemory {
        hwm_kib: field("VmHWM").map_err(smaps_err)?,
        maxrss_kib,
        rss_kib: field("VmRSS").map_err(smaps_err)?,
        rss_anon_kib: field("RssAnon").map_err(smaps_err)?,
        rss_file_kib: field("RssFile").map_err(smaps_err)?,
        guest: smaps::guest_ram(&smaps_text, guest_bytes).map_err(smaps_err)?,
    })
}

type ProcTexts = Option<(String, String)>;

fn read_proc(pid: i32) -> ProcTexts {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let sm = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    Some((st, sm))
}

/// Syscall stops are reported with this bit on SIGTRAP (PTRACE_O_TRACESYSGOOD).
const SYSCALL_STOP: i32 = libc::SIGTRAP | 0x80;

/// Drives a PTRACE_TRACEME child to its end. At the exec stop it asks for exit and syscall
/// stops; at the main thread's first `munmap` of at least [`smaps::GUEST_MAPPING_MIN_KIB`]
/// (rvmm unmaps guest RAM before it exits) and at the exit stop it reads /proc; every
/// other signal is passed on. Returns (/proc at the first big munmap or else at exit,
/// status at exit), the final wait status and ru_maxrss in KiB. Only the main thread is
/// traced.
fn trace_to_exit(pid: i32, cmd: &Command) -> Result<(ProcTexts, i32, u64), MeasureError> {
    let mut before_unmap: ProcTexts = None;
    let mut at_exit: ProcTexts = None;
    let mut options_set = false;
    loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid output buffer.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting on our own traced child into valid buffers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(sys_err(cmd, "wait4"));
        }
        if !libc::WIFSTOPPED(status) {
            // Peak RSS from the exit stop, guest RAM from before the first big munmap.
            let texts = match (before_unmap, at_exit) {
                (Some((_, smaps)), Some((st, _))) => Some((st, smaps)),
                (None, at_exit) => at_exit,
                (Some(b), None) => Some(b),
            };
            return Ok((texts, status, usage.ru_maxrss.max(0) as u64));
        }
        let mut deliver = 0;
        let mut resume = libc::PTRACE_SYSCALL;
        if !options_set && libc::WSTOPSIG(status) == libc::SIGTRAP {
            // The stop after exec: from now on, stop at exit and at syscalls too (tagged),
            // and kill the child should we die.
            let opts =
                libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL | libc::PTRACE_O_TRACESYSGOOD;
            // SAFETY: our tracee is in a ptrace stop.
            if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts) } != 0 {
                return Err(sys_err(cmd, "PTRACE_SETOPTIONS"));
            }
            options_set = true;
        } else if status >> 8 == PTRACE_EXIT_EVENT_STATUS {
            at_exit = read_proc(pid);
            resume = libc::PTRACE_CONT;
        } else if libc::WSTOPSIG(status) == SYSCALL_STOP {
            if before_unmap.is_none() && is_big_munmap_entry(pid) {
                before_unmap = read_proc(pid);
            }
        } else {
            deliver = libc::WSTOPSIG(status);
        }
        // SAFETY: our tracee is in a ptrace stop; resume it, passing `deliver` on.
        if unsafe { libc::ptrace(resume, pid, 0, deliver) } != 0 {
            return Err(sys_err(cmd, "PTRACE_SYSCALL"));
        }
    }
}

/// At a syscall stop: is this the entry of a munmap of a guest-RAM-sized range?
fn is_big_munmap_entry(pid: i32) -> bool {
    // SAFETY: a zeroed user_regs_struct is a valid output buffer.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: our tracee is in a syscall stop; GETREGS fills our buffer.
    if unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            pid,
            0,
            &mut regs as *mut libc::user_regs_struct,
        )
    } != 0
    {
        return false;
    }
    // x86-64: at syscall entry rax reads -ENOSYS and orig_rax is the number; rsi is the
    // second argument (munmap's length).
    let entry = regs.rax as i64 == -i64::from(libc::ENOSYS);
    entry
        && regs.orig_rax == libc::SYS_munmap as u64
        && regs.rsi >> 10 >= smaps::GUEST_MAPPING_MIN_KIB
}
