//! virtio-balloon (virtio 1.2 §5.5): the host asks the guest for memory back and the guest
//! hands it pages, which rvmm gives back to the host kernel.
//!
//! Queues: inflate (0) and deflate (1) carry arrays of 4 KiB page frame numbers (le32);
//! with VIRTIO_BALLOON_F_REPORTING the free page reporting queue follows as queue 2. The
//! spec lists statsq (2) and free_page_vq (3) before it, but those exist only with their
//! features, and a driver numbers the queues that exist one after the other (as Linux's
//! virtio-mmio does): this device offers neither STATS_VQ nor FREE_PAGE_HINT, so reporting
//! is queue 2 here (QEMU always has a statsq, so there it is 3).
//!
//! Configuration: `num_pages` (le32, the target the host sets through
//! [`BalloonShared::set_target`] and the transport's configuration change) and `actual`
//! (le32, what the driver says the balloon holds; the only field it may write). A new
//! `actual` is a [`GuestEvent::BalloonChange`] (QMP's BALLOON_CHANGE).
//!
//! "Given back" means: each inflated or reported page's host memory is released, so the
//! VMM's RSS drops and the page reads as zero when the guest touches it again. Private
//! anonymous RAM gets MADV_DONTNEED; shared RAM (memfd, a mem-path file) and shared hugetlbfs
//! get MADV_REMOVE (a hole punched in the file); private hugetlb gets MADV_DONTNEED. With
//! huge pages only whole huge pages inside a run of contiguous PFNs are released. A PFN
//! outside guest RAM is skipped and counted, never fatal. Deflate needs no host work: the
//! pages fault back in on the guest's next touch.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::memory::guest::GuestMem;
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use super::{DeviceError, VirtioDevice};
use crate::config::balloon::BalloonConfig;
use crate::devices::GuestEvent;

/// virtio's balloon device ID.
pub const DEVICE_ID: u32 = 5;
/// VIRTIO_BALLOON_F_DEFLATE_ON_OOM.
pub const F_DEFLATE_ON_OOM: u32 = 2;
/// VIRTIO_BALLOON_F_REPORTING (free page reporting).
pub const F_REPORTING: u32 = 5;
/// The balloon's page: 4 KiB whatever the host's page size (VIRTIO_BALLOON_PFN_SHIFT).
pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// The inflate and deflate queues' size (QEMU's).
pub const QUEUE_SIZE: u16 = 128;
/// The reporting queue's size (QEMU's).
pub const REPORTING_QUEUE_SIZE: u16 = 32;
/// The queues' indexes.
pub const INFLATE: usize = 0;
pub const DEFLATE: usize = 1;
pub const REPORTING: usize = 2;
/// PFNs read from guest memory at a time.
const PFN_CHUNK: usize = 1024;

/// What the balloon and the VMM's controller share: the target the controller sets, what
/// the driver reports, and what the device gave back.
#[derive(Debug, Default)]
pub struct BalloonShared {
    target: AtomicU32,
    actual: AtomicU32,
    given_back: AtomicU64,
    deflated: AtomicU64,
    reported: AtomicU64,
    refused: AtomicU64,
}

impl BalloonShared {
    /// Sets the target (pages the balloon should hold); the caller then tells the transport
    /// its configuration changed (`VirtioHandle::config_changed`).
    pub fn set_target(&self, pages: u32) {
        self.target.store(pages, Ordering::SeqCst);
    }
    /// The target in pages.
    pub fn target(&self) -> u32 {
        self.target.load(Ordering::SeqCst)
    }
    /// The pages the driver last said the balloon holds.
    pub fn actual(&self) -> u32 {
        self.actual.load(Ordering::SeqCst)
    }
    /// Inflated pages given back to the host so far.
    pub fn given_back(&self) -> u64 {
        self.given_back.load(Ordering::Relaxed)
    }
    /// Deflated pages so far.
    pub fn deflated(&self) -> u64 {
        self.deflated.load(Ordering::Relaxed)
    }
    /// Reported free pages given back so far.
    pub fn reported(&self) -> u64 {
        self.reported.load(Ordering::Relaxed)
    }
    /// PFNs and reported ranges refused (outside guest RAM).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// How pages go back to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveBack {
    /// MADV_REMOVE (shared mappings: a hole in the file) rather than MADV_DONTNEED.
    pub remove: bool,
    /// The host page size of the backing (4 KiB, or the huge page size).
    pub page_size: u64,
}

impl GiveBack {
    /// For RAM mapped shared or not, with huge pages of `huge_page` bytes or not.
    pub fn new(shared: bool, huge_page: Option<u64>) -> Self {
        GiveBack {
            remove: shared,
            page_size: huge_page.unwrap_or(PAGE_SIZE).max(PAGE_SIZE),
        }
    }
}

