//! virtio-blk (virtio 1.2 §5.2) on a raw image file: read, write, flush, get-id, and on a
//! writable disk discard and write-zeroes; one request queue. The image is opened and locked
//! here (an OFD write lock for a writable disk, a read lock for a read-only one, as QEMU's
//! file locking keeps a second writer out); what the user asked for is `config::disk`.
//!
//! `cache=writeback` reads and writes through the host page cache; `cache=none` opens the
//! file with O_DIRECT, and every transfer goes through an aligned bounce buffer (guest
//! buffers need not be aligned; a transfer whose file offset or length is not a multiple of
//! the file's O_DIRECT alignment, probed at open as QEMU does, is read-modify-written).
//! A flush is fdatasync in both. Discard punches a hole (fallocate PUNCH_HOLE|KEEP_SIZE);
//! write-zeroes is fallocate ZERO_RANGE (PUNCH_HOLE when the driver allows unmapping), and
//! plain zeroes written when the file system supports neither (EOPNOTSUPP).
//!
//! Every request is checked before the file is touched: a chain that loops or is longer than
//! the queue, a header or status byte missing, buffers outside guest memory, a data length
//! that is not a whole number of sectors, a range past the end of the disk, a write to a
//! read-only disk: the request completes with VIRTIO_BLK_S_IOERR (or is dropped with a used
//! length of 0 when it has no status byte to write), and the device carries on.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::memory::guest::GuestMem;
use thiserror::Error;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::{DeviceError, VirtioDevice};
use crate::config::disk::{Cache, DiskConfig};

/// A sector (virtio-blk's unit of `sector` and `capacity`).
pub const SECTOR_SIZE: u64 = 512;
/// The request queue's size (QEMU's virtio-blk default).
pub const QUEUE_SIZE: u16 = 256;
/// The most data segments in one request (the queue size minus header and status).
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// The largest data segment.
pub const SIZE_MAX: u32 = 1 << 20;
/// The request header: type, reserved, sector.
const HEADER_LEN: usize = 16;
/// One discard / write-zeroes segment: sector (le64), num_sectors (le32), flags (le32).
const SEGMENT_LEN: usize = 16;
/// The most sectors one discard or write-zeroes segment covers (QEMU's
/// BDRV_REQUEST_MAX_SECTORS).
pub const MAX_DWZ_SECTORS: u32 = (i32::MAX as u32) >> 9;
/// The most segments in one discard or write-zeroes request.
pub const MAX_DWZ_SEG: u32 = 16;
/// The configuration space's length: up to `unused1` after `write_zeroes_may_unmap`
/// (virtio 1.2 §5.2.4).
const CONFIG_LEN: usize = 60;
/// The bounce buffer's memory alignment (O_DIRECT wants the logical block size; a page is
/// a multiple of every one).
const BOUNCE_ALIGN: usize = 4096;
/// The most bytes moved through the bounce buffer at a time.
const CHUNK: usize = 1 << 20;

/// Why a disk could not be opened.
#[derive(Debug, Error)]
pub enum DiskError {
    #[error("--disk path={path}: cannot open it: {error}")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "--disk path={path}: the image is locked by another process (is another VM using it?); \
         a disk can have one writer, or readers only"
    )]
    Locked { path: PathBuf },
    #[error("--disk path={path}: cannot lock it: {error}")]
    Lock {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "--disk path={path}: its size ({size} bytes) is not a whole number of 512-byte sectors"
    )]
    Size { path: PathBuf, size: u64 },
    #[error(
        "--disk cache=none: {path}: its file system refuses O_DIRECT (EINVAL), which cache=none \
         needs; use cache=writeback on this file system"
    )]
    NoDirect { path: PathBuf },
}

/// A reusable buffer whose slices start BOUNCE_ALIGN-aligned (safe code: the Vec is made
/// larger and the aligned part used).
#[derive(Default)]
struct Bounce(Vec<u8>);

impl Bounce {
    fn slice(&mut self, len: usize) -> &mut [u8] {
        if self.0.len() < len + BOUNCE_ALIGN {
            self.0.resize(len + BOUNCE_ALIGN, 0);
        }
        let skip = self.0.as_ptr().align_offset(BOUNCE_ALIGN);
        &mut self.0[skip..skip + len]
    }
}

