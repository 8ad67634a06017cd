//! virtio-net (virtio 1.2 §5.1) on a frame pipe (a tap, through [`FrameIo`]): one receive
//! queue (0) and one transmit queue (1), the MAC and the link status in the configuration
//! space, and checksum/TSO offloads offered only when the tap takes them. Every frame
//! carries the 12-byte virtio 1.x header (`virtio_net_hdr_mrg_rxbuf`) both ways, as the tap
//! does (`IFF_VNET_HDR` with a header size of 12), so frames pass through unchanged.
//!
//! Receive: a frame is read from the tap only when a receive buffer is there for it; with
//! none, [`Net::poll_fd`] stops offering the tap to the I/O thread until the driver adds
//! buffers (its notification serves the queue again), so the thread never spins on a
//! readable tap. Limits: a chain that loops or is longer than the queue, a buffer outside
//! guest memory, a buffer too small for the header, a transmit frame above
//! [`MAX_FRAME`]: the chain is returned with a used length of 0 and the frame is dropped.

use std::os::unix::io::RawFd;

use crate::memory::guest::GuestMem;
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS,
    VIRTIO_NET_S_LINK_UP,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use super::{DeviceError, VirtioDevice};

/// The queue size (QEMU's virtio-net default).
pub const QUEUE_SIZE: u16 = 256;
/// The virtio 1.x net header.
pub const HDR_LEN: usize = 12;
/// The largest frame with its header: a 64 KiB GSO frame, an Ethernet header, a VLAN tag and
/// the header (QEMU's VIRTIO_NET_MAX_BUFSIZE plus the header).
pub const MAX_FRAME: usize = 65562;
/// The receive queue.
pub const RX: usize = 0;
/// The transmit queue.
pub const TX: usize = 1;

/// `TUNSETOFFLOAD` flags (linux/if_tun.h), which [`FrameIo::set_offloads`] takes.
pub const TUN_F_CSUM: u32 = 0x01;
pub const TUN_F_TSO4: u32 = 0x02;
pub const TUN_F_TSO6: u32 = 0x04;

