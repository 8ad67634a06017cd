//! COM1: a 16550A-compatible UART (vm-superio's 8250 model) at 0x3f8, raising IRQ 4 through
//! an irqfd. Its output goes to stdout through the never-blocking console buffer
//! (`devices::console`) or to whatever writer the VMM is given (the probe's capture,
//! `probe::serial`); input comes from the emulator thread.

use std::io::Write;

use vm_superio::serial::SerialState;
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

/// COM1's registers and receive FIFO as a snapshot keeps them (vm-superio's `SerialState`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SerialSnapshot {
    pub baud_divisor_low: u8,
    pub baud_divisor_high: u8,
    pub interrupt_enable: u8,
    pub interrupt_identification: u8,
    pub line_control: u8,
    pub line_status: u8,
    pub modem_control: u8,
    pub modem_status: u8,
    pub scratch: u8,
    pub in_buffer: Vec<u8>,
}

/// COM1's state, for a snapshot.
pub fn state(uart: &Com1) -> SerialSnapshot {
    let s = uart.state();
    SerialSnapshot {
        baud_divisor_low: s.baud_divisor_low,
        baud_divisor_high: s.baud_divisor_high,
        interrupt_enable: s.interrupt_enable,
        interrupt_identification: s.interrupt_identification,
        line_control: s.line_control,
        line_status: s.line_status,
        modem_control: s.modem_control,
        modem_status: s.modem_status,
        scratch: s.scratch,
        in_buffer: s.in_buffer,
    }
}

/// Puts COM1's saved state back, keeping its interrupt eventfd and its output.
pub fn restore(uart: &mut Com1, saved: &SerialSnapshot) -> Result<(), std::io::Error> {
    let state = SerialState {
        baud_divisor_low: saved.baud_divisor_low,
        baud_divisor_high: saved.baud_divisor_high,
        interrupt_enable: saved.interrupt_enable,
        interrupt_identification: saved.interrupt_identification,
        line_control: saved.line_control,
        line_status: saved.line_status,
        modem_control: saved.modem_control,
        modem_status: saved.modem_status,
        scratch: saved.scratch,
        in_buffer: saved.in_buffer.clone(),
    };
    let irq = uart.interrupt_evt().0.try_clone()?;
    let placeholder = Serial::new(IrqTrigger(irq.try_clone()?), Box::new(std::io::sink()) as _);
    let old = std::mem::replace(uart, placeholder);
    let out = old.into_writer();
    *uart = Serial::from_state(&state, IrqTrigger(irq), vm_superio::serial::NoEvents, out)
        .map_err(|e| std::io::Error::other(format!("COM1: {e:?}")))?;
    Ok(())
}
