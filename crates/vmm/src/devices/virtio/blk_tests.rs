//! virtio-blk against a real GuestMem and a real image file: requests built by hand in
//! guest memory, good and hostile.

use super::*;
use crate::devices::virtio::test_ring::{offer, queue, AVAIL, DESC, USED};
use std::io::Read;
use virtio_bindings::virtio_blk::VIRTIO_BLK_T_GET_ID;
use virtio_queue::desc::split::Descriptor;

const HDR: u64 = 0x4000;
const DATA: u64 = 0x5000;
const STATUS: u64 = 0x8000;
const MEM_SIZE: usize = 0x10000;
const NEXT: u16 = 1;
const WRITE: u16 = 2;

struct Harness {
    mem: GuestMem,
    queue: Queue,
    block: Block,
    path: PathBuf,
    avail_idx: u16,
}

/// A directory on a disk-backed file system (O_DIRECT and holes behave as on real disks):
/// the temporary directory unless it is a tmpfs, else the build's target directory.
fn disk_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    let c = std::ffi::CString::new(tmp.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `fs` a valid statfs for the call.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut fs) };
    if r == 0 && fs.f_type != libc::TMPFS_MAGIC {
        return tmp;
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&target).unwrap();
    target
}

fn image(name: &str, sectors: u64) -> PathBuf {
    let path = disk_dir().join(format!("rvmm-blk-{}-{name}.img", std::process::id()));
    std::fs::write(&path, vec![0u8; (sectors * SECTOR_SIZE) as usize]).unwrap();
    path
}

fn harness(name: &str, readonly: bool) -> Harness {
    harness_with(name, readonly, Cache::Writeback, 64, 0)
}

/// A harness on an image of `sectors` sectors, each byte `fill`.
fn harness_with(name: &str, readonly: bool, cache: Cache, sectors: u64, fill: u8) -> Harness {
    let path = image(name, sectors);
    std::fs::write(&path, vec![fill; (sectors * SECTOR_SIZE) as usize]).unwrap();
    let block = Block::open(&DiskConfig {
        path: path.clone(),
        readonly,
        cache,
        serial: Some("SER-42".into()),
    })
    .unwrap();
    let mem = GuestMem::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let queue = queue();
    assert!(queue.is_valid(&mem));
    Harness {
        mem,
        queue,
        block,
        path,
        avail_idx: 0,
    }
}

impl Harness {
    /// Puts `descs` at table entries 0.. and makes entry 0 available; returns the used
    /// length the device gave.
    fn submit(&mut self, descs: &[Descriptor]) -> u32 {
        offer(&self.mem, &mut self.avail_idx, descs);
        self.block
            .process_queue(0, &mut self.queue, &self.mem)
            .unwrap();
        let used_idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        assert_eq!(used_idx, self.avail_idx, "every request gets a used entry");
        let entry = USED + 4 + 8 * u64::from((used_idx - 1) % 16);
        self.mem.read_obj(GuestAddress(entry + 4)).unwrap()
    }

    fn header(&self, kind: u32, sector: u64) {
        self.mem.write_obj(kind, GuestAddress(HDR)).unwrap();
        self.mem.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
        self.mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
        self.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    }

    fn status(&self) -> u8 {
        self.mem.read_obj(GuestAddress(STATUS)).unwrap()
    }

    /// header, one data buffer, status.
    fn request(&mut self, kind: u32, sector: u64, data: u64, len: u32, data_flags: u16) -> u32 {
        self.header(kind, sector);
        self.submit(&[
            Descriptor::new(HDR, 16, NEXT, 1),
            Descriptor::new(data, len, data_flags | NEXT, 2),
            Descriptor::new(STATUS, 1, WRITE, 0),
        ])
    }

