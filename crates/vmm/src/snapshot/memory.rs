//! `memory.bin`: guest RAM as a sparse file. Saving writes each run of non-zero 4 KiB pages
//! with one pwrite at its file offset and leaves zero pages as holes (the file gets its full
//! length with ftruncate); pages never touched (`GuestRam::touched_pages`) are not read. Restoring walks the file's data extents (lseek SEEK_DATA /
//! SEEK_HOLE), reads them straight into guest RAM, and zeroes whatever the VM's build wrote
//! into guest RAM where the file has holes: the pages its dirty bitmap names (the loaders
//! write through it and no vCPU has run), so the rest of guest RAM is never touched. Both sides take the same CRC-32 over the non-zero
//! pages (see the `snapshot` module header).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{Crc32, MemoryLayout, RamRangeAt, SnapshotError, MEMORY_FILE};
use crate::memory::GuestRam;

const PAGE: usize = 4096;

fn is_zero(page: &[u8]) -> bool {
    // SAFETY: u8 → u128 reinterpretation of initialized bytes; align_to keeps the edges as u8.
    let (head, body, tail) = unsafe { page.align_to::<u128>() };
    head.iter().all(|&b| b == 0) && body.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

fn feed(crc: &mut Crc32, page_no: u64, page: &[u8]) {
    crc.update(&page_no.to_le_bytes());
    crc.update(page);
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// The guest RAM ranges, back to back in the file.
fn layout_of(ram: &GuestRam) -> Vec<(RamRangeAt, *mut u8)> {
    let mut offset = 0;
    ram.regions()
        .map(|(range, host)| {
            let at = RamRangeAt {
                guest_addr: range.base,
                size: range.size,
                file_offset: offset,
            };
            offset += range.size;
            (at, host)
        })
        .collect()
}

/// Writes guest RAM to `dir/memory.bin`. Every vCPU must be parked (and no device may
/// write guest RAM) while this runs.
pub fn save(dir: &Path, ram: &GuestRam) -> Result<MemoryLayout, SnapshotError> {
    let path = dir.join(MEMORY_FILE);
    let file = File::create(&path).map_err(io(&path, "cannot create"))?;
    let ranges = layout_of(ram);
    let mut crc = Crc32::default();
    let mut data_pages = 0u64;
    let mut size = 0u64;
    for (at, host) in &ranges {
        // SAFETY: `host` maps `at.size` bytes of guest RAM, alive as long as `ram`; the
        // vCPUs are parked, so nothing writes it while we read.
        let mem = unsafe { std::slice::from_raw_parts(*host as *const u8, at.size as usize) };
        // Pages never touched are zero without reading them (which would fault them in).
        let touched = ram.touched_pages(at.guest_addr);
        let maybe_data = |i: usize| {
            touched
                .as_ref()
                .is_none_or(|t| t[i / 64] & (1 << (i % 64)) != 0)
        };
        let mut run_start: Option<usize> = None;
        let pages = mem.len() / PAGE;
        for i in 0..=pages {
            let nonzero = i < pages && maybe_data(i) && !is_zero(&mem[i * PAGE..(i + 1) * PAGE]);
            if nonzero {
                let page_no = (at.file_offset / PAGE as u64) + i as u64;
                feed(&mut crc, page_no, &mem[i * PAGE..(i + 1) * PAGE]);
                data_pages += 1;
                run_start.get_or_insert(i);
            } else if let Some(start) = run_start.take() {
                file.write_all_at(
                    &mem[start * PAGE..i * PAGE],
                    at.file_offset + (start * PAGE) as u64,
                )
                .map_err(io(&path, "cannot write"))?;
            }
        }
        size += at.size;
    }
    file.set_len(size)
        .map_err(io(&path, "cannot set the length"))?;
    file.sync_data().map_err(io(&path, "cannot sync"))?;
    Ok(MemoryLayout {
        file: MEMORY_FILE.to_string(),
        size,
        ranges: ranges.into_iter().map(|(at, _)| at).collect(),
        data_pages,
        crc32: crc.finish(),
    })
}

/// `lseek(fd, offset, whence)`; `None` past the end (ENXIO).
fn seek(file: &File, offset: u64, whence: i32) -> Result<Option<u64>, std::io::Error> {
    // SAFETY: lseek on a descriptor we own; no memory is passed.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// Reads `dir/memory.bin` into guest RAM (before any vCPU runs), checking it against
/// `layout`. Returns the bytes of data read.
pub fn restore(dir: &Path, layout: &MemoryLayout, ram: &GuestRam) -> Result<u64, SnapshotError> {
    let path = dir.join(&layout.file);
    let ranges = layout_of(ram);
    let this: Vec<RamRangeAt> = ranges.iter().map(|(at, _)| *at).collect();
    if this != layout.ranges {
        let show = |r: &[RamRangeAt]| {
            r.iter()
                .map(|r| format!("{:#x}+{:#x}", r.guest_addr, r.size))
                .collect::<Vec<_>>()
                .join(",")
        };
        return Err(SnapshotError::Layout {
            path,
            saved: show(&layout.ranges),
            this: show(&this),
        });
    }
    let file = File::open(&path).map_err(io(&path, "cannot open"))?;
    let mut crc = Crc32::default();
    let mut read = 0u64;
    for (at, host) in &ranges {
        // What the build wrote: the only pages of this fresh VM that can be non-zero.
        let written = ram.take_vmm_dirty(at.guest_addr).unwrap_or_default();
        // SAFETY: `host` maps `at.size` bytes of guest RAM, alive as long as `ram`; no vCPU
        // runs yet.
        let mem = unsafe { std::slice::from_raw_parts_mut(*host, at.size as usize) };
        let end = at.file_offset + at.size;
        let mut pos = at.file_offset;
        while pos < end {
            let data = seek(&file, pos, libc::SEEK_DATA)
                .map_err(io(&path, "lseek SEEK_DATA"))?
                .unwrap_or(end)
                .min(end);
            // [pos, data) is a hole: guest RAM must be zero there.
            zero_written(
                mem,
                &written,
                (pos - at.file_offset) as usize,
                (data - at.file_offset) as usize,
            );
            if data >= end {
                break;
            }
            let hole = seek(&file, data, libc::SEEK_HOLE)
                .map_err(io(&path, "lseek SEEK_HOLE"))?
                .unwrap_or(end)
                .min(end);
            let (a, b) = (
                (data - at.file_offset) as usize,
                (hole - at.file_offset) as usize,
            );
            file.read_exact_at(&mut mem[a..b], data)
                .map_err(io(&path, "cannot read"))?;
            read += (b - a) as u64;
            // The CRC over the extent's non-zero pages (holes are zero pages: not fed),
            // in file order as the extents come.
            for i in a / PAGE..b.div_ceil(PAGE) {
                let page = &mem[i * PAGE..((i + 1) * PAGE).min(mem.len())];
                if !is_zero(page) {
                    feed(&mut crc, at.file_offset / PAGE as u64 + i as u64, page);
                }
            }
            pos = hole;
        }
    }
    let computed = crc.finish();
    if computed != layout.crc32 {
        return Err(SnapshotError::MemoryChecksum {
            path,
            stored: layout.crc32,
            computed,
        });
    }
    Ok(read)
}

/// Zeroes what `written` (a dirty bitmap of `mem`'s pages) marks in `mem[from..to]`;
/// nothing else is read or written, so untouched guest RAM stays unmapped.
fn zero_written(mem: &mut [u8], written: &[u64], from: usize, to: usize) {
    for (w, &word) in written.iter().enumerate().filter(|(_, &word)| word != 0) {
        for bit in (0..64).filter(|b| word & (1u64 << b) != 0) {
            let page = (w * 64 + bit) * PAGE;
            let (a, b) = (page.max(from), (page + PAGE).min(to).min(mem.len()));
            if a < b {
                mem[a..b].fill(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::backing::BackingPlan;

    fn ram(size: u64) -> GuestRam {
        GuestRam::with_backing(&BackingPlan::anonymous(size), &mut |_| {})
            .unwrap()
            .0
    }

    #[test]
    fn memory_round_trips_as_a_sparse_file_and_damage_is_found() {
        let dir = std::env::temp_dir().join(format!("rvmm-snap-mem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let src = ram(16 << 20);
        src.write(0x1000, b"hello").unwrap();
        src.write(0x80_0000, &[0xaa; 8192]).unwrap();
        let layout = save(&dir, &src).unwrap();
        assert_eq!(layout.size, 16 << 20);
        assert_eq!(layout.data_pages, 3);
        let file = dir.join(MEMORY_FILE);
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.len(), 16 << 20);
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 < 1 << 20, "zero pages are holes");

        let dst = ram(16 << 20);
        dst.write(0x5000, b"left by the build").unwrap();
        restore(&dir, &layout, &dst).unwrap();
        let mut buf = [0u8; 5];
        dst.read(0x1000, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let mut buf = [1u8; 17];
        dst.read(0x5000, &mut buf).unwrap();
        assert_eq!(buf, [0; 17], "a hole zeroes what was there");
        // Nothing else of guest RAM was touched: resident are the three data pages and the
        // page the build wrote, at most (the old page-by-page check mapped all 4096).
        let (_, host) = layout_of(&dst)[0];
        let mut vec = vec![0u8; (16 << 20) / PAGE];
        // SAFETY: `host` is the start of dst's 16 MiB mapping (page-aligned); `vec` has a
        // byte for each of its pages.
        let r = unsafe { libc::mincore(host.cast(), 16 << 20, vec.as_mut_ptr()) };
        assert_eq!(r, 0);
        let resident = vec.iter().filter(|&&b| b & 1 != 0).count();
        assert!(
            resident <= 4,
            "{resident} pages of guest RAM resident after the restore"
        );

        // One flipped byte.
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&[0xab], 0x80_0010).unwrap();
        let e = restore(&dir, &layout, &ram(16 << 20))
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory.bin: bad checksum"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