/// Reads `buf.len()` bytes at `offset`, zero-filling what lies past the end of the file.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The file offset alignment O_DIRECT accepts on `file`: the smallest of 512..4096 that a
/// read at offset 0 does not refuse with EINVAL (QEMU's raw_probe_alignment does the same).
fn probe_alignment(file: &File) -> u64 {
    let mut bounce = Bounce::default();
    for align in [512usize, 1024, 2048, 4096] {
        match file.read_at(bounce.slice(align), 0) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            _ => return align as u64,
        }
    }
    BOUNCE_ALIGN as u64
}

/// fallocate(2) on the whole range.
fn fallocate(file: &File, mode: libc::c_int, offset: u64, len: u64) -> std::io::Result<()> {
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    // SAFETY: fallocate takes plain integers; the fd is open for the call.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, off, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn unsupported(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

/// The image file and how it is read and written.
struct Image {
    file: File,
    /// O_DIRECT's offset and length alignment (cache=none); `None` through the page cache.
    direct: Option<u64>,
    /// The disk's size in bytes.
    size: u64,
    bounce: Bounce,
}

impl Image {
    /// Reads `len` bytes (at most CHUNK) at `offset` into the bounce buffer.
    fn read(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]> {
        match self.direct {
            None => {
                let buf = self.bounce.slice(len);
                self.file.read_exact_at(buf, offset)?;
                Ok(buf)
            }
            Some(align) => {
                let (start, end) = aligned(offset, len, align);
                let buf = self.bounce.slice((end - start) as usize);
                read_full(&self.file, buf, start)?;
                let at = (offset - start) as usize;
                Ok(&buf[at..at + len])
            }
        }
    }

    /// Writes `len` bytes (at most CHUNK) at `offset`, which `fill` puts in the buffer it is
    /// given (false: nothing is written).
    fn write(
        &mut self,
        offset: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> std::io::Result<bool> {
        match self.direct {
            None => {
                let buf = self.bounce.slice(len);
                if !fill(buf) {
                    return Ok(false);
                }
                self.file.write_all_at(buf, offset)?;
            }
            Some(align) => {
                let (start, end) = aligned(offset, len, align);
                let buf = self.bounce.slice((end - start) as usize);
                let at = (offset - start) as usize;
                if start != offset || end != offset + len as u64 {
                    // Read-modify-write of the blocks the transfer only partly covers.
                    read_full(&self.file, buf, start)?;
                }
                if !fill(&mut buf[at..at + len]) {
                    return Ok(false);
                }
                self.file.write_all_at(buf, start)?;
                if end > self.size {
                    // The last block reached past the end of the image: give back its size.
                    self.file.set_len(self.size)?;
                }
            }
        }
        Ok(true)
    }

    /// Writes zeroes over `len` bytes at `offset`.
    fn write_zeroes(&mut self, mut offset: u64, len: u64) -> std::io::Result<()> {
        let end = offset + len;
        while offset < end {
            let n = (end - offset).min(CHUNK as u64) as usize;
            self.write(offset, n, |b| {
                b.fill(0);
                true
            })?;
            offset += n as u64;
        }
        Ok(())
    }
}

/// `[offset, offset + len)` widened to `align` boundaries.
fn aligned(offset: u64, len: usize, align: u64) -> (u64, u64) {
    let start = offset - offset % align;
    let end = (offset + len as u64).div_ceil(align) * align;
    (start, end)
}

/// One virtio-blk device.
pub struct Block {
    /// The image's path as the user gave it (empty in unit tests), for snapshots.
    path: PathBuf,
    image: Image,
    readonly: bool,
    /// The disk's size in sectors.
    capacity: u64,
    serial: Vec<u8>,
    config: [u8; CONFIG_LEN],
    features: u64,
    /// Whether this process holds the image's OFD lock.
    locked: bool,
}

/// Locks the whole file with an open-file-description lock (released when the file is
/// closed; not shared with other descriptors of this process, unlike POSIX locks).
fn ofd_lock(file: &File, path: &Path, write: bool) -> Result<(), DiskError> {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if write { libc::F_WRLCK } else { libc::F_RDLCK } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_OFD_SETLK reads the flock we pass; the fd is open for the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Err(DiskError::Locked {
            path: path.to_path_buf(),
        }),
        _ => Err(DiskError::Lock {
            path: path.to_path_buf(),
            error: e,
        }),
    }
}

/// Drops the OFD lock [`ofd_lock`] took.
fn ofd_unlock(file: &File, path: &Path) -> Result<(), DiskError> {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_UNLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_OFD_SETLK reads the flock we pass; the fd is open for the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        Ok(())
    } else {
        Err(DiskError::Lock {
            path: path.to_path_buf(),
            error: std::io::Error::last_os_error(),
        })
    }
}

