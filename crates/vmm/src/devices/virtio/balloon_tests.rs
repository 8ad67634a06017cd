//! virtio-balloon against a real GuestMem (private anonymous, as rvmm's default RAM):
//! PFN arrays built by hand in guest memory, good and hostile; given-back pages read as
//! zero afterwards.

use super::*;
use crate::devices::virtio::test_ring::{offer, queue, USED};
use crate::devices::virtio::DeviceState;
use virtio_queue::desc::split::Descriptor;

const PFNS: u64 = 0x4000;
/// Pages 0x10.. hold data the tests inflate.
const DATA_PFN: u32 = 0x10;
const MEM_SIZE: usize = 0x40000;
const WRITE: u16 = 2;

struct Harness {
    mem: GuestMem,
    queue: Queue,
    balloon: Balloon,
    shared: Arc<BalloonShared>,
    avail_idx: u16,
}

fn harness(reporting: bool) -> Harness {
    let shared = Arc::new(BalloonShared::default());
    let config = BalloonConfig {
        free_page_reporting: reporting,
        ..Default::default()
    };
    let balloon = Balloon::new(&config, GiveBack::new(false, None), shared.clone());
    let mem = GuestMem::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let queue = queue();
    Harness {
        mem,
        queue,
        balloon,
        shared,
        avail_idx: 0,
    }
}

impl Harness {
    fn submit(&mut self, queue: usize, descs: &[Descriptor]) {
        offer(&self.mem, &mut self.avail_idx, descs);
        self.balloon
            .process_queue(queue, &mut self.queue, &self.mem)
            .unwrap();
        let used_idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        assert_eq!(used_idx, self.avail_idx, "every buffer gets a used entry");
    }

    fn pfns(&mut self, queue: usize, pfns: &[u32]) {
        for (i, p) in pfns.iter().enumerate() {
            self.mem
                .write_obj(*p, GuestAddress(PFNS + 4 * i as u64))
                .unwrap();
        }
        self.submit(queue, &[Descriptor::new(PFNS, 4 * pfns.len() as u32, 0, 0)]);
    }

    fn fill(&self, pfn: u32, pages: u32) {
        let data = vec![0xa5u8; (pages as usize) << 12];
        self.mem
            .write_slice(&data, GuestAddress(u64::from(pfn) << 12))
            .unwrap();
    }

    fn byte(&self, pfn: u32) -> u8 {
        self.mem
            .read_obj(GuestAddress((u64::from(pfn) << 12) + 100))
            .unwrap()
    }
}

#[test]
fn features_queues_and_config() {
    let h = harness(false);
    assert_eq!(h.balloon.device_id(), 5);
    assert_eq!(h.balloon.features(), 1 << VIRTIO_F_VERSION_1);
    assert_eq!(h.balloon.queue_max_sizes(), &[128, 128]);
    let all = BalloonConfig {
        deflate_on_oom: true,
        free_page_reporting: true,
        initial_memory: None,
    };
    let b = Balloon::new(&all, GiveBack::new(true, Some(2 << 20)), h.shared.clone());
    assert_eq!(
        b.features(),
        (1 << VIRTIO_F_VERSION_1) | (1 << F_DEFLATE_ON_OOM) | (1 << F_REPORTING)
    );
    assert_eq!(b.queue_max_sizes(), &[128, 128, 32]);
    assert_eq!(b.config(), &[0; 8]);
}

#[test]
fn target_and_actual() {
    let mut h = harness(false);
    h.shared.set_target(0x1234);
    assert_eq!(&h.balloon.config()[0..4], &[0; 4], "not before refresh");
    h.balloon.refresh_config();
    assert_eq!(&h.balloon.config()[0..4], &0x1234u32.to_le_bytes());
    // num_pages is read-only: a write to it (or across it) changes nothing.
    h.balloon.write_config(0, &7u32.to_le_bytes());
    h.balloon.write_config(2, &[1, 2, 3, 4]);
    h.balloon.write_config(6, &[1, 2, 3, 4]);
    h.balloon.write_config(u64::MAX, &[1]);
    assert_eq!(&h.balloon.config()[0..4], &0x1234u32.to_le_bytes());
    assert_eq!(h.balloon.take_guest_event(), None);
    h.balloon.write_config(4, &0x1000u32.to_le_bytes());
    assert_eq!(h.shared.actual(), 0x1000);
    assert_eq!(
        h.balloon.take_guest_event(),
        Some(GuestEvent::BalloonChange { actual: 0x1000 })
    );
    assert_eq!(h.balloon.take_guest_event(), None, "taken once");
    h.balloon.write_config(4, &0x1000u32.to_le_bytes());
    assert_eq!(h.balloon.take_guest_event(), None, "no change, no event");
}

