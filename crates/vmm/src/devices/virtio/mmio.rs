//! The virtio-mmio register block, version 2 (virtio 1.2 §4.2.2), in front of one
//! [`VirtioDevice`]. Pure register logic: a guest read or write goes in, the transport's state
//! changes; running the queues is [`MmioTransport::service_queues`], which the device's I/O
//! thread calls (`worker`). Reading InterruptStatus has no side effect; InterruptACK clears
//! only the bits written. A driver that gets something wrong (a queue that is not valid at
//! DRIVER_OK or when notified, a device error) finds the device in DEVICE_NEEDS_RESET with a
//! configuration-change interrupt, as §2.1.2 asks.
//!
//! For snapshots the transport can be paused ([`MmioTransport::pause`]: its I/O thread
//! serves nothing and polls no device descriptor until [`MmioTransport::resume`]), saved
//! ([`MmioTransport::save`]: registers, every queue's setup and ring positions, the device's
//! own state) and restored ([`MmioTransport::restore`], which activates a device whose driver
//! had set DRIVER_OK, as the driver's own write of it does).

use crate::memory::guest::GuestMem;
use serde::{Deserialize, Serialize};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use virtio_queue::{Queue, QueueT};

use super::{SavedVirtio, VirtioDevice};

/// "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// The modern (virtio 1.x) transport.
pub const VERSION: u32 = 2;
/// QEMU's vendor ID ("QEMU"), which Linux ignores.
pub const VENDOR_ID: u32 = 0x554d_4551;

/// Register offsets (virtio 1.2 table 4.1).
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_AVAIL_LOW: u64 = 0x090;
    pub const QUEUE_AVAIL_HIGH: u64 = 0x094;
    pub const QUEUE_USED_LOW: u64 = 0x0a0;
    pub const QUEUE_USED_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// One virtio-mmio transport and its device.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMem,
    queues: Vec<Queue>,
    /// Per queue: the driver wrote a QueueNum the queue cannot have (0, above the maximum,
    /// not a power of two); such a queue is never valid.
    bad_size: Vec<bool>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    status: u32,
    /// ConfigGeneration: bumped by every [`MmioTransport::config_changed`].
    config_generation: u32,
    /// A snapshot is being taken: the queues are not served (see [`MmioTransport::pause`]).
    paused: bool,
}

/// A transport's registers and queues in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportState {
    pub status: u32,
    pub device_features_sel: u32,
    pub driver_features_sel: u32,
    pub driver_features: u64,
    pub queue_sel: u32,
    pub interrupt_status: u32,
    pub config_generation: u32,
    pub queues: Vec<SavedQueue>,
}

/// One virtqueue in a snapshot: what the driver set up and where the device is in its rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQueue {
    pub max_size: u16,
    pub size: u16,
    /// The driver wrote a size the queue cannot have (never valid until reset).
    pub bad_size: bool,
    pub ready: bool,
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
    /// The next available-ring entry the device takes.
    pub next_avail: u16,
    /// The next used-ring entry the device fills.
    pub next_used: u16,
}

