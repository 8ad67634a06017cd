//! The terminal of interactive `rvmm top`: the alternate screen with keys read one at a
//! time (termios through libc), its size, and waiting for a key, a signal or a timeout.
//!
//! [`Terminal`] puts everything back when dropped: the termios settings, the cursor and the
//! normal screen. It is dropped on every way out of `rvmm top`: `q`, an error (the VM
//! ending), and SIGINT, SIGTERM and SIGHUP, which only set a flag here (their handlers do
//! nothing else) so that the loop returns normally and the drop runs.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use thiserror::Error;

/// Why the terminal cannot be used.
#[derive(Debug, Error)]
pub enum TermError {
    #[error("interactive mode needs a terminal on stdin and stdout (use --batch for plain text)")]
    NotATerminal,
    #[error("{what}: {error}")]
    Io {
        what: &'static str,
        error: std::io::Error,
    },
}

fn last_error(what: &'static str) -> TermError {
    TermError::Io {
        what,
        error: std::io::Error::last_os_error(),
    }
}

/// The last of SIGINT/SIGTERM/SIGHUP received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether SIGWINCH arrived since the last look.
static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signo: libc::c_int) {
    if signo == libc::SIGWINCH {
        RESIZED.store(true, Ordering::SeqCst);
    } else {
        SIGNAL.store(signo, Ordering::SeqCst);
    }
}

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Installs the flag-setting handler for `signo`, without SA_RESTART so that a waiting
/// poll(2) returns at once.
fn catch(signo: libc::c_int) -> Result<(), TermError> {
    // SAFETY: a zeroed sigaction is a valid start (empty mask, no flags); the handler only
    // stores to atomics, which is async-signal-safe.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signo, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(last_error("sigaction"));
    }
    Ok(())
}

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The time passed.
    Timeout,
    /// A key (the first byte of what was read; escape sequences are dropped).
    Key(u8),
    /// SIGINT, SIGTERM or SIGHUP.
    Signal(i32),
    /// The terminal changed size.
    Resized,
    /// The terminal went away (end of input).
    Closed,
}

/// The terminal in top's mode; dropping it restores the terminal.
pub struct Terminal {
    saved: libc::termios,
}

fn is_tty(fd: libc::c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn write_all(text: &str) -> Result<(), TermError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|error| TermError::Io {
            what: "writing to the terminal",
            error,
        })
}

impl Terminal {
    /// Switches to the alternate screen with keys read unbuffered and unechoed, and
    /// catches the signals that end top.
    pub fn enter() -> Result<Terminal, TermError> {
        if !is_tty(libc::STDIN_FILENO) || !is_tty(libc::STDOUT_FILENO) {
            return Err(TermError::NotATerminal);
        }
        // SAFETY: tcgetattr fills a termios for a terminal descriptor; zeroed is a valid
        // value to pass it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: see above; `saved` is a valid termios to write.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return Err(last_error("tcgetattr"));
        }
        for s in STOP_SIGNALS {
            catch(s)?;
        }
        catch(libc::SIGWINCH)?;
        let mut raw = saved;
        // Keys one at a time, not echoed; ^C still raises SIGINT (caught above).
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 0;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: sets stdin's terminal attributes from a termios tcgetattr filled.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return Err(last_error("tcsetattr"));
        }
        let term = Terminal { saved };
        // Alternate screen, cursor hidden.
        write_all("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J")?;
        Ok(term)
    }

    /// Columns and rows (80×24 when the terminal does not say).
    pub fn size(&self) -> (usize, usize) {
        // SAFETY: zeroed is a valid winsize; TIOCGWINSZ writes one.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ on a descriptor with a valid winsize pointer.
        let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
        if rc != 0 || ws.ws_col == 0 || ws.ws_row == 0 {
            return (80, 24);
        }
        (usize::from(ws.ws_col), usize::from(ws.ws_row))
    }

    /// Replaces the screen with `lines` (already cut to the width; cut here to the height).
    pub fn draw(&self, lines: &[String]) -> Result<(), TermError> {
        let (_, rows) = self.size();
        let mut text = String::from("\x1b[H");
        for (i, line) in lines.iter().take(rows).enumerate() {
            if i > 0 {
                text.push_str("\r\n");
            }
            text.push_str(line);
            text.push_str("\x1b[K");
        }
        text.push_str("\x1b[J");
        write_all(&text)
    }

    /// Waits up to `limit` for a key, a signal or a resize.
    pub fn wait(&self, limit: Duration) -> Result<Input, TermError> {
        if let Some(input) = pending() {
            return Ok(input);
        }
        let mut fd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: polls one valid pollfd.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                return Ok(pending().unwrap_or(Input::Timeout));
            }
            return Err(TermError::Io {
                what: "poll",
                error,
            });
        }
        if n == 0 {
            return Ok(Input::Timeout);
        }
        let mut buf = [0u8; 64];
        // SAFETY: reads at most buf.len() bytes into buf.
        let got = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        match got {
            0 => Ok(Input::Closed),
            g if g < 0 => {
                let error = std::io::Error::last_os_error();
                match error.kind() {
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => {
                        Ok(pending().unwrap_or(Input::Timeout))
                    }
                    _ => Err(TermError::Io {
                        what: "reading the terminal",
                        error,
                    }),
                }
            }
            // An escape sequence (arrow keys, ...) is not a key of ours.
            _ if buf[0] == 0x1b => Ok(Input::Timeout),
            _ => Ok(Input::Key(buf[0])),
        }
    }
}

/// A signal or resize that arrived meanwhile.
fn pending() -> Option<Input> {
    let signo = SIGNAL.load(Ordering::SeqCst);
    if signo != 0 {
        return Some(Input::Signal(signo));
    }
    if RESIZED.swap(false, Ordering::SeqCst) {
        return Some(Input::Resized);
    }
    None
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // Nothing is left to report a failure to: the terminal is what failed.
        let _ = write_all("\x1b[?25h\x1b[?1049l");
        // SAFETY: puts back the attributes read in enter().
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}
