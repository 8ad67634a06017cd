//! virtio-blk against a real GuestMemoryMmap and a real image file: requests built by hand in
//! guest memory, good and hostile.

use super::*;
use std::io::Read;
use virtio_bindings::virtio_blk::VIRTIO_BLK_T_GET_ID;
use virtio_queue::desc::split::Descriptor;

const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const HDR: u64 = 0x4000;
const DATA: u64 = 0x5000;
const STATUS: u64 = 0x8000;
const MEM_SIZE: usize = 0x10000;
const NEXT: u16 = 1;
const WRITE: u16 = 2;

struct Harness {
    mem: GuestMemoryMmap,
    queue: Queue,
    block: Block,
    path: PathBuf,
    avail_idx: u16,
}

fn image(name: &str, sectors: u64) -> PathBuf {
    let path = std::env::temp_dir().join(format!("rvmm-blk-{}-{name}.img", std::process::id()));
    std::fs::write(&path, vec![0u8; (sectors * SECTOR_SIZE) as usize]).unwrap();
    path
}

fn harness(name: &str, readonly: bool) -> Harness {
    let path = image(name, 64);
    let block = Block::open(&DiskConfig {
        path: path.clone(),
        readonly,
        serial: Some("SER-42".into()),
    })
    .unwrap();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let mut queue = Queue::new(16).unwrap();
    queue.set_size(16);
    queue.set_desc_table_address(Some(DESC as u32), Some(0));
    queue.set_avail_ring_address(Some(AVAIL as u32), Some(0));
    queue.set_used_ring_address(Some(USED as u32), Some(0));
    queue.set_ready(true);
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
        for (i, d) in descs.iter().enumerate() {
            self.mem
                .write_obj(*d, GuestAddress(DESC + 16 * i as u64))
                .unwrap();
        }
        let slot = AVAIL + 4 + 2 * u64::from(self.avail_idx % 16);
        self.mem.write_obj(0u16, GuestAddress(slot)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(AVAIL + 2))
            .unwrap();
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
    let path = std::env::temp_dir().join(format!("rvmm-blk-{}-odd.img", std::process::id()));
    std::fs::write(&path, [0u8; 700]).unwrap();
    let d = DiskConfig {
        path: path.clone(),
        readonly: false,
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
        serial: None,
    })
    .unwrap();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
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
