//! virtio 1.x devices on the modern virtio-mmio transport (virtio 1.2 §4.2), placed as QEMU's
//! microvm places them: transport N at `VIRTIO_MMIO_BASE + N * 512`, IRQ `16 + N` (microvm
//! with ACPI and one IOAPIC), each listed in the DSDT as an `LNRO0005` device.
//!
//! `mmio` is the register block (pure: guest reads and writes in, state and "queue N was
//! notified" out); `blk` is virtio-blk on a raw file; `net` is virtio-net on a tap. The queues are rust-vmm's
//! `virtio-queue` over guest memory (`vm-memory`). Who runs a device's queues (an I/O thread
//! woken by an ioeventfd, interrupts through an irqfd) is `worker`'s business; the vCPU thread
//! only touches registers.
//!
//! Snapshots: [`SavedVirtio`] is one transport's registers and queues
//! ([`mmio::MmioTransport::save`]) with its device's own state ([`DeviceState`], from
//! [`VirtioDevice::save_state`]); `vmm::snapshot` quiesces every transport first
//! ([`mmio::MmioTransport::pause`]: its I/O thread then takes no new request) so that what is
//! saved and guest RAM agree.

pub mod announce;
pub mod balloon;
pub mod blk;
pub mod mmio;
pub mod net;
pub mod worker;

#[cfg(test)]
mod test_ring;

use std::sync::{Arc, Mutex};

use crate::memory::guest::GuestMem;
use serde::{Deserialize, Serialize};
use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

/// The base of the first virtio-mmio transport (QEMU's `VIRTIO_MMIO_BASE`, hw/i386/microvm.h).
pub const VIRTIO_MMIO_BASE: u64 = 0xfeb0_0000;
/// The size of one transport's register block, and the stride between transports.
pub const VIRTIO_MMIO_SIZE: u64 = 0x200;
/// The number of transports (QEMU microvm's `virtio_num_transports`).
pub const VIRTIO_MMIO_SLOTS: u32 = crate::config::VIRTIO_SLOTS as u32;
/// The GSI of transport 0: QEMU microvm with ACPI and no second IOAPIC uses 16 + N.
pub const VIRTIO_IRQ_BASE: u32 = 16;

/// Transport `slot`'s MMIO base.
pub fn slot_base(slot: u32) -> u64 {
    VIRTIO_MMIO_BASE + u64::from(slot) * VIRTIO_MMIO_SIZE
}

/// Transport `slot`'s GSI.
pub fn slot_irq(slot: u32) -> u32 {
    VIRTIO_IRQ_BASE + slot
}

/// Transport `slot` in the kernel command-line form of QEMU microvm (`--machine
/// virtio-cmdline=on`): `virtio_mmio.device=512@0xfeb00000:16`.
pub fn cmdline_device(slot: u32) -> String {
    format!(
        "virtio_mmio.device={}@{:#x}:{}",
        VIRTIO_MMIO_SIZE,
        slot_base(slot),
        slot_irq(slot)
    )
}