impl MmioTransport {
    pub fn new(device: Box<dyn VirtioDevice>, mem: GuestMem) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            // A maximum size that is not a power of two is the device model's bug; fall back to
            // the smallest legal queue rather than fail.
            .map(|&max| Queue::new(max).unwrap_or_else(|_| Queue::new(1).expect("size 1")))
            .collect();
        let bad_size = vec![false; device.queue_max_sizes().len()];
        MmioTransport {
            device,
            mem,
            queues,
            bad_size,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            status: 0,
            config_generation: 0,
            paused: false,
        }
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset();
        }
        self.bad_size.fill(false);
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
        self.status = 0;
        self.device.reset();
    }

    /// A guest read of `data.len()` bytes at `offset` into the block.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            let config = self.device.config();
            for (i, d) in data.iter_mut().enumerate() {
                let at = (offset - reg::CONFIG) as usize + i;
                *d = config.get(at).copied().unwrap_or(0);
            }
            return;
        }
        // Registers below the config space are 32 bits wide and read only as such.
        if data.len() != 4 || offset % 4 != 0 {
            data.fill(0);
            return;
        }
        let queue = self.queues.get(self.queue_sel as usize);
        let v = match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.features() as u32,
                1 => (self.device.features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    /// A guest write at `offset`. QueueNotify normally never gets here (an ioeventfd takes
    /// it in the kernel); when it does, the caller wakes the device's I/O thread if this
    /// returns true.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> bool {
        if offset >= reg::CONFIG {
            self.device.write_config(offset - reg::CONFIG, data);
            return false;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return false;
        };
        if offset % 4 != 0 {
            return false;
        }
        let v = u32::from_le_bytes(bytes);
        let can_set_up_queue = self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::DRIVER_FEATURES if self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0 => {
                match self.driver_features_sel {
                    0 => {
                        self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM if can_set_up_queue => {
                let sel = self.queue_sel as usize;
                if let Some(q) = self.queues.get_mut(sel) {
                    let ok = u16::try_from(v).is_ok_and(|size| q.try_set_size(size).is_ok());
                    self.bad_size[sel] = !ok;
                }
            }
            reg::QUEUE_READY => {
                if let Some(q) = self.queue() {
                    q.set_ready(v == 1);
                }
            }
            reg::QUEUE_NOTIFY => return true,
            reg::INTERRUPT_ACK => self.interrupt_status &= !v,
            reg::STATUS => self.write_status(v),
            reg::QUEUE_DESC_LOW if can_set_up_queue => {
                if let Some(q) = self.queue() {
                    q.set_desc_table_address(Some(v), None);
                }
            }
            reg::QUEUE_DESC_HIGH if can_set_up_queue => {
                if let Some(q) = self.queue() {
                    q.set_desc_table_address(None, Some(v));
                }
            }
            reg::QUEUE_AVAIL_LOW if can_set_up_queue => {
                if let Some(q) = self.queue() {
                    q.set_avail_ring_address(Some(v), None);
                }
            }
            reg::QUEUE_AVAIL_HIGH if can_set_up_queue => {
                if let Some(q) = self.queue() {
                    q.set_avail_ring_address(None, Some(v));
                }
            }
            reg::QUEUE_USED_LOW if can_set_up_queue => {
                if let Some(q) = self.queue() {
                    q.set_used_ring_address(Some(v), None);
                }
            }
            reg::QUEUE_USED_HIGH if can_set_up_queue => {
                if let Some(q) = self.queue() {
                    q.set_used_ring_address(None, Some(v));
                }
            }
            _ => {}
        }
        false
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        let newly = v & !self.status;
        let mut status = v;
        if newly & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            let offered = self.device.features();
            let ok = self.driver_features & !offered == 0
                && self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0;
            if !ok {
                // §3.1.1: the driver re-reads the status and sees FEATURES_OK was refused.
                status &= !VIRTIO_CONFIG_S_FEATURES_OK;
            }
        }
        // The device keeps NEEDS_RESET until the driver resets it.
        status |= self.status & VIRTIO_CONFIG_S_NEEDS_RESET;
        self.status = status;
        let activating =
            newly & VIRTIO_CONFIG_S_DRIVER_OK != 0 && self.status & VIRTIO_CONFIG_S_FAILED == 0;
        if activating
            && (0..self.queues.len()).any(|i| self.queues[i].ready() && !self.queue_valid(i))
        {
            self.needs_reset();
        } else if activating {
            self.device.activate(self.driver_features);
        }
    }

    /// The device changed its configuration space (a new balloon target, a link going down):
    /// bumps ConfigGeneration and raises the configuration-change interrupt. The caller
    /// signals the device's irqfd when this returns true (the driver is live and must be
    /// told).
    pub fn config_changed(&mut self) -> bool {
        self.device.refresh_config();
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0 {
            return false;
        }
        self.interrupt_status |= VIRTIO_MMIO_INT_CONFIG;
        true
    }

    /// What the device's last configuration write raised for the VMM, if anything.
    pub fn take_guest_event(&mut self) -> Option<crate::devices::GuestEvent> {
        self.device.take_guest_event()
    }

    fn queue_valid(&self, index: usize) -> bool {
        !self.bad_size[index] && self.queues[index].is_valid(&self.mem)
    }

    fn needs_reset(&mut self) {
        self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
        self.interrupt_status |= VIRTIO_MMIO_INT_CONFIG;
    }

    /// The device's own descriptor for the I/O thread to poll ([`VirtioDevice::poll_fd`]),
    /// while the device is live.
    pub fn poll_fd(&self) -> Option<std::os::unix::io::RawFd> {
        let live = !self.paused
            && self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
            && self.status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED) == 0;
        live.then(|| self.device.poll_fd()).flatten()
    }

    /// Serves every ready queue (after a notification). Returns whether the guest must get
    /// an interrupt. Does nothing before DRIVER_OK, after FAILED, or while NEEDS_RESET.
    pub fn service_queues(&mut self) -> bool {
        let live = !self.paused
            && self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
            && self.status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED) == 0;
        if !live {
            return false;
        }
        let mut interrupt = false;
        for index in 0..self.queues.len() {
            if !self.queues[index].ready() {
                continue;
            }
            if !self.queue_valid(index) {
                self.needs_reset();
                return true;
            }
            let q = &mut self.queues[index];
            match self.device.process_queue(index, q, &self.mem) {
                Ok(used) => interrupt |= used,
                Err(_) => {
                    self.needs_reset();
                    return true;
                }
            }
        }
        if interrupt {
            self.interrupt_status |= VIRTIO_MMIO_INT_VRING;
        }
        interrupt
    }

    /// Stops serving the queues: taken under the transport's lock, which the I/O thread
    /// holds for the whole of a [`MmioTransport::service_queues`], so a request in flight
    /// has completed (its used entry and data in guest RAM, the disk written) and none is
    /// taken until [`MmioTransport::resume`]. A notification meanwhile stays in the rings;
    /// the caller wakes the thread after resuming.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Serves the queues again (after [`MmioTransport::pause`]).
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// The device's [`VirtioDevice::flush_backend`].
    pub fn flush_backend(&mut self) -> Result<(), String> {
        self.device.flush_backend()
    }

    /// The device's [`VirtioDevice::release_host_locks`].
    pub fn release_host_locks(&mut self) -> Result<(), String> {
        self.device.release_host_locks()
    }

    /// The device's [`VirtioDevice::take_host_locks`].
    pub fn take_host_locks(&mut self) -> Result<(), String> {
        self.device.take_host_locks()
    }

    /// The device's [`VirtioDevice::announce`].
    pub fn announce(&mut self) -> bool {
        self.device.announce()
    }

    /// The transport's registers and queues with the device's own state, for `slot`.
    pub fn save(&self, slot: u32) -> SavedVirtio {
        let queues = self
            .queues
            .iter()
            .zip(&self.bad_size)
            .map(|(q, &bad_size)| SavedQueue {
                max_size: q.max_size(),
                size: q.size(),
                bad_size,
                ready: q.ready(),
                desc_table: q.desc_table(),
                avail_ring: q.avail_ring(),
                used_ring: q.used_ring(),
                next_avail: q.next_avail(),
                next_used: q.next_used(),
            })
            .collect();
        SavedVirtio {
            slot,
            device_id: self.device.device_id(),
            transport: TransportState {
                status: self.status,
                device_features_sel: self.device_features_sel,
                driver_features_sel: self.driver_features_sel,
                driver_features: self.driver_features,
                queue_sel: self.queue_sel,
                interrupt_status: self.interrupt_status,
                config_generation: self.config_generation,
                queues,
            },
            device: self.device.save_state(),
        }
    }

    /// Checks that `saved` fits this transport (the same device kind, the same queues, the
    /// device's own check) and, if so, puts it back; a device whose driver had set
    /// DRIVER_OK (and not FAILED, nor got NEEDS_RESET) is activated with the accepted
    /// features, as the driver's write of DRIVER_OK does. `Err` says what differs; nothing
    /// was changed then. The caller then wakes the device's thread, which serves whatever
    /// the driver had made available and picks up the device's descriptor.
    pub fn restore(&mut self, saved: &SavedVirtio) -> Result<(), String> {
        let id = self.device.device_id();
        if saved.device_id != id {
            return Err(format!(
                "the snapshot has a {} there, this VM a {}",
                super::kind_name(saved.device_id),
                super::kind_name(id)
            ));
        }
        let t = &saved.transport;
        let maxes: Vec<u16> = self.queues.iter().map(|q| q.max_size()).collect();
        let saved_maxes: Vec<u16> = t.queues.iter().map(|q| q.max_size).collect();
        if maxes != saved_maxes {
            return Err(format!(
                "the snapshot's {} has queues of sizes {saved_maxes:?}, this VM's {maxes:?}",
                super::kind_name(id)
            ));
        }
        let mut queues = Vec::with_capacity(t.queues.len());
        for (i, sq) in t.queues.iter().enumerate() {
            let mut q = Queue::new(sq.max_size)
                .map_err(|e| format!("queue {i}: maximum size {}: {e}", sq.max_size))?;
            if !sq.bad_size {
                q.try_set_size(sq.size)
                    .map_err(|e| format!("queue {i}: size {}: {e}", sq.size))?;
            }
            let split = |a: u64| (Some(a as u32), Some((a >> 32) as u32));
            let (lo, hi) = split(sq.desc_table);
            q.set_desc_table_address(lo, hi);
            let (lo, hi) = split(sq.avail_ring);
            q.set_avail_ring_address(lo, hi);
            let (lo, hi) = split(sq.used_ring);
            q.set_used_ring_address(lo, hi);
            q.set_next_avail(sq.next_avail);
            q.set_next_used(sq.next_used);
            q.set_ready(sq.ready);
            queues.push(q);
        }
        self.device.restore_state(&saved.device)?;
        self.queues = queues;
        self.bad_size = t.queues.iter().map(|q| q.bad_size).collect();
        self.device_features_sel = t.device_features_sel;
        self.driver_features_sel = t.driver_features_sel;
        self.driver_features = t.driver_features;
        self.queue_sel = t.queue_sel;
        self.interrupt_status = t.interrupt_status;
        self.config_generation = t.config_generation;
        self.status = t.status;
        let live = self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
            && self.status & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED) == 0;
        if live {
            self.device.activate(self.driver_features);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::DeviceError;
    use vm_memory::GuestAddress;

    struct Dummy {
        served: u32,
    }

    impl VirtioDevice for Dummy {
        fn device_id(&self) -> u32 {
            2
        }
        fn features(&self) -> u64 {
            1 << VIRTIO_F_VERSION_1
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16]
        }
        fn config(&self) -> &[u8] {
            &[1, 2, 3, 4]
        }
        fn process_queue(
            &mut self,
            _: usize,
            _: &mut Queue,
            _: &GuestMem,
        ) -> Result<bool, DeviceError> {
            self.served += 1;
            Ok(true)
        }
        fn save_state(&self) -> crate::devices::virtio::DeviceState {
            crate::devices::virtio::DeviceState::Block {
                path: "dummy".into(),
                size: 512,
                readonly: false,
                modified_ns: None,
            }
        }
        fn restore_state(
            &mut self,
            state: &crate::devices::virtio::DeviceState,
        ) -> Result<(), String> {
            (*state == self.save_state())
                .then_some(())
                .ok_or_else(|| "another dummy".to_string())
        }
    }

    fn transport() -> MmioTransport {
        let mem = GuestMem::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        MmioTransport::new(Box::new(Dummy { served: 0 }), mem)
    }

    fn rd(t: &MmioTransport, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn wr(t: &mut MmioTransport, off: u64, v: u32) -> bool {
        t.write(off, &v.to_le_bytes())
    }

    fn set_up(t: &mut MmioTransport, size: u32) {
        wr(t, reg::STATUS, 1 | 2);
        wr(t, reg::DRIVER_FEATURES_SEL, 1);
        wr(t, reg::DRIVER_FEATURES, 1);
        wr(t, reg::STATUS, 1 | 2 | 8);
        wr(t, reg::QUEUE_SEL, 0);
        wr(t, reg::QUEUE_NUM, size);
        wr(t, reg::QUEUE_DESC_LOW, 0x1000);
        wr(t, reg::QUEUE_AVAIL_LOW, 0x2000);
        wr(t, reg::QUEUE_USED_LOW, 0x3000);
        wr(t, reg::QUEUE_READY, 1);
    }

    #[test]
    fn identity_registers() {
        let t = transport();
        assert_eq!(rd(&t, reg::MAGIC), 0x7472_6976);
        assert_eq!(rd(&t, reg::VERSION), 2);
        assert_eq!(rd(&t, reg::DEVICE_ID), 2);
        assert_eq!(rd(&t, reg::QUEUE_NUM_MAX), 16);
        let mut b = [0u8; 2];
        t.read(reg::CONFIG + 1, &mut b);
        assert_eq!(b, [2, 3]);
    }

    #[test]
    fn features_ok_needs_version_1_and_a_subset() {
        let mut t = transport();
        wr(&mut t, reg::STATUS, 3);
        wr(&mut t, reg::STATUS, 3 | 8);
        assert_eq!(rd(&t, reg::STATUS), 3, "no VERSION_1: FEATURES_OK refused");
        wr(&mut t, reg::DRIVER_FEATURES_SEL, 0);
        wr(&mut t, reg::DRIVER_FEATURES, 1 << 5);
        wr(&mut t, reg::DRIVER_FEATURES_SEL, 1);
        wr(&mut t, reg::DRIVER_FEATURES, 1);
        wr(&mut t, reg::STATUS, 3 | 8);
        assert_eq!(rd(&t, reg::STATUS), 3, "a feature not offered: refused");
        wr(&mut t, reg::DRIVER_FEATURES_SEL, 0);
        wr(&mut t, reg::DRIVER_FEATURES, 0);
        wr(&mut t, reg::STATUS, 3 | 8);
        assert_eq!(rd(&t, reg::STATUS), 3 | 8);
    }

    #[test]
    fn notifications_before_driver_ok_are_ignored() {
        let mut t = transport();
        set_up(&mut t, 16);
        assert!(wr(&mut t, reg::QUEUE_NOTIFY, 0));
        assert!(!t.service_queues());
        wr(&mut t, reg::STATUS, 1 | 2 | 8 | 4);
        assert!(t.service_queues());
        assert_eq!(rd(&t, reg::INTERRUPT_STATUS), 1);
        assert_eq!(
            rd(&t, reg::INTERRUPT_STATUS),
            1,
            "reading has no side effect"
        );
        wr(&mut t, reg::INTERRUPT_ACK, 2);
        assert_eq!(
            rd(&t, reg::INTERRUPT_STATUS),
            1,
            "ack clears only written bits"
        );
        wr(&mut t, reg::INTERRUPT_ACK, 1);
        assert_eq!(rd(&t, reg::INTERRUPT_STATUS), 0);
    }

    #[test]
    fn a_queue_size_not_a_power_of_two_means_needs_reset() {
        let mut t = transport();
        set_up(&mut t, 12);
        wr(&mut t, reg::STATUS, 1 | 2 | 8 | 4);
        assert_ne!(rd(&t, reg::STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
        assert_eq!(rd(&t, reg::INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
        assert!(!t.service_queues(), "nothing served while NEEDS_RESET");
        wr(&mut t, reg::STATUS, 0);
        assert_eq!(rd(&t, reg::STATUS), 0, "reset clears it");
    }

    #[test]
    fn rings_outside_guest_memory_mean_needs_reset() {
        let mut t = transport();
        set_up(&mut t, 16);
        wr(&mut t, reg::QUEUE_READY, 0);
        wr(&mut t, reg::QUEUE_USED_HIGH, 7);
        wr(&mut t, reg::QUEUE_READY, 1);
        wr(&mut t, reg::STATUS, 1 | 2 | 8 | 4);
        assert_ne!(rd(&t, reg::STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    }

    #[test]
    fn save_and_restore_carry_registers_and_queues_and_activate_a_live_device() {
        let mut t = transport();
        set_up(&mut t, 8);
        wr(&mut t, reg::STATUS, 1 | 2 | 8 | 4);
        assert!(t.service_queues());
        let saved = t.save(3);
        assert_eq!(saved.slot, 3);
        assert_eq!(saved.transport.status, 15);
        assert_eq!(saved.transport.driver_features, 1 << 32);
        assert_eq!(saved.transport.interrupt_status, 1);
        let q = saved.transport.queues[0];
        assert_eq!(
            (q.size, q.ready, q.desc_table, q.avail_ring, q.used_ring),
            (8, true, 0x1000, 0x2000, 0x3000)
        );

        let mut fresh = transport();
        fresh.restore(&saved).unwrap();
        assert_eq!(fresh.save(3), saved);
        assert_eq!(rd(&fresh, reg::STATUS), 15);
        assert_eq!(rd(&fresh, reg::QUEUE_READY), 1);
        assert!(fresh.service_queues(), "live again: the queue is served");
    }

    #[test]
    fn a_restore_that_does_not_fit_changes_nothing() {
        let mut t = transport();
        set_up(&mut t, 8);
        let mut saved = t.save(0);
        saved.device_id = 1;
        let mut fresh = transport();
        assert_eq!(
            fresh.restore(&saved).unwrap_err(),
            "the snapshot has a virtio-net there, this VM a virtio-blk"
        );
        saved.device_id = 2;
        saved.transport.queues[0].max_size = 32;
        let e = fresh.restore(&saved).unwrap_err();
        assert!(e.contains("queues of sizes [32], this VM's [16]"), "{e}");
        saved.transport.queues[0].max_size = 16;
        saved.device = crate::devices::virtio::DeviceState::Block {
            path: "other".into(),
            size: 512,
            readonly: false,
            modified_ns: None,
        };
        assert_eq!(fresh.restore(&saved).unwrap_err(), "another dummy");
        assert_eq!(rd(&fresh, reg::STATUS), 0, "nothing changed");
    }

    #[test]
    fn a_paused_transport_serves_nothing_until_resumed() {
        let mut t = transport();
        set_up(&mut t, 8);
        wr(&mut t, reg::STATUS, 1 | 2 | 8 | 4);
        t.pause();
        assert!(!t.service_queues());
        t.resume();
        assert!(t.service_queues());
    }
}