/// One virtio-balloon device.
pub struct Balloon {
    features: u64,
    queue_sizes: Vec<u16>,
    config: [u8; 8],
    shared: Arc<BalloonShared>,
    give_back: GiveBack,
    /// A new `actual` the controller has not been told about.
    pending: Option<u32>,
}

impl Balloon {
    pub fn new(config: &BalloonConfig, give_back: GiveBack, shared: Arc<BalloonShared>) -> Self {
        let mut features = 1u64 << VIRTIO_F_VERSION_1;
        let mut queue_sizes = vec![QUEUE_SIZE, QUEUE_SIZE];
        if config.deflate_on_oom {
            features |= 1 << F_DEFLATE_ON_OOM;
        }
        if config.free_page_reporting {
            features |= 1 << F_REPORTING;
            queue_sizes.push(REPORTING_QUEUE_SIZE);
        }
        let mut b = Balloon {
            features,
            queue_sizes,
            config: [0; 8],
            shared,
            give_back,
            pending: None,
        };
        b.refresh_config();
        b
    }

    /// Gives `[addr, addr + len)` of guest RAM back to the host: false (nothing done) when
    /// the range is not inside one RAM region.
    fn release(&self, mem: &GuestMem, addr: u64, len: u64) -> bool {
        let Some(region) = mem.find_region(GuestAddress(addr)) else {
            return false;
        };
        let start = addr - region.start_addr().0;
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        if len == 0 || end > region.len() {
            return false;
        }
        // Only whole host pages: a partial huge page stays.
        let ps = self.give_back.page_size;
        let (from, to) = (start.next_multiple_of(ps), end - end % ps);
        if from >= to {
            return true;
        }
        let Ok(host) = region.get_host_address(vm_memory::MemoryRegionAddress(from)) else {
            return false;
        };
        let advice = if self.give_back.remove {
            libc::MADV_REMOVE
        } else {
            libc::MADV_DONTNEED
        };
        // SAFETY: `[host, host + to - from)` lies inside the region's live mapping (checked
        // above), which is guest RAM: the guest gave these pages up, and dropping their
        // contents (they read back as zero) is what the balloon promises; no Rust reference
        // points into guest RAM.
        let r = unsafe { libc::madvise(host.cast(), (to - from) as usize, advice) };
        if r != 0 && advice == libc::MADV_REMOVE {
            // A mapping that cannot punch holes (a private file mapping) still drops its
            // private copies.
            // SAFETY: as above.
            unsafe { libc::madvise(host.cast(), (to - from) as usize, libc::MADV_DONTNEED) };
        }
        // The pages now read as zero: a migration must send them again (KVM's dirty log
        // does not see a discard).
        vm_memory::bitmap::Bitmap::mark_dirty(
            &region.bitmap(),
            from as usize,
            (to - from) as usize,
        );
        true
    }