impl Block {
    /// Opens and locks the image `disk` names.
    pub fn open(disk: &DiskConfig) -> Result<Block, DiskError> {
        Block::open_with(disk, true)
    }

    /// Opens the image `disk` names without locking it (`rvmm run --incoming`: the source
    /// still holds it); [`VirtioDevice::take_host_locks`] locks it when the migration
    /// completes, before the guest runs here.
    pub fn open_unlocked(disk: &DiskConfig) -> Result<Block, DiskError> {
        Block::open_with(disk, false)
    }

    fn open_with(disk: &DiskConfig, lock: bool) -> Result<Block, DiskError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = &disk.path;
        let direct = disk.cache == Cache::None;
        let file = OpenOptions::new()
            .read(true)
            .write(!disk.readonly)
            .custom_flags(if direct { libc::O_DIRECT } else { 0 })
            .open(path)
            .map_err(|error| {
                if direct && error.raw_os_error() == Some(libc::EINVAL) {
                    DiskError::NoDirect { path: path.clone() }
                } else {
                    DiskError::Open {
                        path: path.clone(),
                        error,
                    }
                }
            })?;
        if lock {
            ofd_lock(&file, path, !disk.readonly)?;
        }
        let meta = file.metadata().map_err(|error| DiskError::Open {
            path: path.clone(),
            error,
        })?;
        let size = meta.len();
        if size % SECTOR_SIZE != 0 {
            return Err(DiskError::Size {
                path: path.clone(),
                size,
            });
        }
        let direct = direct.then(|| probe_alignment(&file));
        // Discards aligned to the file system's blocks are the ones that free space.
        let granularity = (std::os::unix::fs::MetadataExt::blksize(&meta) / SECTOR_SIZE).max(1);
        let image = Image {
            file,
            direct,
            size,
            bounce: Bounce::default(),
        };
        let mut block = Block::new(
            image,
            disk.readonly,
            granularity as u32,
            disk.serial.as_deref(),
        );
        block.path = path.clone();
        block.locked = lock;
        Ok(block)
    }

    fn new(image: Image, readonly: bool, granularity: u32, serial: Option<&str>) -> Block {
        let capacity = image.size / SECTOR_SIZE;
        // struct virtio_blk_config (virtio 1.2 §5.2.4): capacity (le64 at 0), size_max (le32
        // at 8), seg_max (12), geometry (16), blk_size (20), topology (24), writeback (32),
        // num_queues (34), max_discard_sectors (36), max_discard_seg (40),
        // discard_sector_alignment (44), max_write_zeroes_sectors (48), max_write_zeroes_seg
        // (52), write_zeroes_may_unmap (56).
        let mut config = [0u8; CONFIG_LEN];
        let mut put = |at: usize, v: &[u8]| config[at..at + v.len()].copy_from_slice(v);
        put(0, &capacity.to_le_bytes());
        put(8, &SIZE_MAX.to_le_bytes());
        put(12, &SEG_MAX.to_le_bytes());
        let mut features = (1u64 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_BLK_F_FLUSH)
            | (1 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_SIZE_MAX);
        if readonly {
            features |= 1 << VIRTIO_BLK_F_RO;
        } else {
            features |= (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
            put(36, &MAX_DWZ_SECTORS.to_le_bytes());
            put(40, &MAX_DWZ_SEG.to_le_bytes());
            put(44, &granularity.to_le_bytes());
            put(48, &MAX_DWZ_SECTORS.to_le_bytes());
            put(52, &MAX_DWZ_SEG.to_le_bytes());
            put(56, &[1]);
        }
        Block {
            path: PathBuf::new(),
            image,
            readonly,
            capacity,
            serial: serial.unwrap_or("").as_bytes().to_vec(),
            config,
            features,
            locked: false,
        }
    }
}

/// A request's buffers, split by direction, in chain order.
struct Chain {
    readable: Vec<(GuestAddress, u32)>,
    writable: Vec<(GuestAddress, u32)>,
}