    fn file(&self) -> Vec<u8> {
        let mut v = Vec::new();
        std::fs::File::open(&self.path)
            .unwrap()
            .read_to_end(&mut v)
            .unwrap();
        v
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn write_read_flush_get_id() {
    let mut h = harness("rw", false);
    let pattern: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
    h.mem.write_slice(&pattern, GuestAddress(DATA)).unwrap();
    assert_eq!(h.request(VIRTIO_BLK_T_OUT, 3, DATA, 1024, 0), 1);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8);
    assert_eq!(&h.file()[3 * 512..5 * 512], &pattern[..]);

    h.mem.write_slice(&[0u8; 1024], GuestAddress(DATA)).unwrap();
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 3, DATA, 1024, WRITE), 1025);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8);
    let mut back = vec![0u8; 1024];
    h.mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
    assert_eq!(back, pattern);

    h.header(VIRTIO_BLK_T_FLUSH, 0);
    let len = h.submit(&[
        Descriptor::new(HDR, 16, NEXT, 1),
        Descriptor::new(STATUS, 1, WRITE, 0),
    ]);
    assert_eq!((len, h.status()), (1, VIRTIO_BLK_S_OK as u8));

    h.mem
        .write_slice(&[0xaau8; 20], GuestAddress(DATA))
        .unwrap();
    assert_eq!(h.request(VIRTIO_BLK_T_GET_ID, 0, DATA, 20, WRITE), 8);
    let mut id = [0u8; 20];
    h.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..7], b"SER-42\0");
    assert_eq!(id[7], 0xaa, "as QEMU: the serial and its NUL only");
}

#[test]
fn readonly_disk_refuses_writes() {
    let mut h = harness("ro", true);
    assert_ne!(h.block.features() & (1 << VIRTIO_BLK_F_RO), 0);
    h.mem
        .write_slice(&[0x55u8; 512], GuestAddress(DATA))
        .unwrap();
    h.request(VIRTIO_BLK_T_OUT, 0, DATA, 512, 0);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR as u8);
    assert!(h.file().iter().all(|&b| b == 0), "the file is not written");
    h.request(VIRTIO_BLK_T_IN, 0, DATA, 512, WRITE);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8, "reads still work");
}

#[test]
fn hostile_requests_fail_without_touching_the_file() {
    let mut h = harness("hostile", false);
    // Data outside guest memory.
    h.request(VIRTIO_BLK_T_OUT, 0, 0x1_0000_0000, 512, 0);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR as u8);
    h.request(VIRTIO_BLK_T_IN, 0, MEM_SIZE as u64 - 256, 512, WRITE);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR as u8);
    // Not a whole sector; past the end of the disk; a sector number that overflows.
    h.request(VIRTIO_BLK_T_OUT, 0, DATA, 100, 0);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR as u8);
    h.request(VIRTIO_BLK_T_OUT, 63, DATA, 1024, 0);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR as u8);
    h.request(VIRTIO_BLK_T_IN, u64::MAX, DATA, 512, WRITE);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR as u8);
    // A huge length.
    h.request(VIRTIO_BLK_T_OUT, 0, DATA, !511, 0);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR as u8);
    // An unknown request type.
    h.request(77, 0, DATA, 512, WRITE);
    assert_eq!(h.status(), VIRTIO_BLK_S_UNSUPP as u8);
    // A header too short, status buffer outside memory, no writable buffer at all.
    h.header(VIRTIO_BLK_T_OUT, 0);
    h.submit(&[
        Descriptor::new(HDR, 8, NEXT, 1),
        Descriptor::new(STATUS, 1, WRITE, 0),
    ]);
    assert_eq!(h.status(), VIRTIO_BLK_S_IOERR as u8);
    assert_eq!(
        h.submit(&[
            Descriptor::new(HDR, 16, NEXT, 1),
            Descriptor::new(1 << 40, 1, WRITE, 0)
        ]),
        0
    );
    assert_eq!(h.submit(&[Descriptor::new(HDR, 16, 0, 0)]), 0);
    // A readable buffer after a writable one.
    assert_eq!(
        h.submit(&[
            Descriptor::new(HDR, 16, NEXT, 1),
            Descriptor::new(STATUS, 1, WRITE | NEXT, 2),
            Descriptor::new(DATA, 512, 0, 0),
        ]),
        0
    );
    assert!(h.file().iter().all(|&b| b == 0), "nothing was written");
}

#[test]
fn looping_chains_are_dropped_and_the_device_goes_on() {
    let mut h = harness("loop", false);
    h.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(
        h.submit(&[
            Descriptor::new(HDR, 16, NEXT, 1),
            Descriptor::new(DATA, 512, WRITE | NEXT, 0),
        ]),
        0
    );
    // A chain pointing past the table.
    assert_eq!(h.submit(&[Descriptor::new(HDR, 16, NEXT, 200)]), 0);
    h.request(VIRTIO_BLK_T_IN, 0, DATA, 512, WRITE);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8);
}

