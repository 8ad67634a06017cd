//! Guest RAM as rust-vmm's `vm-memory` sees it: a [`GuestMemoryMmap`] with one region per RAM
//! range of the layout, built over the one host mapping `backing` creates, and bounds-checked,
//! volatile access to it by guest address.
//!
//! All of guest RAM is one host mapping (huge pages, NUMA binding, prealloc and KSM/THP advice
//! are `backing`'s), split into the RAM ranges of the layout: guest RAM offset `o` is at host
//! address `base + o`, and each range is one `GuestRegionMmap` and one KVM memory slot (the
//! machine layer registers them from [`GuestRam::regions`]). vCPUs write guest RAM while the
//! VMM reads it, so every access here is a volatile copy through `vm-memory`'s
//! [`VolatileSlice`]; no safe API hands out a `&mut [u8]` into guest RAM.
//!
//! What is loaded where (kernels, boot structures) is `boot`'s business; this module only
//! moves bytes.
//!
//! Ownership: dropping a [`GuestRam`] unmaps guest memory, so it is shared as an
//! `Arc<GuestRam>` by everything that may touch it while the guest runs: the VMM and each
//! vCPU thread (`vcpu::thread::VcpuShared`), which holds its clone until it has left
//! KVM_RUN for good. The mapping goes away only after the last of them.

use std::io;

use thiserror::Error;
use vm_memory::bitmap::AtomicBitmap;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{
    ByteValued, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryError, GuestMemoryMmap,
    GuestMemoryRegion, GuestRegionCollectionError, GuestRegionMmap, ReadVolatile,
    VolatileMemoryError, VolatileSlice,
};

use super::backing::{self, BackingError, BackingPlan, HostMapping};
use super::layout::{ram_ranges, RamRange};
use super::prealloc::PreallocEvent;

/// Guest RAM as the devices see it: `vm-memory`'s regions with a dirty bitmap (one bit per
/// 4 KiB page) that every write through `vm-memory` marks (`write_slice`, `write_obj`,
/// `store`, reads from files into a slice, virtio-queue's used ring). KVM's dirty log sees
/// only the guest's own writes; live migration ORs this one in for the VMM's
/// ([`GuestRam::take_vmm_dirty`]).
pub type GuestMem = GuestMemoryMmap<AtomicBitmap>;
/// A volatile view of guest RAM whose writes mark the dirty bitmap.
pub type GuestSlice<'a> = VolatileSlice<'a, vm_memory::bitmap::BS<'a, AtomicBitmap>>;
/// One region of [`GuestMem`].
pub type GuestRegion = GuestRegionMmap<AtomicBitmap>;

/// The dirty bitmap's page size.
const DIRTY_PAGE: usize = 4096;

