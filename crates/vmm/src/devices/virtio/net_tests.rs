//! virtio-net against a real GuestMem and a real frame pipe (a SOCK_SEQPACKET socket
//! pair standing in for the tap: one frame per message, as a tap reads and writes): chains
//! built by hand in guest memory, good and hostile. The tap itself is tests/virtio_net.rs'.

use super::*;
use crate::devices::virtio::test_ring::{offer, queue, AVAIL, DESC, USED};
use crate::devices::virtio::DeviceState;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use virtio_queue::desc::split::Descriptor;

const BUF: u64 = 0x4000;
const MEM_SIZE: usize = 0x30000;
const NEXT: u16 = 1;
const WRITE: u16 = 2;

/// One end of a socket pair as the device's frame pipe; `set` records offload calls.
struct Pipe {
    fd: OwnedFd,
    offloads: u32,
    set: Arc<Mutex<Vec<u32>>>,
}

impl FrameIo for Pipe {
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length for the call.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        // SAFETY: `frame` is valid for reads of its length for the call.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    fn offloads(&self) -> u32 {
        self.offloads
    }
    fn set_offloads(&mut self, flags: u32) -> std::io::Result<()> {
        self.set.lock().unwrap().push(flags);
        Ok(())
    }
}

fn pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into `fds`.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0);
    // SAFETY: both descriptors are new and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

struct Harness {
    mem: GuestMem,
    queue: Queue,
    net: Net,
    /// The host's end of the pipe.
    host: OwnedFd,
    set: Arc<Mutex<Vec<u32>>>,
    avail_idx: u16,
    used_seen: u16,
}

fn harness(offloads: u32) -> Harness {
    let (dev, host) = pair();
    let set = Arc::new(Mutex::new(Vec::new()));
    let pipe = Pipe {
        fd: dev,
        offloads,
        set: set.clone(),
    };
    let net = Net::new(Box::new(pipe), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    let mem = GuestMem::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let queue = queue();
    Harness {
        mem,
        queue,
        net,
        host,
        set,
        avail_idx: 0,
        used_seen: 0,
    }
}

impl Harness {
    /// Puts `descs` at table entries 0.. and makes entry 0 available (no processing).
    fn offer(&mut self, descs: &[Descriptor]) {
        offer(&self.mem, &mut self.avail_idx, descs);
    }

    fn process(&mut self, index: usize) {
        self.net
            .process_queue(index, &mut self.queue, &self.mem)
            .unwrap();
    }

    /// The used entries added since the last call: their lengths.
    fn used(&mut self) -> Vec<u32> {
        let idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        let mut lens = Vec::new();
        while self.used_seen != idx {
            let entry = USED + 4 + 8 * u64::from(self.used_seen % 16);
            lens.push(self.mem.read_obj(GuestAddress(entry + 4)).unwrap());
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        lens
    }

    fn host_send(&self, frame: &[u8]) {
        // SAFETY: `frame` is valid for reads of its length.
        let n = unsafe { libc::send(self.host.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(n, frame.len() as isize);
    }

    fn host_recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; MAX_FRAME + 16];
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.host.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        (n >= 0).then(|| {
            buf.truncate(n as usize);
            buf
        })
    }
}

/// A frame with its 12-byte header: `len` bytes in all.
fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0u8; len];
    for (i, b) in f.iter_mut().enumerate().skip(HDR_LEN) {
        *b = (i as u8).wrapping_mul(7).wrapping_add(seed);
    }
    f
}

