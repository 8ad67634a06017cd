//! COM1: a 16550A-compatible UART (vm-superio's 8250 model) at 0x3f8, raising IRQ 4 through
//! an irqfd. Its output goes to stdout, or into a buffer when rvmm reads the probe guest's
//! dump; input comes from the emulator thread.

use std::io::Write;
use std::sync::{Arc, Mutex};

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// Raises the serial interrupt by writing the irqfd bound to the UART's GSI.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.write(1)
    }
}

/// Where the guest's serial output goes.
#[derive(Clone)]
pub enum SerialSink {
    /// Straight to rvmm's stdout.
    Stdout,
    /// Into a shared buffer; `marker` is signalled each time a line containing
    /// `PROBE-` completes, so the emulator thread can look at the dump.
    Capture {
        buffer: Arc<Mutex<Vec<u8>>>,
        marker: Arc<EventFd>,
        echo: bool,
    },
}

impl Write for SerialSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SerialSink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf)?;
                out.flush()?;
            }
            SerialSink::Capture {
                buffer,
                marker,
                echo,
            } => {
                let mut b = buffer.lock().unwrap_or_else(|p| p.into_inner());
                let line_start = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
                b.extend_from_slice(buf);
                if buf.contains(&b'\n') && b[line_start..].windows(6).any(|w| w == b"PROBE-") {
                    let _ = marker.write(1);
                }
                if *echo {
                    let mut out = std::io::stdout().lock();
                    out.write_all(buf)?;
                    out.flush()?;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// The UART type the bus holds.
pub type Com1 = Serial<IrqTrigger, vm_superio::serial::NoEvents, SerialSink>;

/// Creates COM1 with its interrupt eventfd and output sink.
pub fn com1(irq: EventFd, sink: SerialSink) -> Com1 {
    Serial::new(IrqTrigger(irq), sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_signals_on_probe_lines() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let marker = Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let mut uart = com1(
            EventFd::new(libc::EFD_NONBLOCK).unwrap(),
            SerialSink::Capture {
                buffer: buffer.clone(),
                marker: marker.clone(),
                echo: false,
            },
        );
        for &b in b"hello\n" {
            uart.write(0, b).unwrap();
        }
        assert!(marker.read().is_err(), "no PROBE line yet");
        for &b in b"PROBE-END cpus=1\n" {
            uart.write(0, b).unwrap();
        }
        assert_eq!(marker.read().unwrap(), 1);
        assert_eq!(&*buffer.lock().unwrap(), b"hello\nPROBE-END cpus=1\n");
    }
}
