//! Emulated devices and the port-I/O / MMIO bus that routes guest accesses to them: COM1
//! (8250) with its never-blocking way to stdout (`console`), the i8042 reset line, and the
//! ACPI power-management registers, the GPE0 block and QEMU's CPU hotplug registers, and the
//! virtio-mmio devices (`virtio`).
//!
//! Devices never act on the VM themselves: an access that asks for poweroff, reset or a vCPU
//! eject returns a [`GuestEvent`] and the vCPU loop decides what to do with it.

pub mod bus;
pub mod console;
pub mod cpu_hotplug;
pub mod gpe;
pub mod i8042;
pub mod pm;
pub mod serial;
pub mod virtio;

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
    /// The guest ejected the vCPU in this hotplug slot (`_EJ0`): it must stop running
    /// guest code.
    CpuEject { slot: u32 },
    /// The guest reported an OST event and status for a vCPU slot (`_OST`).
    CpuOst { slot: u32, event: u32, status: u32 },
    /// The balloon driver wrote a new `actual` (pages the balloon holds).
    BalloonChange { actual: u32 },
}
