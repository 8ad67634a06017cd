//! The probe guest's side of COM1: a serial sink that keeps the guest's output, optionally
//! echoes it to stdout (`--raw`), and wakes the emulator thread each time a line with a
//! `PROBE-` marker completes, so the dump can be decoded while the VM still runs.
//!
//! The VMM knows nothing of the markers: it is given the sink ([`ProbeCapture::sink`]) as
//! COM1's output and the wake-up eventfd ([`ProbeCapture::marker`]) to watch.
//!
//! The sink runs on vCPU threads, one byte per call, so it never blocks and never costs more
//! than the bytes it is given: the echo goes through the console buffer
//! (`devices::console`), the marker scan resumes where the last call stopped (a guest line
//! of any length costs linear time), and at most [`CAPTURE_LIMIT`] bytes are kept (a
//! guest that prints forever cannot exhaust host memory; what is beyond is counted).

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use crate::devices::console::{self, ConsoleOut};

/// The text that starts every line of the probe's dump protocol.
pub const MARKER: &[u8] = b"PROBE-";

/// How much guest output a capture keeps (a dump of the largest VM is a few MiB).
pub const CAPTURE_LIMIT: usize = 64 << 20;

/// The longest line the echo holds back before it lets it out unfinished.
const ECHO_LINE_MAX: usize = 4096;

/// Whether captured output also goes to stdout as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    Stdout,
    Quiet,
}

/// The captured bytes and where the marker scan stands.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    /// Where the current (unfinished) line starts.
    line_start: usize,
    /// Bytes before this have been looked at.
    scanned: usize,
    /// The current line holds the marker.
    line_marked: bool,
    /// Bytes beyond [`CAPTURE_LIMIT`], not kept.
    dropped: u64,
    /// The echo's unfinished line, held back until its newline (or [`ECHO_LINE_MAX`] bytes)
    /// so that what the reader prints between two lines never lands inside one.
    echo_line: Vec<u8>,
}

impl Captured {
    /// Appends `buf` (up to the limit); true if a line holding the marker completed.
    fn append(&mut self, buf: &[u8], limit: usize) -> bool {
        let keep = limit.saturating_sub(self.bytes.len()).min(buf.len());
        self.dropped = self.dropped.saturating_add((buf.len() - keep) as u64);
        self.bytes.extend_from_slice(&buf[..keep]);
        self.scan()
    }

    /// Scans the bytes not looked at yet, line by line; each byte is looked at a bounded
    /// number of times (a marker may straddle two calls, hence the overlap).
    fn scan(&mut self) -> bool {
        let mut completed = false;
        while self.scanned < self.bytes.len() {
            let from = self
                .scanned
                .saturating_sub(MARKER.len() - 1)
                .max(self.line_start);
            let newline = self.bytes[self.scanned..]
                .iter()
                .position(|&c| c == b'\n')
                .map(|i| self.scanned + i);
            let end = newline.unwrap_or(self.bytes.len());
            if !self.line_marked {
                self.line_marked = self.bytes[from..end]
                    .windows(MARKER.len())
                    .any(|w| w == MARKER);
            }
            match newline {
                Some(nl) => {
                    completed |= self.line_marked;
                    self.line_marked = false;
                    self.line_start = nl + 1;
                    self.scanned = nl + 1;
                }
                None => self.scanned = end,
            }
        }
        completed
    }
}

struct Shared {
    captured: Mutex<Captured>,
    marker: EventFd,
    echo: Option<ConsoleOut>,
    limit: usize,
}

/// The probe's serial output, shared by the sink (written on vCPU threads) and the reader.
#[derive(Clone)]
pub struct ProbeCapture {
    shared: Arc<Shared>,
}

impl ProbeCapture {
    pub fn new(echo: Echo) -> std::io::Result<ProbeCapture> {
        let echo = match echo {
            Echo::Stdout => Some(console::stdout()),
            Echo::Quiet => None,
        };
        Self::with(echo, CAPTURE_LIMIT)
    }

