//! Host mappings that back guest RAM, and bounds-checked access to them by guest address.
//!
//! All of guest RAM is one host mapping (see `backing`), split into the RAM ranges of the
//! layout: guest RAM offset `o` is at host address `base + o`, and each range is registered
//! with KVM as one memory slot. The mapping lives as long as `GuestRam`; vCPU threads hold
//! an `Arc` to it.

use std::ptr::NonNull;

use thiserror::Error;

use super::backing::{self, BackingError, BackingPlan, HostMapping};
use super::layout::{ram_ranges, RamRange};
use super::prealloc::PreallocEvent;

/// Why guest RAM could not be mapped or accessed.
#[derive(Debug, Error)]
pub enum MemoryError {
    #[error(transparent)]
    Backing(#[from] BackingError),
    #[error("guest range {addr:#x}+{len:#x} is not inside guest RAM")]
    OutOfRange { addr: u64, len: u64 },
}

struct Mapping {
    range: RamRange,
    host: NonNull<u8>,
}

/// Guest RAM: one host mapping, one slice of it per RAM range.
pub struct GuestRam {
    mappings: Vec<Mapping>,
    backing: HostMapping,
}

// SAFETY: the mappings are plain memory owned by GuestRam for its whole life; concurrent
// access from vCPU threads is how guest RAM works (the guest does its own locking).
unsafe impl Send for GuestRam {}
// SAFETY: see Send; shared references only hand out raw addresses and bounds-checked copies.
unsafe impl Sync for GuestRam {}

impl std::fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.mappings.iter().map(|m| m.range))
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
        let mappings = ram_ranges(plan.size)
            .into_iter()
            .map(|range| {
                // SAFETY: the ranges add up to plan.size, the size of the mapping.
                let host = unsafe { backing.as_ptr().add(offset as usize) };
                offset += range.size;
                Mapping {
                    range,
                    host: NonNull::new(host).expect("inside a non-null mapping"),
                }
            })
            .collect();
        Ok((GuestRam { mappings, backing }, warnings))
    }

    /// The host address of guest RAM offset 0 (RAM counted without the MMIO gap).
    pub fn host_base(&self) -> *mut u8 {
        self.backing.as_ptr()
    }

    /// The RAM ranges and their host addresses, for KVM memory slots.
    pub fn regions(&self) -> impl Iterator<Item = (RamRange, *mut u8)> + '_ {
        self.mappings.iter().map(|m| (m.range, m.host.as_ptr()))
    }

    /// Total guest RAM in bytes.
    pub fn size(&self) -> u64 {
        self.mappings.iter().map(|m| m.range.size).sum()
    }

    /// The host address of `[addr, addr + len)`, which must lie within one range.
    fn host_range(&self, addr: u64, len: u64) -> Result<*mut u8, MemoryError> {
        for m in &self.mappings {
            if addr >= m.range.base
                && addr
                    .checked_add(len)
                    .is_some_and(|end| end <= m.range.end())
            {
                // SAFETY: the offset is within the mapping, checked just above.
                return Ok(unsafe { m.host.as_ptr().add((addr - m.range.base) as usize) });
            }
        }
        Err(MemoryError::OutOfRange { addr, len })
    }

    /// Copies `data` into guest RAM at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let dst = self.host_range(addr, data.len() as u64)?;
        // SAFETY: `dst..dst+len` is inside our mapping (host_range), and `data` is a
        // separate Rust slice, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Copies guest RAM at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let src = self.host_range(addr, buf.len() as u64)?;
        // SAFETY: `src..src+len` is inside our mapping, `buf` is a separate Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Writes a little-endian u64 at `addr`.
    pub fn write_u64(&self, addr: u64, v: u64) -> Result<(), MemoryError> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Runs `f` on a mutable view of `[addr, addr + len)`, for bulk loads (reading a kernel
    /// file straight into guest RAM). Only call while no vCPU runs.
    pub fn with_slice_mut<R>(
        &self,
        addr: u64,
        len: u64,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, MemoryError> {
        let p = self.host_range(addr, len)?;
        // SAFETY: the range is inside our mapping; callers use it before vCPUs start, when
        // nothing else accesses guest RAM, and the slice does not outlive `f`.
        let slice = unsafe { std::slice::from_raw_parts_mut(p, len as usize) };
        Ok(f(slice))
    }

    /// Zeroes `[addr, addr + len)`.
    pub fn zero(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        self.with_slice_mut(addr, len, |s| s.fill(0))
    }
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
    }
}
