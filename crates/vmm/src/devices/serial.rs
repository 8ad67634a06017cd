//! COM1: a 16550A-compatible UART (vm-superio's 8250 model) at 0x3f8, raising IRQ 4 through
//! an irqfd. Its output goes to stdout or to whatever writer the VMM is given (the probe's
//! capture, `probe::serial`); input comes from the emulator thread.

use std::io::Write;

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
pub enum SerialOutput {
    /// rvmm's stdout, flushed at every write so each guest byte shows at once.
    Stdout,
    /// A writer the caller owns the other end of.
    To(Box<dyn Write + Send>),
}

impl SerialOutput {
    fn into_writer(self) -> Box<dyn Write + Send> {
        match self {
            SerialOutput::Stdout => Box::new(Stdout),
            SerialOutput::To(w) => w,
        }
    }
}

/// stdout, flushed after every write.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        out.write_all(buf)?;
        out.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

/// The UART type the bus holds.
pub type Com1 = Serial<IrqTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>;

/// Creates COM1 with its interrupt eventfd and output.
pub fn com1(irq: EventFd, out: SerialOutput) -> Com1 {
    Serial::new(IrqTrigger(irq), out.into_writer())
}