/// Where frames go and come from: a tap in the VMM, a socket pair in tests. Frames include
/// the 12-byte header.
pub trait FrameIo: Send {
    /// Reads one frame; `WouldBlock` when none is queued.
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// Writes one frame.
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()>;
    /// The descriptor that polls readable when a frame is queued.
    fn fd(&self) -> RawFd;
    /// The `TUN_F_*` offloads the other end accepts.
    fn offloads(&self) -> u32;
    /// Lets the other end hand over frames with these offloads left undone.
    fn set_offloads(&mut self, flags: u32) -> std::io::Result<()>;
    /// The other end's name (a tap's interface name), for snapshots; empty by default.
    fn name(&self) -> String {
        String::new()
    }
    /// Lets go of the other end for a migration's handover (a tap opened by name is
    /// closed, so the destination can open it); the default keeps it.
    fn release_host(&mut self) {}
    /// Takes the other end (back) after [`FrameIo::release_host`], or for the first time on
    /// a migration's destination; an error names it.
    fn take_host(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// One virtio-net device.
pub struct Net {
    io: Box<dyn FrameIo>,
    config: [u8; 8],
    features: u64,
    /// The offloads to set from the I/O thread before the next frame moves (set by
    /// `activate` and `reset` on the vCPU thread, which may not make the ioctl).
    pending_offloads: Option<u32>,
    /// DRIVER_OK was set and no reset since.
    active: bool,
    /// The features the driver accepted (at DRIVER_OK).
    driver_features: u64,
    /// The receive queue ran out of buffers: the tap is not polled until it is served again.
    rx_starved: bool,
    /// A frame read from the tap that found no buffer yet (its length in `frame`).
    held: Option<usize>,
    frame: Vec<u8>,
    /// Frames moved each way, for tests and diagnostics.
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Chains returned unused (hostile or too small).
    pub dropped: u64,
}

/// The features for the offloads a tap takes.
pub fn offered_features(tap_offloads: u32) -> u64 {
    let mut f = (1u64 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_STATUS);
    if tap_offloads & TUN_F_CSUM != 0 {
        // The tap takes partial checksums from us (CSUM) and can give them (GUEST_CSUM).
        f |= (1 << VIRTIO_NET_F_CSUM) | (1 << VIRTIO_NET_F_GUEST_CSUM);
        if tap_offloads & TUN_F_TSO4 != 0 {
            f |= (1 << VIRTIO_NET_F_HOST_TSO4) | (1 << VIRTIO_NET_F_GUEST_TSO4);
        }
        if tap_offloads & TUN_F_TSO6 != 0 {
            f |= (1 << VIRTIO_NET_F_HOST_TSO6) | (1 << VIRTIO_NET_F_GUEST_TSO6);
        }
    }
    f
}

/// The tap offloads for what the driver accepted: what it can receive undone.
pub fn tap_offloads(driver: u64) -> u32 {
    let has = |bit: u32| driver & (1u64 << bit) != 0;
    let mut t = 0;
    if has(VIRTIO_NET_F_GUEST_CSUM) {
        t |= TUN_F_CSUM;
        if has(VIRTIO_NET_F_GUEST_TSO4) {
            t |= TUN_F_TSO4;
        }
        if has(VIRTIO_NET_F_GUEST_TSO6) {
            t |= TUN_F_TSO6;
        }
    }
    t
}

/// A chain's buffers in order, all of one direction.
fn walk(
    chain: virtio_queue::DescriptorChain<&GuestMem>,
    limit: usize,
    writable: bool,
) -> Option<Vec<(GuestAddress, u32)>> {
    let mut segs = Vec::new();
    let mut last_has_next = false;
    for (count, d) in chain.enumerate() {
        if count >= limit || d.is_write_only() != writable {
            return None;
        }
        segs.push((d.addr(), d.len()));
        last_has_next = d.has_next();
    }
    // The iterator stops at its time-to-live on a loop: the last descriptor still chains on.
    (!last_has_next && !segs.is_empty()).then_some(segs)
}

impl Net {
    /// A NIC with `mac` on `io`.
    pub fn new(io: Box<dyn FrameIo>, mac: [u8; 6]) -> Net {
        let mut config = [0u8; 8];
        // struct virtio_net_config: mac[6], status (le16).
        config[..6].copy_from_slice(&mac);
        config[6..8].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        let features = offered_features(io.offloads());
        Net {
            io,
            config,
            features,
            pending_offloads: None,
            active: false,
            driver_features: 0,
            rx_starved: false,
            held: None,
            frame: vec![0; MAX_FRAME],
            rx_frames: 0,
            tx_frames: 0,
            dropped: 0,
        }
    }

    fn apply_offloads(&mut self) {
        if let Some(flags) = self.pending_offloads.take() {
            // A tap refusing what it accepted at open has nothing better to fall back to than
            // no offload (frames then arrive complete, which every driver takes).
            if self.io.set_offloads(flags).is_err() {
                let _ = self.io.set_offloads(0);
            }
        }
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMem) -> Result<bool, DeviceError> {
        let limit = usize::from(queue.size());
        let mut used_any = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            match walk(chain, limit, false).and_then(|segs| self.gather(mem, &segs)) {
                Some(len) => {
                    // A full or refusing tap drops the frame, as a wire would.
                    if self.io.send(&self.frame[..len]).is_ok() {
                        self.tx_frames += 1;
                    }
                }
                None => self.dropped += 1,
            }
            queue.add_used(mem, head, 0)?;
            used_any = true;
        }
        Ok(used_any)
    }

    /// Copies a transmit chain into `frame`: its length, if it holds a header and fits.
    fn gather(&mut self, mem: &GuestMem, segs: &[(GuestAddress, u32)]) -> Option<usize> {
        let mut done = 0usize;
        for &(addr, len) in segs {
            let end = done.checked_add(len as usize).filter(|&e| e <= MAX_FRAME)?;
            mem.read_slice(&mut self.frame[done..end], addr).ok()?;
            done = end;
        }
        (done >= HDR_LEN).then_some(done)
    }

    fn receive(&mut self, queue: &mut Queue, mem: &GuestMem) -> Result<bool, DeviceError> {
        let limit = usize::from(queue.size());
        let mut used_any = false;
        self.rx_starved = false;
        loop {
            let len = match self.held {
                Some(len) => len,
                None => match self.io.recv(&mut self.frame) {
                    Ok(len) if len >= HDR_LEN => len,
                    // A runt (or an empty read) is not a frame.
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // A broken tap (gone, down): not polled until the next notification.
                    Err(_) => {
                        self.rx_starved = true;
                        break;
                    }
                },
            };
            self.held = Some(len);
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                self.rx_starved = true;
                break;
            };
            let head = chain.head_index();
            // Without MRG_RXBUF a frame takes one chain: num_buffers is 1 (§5.1.6.4).
            self.frame[10..12].copy_from_slice(&1u16.to_le_bytes());
            let written = match walk(chain, limit, true) {
                Some(segs) => scatter(mem, &segs, &self.frame[..len]),
                None => None,
            };
            let used = match written {
                Some(()) => {
                    self.rx_frames += 1;
                    len as u32
                }
                None => {
                    self.dropped += 1;
                    0
                }
            };
            // The frame is gone either way: a buffer that cannot take it would not take the
            // next copy either.
            self.held = None;
            queue.add_used(mem, head, used)?;
            used_any = true;
        }
        Ok(used_any)
    }
}