/// What a device model gives its transport.
pub trait VirtioDevice: Send {
    /// The virtio device ID (blk 2, net 1, balloon 5).
    fn device_id(&self) -> u32;
    /// The feature bits the device offers (VERSION_1 included).
    fn features(&self) -> u64;
    /// The largest size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// The device-specific configuration space.
    fn config(&self) -> &[u8];
    /// Serves the available buffers of queue `index`. Returns whether the used ring gained
    /// entries that the driver wants an interrupt for; `Err` marks the device NEEDS_RESET.
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMem,
    ) -> Result<bool, DeviceError>;
    /// A driver write of `data` at `offset` into the configuration space (balloon's
    /// `actual`, for example). Most devices' configuration is read-only: ignored.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// The driver set DRIVER_OK having accepted `features` (a subset of [`features`]).
    ///
    /// [`features`]: VirtioDevice::features
    fn activate(&mut self, _features: u64) {}
    /// The driver reset the device (status 0): forget what `activate` was told.
    fn reset(&mut self) {}
    /// A descriptor the I/O thread also waits on, now: when it polls readable the queues are
    /// served (net's tap while its receive queue has buffers). `None` (the default): only
    /// notifications wake the device.
    fn poll_fd(&self) -> Option<std::os::unix::io::RawFd> {
        None
    }
    /// The host changed what the configuration space shows (the balloon's target): bring
    /// it up to date. Called by the transport's `config_changed`.
    fn refresh_config(&mut self) {}
    /// An event a driver write raised for the rest of the VMM (the balloon's new `actual`),
    /// taken by the bus after each write.
    fn take_guest_event(&mut self) -> Option<crate::devices::GuestEvent> {
        None
    }
    /// Makes what the device wrote to its backend durable (blk: fdatasync of the image), for
    /// a snapshot taken while the device is paused. The default: nothing to flush.
    fn flush_backend(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Drops the host locks the device holds on its backend (blk's image lock), flushing
    /// what it wrote first: a migration source hands its disks over before the destination
    /// takes them. The default: nothing to drop.
    fn release_host_locks(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Takes the host locks back or for the first time (a migration destination opened its
    /// disks without them); an error names the backend another process holds.
    fn take_host_locks(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Tells the network where the device now is (a NIC after a migration: one RARP frame);
    /// whether something was sent. The default: nothing to tell.
    fn announce(&mut self) -> bool {
        false
    }
    /// The device's own state for a snapshot (beyond its transport's registers and queues).
    fn save_state(&self) -> DeviceState;
    /// Checks that `state` (saved from a device in the same slot) fits this device, and
    /// takes what it holds. `Err` says what differs; nothing was changed then.
    fn restore_state(&mut self, state: &DeviceState) -> Result<(), String>;
}

/// One virtio transport in a snapshot: its slot, device ID, registers, queues and the
/// device's own state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedVirtio {
    pub slot: u32,
    pub device_id: u32,
    pub transport: mmio::TransportState,
    pub device: DeviceState,
}

/// A device's own state in a snapshot, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DeviceState {
    /// virtio-blk: which image and how large (checked on restore; the data is the file's).
    Block {
        path: String,
        size: u64,
        readonly: bool,
        /// The image's modification time (ns since the epoch) when the device was paused:
        /// a restore warns when the image was written since (absent in older snapshots).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        modified_ns: Option<u64>,
    },
    /// virtio-net: the MAC and the tap the NIC was on (the restored VM opens its tap by the
    /// saved flags; a tap rvmm created gets a new one).
    Net { mac: String, tap: String },
    /// virtio-balloon: the target and what the driver reported, the optional features and
    /// the counters of what was given back.
    Balloon {
        target: u32,
        actual: u32,
        deflate_on_oom: bool,
        free_page_reporting: bool,
        given_back: u64,
        deflated: u64,
        reported: u64,
        refused: u64,
    },
}

/// A file's modification time in ns since the epoch, if the file system keeps one.
pub fn modified_ns(meta: &std::fs::Metadata) -> Option<u64> {
    let since = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    u64::try_from(since.as_nanos()).ok()
}

impl DeviceState {
    /// The kind's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceState::Block { .. } => "virtio-blk",
            DeviceState::Net { .. } => "virtio-net",
            DeviceState::Balloon { .. } => "virtio-balloon",
        }
    }
}

/// A device ID's name, for messages.
pub fn kind_name(device_id: u32) -> String {
    match device_id {
        1 => "virtio-net".to_string(),
        2 => "virtio-blk".to_string(),
        5 => "virtio-balloon".to_string(),
        id => format!("virtio device ID {id}"),
    }
}

/// A failure that leaves the device unusable until the driver resets it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("virtio queue: {0}")]
    Queue(#[from] virtio_queue::Error),
    #[error("guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

/// A live transport as the rest of the VMM reaches it (to tell the driver its device's
/// configuration changed, as the balloon's controller does).
pub struct VirtioHandle {
    pub slot: u32,
    pub device_id: u32,
    pub transport: Arc<Mutex<mmio::MmioTransport>>,
    /// The transport's interrupt (an irqfd).
    pub irq: EventFd,
    /// The device thread's wakeup (the ioeventfd of QueueNotify): a restore or a resume
    /// after a snapshot signals it so that the thread serves the queues and asks for the
    /// device's descriptor again.
    pub notify: EventFd,
}

impl VirtioHandle {
    /// Raises the configuration-change interrupt when the driver is live.
    pub fn config_changed(&self) {
        let raise = self
            .transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .config_changed();
        if raise {
            // A full counter only means the interrupt is pending already.
            let _ = self.irq.write(1);
        }
    }

    /// Wakes the device thread (a full counter means it has a wakeup pending already).
    pub fn wake(&self) {
        let _ = self.notify.write(1);
    }
}
