//! The controlling terminal while a guest's serial console is attached: raw mode, restored
//! on every exit path (the guard's Drop), and QEMU's `Ctrl-A x` escape to quit.

/// Ctrl-A, the escape character, as in QEMU's -nographic mode.
pub const ESCAPE: u8 = 0x01;

/// Puts a terminal in raw mode and restores it when dropped.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    /// Raw mode for `fd` if it is a terminal; `None` otherwise.
    pub fn enter(fd: i32) -> Option<RawMode> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(fd) } != 1 {
            return None;
        }
        // SAFETY: zeroed termios is a valid buffer for tcgetattr to fill.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a terminal and `saved` a valid termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw only edits the struct we pass.
        unsafe { libc::cfmakeraw(&mut raw) };
        // Keep output post-processing so our own messages print normally.
        raw.c_oflag |= libc::OPOST;
        // SAFETY: fd is a terminal and `raw` a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes we read from the same descriptor.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// What a chunk of keyboard input means.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EscapeState {
    pending: bool,
}

/// Result of filtering input through the escape handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes for the guest.
    Guest(Vec<u8>),
    /// The user typed Ctrl-A x: bytes before it still go to the guest.
    Quit(Vec<u8>),
}

impl EscapeState {
    /// Filters `bytes`: Ctrl-A x quits, Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A followed by
    /// anything else is dropped with the escape.
    pub fn filter(&mut self, bytes: &[u8]) -> Input {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.pending {
                self.pending = false;
                match b {
                    b'x' | b'X' => return Input::Quit(out),
                    ESCAPE => out.push(ESCAPE),
                    _ => {}
                }
            } else if b == ESCAPE {
                self.pending = true;
            } else {
                out.push(b);
            }
        }
        Input::Guest(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences() {
        let mut s = EscapeState::default();
        assert_eq!(s.filter(b"ls\r"), Input::Guest(b"ls\r".to_vec()));
        assert_eq!(s.filter(b"a\x01x"), Input::Quit(b"a".to_vec()));
        let mut s = EscapeState::default();
        assert_eq!(s.filter(b"\x01"), Input::Guest(vec![]));
        assert_eq!(s.filter(b"\x01b"), Input::Guest(vec![1, b'b']));
        assert_eq!(s.filter(b"\x01c"), Input::Guest(vec![]));
    }
}