/// Why guest RAM could not be mapped or accessed.
#[derive(Debug, Error)]
pub enum MemoryError {
    #[error(transparent)]
    Backing(#[from] BackingError),
    #[error("guest range {addr:#x}+{len:#x} is not inside guest RAM")]
    OutOfRange { addr: u64, len: u64 },
    #[error("guest RAM range {base:#x}+{size:#x}: {source}")]
    Region {
        base: u64,
        size: u64,
        source: vm_memory::mmap::MmapRegionError,
    },
    #[error("guest RAM range at {base:#x} wraps around the guest address space")]
    RegionWraps { base: u64 },
    #[error("guest RAM layout: {0}")]
    Layout(#[from] GuestRegionCollectionError),
    #[error("guest range {addr:#x}+{len:#x}: {source}")]
    Access {
        addr: u64,
        len: u64,
        source: GuestMemoryError,
    },
    #[error("reading into guest range {addr:#x}+{len:#x}: {source}")]
    Read {
        addr: u64,
        len: u64,
        source: io::Error,
    },
}

/// Guest RAM: the host mapping and the `vm-memory` regions over it.
///
/// Bulk access goes through [`VolatileSlice`] (volatile copies, which may alias one another and
/// the vCPUs' own accesses); there is no way to get a `&mut [u8]` into guest RAM from a shared
/// `GuestRam`, so two views of the same bytes can never be two mutable references. This does
/// not compile:
///
/// ```compile_fail,E0308
/// let ram = vmm::memory::GuestRam::new(2 << 20).unwrap();
/// let bytes: &mut [u8] = ram.slice(0x1000, 16).unwrap();
/// ```
///
/// and neither does the nested access the old `with_slice_mut(&self, ..)` allowed, where two
/// `&mut [u8]` to the same bytes were live at once:
///
/// ```compile_fail,E0599
/// let ram = vmm::memory::GuestRam::new(2 << 20).unwrap();
/// ram.with_slice_mut(0x1000, 16, |outer: &mut [u8]| {
///     ram.with_slice_mut(0x1000, 16, |inner: &mut [u8]| outer[0] = inner[0])
/// });
/// ```
///
/// while overlapping volatile views are fine:
///
/// ```
/// let ram = vmm::memory::GuestRam::new(2 << 20).unwrap();
/// let a = ram.slice(0x1000, 16).unwrap();
/// let b = ram.slice(0x1008, 16).unwrap();
/// a.copy_from(&[7u8; 16]);
/// let mut out = [0u8; 16];
/// b.copy_to(&mut out);
/// assert_eq!(out[..8], [7; 8]);
/// ```
pub struct GuestRam {
    /// The regions, which do not own their memory (declared before `backing`, so they go
    /// first on drop).
    memory: GuestMem,
    /// Owns the host mapping the regions point into; unmaps it on drop.
    backing: HostMapping,
    /// `/proc/self/pagemap`, opened with the mapping when it is private anonymous memory
    /// ([`GuestRam::touched_pages`]).
    pagemap: Option<std::fs::File>,
}

impl std::fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.regions().map(|(range, _)| range))
            .finish()
    }
}

impl GuestRam {
    /// Maps `memory` bytes of plain anonymous memory laid out by [`ram_ranges`]. Pages are
    /// reserved lazily (MAP_NORESERVE): the host commits memory as the guest touches it.
    pub fn new(memory: u64) -> Result<Self, MemoryError> {
        Ok(Self::with_backing(&BackingPlan::anonymous(memory), &mut |_| {})?.0)
    }

    /// Maps guest RAM as `plan` says (huge pages, KSM/THP advice, host NUMA policies,
    /// preallocation with `progress` reports). Returns warnings for the user too.
    pub fn with_backing(
        plan: &BackingPlan,
        progress: &mut dyn FnMut(PreallocEvent),
    ) -> Result<(Self, Vec<String>), MemoryError> {
        let (backing, warnings) = backing::map(plan, progress)?;
        let mut offset = 0u64;
        let mut regions = Vec::new();
        for range in ram_ranges(plan.size) {
            regions.push(region_over(&backing, offset, range)?);
            offset += range.size;
        }
        let memory = GuestMem::from_regions(regions)?;
        let pagemap = backing
            .is_private_anonymous()
            .then(|| std::fs::File::open("/proc/self/pagemap").ok())
            .flatten();
        Ok((
            GuestRam {
                memory,
                backing,
                pagemap,
            },
            warnings,
        ))
    }

    /// The `vm-memory` view of guest RAM, for code written against its traits (linux-loader,
    /// virtio queues).
    pub fn memory(&self) -> &GuestMem {
        &self.memory
    }

    /// The pages the VMM wrote (devices, loaders, incoming pages) in the RAM range starting
    /// at guest address `base` since the last call, as a KVM-style dirty bitmap (bit `i` of
    /// word `w` is page `64 w + i` of the range), and clears them; `None` when no range
    /// starts there.
    pub fn take_vmm_dirty(&self, base: u64) -> Option<Vec<u64>> {
        let region = self.memory.iter().find(|r| r.start_addr().0 == base)?;
        Some(vm_memory::MmapRegion::bitmap(region).get_and_reset())
    }

