//! Where the commands' results and messages go: stdout writes that return their errors (a
//! full disk, a closed pipe) instead of panicking as `print!` does, stderr lines that cannot
//! fail the command, and what a closed stdout pipe does to each command.
//!
//! SIGPIPE. Rust starts every program with SIGPIPE ignored, so a write to a closed pipe
//! returns EPIPE. The commands that only print (`host`, `cpu-*`, `probe`, `run --dry-run`,
//! `--help`) put back the default, as Unix tools do: `rvmm cpu-models | head -1` ends quietly
//! by SIGPIPE. Commands that talk over sockets keep it ignored, because a peer closing its end
//! must be an error to handle, not the end of rvmm: `rvmm run` (its QMP server writes to
//! clients that may leave at any time, and a VM must not die with its console reader) and the
//! QMP client commands (`qmp`, `vcpuinfo`, `vcpupin`, `emulatorpin`, `setvcpus`,
//! `vcpucount`, `stats`, `top`, `advise`, `schedinfo`). For those a closed stdout is reported as one error line (`rvmm: writing to
//! stdout: Broken pipe`), exit 1.

use std::io::Write;

use anyhow::{anyhow, Result};

/// An I/O error as one short phrase: "No space left on device", without " (os error 28)".
fn phrase(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map(str::to_string)
            .unwrap_or(text),
        None => text,
    }
}

/// The error a failed stdout write ends the command with.
pub fn stdout_error(e: &std::io::Error) -> anyhow::Error {
    anyhow!("writing to stdout: {}", phrase(e))
}

/// Writes `text` to stdout and flushes it; a failure is the command's error.
pub fn write_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| stdout_error(&e))
}

/// One line on stderr. If stderr itself cannot be written there is nowhere left to say so:
/// the line is dropped (never a panic, as `eprintln!` would).
pub fn err_line(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(format!("{line}\n").as_bytes());
}

/// What a write to a closed pipe does to this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigPipe {
    /// Die quietly by SIGPIPE (the commands that only print).
    Default,
    /// Get EPIPE (the commands with sockets).
    Ignore,
}

/// Sets SIGPIPE's disposition.
pub fn set_sigpipe(how: SigPipe) {
    let handler = match how {
        SigPipe::Default => libc::SIG_DFL,
        SigPipe::Ignore => libc::SIG_IGN,
    };
    // SAFETY: SIG_DFL and SIG_IGN are valid dispositions for SIGPIPE; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, handler);
    }
}

/// `print!` that returns the write's error (use with `?`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!($($arg)*))
    };
}

/// `println!` that returns the write's error (use with `?`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that cannot panic.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::err_line(&format!($($arg)*))
    };
}

pub(crate) use {errln, out, outln};