/// Walks a descriptor chain. `None` when it loops, is longer than the queue, or puts a
/// readable descriptor after a writable one (§2.7.4.2).
fn walk(chain: virtio_queue::DescriptorChain<&GuestMem>, limit: usize) -> Option<Chain> {
    let mut c = Chain {
        readable: Vec::new(),
        writable: Vec::new(),
    };
    let mut last_has_next = false;
    for (count, d) in chain.enumerate() {
        if count >= limit {
            return None;
        }
        if d.is_write_only() {
            c.writable.push((d.addr(), d.len()));
        } else if !c.writable.is_empty() {
            return None;
        } else {
            c.readable.push((d.addr(), d.len()));
        }
        last_has_next = d.has_next();
    }
    // The iterator stops at its time-to-live on a loop: the last descriptor still chains on.
    let empty = c.readable.is_empty() && c.writable.is_empty();
    (!last_has_next && !empty).then_some(c)
}

/// Reads `buf.len()` bytes from the start of `segs`.
fn gather(mem: &GuestMem, segs: &[(GuestAddress, u32)], buf: &mut [u8]) -> Option<()> {
    let mut done = 0;
    for &(addr, len) in segs {
        if done == buf.len() {
            break;
        }
        let n = (len as usize).min(buf.len() - done);
        mem.read_slice(&mut buf[done..done + n], addr).ok()?;
        done += n;
    }
    (done == buf.len()).then_some(())
}

/// The status byte's place: the last byte of the last writable buffer.
fn status_place(c: &Chain) -> Option<GuestAddress> {
    let &(addr, len) = c.writable.last()?;
    if len == 0 {
        return None;
    }
    addr.0.checked_add(u64::from(len) - 1).map(GuestAddress)
}