    /// Whether the VMM wrote the page holding guest address `addr` since the bitmap of its
    /// range was last taken ([`GuestRam::take_vmm_dirty`]): before any vCPU runs, the only
    /// pages of a fresh VM that can be non-zero. False outside RAM.
    pub fn vmm_wrote(&self, addr: u64) -> bool {
        use vm_memory::bitmap::Bitmap;
        self.memory
            .iter()
            .find(|r| addr >= r.start_addr().0 && addr - r.start_addr().0 < r.len())
            .is_some_and(|r| {
                vm_memory::MmapRegion::bitmap(r).dirty_at((addr - r.start_addr().0) as usize)
            })
    }

    /// The pages of the RAM range starting at guest address `base` that were ever touched,
    /// as a bitmap like [`GuestRam::take_vmm_dirty`]'s: present or swapped out, per
    /// `/proc/self/pagemap` (bits 63 and 62). Every other page has never been written and
    /// reads as zero, so a snapshot or a migration need not read it (reading would fault it
    /// in). `None` when the RAM is shared, file-backed or hugetlb (a page can hold data with
    /// no entry in this process's page tables there), or pagemap cannot be read.
    pub fn touched_pages(&self, base: u64) -> Option<Vec<u64>> {
        use std::os::unix::fs::FileExt;
        /// Pages asked of pagemap at once (8 bytes each).
        const CHUNK: u64 = 8192;
        let pagemap = self.pagemap.as_ref()?;
        let region = self.memory.iter().find(|r| r.start_addr().0 == base)?;
        let page = DIRTY_PAGE as u64;
        let first = region.as_ptr() as u64 / page;
        let pages = region.len() / page;
        let mut map = vec![0u64; pages.div_ceil(64) as usize];
        let mut buf = vec![0u8; (CHUNK * 8) as usize];
        let mut done = 0u64;
        while done < pages {
            let n = (pages - done).min(CHUNK);
            let bytes = &mut buf[..(n * 8) as usize];
            pagemap.read_exact_at(bytes, (first + done) * 8).ok()?;
            for (i, entry) in bytes.chunks_exact(8).enumerate() {
                // A short entry cannot happen (chunks_exact); counted as touched if it did.
                let v = entry.try_into().map_or(u64::MAX, u64::from_le_bytes);
                if v & (3 << 62) != 0 {
                    let p = done as usize + i;
                    map[p / 64] |= 1 << (p % 64);
                }
            }
            done += n;
        }
        Some(map)
    }

    /// The host address of guest RAM offset 0 (RAM counted without the MMIO gap).
    pub fn host_base(&self) -> *mut u8 {
        self.backing.as_ptr()
    }

