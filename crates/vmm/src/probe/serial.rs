//! The probe guest's side of COM1: a serial sink that keeps the guest's output, optionally
//! echoes it to stdout (`--raw`), and wakes the emulator thread each time a line with a
//! `PROBE-` marker completes, so the dump can be decoded while the VM still runs.
//!
//! The VMM knows nothing of the markers: it is given the sink ([`ProbeCapture::sink`]) as
//! COM1's output and the wake-up eventfd ([`ProbeCapture::marker`]) to watch.

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

/// The text that starts every line of the probe's dump protocol.
pub const MARKER: &[u8] = b"PROBE-";

/// Whether captured output also goes to stdout as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Stdout,
    Quiet,
}

struct Shared {
    buffer: Mutex<Vec<u8>>,
    marker: EventFd,
    echo: Echo,
}

/// The probe's serial output, shared by the sink (written on vCPU threads) and the reader.
#[derive(Clone)]
pub struct ProbeCapture {
    shared: Arc<Shared>,
}

impl ProbeCapture {
    pub fn new(echo: Echo) -> std::io::Result<ProbeCapture> {
        Ok(ProbeCapture {
            shared: Arc::new(Shared {
                buffer: Mutex::new(Vec::new()),
                marker: EventFd::new(libc::EFD_NONBLOCK)?,
                echo,
            }),
        })
    }

    /// The writer to give COM1.
    pub fn sink(&self) -> Box<dyn Write + Send> {
        Box::new(self.clone())
    }

    /// Readable each time a `PROBE-` line completes; [`ProbeCapture::clear_marker`] resets it.
    pub fn marker(&self) -> RawFd {
        self.shared.marker.as_raw_fd()
    }

    /// Consumes the pending marker wake-ups.
    pub fn clear_marker(&self) {
        let _ = self.shared.marker.read();
    }

    /// Everything the guest wrote so far.
    pub fn output(&self) -> Vec<u8> {
        self.shared
            .buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Write for ProbeCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = &self.shared;
        let mut b = s.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let line_start = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        b.extend_from_slice(buf);
        let marked =
            buf.contains(&b'\n') && b[line_start..].windows(MARKER.len()).any(|w| w == MARKER);
        drop(b);
        // Echo first, then wake the reader: what it prints after a marker must come after
        // the marker line on stdout, never in the middle of it.
        let echoed = match s.echo {
            Echo::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf).and_then(|()| out.flush())
            }
            Echo::Quiet => Ok(()),
        };
        if marked {
            let _ = s.marker.write(1);
        }
        echoed.map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::serial::{com1, SerialOutput};

    fn marked(capture: &ProbeCapture) -> bool {
        let mut v = [0u8; 8];
        // SAFETY: reading 8 bytes from our own non-blocking eventfd into a buffer of 8.
        unsafe { libc::read(capture.marker(), v.as_mut_ptr().cast(), 8) == 8 }
    }

    #[test]
    fn capture_signals_on_probe_lines() {
        let capture = ProbeCapture::new(Echo::Quiet).unwrap();
        let mut uart = com1(
            EventFd::new(libc::EFD_NONBLOCK).unwrap(),
            SerialOutput::To(capture.sink()),
        );
        for &b in b"hello\n" {
            uart.write(0, b).unwrap();
        }
        assert!(!marked(&capture), "no PROBE line yet");
        for &b in b"PROBE-END cpus=1\n" {
            uart.write(0, b).unwrap();
        }
        assert!(marked(&capture));
        assert_eq!(capture.output(), b"hello\nPROBE-END cpus=1\n");
    }
}
