//! COM1: a 16550A-compatible UART (vm-superio's 8250 model) at 0x3f8, raising IRQ 4 through
//! an irqfd. Its output goes to stdout through the never-blocking console buffer
//! (`devices::console`) or to whatever writer the VMM is given (the probe's capture,
//! `probe::serial`); input comes from the emulator thread.

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
    /// rvmm's stdout, through the console buffer (`devices::console::stdout`): each byte
    /// goes out at once, and a stdout nobody drains drops bytes instead of blocking.
    Stdout,
    /// A writer the caller owns the other end of.
    To(Box<dyn Write + Send>),
}

impl SerialOutput {
    fn into_writer(self) -> Box<dyn Write + Send> {
        match self {
            SerialOutput::Stdout => Box::new(super::console::stdout()),
            SerialOutput::To(w) => w,
        }
    }
}

/// The UART type the bus holds.
pub type Com1 = Serial<IrqTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>;

/// Creates COM1 with its interrupt eventfd and output.
pub fn com1(irq: EventFd, out: SerialOutput) -> Com1 {
    Serial::new(IrqTrigger(irq), out.into_writer())
}