#[test]
fn a_second_writer_is_refused() {
    let h = harness("lock", false);
    let disk = |readonly| DiskConfig {
        path: h.path.clone(),
        readonly,
        cache: Cache::Writeback,
        serial: None,
    };
    let err = Block::open(&disk(false)).err().unwrap().to_string();
    assert!(err.contains("is locked by another process"), "{err}");
    assert!(
        Block::open(&disk(true)).is_err(),
        "no reader beside a writer"
    );
    drop(h);
    let path = image("readers", 8);
    let d = DiskConfig {
        path: path.clone(),
        readonly: true,
        cache: Cache::Writeback,
        serial: None,
    };
    let a = Block::open(&d).unwrap();
    let b = Block::open(&d).unwrap();
    assert!(Block::open(&DiskConfig {
        readonly: false,
        ..d.clone()
    })
    .is_err());
    drop((a, b));
    let _ = std::fs::remove_file(path);
}

#[test]
fn odd_sized_and_missing_images_are_refused() {
    let path = disk_dir().join(format!("rvmm-blk-{}-odd.img", std::process::id()));
    std::fs::write(&path, [0u8; 700]).unwrap();
    let d = DiskConfig {
        path: path.clone(),
        readonly: false,
        cache: Cache::Writeback,
        serial: None,
    };
    assert_eq!(
        Block::open(&d).err().unwrap().to_string(),
        format!(
            "--disk path={}: its size (700 bytes) is not a whole number of 512-byte sectors",
            path.display()
        )
    );
    std::fs::remove_file(&path).unwrap();
    let err = Block::open(&d).err().unwrap().to_string();
    assert!(err.contains("cannot open it"), "{err}");
}

/// A driver that writes anything anywhere: pseudo-random register writes (sizes 1-8, any
/// offset) on a transport with a real disk, each followed by a notification served as the
/// I/O thread would. Nothing may panic, and the file is written only by well-formed requests
/// (the disk here is read-only, so never).
#[test]
fn random_register_writes_never_panic() {
    use super::super::mmio::{reg, MmioTransport};
    let path = image("random", 16);
    let block = Block::open(&DiskConfig {
        path: path.clone(),
        readonly: true,
        cache: Cache::Writeback,
        serial: None,
    })
    .unwrap();
    let mem = GuestMem::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let mut t = MmioTransport::new(Box::new(block), mem.clone());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..20_000u32 {
        let r = next();
        // Mostly real registers with small values (so queues do get set up), sometimes
        // anything.
        let offset = if r & 3 == 0 {
            r >> 8 & 0x1ff
        } else {
            (r >> 8 & 0x2f) * 4
        };
        let value = match r >> 20 & 3 {
            0 => (r >> 32) as u32,
            1 => (r >> 32) as u32 & 0xffff,
            _ => (r >> 32) as u32 & 0xf,
        };
        let size = [4usize, 4, 4, 1, 2, 8][(r >> 24) as usize % 6];
        let bytes = u64::from(value).to_le_bytes();
        t.write(offset, &bytes[..size]);
        let mut back = [0u8; 8];
        t.read(offset, &mut back[..size]);
        // Random ring contents too.
        if round % 16 == 0 {
            let addr = next() % MEM_SIZE as u64;
            let _ = mem.write_obj(next(), GuestAddress(addr & !7));
        }
        t.service_queues();
        if round % 500 == 0 {
            t.write(reg::STATUS, &0u32.to_le_bytes());
        }
    }
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
    let _ = std::fs::remove_file(path);
}

/// The allocated 512-byte blocks of `path` (stat's st_blocks).
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks()
}

impl Harness {
    /// A discard / write-zeroes request with `segs` (sector, count, flags) at DATA.
    fn dwz(&mut self, kind: u32, segs: &[(u64, u32, u32)]) -> u8 {
        let mut bytes = Vec::new();
        for &(sector, count, flags) in segs {
            bytes.extend_from_slice(&sector.to_le_bytes());
            bytes.extend_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&flags.to_le_bytes());
        }
        self.mem.write_slice(&bytes, GuestAddress(DATA)).unwrap();
        assert_eq!(self.request(kind, 0, DATA, bytes.len() as u32, 0), 1);
        self.status()
    }
}

