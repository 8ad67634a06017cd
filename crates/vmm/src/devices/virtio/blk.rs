//! virtio-blk (virtio 1.2 §5.2) on a raw image file: read, write, flush and get-id, one
//! request queue. The image is opened and locked here (an OFD write lock for a writable
//! disk, a read lock for a read-only one, as QEMU's file locking keeps a second writer out);
//! what the user asked for is `config::disk`.
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

use thiserror::Error;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX,
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{DeviceError, VirtioDevice};
use crate::config::disk::DiskConfig;

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
}

/// One virtio-blk device.
pub struct Block {
    file: File,
    readonly: bool,
    /// The disk's size in sectors.
    capacity: u64,
    serial: Vec<u8>,
    config: [u8; 24],
    features: u64,
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

impl Block {
    /// Opens and locks the image `disk` names.
    pub fn open(disk: &DiskConfig) -> Result<Block, DiskError> {
        let path = &disk.path;
        let file = OpenOptions::new()
            .read(true)
            .write(!disk.readonly)
            .open(path)
            .map_err(|error| DiskError::Open {
                path: path.clone(),
                error,
            })?;
        ofd_lock(&file, path, !disk.readonly)?;
        let size = file
            .metadata()
            .map_err(|error| DiskError::Open {
                path: path.clone(),
                error,
            })?
            .len();
        if size % SECTOR_SIZE != 0 {
            return Err(DiskError::Size {
                path: path.clone(),
                size,
            });
        }
        Ok(Block::new(
            file,
            disk.readonly,
            size / SECTOR_SIZE,
            disk.serial.as_deref(),
        ))
    }

    fn new(file: File, readonly: bool, capacity: u64, serial: Option<&str>) -> Block {
        let mut config = [0u8; 24];
        // struct virtio_blk_config: capacity (le64), size_max (le32), seg_max (le32), ...
        config[0..8].copy_from_slice(&capacity.to_le_bytes());
        config[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        let mut features = (1u64 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_BLK_F_FLUSH)
            | (1 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_SIZE_MAX);
        if readonly {
            features |= 1 << VIRTIO_BLK_F_RO;
        }
        Block {
            file,
            readonly,
            capacity,
            serial: serial.unwrap_or("").as_bytes().to_vec(),
            config,
            features,
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
fn walk(chain: virtio_queue::DescriptorChain<&GuestMemoryMmap>, limit: usize) -> Option<Chain> {
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
fn gather(mem: &GuestMemoryMmap, segs: &[(GuestAddress, u32)], buf: &mut [u8]) -> Option<()> {
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
    fn request(&mut self, mem: &GuestMemoryMmap, c: &Chain) -> (u32, u32) {
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
            VIRTIO_BLK_T_FLUSH => match self.file.sync_data() {
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

    fn read(
        &mut self,
        mem: &GuestMemoryMmap,
        sector: u64,
        segs: &[(GuestAddress, u32)],
    ) -> (u32, u32) {
        let total: u64 = segs.iter().map(|s| u64::from(s.1)).sum();
        let Some(mut offset) = self.range(sector, total) else {
            return (VIRTIO_BLK_S_IOERR, 0);
        };
        let mut buf = Vec::new();
        for &(addr, len) in segs {
            buf.resize(len as usize, 0);
            if self.file.read_exact_at(&mut buf, offset).is_err()
                || mem.write_slice(&buf, addr).is_err()
            {
                return (VIRTIO_BLK_S_IOERR, 0);
            }
            offset += u64::from(len);
        }
        (VIRTIO_BLK_S_OK, total as u32)
    }

    fn write(
        &mut self,
        mem: &GuestMemoryMmap,
        sector: u64,
        readable: &[(GuestAddress, u32)],
    ) -> u32 {
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
        let Some(offset) = self.range(sector, total) else {
            return VIRTIO_BLK_S_IOERR;
        };
        // Check every buffer is in guest memory before the file is written at all.
        let mut data = Vec::new();
        for &(addr, len) in &segs {
            let at = data.len();
            data.resize(at + len as usize, 0);
            if mem.read_slice(&mut data[at..], addr).is_err() {
                return VIRTIO_BLK_S_IOERR;
            }
        }
        match self.file.write_all_at(&data, offset) {
            Ok(()) => VIRTIO_BLK_S_OK,
            Err(_) => VIRTIO_BLK_S_IOERR,
        }
    }
}

/// Writes `data` across `segs`.
fn scatter(mem: &GuestMemoryMmap, segs: &[(GuestAddress, u32)], data: &[u8]) -> Option<()> {
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
        mem: &GuestMemoryMmap,
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
}

#[cfg(test)]
#[path = "blk_tests.rs"]
mod tests;
