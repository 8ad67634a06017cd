//! The source's migration thread (`worker`, under its own seccomp filter): connects,
//! sends HELLO and waits for the destination's answer, then, with KVM's dirty page logging
//! on (the emulator thread turned it on before handing the job over), sends every page once (zero pages as a
//! marker: the destination's RAM is not zero, its build wrote the boot image there), then
//! rounds of the pages written since the last round until what is left would take no more
//! than the downtime limit at the measured bandwidth (or [`MAX_ROUNDS`] rounds were done);
//! the first time it would, it waits for the destination to catch up (SYNC) and does one
//! more round, so that the destination's backlog is not paid with the VM paused. Then it hands the stream over to the emulator thread ([`ToEmulator::Final`]), which
//! pauses the VM, sends the last dirty pages and the machine state (`vmm::migrate`).
//!
//! Every byte sent counts against `max-bandwidth` (the thread sleeps to keep under it) and
//! into `query-migrate`'s figures, which live in [`Shared`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::EventFd;

use super::wire::{self, Batch, Conn, Hello, PAGE};
use super::{
    connect, MigrationError, MigrationInfo, MigrationParameters, MigrationStatus, MigrationUri,
    RamStats,
};
use crate::machine::vm::DirtyLog;
use crate::memory::GuestRam;

/// The most dirty-log rounds before the final phase, whatever is left.
pub const MAX_ROUNDS: u64 = 30;
/// How long the destination may take to answer HELLO.
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the source waits for DONE once the final state is sent (set here: the
/// emulator thread's filter has no setsockopt).
const DONE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the migration thread tells the emulator thread.
pub enum ToEmulator {
    /// The status changed (a MIGRATION event goes out).
    Status(MigrationStatus),
    /// Pre-copy is done: pause the VM and finish.
    Final(Box<Sender>),
    /// The migration ended before the final phase (the status and reason are in `info`).
    Ended,
}

/// What the migration thread and the emulator thread share.
pub struct Shared {
    pub info: Mutex<MigrationInfo>,
    pub cancel: AtomicBool,
    /// Written when `messages` has something.
    pub wake: EventFd,
    messages: Mutex<Vec<ToEmulator>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new() -> std::io::Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            info: Mutex::new(MigrationInfo::default()),
            cancel: AtomicBool::new(false),
            wake: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
            messages: Mutex::new(Vec::new()),
        }))
    }

    pub fn tell(&self, m: ToEmulator) {
        lock(&self.messages).push(m);
        let _ = self.wake.write(1);
    }

    /// The messages so far (clears the wake-up).
    pub fn take(&self) -> Vec<ToEmulator> {
        let _ = self.wake.read();
        std::mem::take(&mut *lock(&self.messages))
    }

    pub fn info(&self) -> MutexGuard<'_, MigrationInfo> {
        lock(&self.info)
    }

    /// Sets the status (and tells the emulator thread, for the event).
    pub fn set_status(&self, status: MigrationStatus) {
        self.info().status = Some(status);
        self.tell(ToEmulator::Status(status));
    }
}

/// The sending side of a migration: the stream, guest RAM, the dirty log and the figures.
pub struct Sender {
    pub conn: Conn,
    ram: Arc<GuestRam>,
    log: DirtyLog,
    params: MigrationParameters,
    pub shared: Arc<Shared>,
    /// When `migrate` was called.
    pub start: Instant,
    /// When pages started to go.
    transfer_start: Instant,
    stats: RamStats,
    logging: bool,
    /// Dirty bitmaps fetched but not sent yet, per slot.
    pending: Vec<Vec<u64>>,
    page: Vec<u8>,
}

impl Sender {
    fn publish(&mut self, expected_downtime: Option<u64>) {
        let secs = self.transfer_start.elapsed().as_secs_f64().max(1e-3);
        self.stats.mbps = self.stats.transferred as f64 * 8.0 / secs / 1e6;
        let mut info = self.shared.info();
        info.total_time = Some(self.start.elapsed().as_millis() as u64);
        info.ram = Some(self.stats);
        if expected_downtime.is_some() {
            info.expected_downtime = expected_downtime;
        }
    }

    /// Bytes per second so far.
    fn bandwidth(&self) -> f64 {
        self.stats.transferred as f64 / self.transfer_start.elapsed().as_secs_f64().max(1e-3)
    }

    fn flush(&mut self, batch: &mut Batch, throttle: bool) -> Result<(), MigrationError> {
        if batch.pages == 0 {
            return Ok(());
        }
        if self.shared.cancel.load(Ordering::SeqCst) {
            return Err(MigrationError::Cancelled);
        }
        self.conn.send(wire::PAGES, &batch.bytes)?;
        self.stats.transferred += batch.bytes.len() as u64 + 5;
        *batch = Batch::default();
        if throttle && self.params.max_bandwidth > 0 {
            let due = self.stats.transferred as f64 / self.params.max_bandwidth as f64;
            let spent = self.transfer_start.elapsed().as_secs_f64();
            if due > spent {
                std::thread::sleep(Duration::from_secs_f64(due - spent));
            }
        }
        self.publish(None);
        Ok(())
    }