impl Block {
    /// Serves one request; returns (status, bytes written into the guest before the status).
    fn request(&mut self, mem: &GuestMem, c: &Chain) -> (u32, u32) {
        let mut header = [0u8; HEADER_LEN];
        if gather(mem, &c.readable, &mut header).is_none() {
            return (VIRTIO_BLK_S_IOERR, 0);
        }
        let kind = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default());
        let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        // The data buffers: readable ones after the header, writable ones before the status.
        let mut in_data = c.writable.clone();
        if let Some(last) = in_data.last_mut() {
            last.1 = last.1.saturating_sub(1);
        }
        match kind {
            VIRTIO_BLK_T_IN => self.read(mem, sector, &in_data),
            VIRTIO_BLK_T_OUT => (self.write(mem, sector, &c.readable), 0),
            VIRTIO_BLK_T_DISCARD => (self.discard_write_zeroes(mem, &c.readable, false), 0),
            VIRTIO_BLK_T_WRITE_ZEROES => (self.discard_write_zeroes(mem, &c.readable, true), 0),
            VIRTIO_BLK_T_FLUSH => match self.image.file.sync_data() {
                Ok(()) => (VIRTIO_BLK_S_OK, 0),
                Err(_) => (VIRTIO_BLK_S_IOERR, 0),
            },
            VIRTIO_BLK_T_GET_ID => {
                // As QEMU: the serial and its NUL, at most 20 bytes and the buffer's size.
                let room: u64 = in_data.iter().map(|s| u64::from(s.1)).sum();
                let n = (self.serial.len() + 1)
                    .min(VIRTIO_BLK_ID_BYTES as usize)
                    .min(room as usize);
                let mut id = self.serial.clone();
                id.push(0);
                match scatter(mem, &in_data, &id[..n]) {
                    Some(()) => (VIRTIO_BLK_S_OK, n as u32),
                    None => (VIRTIO_BLK_S_IOERR, 0),
                }
            }
            _ => (VIRTIO_BLK_S_UNSUPP, 0),
        }
    }

    /// The byte offset of a `len`-byte transfer at `sector`, if it lies within the disk.
    fn range(&self, sector: u64, len: u64) -> Option<u64> {
        if len % SECTOR_SIZE != 0 {
            return None;
        }
        let end = sector.checked_add(len / SECTOR_SIZE)?;
        (end <= self.capacity).then(|| sector * SECTOR_SIZE)
    }

    fn read(&mut self, mem: &GuestMem, sector: u64, segs: &[(GuestAddress, u32)]) -> (u32, u32) {
        let total: u64 = segs.iter().map(|s| u64::from(s.1)).sum();
        let Some(mut offset) = self.range(sector, total) else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        if !in_memory(mem, segs.iter().map(|&(a, l)| (a, u64::from(l)))) {
            return (VIRTIO_BLK_S_IOERR, 0);
        }
        for &(addr, len) in segs {
            let mut done = 0usize;
            while done < len as usize {
                let n = (len as usize - done).min(CHUNK);
                let Ok(buf) = self.image.read(offset, n) else {
                    return (VIRTIO_BLK_S_IOERR, 0);
                };
                if mem
                    .write_slice(buf, GuestAddress(addr.0 + done as u64))
                    .is_err()
                {
                    return (VIRTIO_BLK_S_IOERR, 0);
                }
                done += n;
                offset += n as u64;
            }
        }
        (VIRTIO_BLK_S_OK, total as u32)
    }

    fn write(&mut self, mem: &GuestMem, sector: u64, readable: &[(GuestAddress, u32)]) -> u32 {
        if self.readonly {
            return VIRTIO_BLK_S_IOERR;
        }
        // The data: the readable bytes after the 16-byte header.
        let mut segs = Vec::new();
        let mut skip = HEADER_LEN as u64;
        for &(addr, len) in readable {
            let len = u64::from(len);
            if skip >= len {
                skip -= len;
                continue;
            }
            let Some(start) = addr.0.checked_add(skip) else {
                return VIRTIO_BLK_S_IOERR;
            };
            segs.push((GuestAddress(start), len - skip));
            skip = 0;
        }
        let total: u64 = segs.iter().map(|s| s.1).sum();
        let Some(mut offset) = self.range(sector, total) else {
            return VIRTIO_BLK_S_IOERR;
        };
        // Check every buffer is in guest memory before the file is written at all.
        if !in_memory(mem, segs.iter().copied()) {
            return VIRTIO_BLK_S_IOERR;
        }
        for &(addr, len) in &segs {
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(CHUNK as u64) as usize;
                let from = GuestAddress(addr.0 + done);
                match self
                    .image
                    .write(offset, n, |buf| mem.read_slice(buf, from).is_ok())
                {
                    Ok(true) => {}
                    _ => return VIRTIO_BLK_S_IOERR,
                }
                done += n as u64;
                offset += n as u64;
            }
        }
        VIRTIO_BLK_S_OK
    }

    /// VIRTIO_BLK_T_DISCARD / T_WRITE_ZEROES: the segments after the header. Every segment
    /// is checked before any is acted on (§5.2.6.2): unknown flag bits, or unmap on a
    /// discard, are UNSUPP; more segments than max_*_seg are UNSUPP (as QEMU); a malformed
    /// list, a segment larger than max_*_sectors or outside the disk, a read-only disk are
    /// IOERR.
    fn discard_write_zeroes(
        &mut self,
        mem: &GuestMem,
        readable: &[(GuestAddress, u32)],
        zeroes: bool,
    ) -> u32 {
        if self.readonly {
            return VIRTIO_BLK_S_IOERR;
        }
        let total: u64 = readable.iter().map(|s| u64::from(s.1)).sum();
        let Some(len) = total.checked_sub(HEADER_LEN as u64) else {
            return VIRTIO_BLK_S_IOERR;
        };
        if len == 0 || len % SEGMENT_LEN as u64 != 0 {
            return VIRTIO_BLK_S_IOERR;
        }
        if len / SEGMENT_LEN as u64 > u64::from(MAX_DWZ_SEG) {
            return VIRTIO_BLK_S_UNSUPP;
        }
        let mut bytes = vec![0u8; HEADER_LEN + len as usize];
        if gather(mem, readable, &mut bytes).is_none() {
            return VIRTIO_BLK_S_IOERR;
        }
        let mut ranges = Vec::new();
        for seg in bytes[HEADER_LEN..].chunks_exact(SEGMENT_LEN) {
            let word =
                |at: usize| u32::from_le_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
            let sector = u64::from(word(0)) | u64::from(word(4)) << 32;
            let (count, flags) = (word(8), word(12));
            let unmap = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0;
            if flags & !VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0 || (unmap && !zeroes) {
                return VIRTIO_BLK_S_UNSUPP;
            }
            if count > MAX_DWZ_SECTORS {
                return VIRTIO_BLK_S_IOERR;
            }
            let len = u64::from(count) * SECTOR_SIZE;
            let Some(offset) = self.range(sector, len) else {
                return VIRTIO_BLK_S_IOERR;
            };
            ranges.push((offset, len, unmap));
        }
        for (offset, len, unmap) in ranges {
            if len == 0 {
                continue;
            }
            let done = if zeroes {
                self.zero_range(offset, len, unmap)
            } else {
                match fallocate(
                    &self.image.file,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    offset,
                    len,
                ) {
                    // A discard is a hint: a file system without holes keeps the data.
                    Err(e) if unsupported(&e) => Ok(()),
                    r => r,
                }
            };
            if done.is_err() {
                return VIRTIO_BLK_S_IOERR;
            }
        }
        VIRTIO_BLK_S_OK
    }

    /// Zeroes `len` bytes at `offset`: a hole when `unmap` allows it, else ZERO_RANGE,
    /// else written zeroes.
    fn zero_range(&mut self, offset: u64, len: u64, unmap: bool) -> std::io::Result<()> {
        let keep = libc::FALLOC_FL_KEEP_SIZE;
        if unmap {
            match fallocate(
                &self.image.file,
                libc::FALLOC_FL_PUNCH_HOLE | keep,
                offset,
                len,
            ) {
                Err(e) if unsupported(&e) => {}
                r => return r,
            }
        }
        match fallocate(
            &self.image.file,
            libc::FALLOC_FL_ZERO_RANGE | keep,
            offset,
            len,
        ) {
            Err(e) if unsupported(&e) => self.image.write_zeroes(offset, len),
            r => r,
        }
    }
}