#[test]
fn cache_none_moves_unaligned_guest_buffers_to_the_file() {
    let mut h = harness_with("direct", false, Cache::None, 64, 0x11);
    assert!(h.block.image.direct.is_some(), "opened with O_DIRECT");
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let fl = unsafe { libc::fcntl(h.block.image.file.as_raw_fd(), libc::F_GETFL) };
    assert_ne!(fl & libc::O_DIRECT, 0);
    // Odd guest addresses, two segments, the first not a whole sector.
    let pattern: Vec<u8> = (0..1536u32).map(|i| (i * 13 + 5) as u8).collect();
    h.mem
        .write_slice(&pattern[..700], GuestAddress(DATA + 3))
        .unwrap();
    h.mem
        .write_slice(&pattern[700..], GuestAddress(DATA + 0x1001))
        .unwrap();
    h.header(VIRTIO_BLK_T_OUT, 5);
    h.submit(&[
        Descriptor::new(HDR, 16, NEXT, 1),
        Descriptor::new(DATA + 3, 700, NEXT, 2),
        Descriptor::new(DATA + 0x1001, 836, NEXT, 3),
        Descriptor::new(STATUS, 1, WRITE, 0),
    ]);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8);
    let file = h.file();
    assert_eq!(
        &file[5 * 512..8 * 512],
        &pattern[..],
        "the data reached the file"
    );
    assert!(file[..5 * 512]
        .iter()
        .chain(&file[8 * 512..])
        .all(|&b| b == 0x11));
    h.mem
        .write_slice(&[0u8; 1536], GuestAddress(DATA + 7))
        .unwrap();
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 5, DATA + 7, 1536, WRITE), 1537);
    let mut back = vec![0u8; 1536];
    h.mem.read_slice(&mut back, GuestAddress(DATA + 7)).unwrap();
    assert_eq!(back, pattern);
    h.header(VIRTIO_BLK_T_FLUSH, 0);
    h.submit(&[
        Descriptor::new(HDR, 16, NEXT, 1),
        Descriptor::new(STATUS, 1, WRITE, 0),
    ]);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8);
}

/// A file system whose O_DIRECT wants 4096-byte blocks: a 512-byte write is read-modify-
/// written, and one in the image's last, partial block leaves the image its size.
#[test]
fn cache_none_read_modify_writes_partial_blocks() {
    let mut h = harness_with("rmw", false, Cache::None, 9, 0x22);
    h.block.image.direct = Some(4096);
    h.mem
        .write_slice(&[0xabu8; 512], GuestAddress(DATA))
        .unwrap();
    h.request(VIRTIO_BLK_T_OUT, 8, DATA, 512, 0);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8);
    h.request(VIRTIO_BLK_T_OUT, 1, DATA, 512, 0);
    assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8);
    let file = h.file();
    assert_eq!(file.len(), 9 * 512, "the image keeps its size");
    for (i, &b) in file.iter().enumerate() {
        let want = if (512..1024).contains(&i) || i >= 8 * 512 {
            0xab
        } else {
            0x22
        };
        assert_eq!(b, want, "byte {i}");
    }
    h.mem.write_slice(&[0u8; 1024], GuestAddress(DATA)).unwrap();
    assert_eq!(h.request(VIRTIO_BLK_T_IN, 7, DATA + 1, 1024, WRITE), 1025);
    let mut back = [0u8; 1024];
    h.mem.read_slice(&mut back, GuestAddress(DATA + 1)).unwrap();
    assert!(back[..512].iter().all(|&b| b == 0x22) && back[512..].iter().all(|&b| b == 0xab));
}

#[test]
fn cache_none_on_a_file_system_without_o_direct_is_an_error() {
    // procfs refuses O_DIRECT at open with EINVAL, as tmpfs did before Linux 6.6.
    let d = DiskConfig {
        path: PathBuf::from("/proc/version"),
        readonly: true,
        cache: Cache::None,
        serial: None,
    };
    assert_eq!(
        Block::open(&d).err().unwrap().to_string(),
        "--disk cache=none: /proc/version: its file system refuses O_DIRECT (EINVAL), which \
         cache=none needs; use cache=writeback on this file system"
    );
}