#[test]
fn inflated_pages_are_given_back() {
    let mut h = harness(false);
    h.fill(DATA_PFN, 8);
    assert_eq!(h.byte(DATA_PFN), 0xa5);
    // Two runs (4 and 2 pages) and a lone page, out of order.
    let pfns = [
        DATA_PFN,
        DATA_PFN + 1,
        DATA_PFN + 2,
        DATA_PFN + 3,
        DATA_PFN + 6,
        DATA_PFN + 5,
        DATA_PFN + 7,
    ];
    h.pfns(INFLATE, &pfns);
    assert_eq!(h.shared.given_back(), 7);
    assert_eq!(h.shared.refused(), 0);
    for p in pfns {
        assert_eq!(h.byte(p), 0, "page {p:#x} given back reads as zero");
    }
    assert_eq!(
        h.byte(DATA_PFN + 4),
        0xa5,
        "the page not inflated keeps its data"
    );
    h.pfns(DEFLATE, &pfns);
    assert_eq!(h.shared.deflated(), 7);
}

#[test]
fn hostile_pfns_are_refused_not_fatal() {
    let mut h = harness(false);
    h.fill(DATA_PFN, 1);
    let beyond = (MEM_SIZE >> 12) as u32;
    h.pfns(INFLATE, &[u32::MAX, beyond, DATA_PFN, beyond + 1]);
    assert_eq!(h.shared.given_back(), 1);
    assert_eq!(h.shared.refused(), 3);
    // An array that runs past guest memory: what is inside is served, the rest refused.
    let before = h.shared.refused();
    h.submit(INFLATE, &[Descriptor::new((MEM_SIZE - 8) as u64, !3, 0, 0)]);
    assert!(h.shared.refused() > before);
    // A descriptor chain that loops is returned unserved.
    h.submit(INFLATE, &[Descriptor::new(PFNS, 4, 1, 0)]);
    // A write-only buffer is still a PFN array (QEMU reads out_sg; a hostile driver
    // gains nothing: the pages are its own).
    h.submit(INFLATE, &[Descriptor::new(PFNS, 4, WRITE, 0)]);
}

#[test]
fn reported_ranges_are_given_back() {
    let mut h = harness(true);
    h.fill(DATA_PFN, 4);
    h.submit(
        REPORTING,
        &[Descriptor::new(
            u64::from(DATA_PFN) << 12,
            4 << 12,
            WRITE,
            0,
        )],
    );
    assert_eq!(h.shared.reported(), 4);
    assert_eq!(h.byte(DATA_PFN + 3), 0);
    // Outside RAM, or wrapping: refused.
    h.submit(REPORTING, &[Descriptor::new(u64::MAX - 10, 4096, WRITE, 0)]);
    h.submit(
        REPORTING,
        &[Descriptor::new(MEM_SIZE as u64, 4096, WRITE, 0)],
    );
    assert_eq!(h.shared.refused(), 2);
}

#[test]
fn huge_pages_release_only_whole_ones() {
    let mut h = harness(false);
    // 64 KiB "huge pages" over private memory: a run of 8 pages from PFN 0x10 covers
    // one whole 64 KiB page (0x10..0x20 is 16 pages; 0x10..0x18 is half of it).
    h.balloon.give_back = GiveBack::new(false, Some(64 << 10));
    h.fill(DATA_PFN, 32);
    h.pfns(INFLATE, &(DATA_PFN..DATA_PFN + 8).collect::<Vec<_>>());
    assert_eq!(h.byte(DATA_PFN), 0xa5, "half a huge page stays");
    h.pfns(INFLATE, &(DATA_PFN..DATA_PFN + 16).collect::<Vec<_>>());
    assert_eq!(h.byte(DATA_PFN), 0);
    assert_eq!(h.byte(DATA_PFN + 16), 0xa5);
}

#[test]
fn the_balloon_state_round_trips_and_other_features_are_refused() {
    let h = harness(true);
    h.shared.set_target(300);
    let mut b = h.balloon;
    b.write_config(4, &120u32.to_le_bytes());
    let saved = b.save_state();
    assert_eq!(
        saved,
        DeviceState::Balloon {
            target: 300,
            actual: 120,
            deflate_on_oom: false,
            free_page_reporting: true,
            given_back: 0,
            deflated: 0,
            reported: 0,
            refused: 0,
        }
    );

    let fresh = harness(true);
    let mut b2 = fresh.balloon;
    b2.restore_state(&saved).unwrap();
    assert_eq!((fresh.shared.target(), fresh.shared.actual()), (300, 120));
    assert_eq!(&b2.config()[..8], &[44, 1, 0, 0, 120, 0, 0, 0]);
    assert!(
        b2.take_guest_event().is_none(),
        "no BALLOON_CHANGE for a restore"
    );

    let mut other = harness(false).balloon;
    let e = other.restore_state(&saved).unwrap_err();
    assert!(e.contains("free-page-reporting=true, this VM's"), "{e}");
    let net = DeviceState::Net {
        mac: "52:54:00:12:34:56".into(),
        tap: String::new(),
    };
    assert_eq!(
        other.restore_state(&net).unwrap_err(),
        "the snapshot has a virtio-net there, this VM a virtio-balloon"
    );
}