/// Whether every `(address, length)` lies in guest memory.
fn in_memory(mem: &GuestMem, mut segs: impl Iterator<Item = (GuestAddress, u64)>) -> bool {
    segs.all(|(addr, len)| {
        usize::try_from(len).is_ok_and(|len| GuestMemoryBackend::check_range(mem, addr, len))
    })
}

/// Writes `data` across `segs`.
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

impl VirtioDevice for Block {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn flush_backend(&mut self) -> Result<(), String> {
        self.image
            .file
            .sync_data()
            .map_err(|e| format!("--disk path={}: flushing it: {e}", self.path.display()))
    }

    fn release_host_locks(&mut self) -> Result<(), String> {
        if !self.locked {
            return Ok(());
        }
        // What was written reaches the file (or the shared storage) before another
        // process may open it for writing.
        self.flush_backend()
            .map_err(|e| format!("{e} (before handing it over)"))?;
        ofd_unlock(&self.image.file, &self.path).map_err(|e| e.to_string())?;
        self.locked = false;
        Ok(())
    }

    fn take_host_locks(&mut self) -> Result<(), String> {
        if self.locked {
            return Ok(());
        }
        ofd_lock(&self.image.file, &self.path, !self.readonly).map_err(|e| e.to_string())?;
        self.locked = true;
        Ok(())
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        &self.config
    }

    fn process_queue(
        &mut self,
        _index: usize,
        queue: &mut Queue,
        mem: &GuestMem,
    ) -> Result<bool, DeviceError> {
        let limit = usize::from(queue.size());
        let mut used_any = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let len = match walk(chain, limit) {
                Some(c) => {
                    let (status, written) = self.request(mem, &c);
                    match status_place(&c) {
                        Some(at) if mem.write_obj(status as u8, at).is_ok() => written + 1,
                        // No status byte to write: the request is returned unanswered.
                        _ => 0,
                    }
                }
                None => 0,
            };
            queue.add_used(mem, head, len)?;
            used_any = true;
        }
        Ok(used_any && queue.needs_notification(mem)?)
    }

    fn save_state(&self) -> super::DeviceState {
        super::DeviceState::Block {
            path: self.path.display().to_string(),
            size: self.image.size,
            readonly: self.readonly,
            modified_ns: self
                .image
                .file
                .metadata()
                .ok()
                .as_ref()
                .and_then(super::modified_ns),
        }
    }

    /// The data is the image's own: only that it is the same image, as large and as
    /// writable, is checked (whether it was written since is the restore's warning).
    fn restore_state(&mut self, state: &super::DeviceState) -> Result<(), String> {
        let super::DeviceState::Block {
            path,
            size,
            readonly,
            ..
        } = state
        else {
            return Err(format!(
                "the snapshot has a {} there, this VM a virtio-blk",
                state.kind()
            ));
        };
        let here = self.path.display().to_string();
        if *path != here {
            return Err(format!("the snapshot's disk is {path}, this VM's {here}"));
        }
        if *size != self.image.size {
            return Err(format!(
                "the disk {here} was {size} bytes when the snapshot was taken, it is {} bytes now",
                self.image.size
            ));
        }
        if *readonly != self.readonly {
            return Err(format!(
                "the disk {here} was {} in the snapshot, it is {} here",
                if *readonly { "read-only" } else { "writable" },
                if self.readonly {
                    "read-only"
                } else {
                    "writable"
                }
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "blk_tests.rs"]
mod tests;
