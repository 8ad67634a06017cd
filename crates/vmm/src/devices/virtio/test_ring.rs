//! The driver's side of one split virtqueue for the device tests (`blk_tests`,
//! `balloon_tests`, `net_tests`): 16 entries at fixed guest addresses, and descriptor chains
//! offered on it as a driver would.

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::memory::guest::GuestMem;

/// The descriptor table, the available ring and the used ring.
pub(super) const DESC: u64 = 0x1000;
pub(super) const AVAIL: u64 = 0x2000;
pub(super) const USED: u64 = 0x3000;
/// Entries in the queue.
const SIZE: u16 = 16;

/// A ready queue of [`SIZE`] entries at [`DESC`], [`AVAIL`] and [`USED`].
pub(super) fn queue() -> Queue {
    let mut queue = Queue::new(SIZE).unwrap();
    queue.set_size(SIZE);
    queue.set_desc_table_address(Some(DESC as u32), Some(0));
    queue.set_avail_ring_address(Some(AVAIL as u32), Some(0));
    queue.set_used_ring_address(Some(USED as u32), Some(0));
    queue.set_ready(true);
    queue
}

/// Puts `descs` at table entries 0.. and makes entry 0 available as the driver's
/// `avail_idx`-th buffer, counting it (nothing processes it).
pub(super) fn offer(mem: &GuestMem, avail_idx: &mut u16, descs: &[Descriptor]) {
    for (i, d) in descs.iter().enumerate() {
        mem.write_obj(*d, GuestAddress(DESC + 16 * i as u64))
            .unwrap();
    }
    let slot = AVAIL + 4 + 2 * u64::from(*avail_idx % SIZE);
    mem.write_obj(0u16, GuestAddress(slot)).unwrap();
    *avail_idx = avail_idx.wrapping_add(1);
    mem.write_obj(*avail_idx, GuestAddress(AVAIL + 2)).unwrap();
}