    /// Gives back the pages of `pfns`, contiguous runs at once. Returns the pages given
    /// back; PFNs outside guest RAM are counted as refused.
    fn release_pfns(&self, mem: &GuestMem, pfns: &[u32]) -> u64 {
        let mut done = 0;
        let mut i = 0;
        while i < pfns.len() {
            let first = u64::from(pfns[i]);
            let mut n = 1;
            while i + n < pfns.len() && u64::from(pfns[i + n]) == first + n as u64 {
                n += 1;
            }
            if self.release(mem, first << PAGE_SHIFT, (n as u64) << PAGE_SHIFT) {
                done += n as u64;
            } else {
                // Page by page, to give back what is inside RAM and refuse the rest.
                for p in first..first + n as u64 {
                    if self.release(mem, p << PAGE_SHIFT, PAGE_SIZE) {
                        done += 1;
                    } else {
                        self.shared.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            i += n;
        }
        done
    }

    /// The PFN arrays of one inflate or deflate buffer, in chunks: (pages in RAM).
    fn pfn_buffers(&self, mem: &GuestMem, bufs: &[(GuestAddress, u32)], give: bool) -> u64 {
        let mut pages = 0;
        let mut raw = vec![0u8; PFN_CHUNK * 4];
        for &(addr, len) in bufs {
            let mut off = 0u64;
            let len = u64::from(len) - u64::from(len) % 4;
            while off < len {
                let n = (len - off).min(raw.len() as u64) as usize;
                let Some(at) = addr.0.checked_add(off) else {
                    break;
                };
                if mem.read_slice(&mut raw[..n], GuestAddress(at)).is_err() {
                    // The array is not in guest memory: the rest of it is refused.
                    self.shared
                        .refused
                        .fetch_add((len - off) / 4, Ordering::Relaxed);
                    break;
                }
                let pfns: Vec<u32> = raw[..n]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if give {
                    pages += self.release_pfns(mem, &pfns);
                } else {
                    for &p in &pfns {
                        if mem.address_in_range(GuestAddress(u64::from(p) << PAGE_SHIFT)) {
                            pages += 1;
                        } else {
                            self.shared.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                off += n as u64;
            }
        }
        pages
    }
}

/// Every buffer of a chain, readable or writable (bounded by the queue size; `None` when
/// the chain loops).
fn buffers(
    chain: virtio_queue::DescriptorChain<&GuestMem>,
    limit: usize,
) -> Option<Vec<(GuestAddress, u32)>> {
    let mut out = Vec::new();
    let mut last_has_next = false;
    for (count, d) in chain.enumerate() {
        if count >= limit {
            return None;
        }
        out.push((d.addr(), d.len()));
        last_has_next = d.has_next();
    }
    (!last_has_next).then_some(out)
}

impl VirtioDevice for Balloon {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
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
        let limit = usize::from(queue.size());
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            if let Some(bufs) = buffers(chain, limit) {
                match index {
                    INFLATE => {
                        let n = self.pfn_buffers(mem, &bufs, true);
                        self.shared.given_back.fetch_add(n, Ordering::Relaxed);
                    }
                    DEFLATE => {
                        let n = self.pfn_buffers(mem, &bufs, false);
                        self.shared.deflated.fetch_add(n, Ordering::Relaxed);
                    }
                    _ => {
                        for (addr, len) in bufs {
                            if self.release(mem, addr.0, u64::from(len)) {
                                self.shared
                                    .reported
                                    .fetch_add(u64::from(len) >> PAGE_SHIFT, Ordering::Relaxed);
                            } else {
                                self.shared.refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
            queue.add_used(mem, head, 0)?;
            used = true;
        }
        Ok(used && queue.needs_notification(mem)?)
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only `actual` (bytes 4..8) is the driver's; num_pages is read-only.
        let Some(end) = offset.checked_add(data.len() as u64) else {
            return;
        };
        if offset < 4 || end > 8 {
            return;
        }
        let at = offset as usize;
        self.config[at..at + data.len()].copy_from_slice(data);
        let actual = u32::from_le_bytes([
            self.config[4],
            self.config[5],
            self.config[6],
            self.config[7],
        ]);
        if self.shared.actual.swap(actual, Ordering::SeqCst) != actual {
            self.pending = Some(actual);
        }
    }

    fn refresh_config(&mut self) {
        self.config[0..4].copy_from_slice(&self.shared.target().to_le_bytes());
    }

    fn take_guest_event(&mut self) -> Option<GuestEvent> {
        self.pending
            .take()
            .map(|actual| GuestEvent::BalloonChange { actual })
    }

    fn save_state(&self) -> super::DeviceState {
        let s = &self.shared;
        super::DeviceState::Balloon {
            target: s.target(),
            actual: s.actual(),
            deflate_on_oom: self.features & (1 << F_DEFLATE_ON_OOM) != 0,
            free_page_reporting: self.features & (1 << F_REPORTING) != 0,
            given_back: s.given_back(),
            deflated: s.deflated(),
            reported: s.reported(),
            refused: s.refused(),
        }
    }

    /// The optional features must be the same (the driver negotiated them); the target,
    /// `actual` (in the configuration space too) and the counters are taken over. A
    /// BALLOON_CHANGE not yet told to the controller at the snapshot is not told again.
    fn restore_state(&mut self, state: &super::DeviceState) -> Result<(), String> {
        let super::DeviceState::Balloon {
            target,
            actual,
            deflate_on_oom,
            free_page_reporting,
            given_back,
            deflated,
            reported,
            refused,
        } = *state
        else {
            return Err(format!(
                "the snapshot has a {} there, this VM a virtio-balloon",
                state.kind()
            ));
        };
        let here = (
            self.features & (1 << F_DEFLATE_ON_OOM) != 0,
            self.features & (1 << F_REPORTING) != 0,
        );
        if (deflate_on_oom, free_page_reporting) != here {
            return Err(format!(
                "the snapshot's balloon has deflate-on-oom={deflate_on_oom} \
                 free-page-reporting={free_page_reporting}, this VM's deflate-on-oom={} \
                 free-page-reporting={}",
                here.0, here.1
            ));
        }
        let s = &self.shared;
        s.set_target(target);
        s.actual.store(actual, Ordering::SeqCst);
        s.given_back.store(given_back, Ordering::Relaxed);
        s.deflated.store(deflated, Ordering::Relaxed);
        s.reported.store(reported, Ordering::Relaxed);
        s.refused.store(refused, Ordering::Relaxed);
        self.config[4..8].copy_from_slice(&actual.to_le_bytes());
        self.refresh_config();
        self.pending = None;
        Ok(())
    }
}

#[cfg(test)]
#[path = "balloon_tests.rs"]
mod tests;