    fn add_page(
        &mut self,
        gpa: u64,
        batch: &mut Batch,
        throttle: bool,
    ) -> Result<(), MigrationError> {
        let mut page = std::mem::take(&mut self.page);
        page.resize(PAGE, 0);
        let read = self
            .ram
            .read(gpa, &mut page)
            .map_err(|e| MigrationError::Protocol(format!("reading guest page {gpa:#x}: {e}")));
        if let Err(e) = read {
            self.page = page;
            return Err(e);
        }
        if wire::is_zero(&page) {
            batch.push_zero(gpa);
            self.stats.duplicate += 1;
        } else {
            batch.push_data(gpa, &page);
            self.stats.normal += 1;
        }
        self.page = page;
        if batch.full() {
            self.flush(batch, throttle)?;
        }
        Ok(())
    }

    /// Every page of guest RAM.
    fn send_all(&mut self) -> Result<(), MigrationError> {
        let mut batch = Batch::default();
        let slots: Vec<_> = self.log.slots().to_vec();
        // What the VMM wrote before this pass is in it.
        for s in &slots {
            let _ = self.ram.take_vmm_dirty(s.guest_addr);
        }
        for s in &slots {
            // A page never touched is zero: sent as such without reading it (which would
            // fault it in). One the guest writes from now on is in the dirty log.
            let touched = self.ram.touched_pages(s.guest_addr);
            for p in 0..s.size / PAGE as u64 {
                self.stats.remaining = self.stats.total.saturating_sub((p + 1) * PAGE as u64);
                let gpa = s.guest_addr + p * PAGE as u64;
                let i = p as usize;
                if touched
                    .as_ref()
                    .is_some_and(|t| t[i / 64] & (1 << (i % 64)) == 0)
                {
                    batch.push_zero(gpa);
                    self.stats.duplicate += 1;
                    if batch.full() {
                        self.flush(&mut batch, true)?;
                    }
                } else {
                    self.add_page(gpa, &mut batch, true)?;
                }
            }
        }
        self.flush(&mut batch, true)
    }

    /// The pages the bitmaps name (one per slot).
    fn send_dirty(&mut self, maps: &[Vec<u64>], throttle: bool) -> Result<(), MigrationError> {
        let mut batch = Batch::default();
        let slots: Vec<_> = self.log.slots().to_vec();
        for (s, map) in slots.iter().zip(maps) {
            for (w, &word) in map.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let b = bits.trailing_zeros() as u64;
                    bits &= bits - 1;
                    let page = w as u64 * 64 + b;
                    if page < s.size / PAGE as u64 {
                        self.add_page(s.guest_addr + page * PAGE as u64, &mut batch, throttle)?;
                    }
                }
            }
        }
        self.flush(&mut batch, throttle)
    }

    /// Reads (and clears) every slot's dirty log, ORed with the pages the VMM itself wrote
    /// meanwhile (the devices' threads: used rings, read blocks, discarded balloon pages,
    /// which KVM does not see): the bitmaps and how many pages are set.
    fn fetch_dirty(&mut self) -> Result<(Vec<Vec<u64>>, u64), MigrationError> {
        let mut maps = Vec::new();
        let mut count = 0;
        for s in self.log.slots() {
            let mut map = self
                .log
                .fetch(s)
                .map_err(|e| MigrationError::Protocol(e.to_string()))?;
            if let Some(vmm) = self.ram.take_vmm_dirty(s.guest_addr) {
                if map.len() < vmm.len() {
                    map.resize(vmm.len(), 0);
                }
                for (w, v) in map.iter_mut().zip(vmm) {
                    *w |= v;
                }
            }
            count += map.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
            maps.push(map);
        }
        self.stats.dirty_sync_count += 1;
        Ok((maps, count))
    }

    /// Turns dirty logging off (once). The emulator thread's to call: the migration
    /// thread's filter has no KVM_SET_USER_MEMORY_REGION.
    pub fn stop_logging(&mut self) {
        if self.logging {
            self.logging = false;
            if let Err(e) = self.log.disable() {
                eprintln!("rvmm: warning: migration: turning dirty logging off: {e}");
            }
        }
    }

    /// The final phase's pages, with every vCPU parked: the dirty set left by pre-copy and
    /// what was written since (not throttled: the VM is paused).
    /// SYNC, then waits for SYNCED: the destination has written every page sent so far.
    fn wait_caught_up(&mut self) -> Result<(), MigrationError> {
        self.conn.send(wire::SYNC, &[])?;
        self.conn.set_read_timeout(Some(DONE_TIMEOUT));
        let answer = self.conn.recv("before catching up with the pages");
        self.conn.set_read_timeout(None);
        match answer?.0 {
            wire::SYNCED => Ok(()),
            wire::REFUSE => Err(MigrationError::Protocol(
                "the destination refused the pages".into(),
            )),
            t => Err(MigrationError::Protocol(format!(
                "the destination answered SYNC with frame {t:#04x}"
            ))),
        }
    }

    pub fn send_last_pages(&mut self) -> Result<(), MigrationError> {
        let (maps, _) = self.fetch_dirty()?;
        let merged: Vec<Vec<u64>> = maps
            .iter()
            .zip(self.pending.iter().chain(std::iter::repeat(&Vec::new())))
            .map(|(a, b)| {
                a.iter()
                    .enumerate()
                    .map(|(i, w)| w | b.get(i).copied().unwrap_or(0))
                    .collect()
            })
            .collect();
        self.pending.clear();
        self.send_dirty(&merged, false)?;
        self.stats.remaining = 0;
        self.publish(None);
        Ok(())
    }
}