    /// The RAM ranges and their host addresses, for KVM memory slots (the same addresses the
    /// regions read and write through).
    pub fn regions(&self) -> impl Iterator<Item = (RamRange, *mut u8)> + '_ {
        self.memory.iter().map(|r| {
            (
                RamRange {
                    base: r.start_addr().0,
                    size: r.len(),
                },
                r.as_ptr(),
            )
        })
    }

    /// Total guest RAM in bytes.
    pub fn size(&self) -> u64 {
        self.memory.iter().map(|r| r.len()).sum()
    }

    /// Whether `[addr, addr + len)` lies within one RAM range.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        self.regions()
            .any(|(r, _)| addr >= r.base && addr.checked_add(len).is_some_and(|end| end <= r.end()))
    }

    fn check(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        if self.contains(addr, len) {
            Ok(())
        } else {
            Err(MemoryError::OutOfRange { addr, len })
        }
    }

    /// A volatile view of `[addr, addr + len)`, which must lie within one RAM range.
    pub fn slice(&self, addr: u64, len: u64) -> Result<GuestSlice<'_>, MemoryError> {
        self.check(addr, len)?;
        self.memory
            .get_slice(GuestAddress(addr), len as usize)
            .map_err(|source| MemoryError::Access { addr, len, source })
    }

    /// Copies `data` into guest RAM at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let len = data.len() as u64;
        self.check(addr, len)?;
        self.memory
            .write_slice(data, GuestAddress(addr))
            .map_err(|source| MemoryError::Access { addr, len, source })
    }

    /// Copies guest RAM at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        self.check(addr, len)?;
        self.memory
            .read_slice(buf, GuestAddress(addr))
            .map_err(|source| MemoryError::Access { addr, len, source })
    }

    /// Writes a plain-data structure (a `boot_params`, an `hvm_start_info`) at `addr`.
    pub fn write_obj<T: ByteValued>(&self, addr: u64, value: &T) -> Result<(), MemoryError> {
        self.write(addr, value.as_slice())
    }

    /// Reads a plain-data structure at `addr`.
    pub fn read_obj<T: ByteValued>(&self, addr: u64) -> Result<T, MemoryError> {
        let len = std::mem::size_of::<T>() as u64;
        self.check(addr, len)?;
        self.memory
            .read_obj(GuestAddress(addr))
            .map_err(|source| MemoryError::Access { addr, len, source })
    }

    /// Writes a little-endian u64 at `addr`.
    pub fn write_u64(&self, addr: u64, v: u64) -> Result<(), MemoryError> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Reads exactly `len` bytes from `src` straight into guest RAM at `addr` (a kernel or
    /// initrd file, with no bounce buffer).
    pub fn read_from<F: ReadVolatile>(
        &self,
        addr: u64,
        src: &mut F,
        len: u64,
    ) -> Result<(), MemoryError> {
        let mut slice = self.slice(addr, len)?;
        src.read_exact_volatile(&mut slice).map_err(|e| match e {
            VolatileMemoryError::IOError(source) => MemoryError::Read { addr, len, source },
            other => MemoryError::Access {
                addr,
                len,
                source: other.into(),
            },
        })
    }

    /// Zeroes `[addr, addr + len)`.
    pub fn zero(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        const ZEROS: [u8; 4096] = [0; 4096];
        self.check(addr, len)?;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZEROS.len() as u64);
            self.write(addr + done, &ZEROS[..n as usize])?;
            done += n;
        }
        Ok(())
    }
}

