//! Emulated devices and the port-I/O / MMIO bus that routes guest accesses to them: COM1
//! (8250) with its never-blocking way to stdout (`console`), the i8042 reset line, and the
//! ACPI power-management registers.
//!
//! Devices never stop the VM themselves: an access that asks for poweroff or reset returns a
//! [`GuestEvent`] and the vCPU loop decides what to do with it.

pub mod bus;
pub mod console;
pub mod i8042;
pub mod pm;
pub mod serial;

pub use bus::Bus;

/// Something the guest asked of the machine through a device register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEvent {
    /// ACPI S5 (soft off).
    Poweroff,
    /// A write of this value to QEMU's isa-debug-exit port (when the machine has it).
    DebugExit(u32),
    /// i8042 pulse-reset, or the FADT reset register.
    Reset,
}