#[test]
fn discard_and_write_zeroes_are_offered_on_writable_disks_only() {
    let h = harness("dwz-config", false);
    let f = h.block.features();
    assert_ne!(f & (1 << VIRTIO_BLK_F_DISCARD), 0);
    assert_ne!(f & (1 << VIRTIO_BLK_F_WRITE_ZEROES), 0);
    let c = h.block.config();
    let word = |at: usize| u32::from_le_bytes(c[at..at + 4].try_into().unwrap());
    assert_eq!(c.len(), 60);
    assert_eq!((word(36), word(40)), (MAX_DWZ_SECTORS, MAX_DWZ_SEG));
    assert!(word(44) >= 1, "discard_sector_alignment");
    assert_eq!(
        (word(48), word(52), c[56]),
        (MAX_DWZ_SECTORS, MAX_DWZ_SEG, 1)
    );
    let ro = harness("dwz-ro", true);
    let f = ro.block.features();
    assert_eq!(
        f & (1 << VIRTIO_BLK_F_DISCARD | 1 << VIRTIO_BLK_F_WRITE_ZEROES),
        0
    );
    assert!(ro.block.config()[36..60].iter().all(|&b| b == 0));
}

#[test]
fn discard_punches_holes_and_write_zeroes_zeroes() {
    for cache in [Cache::Writeback, Cache::None] {
        let mut h = harness_with("dwz", false, cache, 256, 0x33);
        std::fs::File::open(&h.path).unwrap().sync_all().unwrap();
        let before = allocated(&h.path);
        assert!(before >= 256, "the image is allocated: {before}");
        assert_eq!(h.dwz(VIRTIO_BLK_T_DISCARD, &[(0, 64, 0), (128, 64, 0)]), 0);
        let after = allocated(&h.path);
        assert!(after + 128 <= before, "st_blocks {before} -> {after}");
        let file = h.file();
        assert_eq!(file.len(), 256 * 512, "KEEP_SIZE");
        assert!(file[..64 * 512].iter().all(|&b| b == 0));
        assert!(file[64 * 512..128 * 512].iter().all(|&b| b == 0x33));

        // Write-zeroes without and with unmap, on unaligned sector ranges.
        assert_eq!(h.dwz(VIRTIO_BLK_T_WRITE_ZEROES, &[(65, 3, 0)]), 0);
        assert_eq!(h.dwz(VIRTIO_BLK_T_WRITE_ZEROES, &[(100, 20, 1)]), 0);
        let file = h.file();
        for (i, &b) in file.iter().enumerate().take(128 * 512).skip(64 * 512) {
            let s = i / 512;
            let zero = (65..68).contains(&s) || (100..120).contains(&s);
            assert_eq!(b, if zero { 0 } else { 0x33 }, "sector {s}");
        }
        h.request(VIRTIO_BLK_T_IN, 65, DATA, 512, WRITE);
        assert_eq!(h.status(), VIRTIO_BLK_S_OK as u8);
    }
}