/// What a migration thread starts with. The emulator thread turned dirty logging on
/// (`log`) before it handed the job over, and turns it off when the migration ends, either
/// way (`Sender::stop_logging`, or on [`ToEmulator::Ended`]).
pub struct Job {
    pub uri: MigrationUri,
    pub hello: Hello,
    pub ram: Arc<GuestRam>,
    pub log: DirtyLog,
    pub params: MigrationParameters,
    pub shared: Arc<Shared>,
    pub start: Instant,
}

/// The migration thread's body: pre-copy, then the hand-over to the emulator thread. On a
/// failure the status says why (`failed`, or `cancelled`); the emulator thread turns dirty
/// logging off when it reads [`ToEmulator::Ended`].
pub fn run(job: Job) {
    let shared = job.shared.clone();
    let start = job.start;
    match precopy(job) {
        Ok(sender) => shared.tell(ToEmulator::Final(Box::new(sender))),
        Err(e) => {
            let status = if matches!(e, MigrationError::Cancelled) {
                MigrationStatus::Cancelled
            } else {
                MigrationStatus::Failed
            };
            {
                let mut info = shared.info();
                info.error_desc = Some(e.to_string());
                info.total_time = Some(start.elapsed().as_millis() as u64);
            }
            shared.set_status(status);
            shared.tell(ToEmulator::Ended);
        }
    }
}

fn precopy(job: Job) -> Result<Sender, MigrationError> {
    let Job {
        uri,
        hello,
        ram,
        log,
        params,
        shared,
        start,
    } = job;
    let mut conn = connect(&uri)?;
    conn.set_write_timeout(Some(wire::SEND_TIMEOUT));
    if shared.cancel.load(Ordering::SeqCst) {
        return Err(MigrationError::Cancelled);
    }
    let body = serde_json::to_vec(&hello).unwrap_or_default();
    conn.send(wire::HELLO, &body)?;
    conn.set_read_timeout(Some(HELLO_TIMEOUT));
    let (tag, payload) = conn.recv("before answering HELLO")?;
    conn.set_read_timeout(None);
    match tag {
        wire::ACCEPT => {}
        wire::REFUSE => {
            return Err(MigrationError::Refused(
                String::from_utf8_lossy(&payload).into_owned(),
            ))
        }
        t => {
            return Err(MigrationError::Protocol(format!(
                "the destination answered HELLO with frame {t:#04x}"
            )))
        }
    }
    let total = ram.size();
    let mut s = Sender {
        conn,
        ram,
        log,
        params,
        shared: shared.clone(),
        start,
        transfer_start: Instant::now(),
        stats: RamStats {
            total,
            remaining: total,
            ..Default::default()
        },
        logging: true,
        pending: Vec::new(),
        page: vec![0; PAGE],
    };
    {
        let mut info = shared.info();
        info.setup_time = Some(start.elapsed().as_millis() as u64);
        info.ram = Some(s.stats);
    }
    shared.set_status(MigrationStatus::Active);
    s.send_all()?;
    let limit = params.downtime_limit as f64 / 1000.0;
    // The dirty rate is QEMU's: the pages a sync found over the time since the previous
    // sync. The first sync's period starts when logging was turned on (just before `start`,
    // on the emulator thread), so it covers HELLO and the first pass, whose writes it
    // counts.
    let mut last_sync = start;
    let mut caught_up = false;
    loop {
        let (maps, dirty) = s.fetch_dirty()?;
        let now = Instant::now();
        let secs = now.duration_since(last_sync).as_secs_f64().max(1e-3);
        last_sync = now;
        s.stats.dirty_pages_rate = (dirty as f64 / secs) as u64;
        s.stats.remaining = dirty * PAGE as u64;
        let bw = s.bandwidth().max(1.0);
        let expected = s.stats.remaining as f64 / bw;
        s.publish(Some((expected * 1000.0) as u64));
        if (expected <= limit && caught_up) || s.stats.dirty_sync_count >= MAX_ROUNDS {
            s.pending = maps;
            s.conn.set_read_timeout(Some(DONE_TIMEOUT));
            return Ok(s);
        }
        s.send_dirty(&maps, true)?;
        if expected <= limit {
            // The destination may still be writing pages sent earlier (they wait in the
            // sockets' buffers, and its first write to a page faults it in): it catches up
            // now, while the guest runs, not in the final phase with the VM paused. One
            // more round then sends what the guest wrote meanwhile.
            s.wait_caught_up()?;
            caught_up = true;
        }
    }
}
