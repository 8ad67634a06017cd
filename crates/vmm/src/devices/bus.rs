//! The port-I/O bus: routes each guest IN/OUT to the device that owns the port. Unclaimed
//! ports read as all-ones and ignore writes, as on a PC with nothing there. The only
//! user-space MMIO devices are the virtio-mmio transports (the local APICs and the IOAPIC
//! live in KVM). isa-debug-exit
//! (port 0xf4) is there only when the machine has it (`--machine debug-exit=`). The CPU
//! hotplug block (0xaf00) and GPE0 (0xafe0) are QEMU PIIX-PM's.

use std::sync::Mutex;

use super::cpu_hotplug::CpuHotplug;
use super::gpe::Gpe0;
use super::pm::Pm;
use super::serial::Com1;
use super::virtio::mmio::MmioTransport;
use super::virtio::VIRTIO_MMIO_SIZE;
use super::{i8042, GuestEvent};
use crate::memory::layout::{COM1_PORT, DEBUG_EXIT_PORT, I8042_CMD_PORT, I8042_DATA_PORT};

/// The devices a vCPU can reach.
pub struct Bus {
    pub com1: Mutex<Com1>,
    pub pm: Mutex<Pm>,
    pub cpu_hotplug: Mutex<CpuHotplug>,
    pub gpe: Mutex<Gpe0>,
    /// Whether port 0xf4 is QEMU's isa-debug-exit.
    debug_exit: bool,
    /// The virtio-mmio transports, by slot.
    virtio: Vec<VirtioMmio>,
}

/// One virtio-mmio transport on the bus.
pub struct VirtioMmio {
    pub base: u64,
    pub transport: std::sync::Arc<Mutex<MmioTransport>>,
    /// The device thread's wakeup, for a QueueNotify that KVM's ioeventfd did not take.
    pub notify: vmm_sys_util::eventfd::EventFd,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A device's state stays usable even if a thread panicked holding it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Bus {
    /// A bus with COM1, the PM registers, GPE0, the CPU hotplug block and, with
    /// `debug_exit`, isa-debug-exit.
    pub fn new(com1: Com1, debug_exit: bool, cpu_hotplug: CpuHotplug) -> Self {
        Bus {
            com1: Mutex::new(com1),
            pm: Mutex::new(Pm::default()),
            cpu_hotplug: Mutex::new(cpu_hotplug),
            gpe: Mutex::new(Gpe0::default()),
            debug_exit,
            virtio: Vec::new(),
        }
    }

    /// Adds a virtio-mmio transport.
    pub fn add_virtio(&mut self, device: VirtioMmio) {
        self.virtio.push(device);
    }

    fn virtio_at(&self, addr: u64) -> Option<(&VirtioMmio, u64)> {
        self.virtio.iter().find_map(|v| {
            let offset = addr.checked_sub(v.base)?;
            (offset < VIRTIO_MMIO_SIZE).then_some((v, offset))
        })
    }

