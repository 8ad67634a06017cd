//! The benchmarks themselves: each one boots the probe guest under rvmm and QEMU, alternating
//! (see `Plan::order`), and collects samples into `results` types.
//!
//! 1. start: process start → first serial line, and → exit after the guest powers off;
//! 2. memory: peak RSS minus the guest RAM resident at exit (read at the exit stop);
//! 3. exits: port writes per second, timed between the guest's `PROBE-END` line (the loop
//!    starts right after it) and its `PROBE-PIO` line (right after the loop), against the
//!    bare KVM_RUN loop;
//! 4. rate: batches of minimal VMs run `concurrency` at a time;
//! 5. scaling: 1-4 along the vCPU and memory axes (in `scaling`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use thiserror::Error;

use crate::kvm_loop::{self, KvmLoopError, Mode};
use crate::measure::{self, MeasureError};
use crate::plan::Plan;
use crate::results::{ExitsResult, MemoryRow, RateRow, StartRow};
use crate::stats::{Pair, Summary};
use crate::vmms::{Guest, Shape, Tools, Vmm};

/// Why a benchmark could not finish.
#[derive(Debug, Error)]
pub enum BenchError {
    #[error("{vmm}, {shape}, {guest}: {source}")]
    Run {
        vmm: &'static str,
        shape: String,
        guest: &'static str,
        source: Box<MeasureError>,
    },
    #[error(transparent)]
    KvmLoop(#[from] KvmLoopError),
    #[error("virtio-blk, {vmm}: {why}")]
    Vblk { vmm: &'static str, why: String },
    #[error("virtio-net, {vmm}: {why}")]
    Vnet { vmm: &'static str, why: String },
    #[error("virtio-balloon, {vmm}: {why}")]
    Vballoon { vmm: &'static str, why: String },
    #[error("snapshot, {vmm}, {shape}: {why}")]
    Snapshot {
        vmm: &'static str,
        shape: String,
        why: String,
    },
    #[error("migrate, {vmm}: {why}")]
    Migrate { vmm: &'static str, why: String },
    #[error("{vmm}: the pio guest's PROBE-PIO line came {loop_ms:.3} ms after PROBE-END; cannot compute a rate")]
    NoLoopTime { vmm: &'static str, loop_ms: f64 },
}

pub(crate) const MIB: f64 = 1024.0;

/// Runs benchmarks with one set of tools and one plan; `log` sees one line per result.
pub struct Bench<'a> {
    pub tools: &'a Tools,
    pub plan: &'a Plan,
    pub log: &'a (dyn Fn(&str) + Sync),
}

pub(crate) fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `median (min–max)` for log lines.
pub(crate) fn brief(v: &[f64]) -> String {
    Summary::of(v).map_or_else(
        || "-".into(),
        |s| format!("{:.3} ({:.3}-{:.3})", s.median, s.min, s.max),
    )
}

impl Bench<'_> {
    pub(crate) fn err(vmm: Vmm, shape: Shape, guest: Guest) -> impl Fn(MeasureError) -> BenchError {
        move |source| BenchError::Run {
            vmm: vmm.name(),
            shape: shape.label(),
            guest: guest.name(),
            source: Box::new(source),
        }
    }

    /// One timed boot: (first line ms, exit ms, peak RSS MiB).
    pub(crate) fn boot(
        &self,
        vmm: Vmm,
        shape: Shape,
        guest: Guest,
    ) -> Result<measure::RunRecord, BenchError> {
        let mut cmd = self.tools.command(vmm, shape, guest);
        measure::run_expecting(
            &mut cmd,
            guest.last_line(),
            vmm.ok_statuses(),
            self.plan.timeout,
        )
        .map_err(Self::err(vmm, shape, guest))
    }

    /// Runs `f` for each VMM in every round, alternating, and keeps the counted samples.
    fn alternate(
        &self,
        mut f: impl FnMut(Vmm) -> Result<f64, BenchError>,
    ) -> Result<Pair, BenchError> {
        let mut pair = Pair::default();
        for round in self.plan.rounds() {
            for vmm in Plan::order(round) {
                let v = f(vmm)?;
                if self.plan.counted(round) {
                    match vmm {
                        Vmm::Rvmm => pair.rvmm.push(v),
                        Vmm::Qemu => pair.qemu.push(v),
                    }
                }
            }
        }
        Ok(pair)
    }

    /// Benchmark 1 for one guest and shape.
    pub fn start_row(&self, guest: Guest, shape: Shape) -> Result<StartRow, BenchError> {
        let (mut first, mut exit) = (Pair::default(), Pair::default());
        for round in self.plan.rounds() {
            for vmm in Plan::order(round) {
                let r = self.boot(vmm, shape, guest)?;
                if !self.plan.counted(round) {
                    continue;
                }
                let first_ms = r.first_line().map_or(f64::NAN, ms);
                let (f, e) = match vmm {
                    Vmm::Rvmm => (&mut first.rvmm, &mut exit.rvmm),
                    Vmm::Qemu => (&mut first.qemu, &mut exit.qemu),
                };
                f.push(first_ms);
                e.push(ms(r.exit));
            }
        }
        (self.log)(&format!(
            "start {} {}: first line ms rvmm {} qemu {}; exit ms rvmm {} qemu {}",
            guest.name(),
            shape.label(),
            brief(&first.rvmm),
            brief(&first.qemu),
            brief(&exit.rvmm),
            brief(&exit.qemu)
        ));
        Ok(StartRow {
            guest,
            shape,
            first_line_ms: first,
            exit_ms: exit,
        })
    }

    /// Benchmark 1: the minimal guest on every shape, then the dump.
    pub fn start(&self) -> Result<Vec<StartRow>, BenchError> {
        let mut rows = Vec::new();
        for &s in &self.plan.start_hello {
            rows.push(self.start_row(Guest::Hello, s)?);
        }
        for &s in &self.plan.start_dump {
            rows.push(self.start_row(Guest::Dump, s)?);
        }
        Ok(rows)
    }

    /// Benchmark 2 for one guest and shape.
    pub fn memory_row(&self, guest: Guest, shape: Shape) -> Result<MemoryRow, BenchError> {
        let mut row = MemoryRow {
            guest,
            shape,
            overhead_mib: Pair::default(),
            hwm_mib: Pair::default(),
            maxrss_mib: Pair::default(),
            guest_rss_mib: Pair::default(),
            anon_mib: Pair::default(),
            file_mib: Pair::default(),
        };
        for round in self.plan.rounds() {
            for vmm in Plan::order(round) {
                let mut cmd = self.tools.command(vmm, shape, guest);
                let m = measure::memory_at_exit(
                    &mut cmd,
                    guest.last_line(),
                    shape.mem_bytes(),
                    self.plan.timeout,
                )
                .map_err(Self::err(vmm, shape, guest))?;
                if !self.plan.counted(round) {
                    continue;
                }
                let values = [
                    (&mut row.overhead_mib, m.overhead_kib()),
                    (&mut row.hwm_mib, m.hwm_kib),
                    (&mut row.maxrss_mib, m.maxrss_kib),
                    (&mut row.guest_rss_mib, m.guest.rss_kib),
                    (&mut row.anon_mib, m.rss_anon_kib),
                    (&mut row.file_mib, m.rss_file_kib),
                ];
                for (pair, kib) in values {
                    let v = kib as f64 / MIB;
                    match vmm {
                        Vmm::Rvmm => pair.rvmm.push(v),
                        Vmm::Qemu => pair.qemu.push(v),
                    }
                }
            }
        }
        (self.log)(&format!(
            "memory {} {}: overhead MiB rvmm {} qemu {}",
            guest.name(),
            shape.label(),
            brief(&row.overhead_mib.rvmm),
            brief(&row.overhead_mib.qemu)
        ));
        Ok(row)
    }

    /// Benchmark 2: the minimal guest and the dump.
    pub fn memory(&self) -> Result<Vec<MemoryRow>, BenchError> {
        Ok(vec![
            self.memory_row(Guest::Hello, self.plan.memory_shape)?,
            self.memory_row(Guest::Dump, self.plan.memory_shape)?,
        ])
    }

    /// One pio run: port writes per second between PROBE-END and PROBE-PIO.
    pub(crate) fn exit_rate(&self, vmm: Vmm, shape: Shape, count: u64) -> Result<f64, BenchError> {
        let guest = Guest::Pio { count };
        let r = self.boot(vmm, shape, guest)?;
        let begin = r.line_at("PROBE-END");
        let end = r.line_at("PROBE-PIO");
        let loop_ms = match (begin, end) {
            (Some(b), Some(e)) if e > b => ms(e - b),
            _ => 0.0,
        };
        if loop_ms <= 0.0 {
            return Err(BenchError::NoLoopTime {
                vmm: vmm.name(),
                loop_ms,
            });
        }
        Ok(count as f64 / (loop_ms / 1e3))
    }

    /// Benchmark 3: rvmm, QEMU and the bare loop, each round in a rotating order.
    pub fn exits(&self) -> Result<ExitsResult, BenchError> {
        let (shape, count) = (self.plan.exits_shape, self.plan.exits_count);
        let mut per_sec = Pair::default();
        let (mut bare, mut bare_long) = (Vec::new(), Vec::new());
        // Four takers, each in every position in turn: round r starts with taker r mod 4.
        const TAKERS: usize = 4;
        for round in self.plan.rounds_of(self.plan.exits_runs) {
            let counted = self.plan.counted(round);
            for i in 0..TAKERS {
                let (v, into) = match (round + i) % TAKERS {
                    0 => (self.exit_rate(Vmm::Rvmm, shape, count)?, &mut per_sec.rvmm),
                    1 => (self.exit_rate(Vmm::Qemu, shape, count)?, &mut per_sec.qemu),
                    2 => (kvm_loop::run_in(Mode::Real, count)?.rate(), &mut bare),
                    _ => (kvm_loop::run_in(Mode::Long, count)?.rate(), &mut bare_long),
                };
                if counted {
                    into.push(v);
                }
            }
        }
        (self.log)(&format!(
            "exits {}: per s rvmm {} qemu {} bare {} bare long mode {}",
            shape.label(),
            brief(&per_sec.rvmm),
            brief(&per_sec.qemu),
            brief(&bare),
            brief(&bare_long)
        ));
        Ok(ExitsResult {
            shape,
            count,
            per_sec,
            bare_per_sec: bare,
            bare_long_per_sec: bare_long,
        })
    }

    /// One batch: `vms` minimal VMs, `concurrency` at a time; VMs per second.
    pub(crate) fn rate_batch(
        &self,
        vmm: Vmm,
        shape: Shape,
        concurrency: usize,
        vms: usize,
    ) -> Result<f64, BenchError> {
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<BenchError>> = Mutex::new(None);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..concurrency.min(vms) {
                s.spawn(|| {
                    while next.fetch_add(1, Ordering::SeqCst) < vms {
                        if let Err(e) = self.boot(vmm, shape, Guest::Hello) {
                            failure
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                            return;
                        }
                    }
                });
            }
        });
        let elapsed = start.elapsed().as_secs_f64();
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        Ok(vms as f64 / elapsed)
    }

    /// Benchmark 4 at one concurrency.
    pub fn rate_row(
        &self,
        shape: Shape,
        concurrency: usize,
        vms: usize,
    ) -> Result<RateRow, BenchError> {
        let per_sec = self.alternate(|vmm| self.rate_batch(vmm, shape, concurrency, vms))?;
        (self.log)(&format!(
            "rate {} x{concurrency}: VMs/s rvmm {} qemu {}",
            shape.label(),
            brief(&per_sec.rvmm),
            brief(&per_sec.qemu)
        ));
        Ok(RateRow {
            shape,
            concurrency,
            vms,
            per_sec,
        })
    }

    /// Benchmark 4: every concurrency level of the plan.
    pub fn rate(&self) -> Result<Vec<RateRow>, BenchError> {
        self.plan
            .rate_concurrency
            .iter()
            .map(|&c| self.rate_row(self.plan.rate_shape, c, self.plan.rate_vms))
            .collect()
    }
}
