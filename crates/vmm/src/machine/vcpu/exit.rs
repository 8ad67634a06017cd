//! What to do after KVM_RUN returns: a pure function from one `VcpuExit` (and the device bus)
//! to the next step, unit-tested with synthetic exits and no guest.

use kvm_ioctls::VcpuExit;

use crate::devices::GuestEvent;

/// The device side of an exit: port and MMIO accesses.
pub trait IoHandler {
    fn pio_read(&self, port: u16, data: &mut [u8]);
    fn pio_write(&self, port: u16, data: &[u8]) -> Option<GuestEvent>;
    fn mmio_read(&self, addr: u64, data: &mut [u8]);
    fn mmio_write(&self, addr: u64, data: &[u8]) -> Option<GuestEvent>;
}

impl IoHandler for crate::devices::Bus {
    fn pio_read(&self, port: u16, data: &mut [u8]) {
        crate::devices::Bus::pio_read(self, port, data)
    }
    fn pio_write(&self, port: u16, data: &[u8]) -> Option<GuestEvent> {
        crate::devices::Bus::pio_write(self, port, data)
    }
    fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        crate::devices::Bus::mmio_read(self, addr, data)
    }
    fn mmio_write(&self, addr: u64, data: &[u8]) -> Option<GuestEvent> {
        crate::devices::Bus::mmio_write(self, addr, data)
    }
}

/// Why a vCPU cannot go on; the VM stops with a non-zero status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuFault {
    /// KVM_EXIT_SHUTDOWN: a triple fault.
    TripleFault,
    /// KVM_EXIT_INTERNAL_ERROR (the suberror is filled in by the run loop).
    InternalError,
    /// KVM_EXIT_FAIL_ENTRY with the hardware reason.
    FailEntry { reason: u64 },
    /// An exit rvmm does not handle.
    Unexpected(String),
}

impl std::fmt::Display for VcpuFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VcpuFault::TripleFault => write!(f, "triple fault (KVM_EXIT_SHUTDOWN)"),
            VcpuFault::InternalError => write!(f, "KVM internal error (KVM_EXIT_INTERNAL_ERROR)"),
            VcpuFault::FailEntry { reason } => {
                write!(
                    f,
                    "VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x})"
                )
            }
            VcpuFault::Unexpected(what) => write!(f, "unexpected exit {what}"),
        }
    }
}

/// The next step for the vCPU loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitAction {
    /// Run the guest again.
    Continue,
    /// The guest asked for poweroff or reset.
    Guest(GuestEvent),
    /// KVM_RUN was interrupted (a kick): check for stop/pause requests.
    Interrupted,
    /// The vCPU cannot continue.
    Fault(VcpuFault),
}

/// Handles one exit.
pub fn handle_exit(exit: VcpuExit<'_>, io: &impl IoHandler) -> ExitAction {
    match exit {
        VcpuExit::IoOut(port, data) => io
            .pio_write(port, data)
            .map_or(ExitAction::Continue, ExitAction::Guest),
        VcpuExit::IoIn(port, data) => {
            io.pio_read(port, data);
            ExitAction::Continue
        }
        VcpuExit::MmioRead(addr, data) => {
            io.mmio_read(addr, data);
            ExitAction::Continue
        }
        VcpuExit::MmioWrite(addr, data) => io
            .mmio_write(addr, data)
            .map_or(ExitAction::Continue, ExitAction::Guest),
        VcpuExit::Intr => ExitAction::Interrupted,
        // With the in-kernel irqchip HLT stays in the kernel; should one reach us, re-entering
        // lets KVM block the vCPU as usual.
        VcpuExit::Hlt | VcpuExit::IrqWindowOpen => ExitAction::Continue,
        VcpuExit::Shutdown => ExitAction::Fault(VcpuFault::TripleFault),
        VcpuExit::InternalError => ExitAction::Fault(VcpuFault::InternalError),
        VcpuExit::FailEntry(reason, _cpu) => ExitAction::Fault(VcpuFault::FailEntry { reason }),
        other => ExitAction::Fault(VcpuFault::Unexpected(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct FakeIo {
        writes: RefCell<Vec<(u16, Vec<u8>)>>,
    }

    impl IoHandler for FakeIo {
        fn pio_read(&self, port: u16, data: &mut [u8]) {
            data.fill(port as u8);
        }
        fn pio_write(&self, port: u16, data: &[u8]) -> Option<GuestEvent> {
            self.writes.borrow_mut().push((port, data.to_vec()));
            (port == 0xf4).then_some(GuestEvent::Poweroff)
        }
        fn mmio_read(&self, _addr: u64, data: &mut [u8]) {
            data.fill(0xab);
        }
        fn mmio_write(&self, _addr: u64, _data: &[u8]) -> Option<GuestEvent> {
            Some(GuestEvent::Reset)
        }
    }

    #[test]
    fn io_exits_reach_the_bus() {
        let io = FakeIo::default();
        assert_eq!(
            handle_exit(VcpuExit::IoOut(0x3f8, b"abc"), &io),
            ExitAction::Continue
        );
        assert_eq!(io.writes.borrow()[0], (0x3f8, b"abc".to_vec()));
        let mut buf = [0u8; 2];
        assert_eq!(
            handle_exit(VcpuExit::IoIn(0x12, &mut buf), &io),
            ExitAction::Continue
        );
        assert_eq!(buf, [0x12, 0x12]);
        assert_eq!(
            handle_exit(VcpuExit::IoOut(0xf4, &[0]), &io),
            ExitAction::Guest(GuestEvent::Poweroff)
        );
        let mut m = [0u8; 4];
        assert_eq!(
            handle_exit(VcpuExit::MmioRead(0xd000_0000, &mut m), &io),
            ExitAction::Continue
        );
        assert_eq!(m, [0xab; 4]);
        assert_eq!(
            handle_exit(VcpuExit::MmioWrite(0xd000_0000, &[1]), &io),
            ExitAction::Guest(GuestEvent::Reset)
        );
    }

    #[test]
    fn faults_and_interrupts() {
        let io = FakeIo::default();
        assert_eq!(
            handle_exit(VcpuExit::Shutdown, &io),
            ExitAction::Fault(VcpuFault::TripleFault)
        );
        assert_eq!(
            handle_exit(VcpuExit::InternalError, &io),
            ExitAction::Fault(VcpuFault::InternalError)
        );
        assert_eq!(
            handle_exit(VcpuExit::FailEntry(0x80000021, 0), &io),
            ExitAction::Fault(VcpuFault::FailEntry { reason: 0x80000021 })
        );
        assert_eq!(handle_exit(VcpuExit::Intr, &io), ExitAction::Interrupted);
        assert_eq!(handle_exit(VcpuExit::Hlt, &io), ExitAction::Continue);
        assert_eq!(
            handle_exit(VcpuExit::Unsupported(99), &io),
            ExitAction::Fault(VcpuFault::Unexpected("Unsupported(99)".into()))
        );
        assert_eq!(
            VcpuFault::FailEntry { reason: 0x21 }.to_string(),
            "VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason 0x21)"
        );
    }
}