    /// Guest `IN` of `data.len()` bytes (a string IN delivers several bytes in one exit).
    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        match port {
            p if (COM1_PORT..COM1_PORT + 8).contains(&p) => {
                let mut uart = lock(&self.com1);
                for d in data.iter_mut() {
                    *d = uart.read((p - COM1_PORT) as u8);
                }
            }
            I8042_DATA_PORT | I8042_CMD_PORT => data.fill(i8042::read(port)),
            p if Pm::owns(p) => lock(&self.pm).read(p, data),
            p if CpuHotplug::owns(p) => lock(&self.cpu_hotplug).read(p, data),
            p if Gpe0::owns(p) => lock(&self.gpe).read(p, data),
            _ => data.fill(0xff),
        }
    }

    /// Guest `OUT`; a string OUT (`rep outsb`) delivers all its bytes in one call.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> Option<GuestEvent> {
        match port {
            p if (COM1_PORT..COM1_PORT + 8).contains(&p) => {
                let mut uart = lock(&self.com1);
                for &d in data {
                    // The only error is a failed interrupt trigger; the byte is still
                    // written and the guest sees it on its next poll.
                    let _ = uart.write((p - COM1_PORT) as u8, d);
                }
                None
            }
            I8042_DATA_PORT | I8042_CMD_PORT => data.first().and_then(|&v| i8042::write(port, v)),
            DEBUG_EXIT_PORT if self.debug_exit => {
                // The value written, zero-extended (QEMU's isa-debug-exit takes 1 to 4 bytes).
                let mut value = [0u8; 4];
                for (v, d) in value.iter_mut().zip(data) {
                    *v = *d;
                }
                Some(GuestEvent::DebugExit(u32::from_le_bytes(value)))
            }
            p if Pm::owns(p) => lock(&self.pm).write(p, data),
            p if CpuHotplug::owns(p) => lock(&self.cpu_hotplug).write(p, data),
            p if Gpe0::owns(p) => {
                lock(&self.gpe).write(p, data);
                None
            }
            _ => None,
        }
    }

    /// Guest MMIO read outside RAM and the in-kernel devices.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        match self.virtio_at(addr) {
            Some((v, offset)) => lock(&v.transport).read(offset, data),
            None => data.fill(0xff),
        }
    }

    /// Guest MMIO write outside RAM and the in-kernel devices.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> Option<GuestEvent> {
        if let Some((v, offset)) = self.virtio_at(addr) {
            let mut transport = lock(&v.transport);
            if transport.write(offset, data) {
                // A full counter means the thread has a wakeup pending already.
                let _ = v.notify.write(1);
            }
            return transport.take_guest_event();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::serial::{com1, SerialOutput};
    use std::io::Write;
    use std::sync::Arc;
    use vmm_sys_util::eventfd::EventFd;

    /// A serial output the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn bus_with(debug_exit: bool) -> (Bus, Arc<Mutex<Vec<u8>>>) {
        let out = Captured::default();
        let buffer = out.0.clone();
        let irq = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).unwrap();
        let uart = com1(irq, SerialOutput::To(Box::new(out)));
        (
            Bus::new(uart, debug_exit, CpuHotplug::new(vec![0, 1], 1)),
            buffer,
        )
    }

    fn bus() -> (Bus, Arc<Mutex<Vec<u8>>>) {
        bus_with(true)
    }

    #[test]
    fn debug_exit_only_when_present() {
        let (bus, _) = bus_with(false);
        assert_eq!(bus.pio_write(0xf4, &[1, 0, 0, 0]), None);
        let mut b = [0u8];
        bus.pio_read(0xf4, &mut b);
        assert_eq!(b[0], 0xff, "no device there");
        let (bus, _) = bus_with(true);
        assert_eq!(
            bus.pio_write(0xf4, &[0x31]),
            Some(GuestEvent::DebugExit(0x31))
        );
        assert_eq!(
            bus.pio_write(0xf4, &0x1234_5678u32.to_le_bytes()),
            Some(GuestEvent::DebugExit(0x1234_5678))
        );
    }

    #[test]
    fn routes_ports() {
        let (bus, out) = bus();
        assert_eq!(bus.pio_write(0x3f8, b"hi\n"), None);
        assert_eq!(&*out.lock().unwrap(), b"hi\n");
        assert_eq!(bus.pio_write(0x64, &[0xfe]), Some(GuestEvent::Reset));
        assert_eq!(
            bus.pio_write(0xf4, &[0, 0, 0, 0]),
            Some(GuestEvent::DebugExit(0))
        );
        assert_eq!(
            bus.pio_write(0x604, &((5u16 << 10) | (1 << 13)).to_le_bytes()),
            Some(GuestEvent::Poweroff)
        );
        let mut b = [0u8; 2];
        bus.pio_read(0x1234, &mut b);
        assert_eq!(b, [0xff, 0xff]);
        // LSR: transmitter empty.
        let mut lsr = [0u8];
        bus.pio_read(0x3fd, &mut lsr);
        assert_eq!(lsr[0] & 0x60, 0x60);
    }

    #[test]
    fn routes_cpu_hotplug_and_gpe0() {
        let (bus, _) = bus();
        // The legacy bitmap: the boot CPU's bit; then the switch to the modern block.
        let mut b = [0u8; 4];
        bus.pio_read(0xaf00, &mut b);
        assert_eq!(b, [1, 0, 0, 0]);
        assert_eq!(bus.pio_write(0xaf00, &[0, 0, 0, 0]), None);
        assert!(bus.cpu_hotplug.lock().unwrap().is_modern());
        bus.cpu_hotplug.lock().unwrap().plug(1).unwrap();
        bus.pio_write(0xaf00, &1u32.to_le_bytes());
        bus.pio_read(0xaf04, &mut b[..1]);
        assert_eq!(b[0], 0b11, "enabled, insert event");
        assert_eq!(
            bus.pio_write(0xaf04, &[1 << 3]),
            Some(GuestEvent::CpuEject { slot: 1 })
        );
        // GPE0: enable bit 2, raise it, clear it.
        bus.pio_write(0xafe2, &[1 << 2]);
        assert!(bus.gpe.lock().unwrap().raise(2));
        bus.pio_read(0xafe0, &mut b);
        assert_eq!(b, [4, 0, 4, 0]);
        assert_eq!(bus.pio_write(0xafe0, &[4]), None);
        bus.pio_read(0xafe0, &mut b[..1]);
        assert_eq!(b[0], 0);
    }
}