/// Writes `data` across `segs`; `None` if it does not fit or a buffer is outside memory.
fn scatter(mem: &GuestMem, segs: &[(GuestAddress, u32)], data: &[u8]) -> Option<()> {
    let mut done = 0;
    for &(addr, len) in segs {
        if done == data.len() {
            break;
        }
        let n = (len as usize).min(data.len() - done);
        mem.write_slice(&data[done..done + n], addr).ok()?;
        done += n;
    }
    (done == data.len()).then_some(())
}

impl VirtioDevice for Net {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMem,
    ) -> Result<bool, DeviceError> {
        self.apply_offloads();
        let used = match index {
            RX => self.receive(queue, mem)?,
            TX => self.transmit(queue, mem)?,
            _ => false,
        };
        Ok(used && queue.needs_notification(mem)?)
    }

    fn activate(&mut self, features: u64) {
        self.pending_offloads = Some(tap_offloads(features));
        self.driver_features = features;
        self.active = true;
        // Not polled until the driver's first receive notification finds the queue.
        self.rx_starved = true;
    }

    fn reset(&mut self) {
        if self.active {
            self.pending_offloads = Some(0);
        }
        self.active = false;
        self.rx_starved = false;
        self.held = None;
    }

    fn poll_fd(&self) -> Option<RawFd> {
        let fd = self.io.fd();
        // A tap handed over (fd -1) is not polled until it is taken back.
        (self.active && !self.rx_starved && fd >= 0).then_some(fd)
    }

    /// A frame held for a receive buffer is dropped with the tap (frames on a wire being
    /// moved are lost; the guest's TCP sends them again).
    fn release_host_locks(&mut self) -> Result<(), String> {
        self.held = None;
        self.io.release_host();
        Ok(())
    }

    /// The tap is opened again (the destination's, or the source's own after a failed
    /// handover) and gets the offloads the driver accepted.
    fn take_host_locks(&mut self) -> Result<(), String> {
        self.io.take_host()?;
        if self.active {
            self.pending_offloads = Some(tap_offloads(self.driver_features));
        }
        Ok(())
    }

    fn announce(&mut self) -> bool {
        self.io.send(&rarp_announcement(&self.config[..6])).is_ok()
    }

    fn save_state(&self) -> super::DeviceState {
        super::DeviceState::Net {
            mac: format_mac(&self.config[..6]),
            tap: self.io.name(),
        }
    }

    /// The MAC must be the same (the guest's driver read it); the tap is the one the
    /// restored VM opened from the saved flags (a tap rvmm created is a new one, so its name
    /// may differ). A frame held for a receive buffer at the snapshot is not saved: it is
    /// lost, as on a wire.
    fn restore_state(&mut self, state: &super::DeviceState) -> Result<(), String> {
        let super::DeviceState::Net { mac, .. } = state else {
            return Err(format!(
                "the snapshot has a {} there, this VM a virtio-net",
                state.kind()
            ));
        };
        let here = format_mac(&self.config[..6]);
        if *mac != here {
            return Err(format!(
                "the snapshot's NIC has MAC {mac}, this VM's {here}"
            ));
        }
        Ok(())
    }
}

/// The frame that tells the network where `mac` now is, after a migration: a broadcast
/// RARP request (ethertype 0x8035, opcode 3) from `mac` about itself, padded to Ethernet's
/// 60-byte minimum, after a zero virtio header. Switches and bridges learn the port from
/// its source address; QEMU's self-announce sends the same kind of frame.
pub fn rarp_announcement(mac: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; HDR_LEN + 60];
    let e = &mut f[HDR_LEN..];
    e[..6].fill(0xff);
    e[6..12].copy_from_slice(mac);
    e[12..14].copy_from_slice(&0x8035u16.to_be_bytes());
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op 3 (reverse request).
    e[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 3]);
    e[22..28].copy_from_slice(mac);
    e[32..38].copy_from_slice(mac);
    f
}

/// A MAC as `52:54:00:12:34:56`.
fn format_mac(mac: &[u8]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