/// The `vm-memory` region for `range`, at `offset` bytes into `backing`.
fn region_over(
    backing: &HostMapping,
    offset: u64,
    range: RamRange,
) -> Result<GuestRegion, MemoryError> {
    assert!(
        offset + range.size <= backing.size(),
        "RAM ranges add up to the mapping's size"
    );
    let region_err = |source| MemoryError::Region {
        base: range.base,
        size: range.size,
        source,
    };
    // SAFETY: `offset` is inside the mapping (asserted above: the ranges add up to its size).
    let host = unsafe { backing.as_ptr().add(offset as usize) };
    let bitmap = AtomicBitmap::new(
        range.size as usize,
        std::num::NonZeroUsize::new(DIRTY_PAGE).unwrap_or(std::num::NonZeroUsize::MIN),
    );
    let builder = MmapRegionBuilder::new_with_bitmap(range.size as usize, bitmap)
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(backing.flags())
        .with_hugetlbfs(backing.is_hugetlb());
    // SAFETY: `[host, host + range.size)` lies inside the live mapping `backing` owns (checked
    // above). The region built here does not own it (vm-memory never unmaps a raw-pointer
    // region), and `GuestRam` keeps `backing` alive, declared after `memory`, so the mapping
    // outlives every region and every slice borrowed from them.
    let mapping = unsafe { builder.with_raw_mmap_pointer(host) }
        .build()
        .map_err(region_err)?;
    GuestRegionMmap::new(mapping, GuestAddress(range.base))
        .ok_or(MemoryError::RegionWraps { base: range.base })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_and_bounds() {
        let ram = GuestRam::new(4 << 20).unwrap();
        assert_eq!(ram.size(), 4 << 20);
        ram.write(0x1000, b"hello").unwrap();
        let mut buf = [0u8; 5];
        ram.read(0x1000, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let err = ram.write((4 << 20) - 2, b"abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "guest range 0x3ffffe+0x3 is not inside guest RAM"
        );
        assert_eq!(
            ram.host_base() as u64 % (2 << 20),
            0,
            "2 MiB aligned for THP"
        );
    }

    #[test]
    fn ranges_are_slices_of_one_mapping() {
        use super::super::layout::MMIO_GAP_END;
        // 3 GiB + 8 MiB: the last 8 MiB sit above 4 GiB, right after the low range in the
        // host mapping (MAP_NORESERVE: nothing is committed).
        let ram = GuestRam::new((3 << 30) + (8 << 20)).unwrap();
        let regions: Vec<_> = ram.regions().collect();
        assert_eq!(regions.len(), 2);
        assert_eq!(
            regions[1].0,
            RamRange {
                base: MMIO_GAP_END,
                size: 8 << 20
            }
        );
        assert_eq!(regions[1].1 as u64 - regions[0].1 as u64, 3 << 30);
        ram.write(MMIO_GAP_END, b"high").unwrap();
        // SAFETY: reading 4 bytes inside the mapping.
        let at = unsafe { std::slice::from_raw_parts(ram.host_base().add(3 << 30), 4) };
        assert_eq!(at, b"high");
        // The vm-memory view agrees: the same bytes at the same guest address.
        let mut via_vm_memory = [0u8; 4];
        ram.memory()
            .read_slice(&mut via_vm_memory, GuestAddress(MMIO_GAP_END))
            .unwrap();
        assert_eq!(&via_vm_memory, b"high");
    }

    #[test]
    fn overlapping_views_alias_safely() {
        // What `with_slice_mut` got wrong: two views of the same bytes from one `&GuestRam`.
        // They are volatile slices now, not `&mut [u8]`, so holding both is sound and each
        // sees the other's writes.
        let ram = GuestRam::new(2 << 20).unwrap();
        let outer = ram.slice(0x2000, 0x100).unwrap();
        let inner = ram.slice(0x2080, 0x10).unwrap();
        outer.copy_from(&[0xaau8; 0x100]);
        inner.copy_from(&[0x55u8; 0x10]);
        let mut seen = [0u8; 0x100];
        outer.copy_to(&mut seen);
        assert!(seen[..0x80].iter().all(|&b| b == 0xaa));
        assert!(seen[0x80..0x90].iter().all(|&b| b == 0x55));
        assert!(seen[0x90..].iter().all(|&b| b == 0xaa));
        let err = ram.slice((2 << 20) - 8, 16).unwrap_err();
        assert_eq!(
            err.to_string(),
            "guest range 0x1ffff8+0x10 is not inside guest RAM"
        );
    }

    #[test]
    fn concurrent_writers_and_readers_share_one_ram() {
        // vCPU threads write guest RAM while the VMM reads it: GuestRam is Sync, and every
        // access is a bounds-checked volatile copy.
        let ram = std::sync::Arc::new(GuestRam::new(2 << 20).unwrap());
        let writers: Vec<_> = (0..2u8)
            .map(|t| {
                let ram = ram.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        ram.write_u64(0x3000 + 8 * u64::from(t), i).unwrap();
                    }
                })
            })
            .collect();
        for _ in 0..1000 {
            // Whatever bytes a read catches come from values below 1000 (< 2^10).
            let v: u64 = ram.read_obj(0x3000).unwrap();
            assert!(v < 1 << 10, "{v}");
        }
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(ram.read_obj::<u64>(0x3000).unwrap(), 999);
        assert_eq!(ram.read_obj::<u64>(0x3008).unwrap(), 999);
    }

    #[test]
    fn vmm_writes_mark_their_pages_dirty() {
        use super::super::layout::MMIO_GAP_END;
        let ram = GuestRam::new((3 << 30) + (8 << 20)).unwrap();
        assert!(ram.take_vmm_dirty(0).unwrap().iter().all(|&w| w == 0));
        // A device's write through the vm-memory view (write_obj: a used ring's element or
        // a status byte), a read from a file into guest RAM (a block read), a write across
        // a page boundary.
        ram.memory().write_obj(7u32, GuestAddress(0x5004)).unwrap();
        ram.read_from(0x9000, &mut [1u8; 16].as_slice(), 16)
            .unwrap();
        ram.write(0xcffe, &[1, 2, 3, 4]).unwrap();
        ram.write(MMIO_GAP_END + 0x2000, b"x").unwrap();
        assert!(ram.vmm_wrote(0x5fff) && ram.vmm_wrote(0xd000) && ram.vmm_wrote(0x9000));
        assert!(!ram.vmm_wrote(0x6000) && !ram.vmm_wrote(MMIO_GAP_END + 0x1fff));
        assert!(!ram.vmm_wrote(3 << 30), "in the MMIO gap: not RAM");
        let map = ram.take_vmm_dirty(0).unwrap();
        assert_eq!(map[0], (1 << 5) | (1 << 9) | (1 << 0xc) | (1 << 0xd));
        assert!(map[1..].iter().all(|&w| w == 0));
        assert_eq!(ram.take_vmm_dirty(MMIO_GAP_END).unwrap()[0], 1 << 2);
        // Taken means cleared.
        assert!(ram.take_vmm_dirty(0).unwrap().iter().all(|&w| w == 0));
        assert!(!ram.vmm_wrote(0x5000));
        assert_eq!(ram.take_vmm_dirty(0x1000), None);
    }

    #[test]
    fn touched_pages_are_the_ones_written_or_read() {
        let ram = GuestRam::new(64 << 20).unwrap();
        let map = ram.touched_pages(0).expect("anonymous RAM has a pagemap");
        assert_eq!(map.len(), (64 << 20) / DIRTY_PAGE / 64);
        assert!(map.iter().all(|&w| w == 0), "nothing touched yet");
        ram.write(0x3000, b"x").unwrap();
        let mut buf = [0u8; 8];
        ram.read(0x10_0000 + 8, &mut buf).unwrap();
        let map = ram.touched_pages(0).unwrap();
        assert_eq!(map[0], 1 << 3);
        assert_eq!(
            map[0x100 / 64],
            1 << (0x100 % 64),
            "a read maps the zero page"
        );
        assert_eq!(map.iter().map(|w| w.count_ones()).sum::<u32>(), 2);
        assert_eq!(ram.touched_pages(0x1000), None, "no range starts there");
        // Shared memory keeps pages no page table of ours names: no answer there.
        let shared = BackingPlan {
            shared: true,
            source: backing::Source::Memfd { huge_page: None },
            ..BackingPlan::anonymous(4 << 20)
        };
        let (ram, _) = GuestRam::with_backing(&shared, &mut |_| {}).unwrap();
        assert_eq!(ram.touched_pages(0), None);
    }

    #[test]
    fn reads_files_straight_into_guest_ram() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        ram.read_from(0x10_0000, &mut data.as_slice(), data.len() as u64)
            .unwrap();
        let mut back = vec![0u8; data.len()];
        ram.read(0x10_0000, &mut back).unwrap();
        assert_eq!(back, data);
        // A source shorter than asked for is an I/O error, not a partial load.
        let err = ram.read_from(0x10_0000, &mut &data[..10], 20).unwrap_err();
        assert!(matches!(err, MemoryError::Read { .. }), "{err}");
        ram.zero(0x10_0000, 5000).unwrap();
        ram.read(0x10_0000, &mut back).unwrap();
        assert!(back[..5000].iter().all(|&b| b == 0));
        assert_eq!(back[5000..], data[5000..]);
    }
}