#[test]
fn config_space_and_features_follow_the_tap() {
    let h = harness(0);
    assert_eq!(h.net.device_id(), 1);
    assert_eq!(h.net.config(), &[0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0]);
    assert_eq!(h.net.queue_max_sizes(), &[256, 256]);
    let base = (1u64 << 32) | (1 << 5) | (1 << 16);
    assert_eq!(h.net.features(), base, "no offload a tap does not take");
    let all = harness(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    let offl = (1 << 0) | (1 << 1) | (1 << 7) | (1 << 8) | (1 << 11) | (1 << 12);
    assert_eq!(all.net.features(), base | offl);
    assert_eq!(
        offered_features(TUN_F_TSO4),
        base,
        "TSO needs checksum offload"
    );
    // What the tap is told: what the driver can take undone.
    assert_eq!(
        tap_offloads(base | offl),
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
    );
    assert_eq!(tap_offloads(base | (1 << 0) | (1 << 11)), 0, "HOST_* only");
    assert_eq!(
        tap_offloads(base | (1 << 1) | (1 << 8)),
        TUN_F_CSUM | TUN_F_TSO6
    );
}

#[test]
fn activate_sets_the_accepted_offloads_from_the_io_side() {
    let mut h = harness(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    h.net.activate(h.net.features() & !(1 << 8));
    assert!(h.set.lock().unwrap().is_empty(), "not on the vCPU thread");
    h.process(TX);
    assert_eq!(*h.set.lock().unwrap(), [TUN_F_CSUM | TUN_F_TSO4]);
    h.net.reset();
    h.process(TX);
    assert_eq!(*h.set.lock().unwrap(), [TUN_F_CSUM | TUN_F_TSO4, 0]);
}

#[test]
fn transmit_sends_header_and_frame_as_one() {
    let mut h = harness(0);
    h.net.activate(h.net.features());
    let f = frame(HDR_LEN + 60, 1);
    h.mem.write_slice(&f, GuestAddress(BUF)).unwrap();
    // Header and frame in two descriptors.
    h.offer(&[
        Descriptor::new(BUF, HDR_LEN as u32, NEXT, 1),
        Descriptor::new(BUF + HDR_LEN as u64, 60, 0, 0),
    ]);
    h.process(TX);
    assert_eq!(h.used(), [0]);
    assert_eq!(h.host_recv().unwrap(), f);
    assert_eq!(h.net.tx_frames, 1);
}

#[test]
fn receive_waits_for_buffers_and_stops_polling_without_them() {
    let mut h = harness(0);
    h.net.activate(h.net.features());
    assert_eq!(
        h.net.poll_fd(),
        None,
        "not polled before the first rx service"
    );
    let f = frame(HDR_LEN + 98, 3);
    h.host_send(&f);
    // No buffer: the frame waits, and the tap is not polled.
    h.process(RX);
    assert_eq!(h.used(), Vec::<u32>::new());
    assert_eq!(h.net.poll_fd(), None, "starved: the tap is left alone");
    // A buffer in two pieces arrives with the driver's notification.
    h.offer(&[
        Descriptor::new(BUF, 40, WRITE | NEXT, 1),
        Descriptor::new(BUF + 0x1000, 2000, WRITE, 0),
    ]);
    h.process(RX);
    assert_eq!(h.used(), [f.len() as u32]);
    let mut got = vec![0u8; f.len()];
    h.mem.read_slice(&mut got[..40], GuestAddress(BUF)).unwrap();
    h.mem
        .read_slice(&mut got[40..], GuestAddress(BUF + 0x1000))
        .unwrap();
    let mut want = f.clone();
    want[10] = 1; // num_buffers
    assert_eq!(got, want);
    assert!(
        h.net.poll_fd().is_some(),
        "buffers may be left: polled again"
    );
}

#[test]
fn hostile_chains_come_back_with_length_zero() {
    let mut h = harness(0);
    h.net.activate(h.net.features());
    // tx: a buffer outside guest memory.
    h.offer(&[Descriptor::new(0x10_0000_0000, 60, 0, 0)]);
    h.process(TX);
    assert_eq!(h.used(), [0]);
    // tx: a chain that loops 0 -> 1 -> 0.
    h.offer(&[
        Descriptor::new(BUF, 12, NEXT, 1),
        Descriptor::new(BUF, 60, NEXT, 0),
    ]);
    h.process(TX);
    assert_eq!(h.used(), [0]);
    // tx: a frame above the limit (in guest memory, in two pieces).
    h.offer(&[
        Descriptor::new(BUF, 0x10000, NEXT, 1),
        Descriptor::new(BUF, 0x10000, 0, 0),
    ]);
    h.process(TX);
    assert_eq!(h.used(), [0]);
    // tx: a write-only buffer, and one shorter than the header.
    h.offer(&[Descriptor::new(BUF, 60, WRITE, 0)]);
    h.process(TX);
    h.offer(&[Descriptor::new(BUF, 4, 0, 0)]);
    h.process(TX);
    assert_eq!(h.used(), [0, 0]);
    assert_eq!(h.host_recv(), None, "nothing reached the tap");
    assert_eq!((h.net.tx_frames, h.net.dropped), (0, 5));

    // rx: a buffer smaller than the header, a readable buffer, a buffer outside memory.
    let mut h = harness(0);
    h.net.activate(h.net.features());
    for descs in [
        [Descriptor::new(BUF, 4, WRITE, 0)],
        [Descriptor::new(BUF, 2048, 0, 0)],
        [Descriptor::new(0x10_0000_0000, 2048, WRITE, 0)],
    ] {
        h.host_send(&frame(HDR_LEN + 60, 9));
        h.offer(&descs);
        h.process(RX);
        assert_eq!(h.used(), [0]);
    }
    // The device still works.
    let f = frame(HDR_LEN + 60, 5);
    h.host_send(&f);
    h.offer(&[Descriptor::new(BUF, 2048, WRITE, 0)]);
    h.process(RX);
    assert_eq!(h.used(), [f.len() as u32]);
    assert_eq!(h.net.rx_frames, 1);
}

#[test]
fn the_mac_is_saved_and_must_match_on_restore() {
    let mut net = harness(0).net;
    let saved = net.save_state();
    assert_eq!(
        saved,
        DeviceState::Net {
            mac: "52:54:00:12:34:56".into(),
            tap: String::new(),
        }
    );
    net.restore_state(&saved).unwrap();
    let other = DeviceState::Net {
        mac: "52:54:00:00:00:01".into(),
        tap: "tap0".into(),
    };
    assert_eq!(
        net.restore_state(&other).unwrap_err(),
        "the snapshot's NIC has MAC 52:54:00:00:00:01, this VM's 52:54:00:12:34:56"
    );
}

/// A NIC whose driver is live, saved from one transport and restored into a new one (a
/// new tap, the same guest RAM): activated again, it receives the next frame into the next
/// buffer the driver had given, and the tap is polled.
#[test]
fn a_live_nic_restored_into_a_new_transport_receives_into_the_next_buffer() {
    use crate::devices::virtio::mmio::{reg, MmioTransport};
    let mem = GuestMem::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let set = Arc::new(Mutex::new(Vec::new()));
    let nic = |fd: OwnedFd| -> Box<dyn VirtioDevice> {
        let pipe = Pipe {
            fd,
            offloads: 0,
            set: set.clone(),
        };
        Box::new(Net::new(Box::new(pipe), [0x52, 0x54, 0, 0x12, 0x34, 0x56]))
    };
    let wr = |t: &mut MmioTransport, off: u64, v: u32| {
        t.write(off, &v.to_le_bytes());
    };
    let send = |fd: &OwnedFd, f: &[u8]| {
        // SAFETY: `f` is valid for reads of its length.
        let n = unsafe { libc::send(fd.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        assert_eq!(n, f.len() as isize);
    };
    let used = |i: u64| -> (u16, u32) {
        let idx: u16 = mem.read_obj(GuestAddress(USED + 2)).unwrap();
        let id: u32 = mem.read_obj(GuestAddress(USED + 4 + 8 * i)).unwrap();
        (idx, id)
    };

    let (dev, host) = pair();
    let mut t = MmioTransport::new(nic(dev), mem.clone());
    wr(&mut t, reg::STATUS, 1 | 2);
    wr(&mut t, reg::DRIVER_FEATURES_SEL, 1);
    wr(&mut t, reg::DRIVER_FEATURES, 1);
    wr(&mut t, reg::STATUS, 1 | 2 | 8);
    wr(&mut t, reg::QUEUE_SEL, RX as u32);
    wr(&mut t, reg::QUEUE_NUM, 16);
    wr(&mut t, reg::QUEUE_DESC_LOW, DESC as u32);
    wr(&mut t, reg::QUEUE_AVAIL_LOW, AVAIL as u32);
    wr(&mut t, reg::QUEUE_USED_LOW, USED as u32);
    wr(&mut t, reg::QUEUE_READY, 1);
    wr(&mut t, reg::STATUS, 1 | 2 | 8 | 4);
    // Two receive buffers, both available.
    for i in 0..2u16 {
        let d = Descriptor::new(BUF + 0x1000 * u64::from(i), 2048, WRITE, 0);
        mem.write_obj(d, GuestAddress(DESC + 16 * u64::from(i)))
            .unwrap();
        mem.write_obj(i, GuestAddress(AVAIL + 4 + 2 * u64::from(i)))
            .unwrap();
    }
    mem.write_obj(2u16, GuestAddress(AVAIL + 2)).unwrap();
    send(&host, &frame(HDR_LEN + 60, 1));
    assert!(t.service_queues());
    assert_eq!(used(0), (1, 0), "the first frame took buffer 0");
    let saved = t.save(1);
    assert_eq!(saved.transport.queues[RX].next_avail, 1);
    drop(t);

    let (dev2, host2) = pair();
    let mut t2 = MmioTransport::new(nic(dev2), mem.clone());
    t2.restore(&saved).unwrap();
    assert_eq!(t2.save(1), saved);
    let f = frame(HDR_LEN + 80, 9);
    send(&host2, &f);
    t2.service_queues();
    assert_eq!(used(1), (2, 1), "the next frame took buffer 1");
    let mut got = vec![0u8; f.len()];
    mem.read_slice(&mut got, GuestAddress(BUF + 0x1000))
        .unwrap();
    assert_eq!(got[HDR_LEN..], f[HDR_LEN..]);
    assert!(t2.poll_fd().is_some(), "the new tap is polled");
}

#[test]
fn the_announcement_is_a_broadcast_rarp_from_the_nic() {
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let f = rarp_announcement(&mac);
    assert_eq!(f.len(), HDR_LEN + 60);
    assert!(
        f[..HDR_LEN].iter().all(|&b| b == 0),
        "a plain frame: no offload"
    );
    let e = &f[HDR_LEN..];
    assert_eq!(&e[..6], &[0xff; 6]);
    assert_eq!(&e[6..12], &mac);
    assert_eq!(&e[12..14], &[0x80, 0x35]);
    // Ethernet/IPv4, opcode 3: the sender and target hardware addresses are the NIC's.
    assert_eq!(&e[14..22], &[0, 1, 8, 0, 6, 4, 0, 3]);
    assert_eq!((&e[22..28], &e[32..38]), (&mac[..], &mac[..]));
    assert!(e[28..32].iter().chain(&e[38..]).all(|&b| b == 0));

    // The device sends it on its pipe, and it is what the host reads.
    let mut h = harness(0);
    assert!(h.net.announce());
    let mut buf = [0u8; 128];
    // SAFETY: `buf` is valid for writes of its length for the call.
    let n = unsafe { libc::recv(h.host.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(&buf[..n as usize], &f[..]);
}

/// The announcer sends `rounds` frames per chosen NIC (the first before `start` returns),
/// a NIC not chosen gets none, a new announcement replaces the running one, and `stop`
/// ends it at once; `choose` refuses a name no NIC has, listing the NICs.
#[test]
fn the_announcer_sends_its_rounds_to_the_chosen_nics() {
    use crate::devices::virtio::announce::{choose, AnnounceParams, AnnounceTarget, Announcer};
    use crate::devices::virtio::mmio::MmioTransport;
    let mem = GuestMem::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let mut hosts = Vec::new();
    let mut targets = Vec::new();
    for (i, tap) in [Some("vnet7"), None].into_iter().enumerate() {
        let (dev, host) = pair();
        let pipe = Pipe {
            fd: dev,
            offloads: 0,
            set: Arc::new(Mutex::new(Vec::new())),
        };
        let net = Net::new(Box::new(pipe), [0x52, 0x54, 0, 0, 0, i as u8]);
        hosts.push(host);
        targets.push(AnnounceTarget {
            name: format!("net{i}"),
            tap: tap.map(str::to_string),
            transport: Arc::new(Mutex::new(MmioTransport::new(Box::new(net), mem.clone()))),
        });
    }
    // Frames waiting on a host end (non-blocking reads until none is left).
    let drain = |fd: &OwnedFd| -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut buf = [0u8; 128];
        loop {
            // SAFETY: `buf` is valid for writes of its length for the call.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                return frames;
            }
            frames.push(buf[..n as usize].to_vec());
        }
    };
    let quick = AnnounceParams {
        initial: 1,
        max: 2,
        rounds: 3,
        step: 1,
    };
    let announcer = Announcer::default();
    let only_tap = choose(&targets, Some(&["vnet7".to_string()])).unwrap();
    assert_eq!(
        announcer.start(only_tap, quick),
        1,
        "the first round at once"
    );
    // The thread's rounds: wait for them (bounded), not for a time.
    let mut first = Vec::new();
    for _ in 0..500 {
        first.extend(drain(&hosts[0]));
        if first.len() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    announcer.stop();
    first.extend(drain(&hosts[0]));
    assert_eq!(first.len(), 3);
    assert!(first
        .iter()
        .all(|f| f[..] == rarp_announcement(&[0x52, 0x54, 0, 0, 0, 0])));
    assert!(drain(&hosts[1]).is_empty(), "net1 was not chosen");

    // Long gaps: only the first round goes out before stop ends the thread.
    let slow = AnnounceParams {
        initial: 100_000,
        max: 100_000,
        rounds: 1000,
        step: 1,
    };
    let all = choose(&targets, None).unwrap();
    assert_eq!(announcer.start(all.clone(), slow), 2);
    // Replaced by a new one (the old thread stopped), then stopped.
    assert_eq!(announcer.start(all, slow), 2);
    announcer.stop();
    assert_eq!(drain(&hosts[0]).len(), 2);
    assert_eq!(drain(&hosts[1]).len(), 2);
    let none = AnnounceParams { rounds: 0, ..slow };
    assert_eq!(announcer.start(targets.clone(), none), 0);

    let e = choose(&targets, Some(&["net0".into(), "eth9".into()]))
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "announce-self: no NIC named 'eth9' (this VM's NICs: net0 (tap vnet7), net1)"
    );
}