    /// A capture echoing to `echo` (if any) and keeping at most `limit` bytes.
    fn with(echo: Option<ConsoleOut>, limit: usize) -> std::io::Result<ProbeCapture> {
        Ok(ProbeCapture {
            shared: Arc::new(Shared {
                captured: Mutex::new(Captured::default()),
                marker: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
                echo,
                limit,
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

    fn captured(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.shared
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Everything the guest wrote so far (up to [`CAPTURE_LIMIT`]).
    pub fn output(&self) -> Vec<u8> {
        self.captured().bytes.clone()
    }

    /// Lets the echo's unfinished last line out (the VM has ended) and waits up to
    /// `timeout` for the console to write it.
    pub fn finish_echo(&self, timeout: std::time::Duration) {
        let Some(echo) = &self.shared.echo else {
            return;
        };
        let line = std::mem::take(&mut self.captured().echo_line);
        if !line.is_empty() {
            echo.push(&line);
            echo.flush(timeout);
        }
    }

    /// How many bytes of guest output were beyond [`CAPTURE_LIMIT`] and not kept.
    pub fn dropped(&self) -> u64 {
        self.captured().dropped
    }
}

impl Write for ProbeCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = &self.shared;
        let mut captured = self.captured();
        let marked = captured.append(buf, s.limit);
        // Echo whole lines first, then wake the reader: the emulator thread flushes the
        // console before it hands over to the reader, and the line the guest has begun since
        // is held back here, so what the reader prints after a marker comes between two
        // lines on stdout, never in the middle of one.
        if let Some(echo) = &s.echo {
            let line = &mut captured.echo_line;
            line.extend_from_slice(buf);
            if buf.contains(&b'\n') || line.len() >= ECHO_LINE_MAX {
                echo.push(line);
                line.clear();
            }
        }
        drop(captured);
        if marked {
            let _ = s.marker.write(1);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
            EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).unwrap(),
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

    #[test]
    fn a_marker_split_across_writes_and_lines_is_found_once_per_line() {
        let capture = ProbeCapture::with(None, CAPTURE_LIMIT).unwrap();
        let mut sink = capture.sink();
        sink.write_all(b"xxPRO").unwrap();
        sink.write_all(b"BE-A").unwrap();
        assert!(!marked(&capture), "the line is not complete");
        sink.write_all(b" done\nnext PRO").unwrap();
        assert!(marked(&capture));
        // The marker's start on the previous line does not join with this one.
        sink.write_all(b"\nBE-\n").unwrap();
        assert!(!marked(&capture));
    }

    /// A guest line of 1 MiB written one byte at a time (as the UART delivers it): the scan
    /// resumes where it stopped, so this is 1 Mi small steps, not 2^39 (a quadratic scan
    /// never finishes).
    #[test]
    fn a_one_mib_line_byte_by_byte_costs_linear_time() {
        let capture = ProbeCapture::with(None, CAPTURE_LIMIT).unwrap();
        let mut sink = capture.sink();
        for i in 0..(1usize << 20) {
            sink.write_all(&[b'a' + (i % 26) as u8]).unwrap();
        }
        assert!(!marked(&capture));
        sink.write_all(b"PROBE-END cpus=1\n").unwrap();
        assert!(marked(&capture), "the marker at the end of a long line");
        assert_eq!(capture.output().len(), (1 << 20) + 17);
    }

    #[test]
    fn output_beyond_the_limit_is_counted_not_kept() {
        let capture = ProbeCapture::with(None, 8).unwrap();
        let mut sink = capture.sink();
        sink.write_all(b"PROBE-A\n").unwrap();
        assert!(marked(&capture));
        sink.write_all(b"PROBE-B\n").unwrap();
        assert!(!marked(&capture), "a line beyond the limit is not seen");
        assert_eq!(capture.output(), b"PROBE-A\n");
        assert_eq!(capture.dropped(), 8);
    }

    #[test]
    fn the_echo_goes_through_the_console_buffer() {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 fills two new descriptors into our array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and owned by nothing else.
        let (r, w): (std::fs::File, std::fs::File) = unsafe {
            use std::os::fd::{FromRawFd, OwnedFd};
            (
                OwnedFd::from_raw_fd(fds[0]).into(),
                OwnedFd::from_raw_fd(fds[1]).into(),
            )
        };
        let console = ConsoleOut::spawn(w, 1024);
        let capture = ProbeCapture::with(Some(console.clone()), CAPTURE_LIMIT).unwrap();
        let mut sink = capture.sink();
        sink.write_all(b"PROBE-HELLO\n").unwrap();
        // The next line, begun byte by byte, is held back until it ends...
        for &b in b"PROBE-" {
            sink.write_all(&[b]).unwrap();
        }
        assert!(console.flush(std::time::Duration::from_secs(30)));
        // ... so what another writer puts on the console now lands between the lines.
        console.push(b"view\n");
        sink.write_all(b"NEXT\nlast").unwrap();
        capture.finish_echo(std::time::Duration::from_secs(30));
        drop((sink, capture, console));
        let want = b"PROBE-HELLO\nview\nPROBE-NEXT\nlast";
        let mut got = vec![0u8; want.len()];
        std::io::Read::read_exact(&mut &r, &mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }
}