#[test]
fn bad_discard_and_write_zeroes_requests_are_refused_before_anything_is_done() {
    use virtio_bindings::virtio_blk::{VIRTIO_BLK_T_DISCARD as D, VIRTIO_BLK_T_WRITE_ZEROES as Z};
    let mut h = harness_with("dwz-bad", false, Cache::Writeback, 64, 0x44);
    let (ok, ioerr, unsupp) = (
        VIRTIO_BLK_S_OK as u8,
        VIRTIO_BLK_S_IOERR as u8,
        VIRTIO_BLK_S_UNSUPP as u8,
    );
    // Reserved flag bits; unmap on a discard (§5.2.6.2: UNSUPP). The good first segment
    // is not acted on either.
    assert_eq!(h.dwz(Z, &[(0, 8, 0), (8, 8, 2)]), unsupp);
    assert_eq!(h.dwz(D, &[(0, 8, 0), (8, 8, 1)]), unsupp);
    assert_eq!(h.dwz(D, &[(0, 8, 1 << 31)]), unsupp);
    // Past the end, overflowing, larger than max_*_sectors.
    assert_eq!(h.dwz(D, &[(0, 8, 0), (60, 8, 0)]), ioerr);
    assert_eq!(h.dwz(Z, &[(u64::MAX, 1, 0)]), ioerr);
    assert_eq!(h.dwz(Z, &[(0, MAX_DWZ_SECTORS + 1, 0)]), ioerr);
    // More segments than max_*_seg.
    let many = vec![(0u64, 1u32, 0u32); MAX_DWZ_SEG as usize + 1];
    assert_eq!(h.dwz(D, &many), unsupp);
    // No segment, or a partial one.
    assert_eq!(h.request(D, 0, DATA, 0, 0), 1);
    assert_eq!(h.status(), ioerr);
    assert_eq!(h.request(Z, 0, DATA, 12, 0), 1);
    assert_eq!(h.status(), ioerr);
    // Segments outside guest memory.
    h.header(D, 0);
    h.submit(&[
        Descriptor::new(HDR, 16, NEXT, 1),
        Descriptor::new(1 << 40, 16, NEXT, 2),
        Descriptor::new(STATUS, 1, WRITE, 0),
    ]);
    assert_eq!(h.status(), ioerr);
    assert!(
        h.file().iter().all(|&b| b == 0x44),
        "nothing was discarded or zeroed"
    );
    // A zero-sector segment is a no-op.
    assert_eq!(h.dwz(D, &[(3, 0, 0)]), ok);
    // A read-only disk (features not offered, the driver sends them anyway).
    let mut ro = harness_with("dwz-bad-ro", true, Cache::Writeback, 64, 0x44);
    assert_eq!(ro.dwz(D, &[(0, 8, 0)]), ioerr);
    assert_eq!(ro.dwz(Z, &[(0, 8, 0)]), ioerr);
    assert!(ro.file().iter().all(|&b| b == 0x44));
}

/// The dirty bitmap of the harness's one region (what a migration ORs into KVM's log).
fn bitmap(mem: &GuestMem) -> &vm_memory::bitmap::AtomicBitmap {
    vm_memory::MmapRegion::bitmap(mem.iter().next().unwrap())
}

#[test]
fn a_read_request_marks_the_pages_the_device_wrote() {
    let mut h = harness("dirty", false);
    // Sector 2 onwards holds a pattern, read into DATA across a page boundary.
    h.request(VIRTIO_BLK_T_OUT, 2, DATA, 4608, 0);
    h.header(VIRTIO_BLK_T_IN, 2);
    let descs = [
        Descriptor::new(HDR, 16, NEXT, 1),
        Descriptor::new(DATA + 0x800, 4096, WRITE | NEXT, 2),
        Descriptor::new(STATUS, 1, WRITE, 0),
    ];
    offer(&h.mem, &mut h.avail_idx, &descs);
    // What the "driver" wrote is forgotten: only the device's writes are left to see.
    bitmap(&h.mem).reset();
    h.block.process_queue(0, &mut h.queue, &h.mem).unwrap();
    assert_eq!(h.status(), 0);
    let dirty = |a: u64| bitmap(&h.mem).is_addr_set(a as usize);
    // The read data (two pages), the status byte, the used ring.
    for a in [DATA, DATA + 0x1000, STATUS, USED] {
        assert!(dirty(a), "page {a:#x} written by the device is marked");
    }
    // What the device only read.
    for a in [DESC, AVAIL, HDR, DATA + 0x2000] {
        assert!(!dirty(a), "page {a:#x} is not marked");
    }
}

#[test]
fn a_disk_opened_unlocked_takes_the_lock_once_the_holder_lets_go() {
    let path = image("handover", 8);
    let d = DiskConfig {
        path: path.clone(),
        readonly: false,
        cache: Cache::Writeback,
        serial: None,
    };
    let mut source = Block::open(&d).unwrap();
    // A migration's destination opens the image beside the source's lock...
    let mut dest = Block::open_unlocked(&d).unwrap();
    let err = dest.take_host_locks().unwrap_err();
    assert!(err.contains("is locked by another process"), "{err}");
    // ... and takes it once the source handed it over.
    source.release_host_locks().unwrap();
    dest.take_host_locks().unwrap();
    let err = source.take_host_locks().unwrap_err();
    assert!(err.contains("is locked by another process"), "{err}");
    assert!(Block::open(&d).is_err(), "one writer at a time");
    drop(dest);
    source.take_host_locks().unwrap();
    drop(source);
    let _ = std::fs::remove_file(&path);
}
