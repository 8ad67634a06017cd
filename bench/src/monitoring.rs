//! The seventh benchmark, the cost of watching: the pio guest's exits per second under rvmm
//! alone, and with a monitor sampling it once a second (issue 13: collecting must keep the
//! exit rate within 2 % of unwatched).
//!
//! Every run starts the same rvmm command, with its QMP socket and its `--metrics` endpoint
//! open, so the only difference between the configurations is the sampling:
//! - **unwatched**: nobody asks;
//! - **qmp**: `rvmm qmp SOCKET '{"execute":"__org.rvmm_stats"}'` once a second, a new
//!   process each time, as a script running `rvmm stats` each second would (the same
//!   `__org.rvmm_stats` on the VMM thread);
//! - **top**: one `rvmm top SOCKET --batch --delay 1 --iterations N` (N far beyond the run)
//!   for the whole run, as a user watching the VM would run it: started as soon as the QMP
//!   socket exists, its output read as it comes (each refresh counts as a sample answered),
//!   killed when the VM has ended;
//! - **metrics**: `GET /metrics` on the endpoint once a second, as Prometheus scrapes.
//!
//! The configurations rotate within each round, so slow drifts of the host hit all alike;
//! the exit rate is the guest's own (its `count` port writes between `PROBE-END` and
//! `PROBE-PIO`), the loop long enough (several seconds) to span several samples.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::benches::{brief, ms, Bench};
use crate::results::MonitoringResult;
use crate::stats::Summary;
use crate::vmms::{Guest, Vmm};
use crate::BenchError;

/// Port writes per run in the full plan (~8 s at ~78 000 exits/s).
pub const FULL_COUNT: u64 = 600_000;
/// Port writes per run in a smoke run.
pub const SMOKE_COUNT: u64 = 2_000;
/// How often the monitor samples.
pub const PERIOD: Duration = Duration::from_secs(1);
/// `rvmm top --iterations` for the top configuration: a day of refreshes, far beyond any
/// run (top is killed when the run ends).
pub const TOP_ITERATIONS: u64 = 86_400;
/// How `rvmm top --batch` begins each refresh's block (vmm::monitor::top::render_top).
pub const TOP_BLOCK_START: &str = "rvmm top - ";

/// What watches the VM during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watcher {
    None,
    Qmp,
    Metrics,
    Top,
}

impl Watcher {
    pub const ALL: [Watcher; 4] = [Watcher::None, Watcher::Qmp, Watcher::Metrics, Watcher::Top];

    pub fn name(self) -> &'static str {
        match self {
            Watcher::None => "unwatched",
            Watcher::Qmp => "qmp __org.rvmm_stats 1/s",
            Watcher::Metrics => "GET /metrics 1/s",
            Watcher::Top => "rvmm top --batch --delay 1",
        }
    }
}

/// One sample by `watcher`; whether it got an answer. (The top configuration does not
/// sample from here: [`watch_with_top`] runs one `rvmm top` for the whole run.)
fn sample(watcher: Watcher, rvmm: &Path, qmp: &Path, metrics: &Path) -> bool {
    match watcher {
        Watcher::None | Watcher::Top => true,
        Watcher::Qmp => Command::new(rvmm)
            .arg("qmp")
            .arg(qmp)
            .arg(r#"{"execute":"__org.rvmm_stats"}"#)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        Watcher::Metrics => {
            let Ok(mut s) = UnixStream::connect(metrics) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
                .is_err()
            {
                return false;
            }
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200 ")
        }
    }
}

/// The number of refreshes in `rvmm top --batch`'s output, read to its end.
fn count_top_blocks(out: impl Read, answers: &AtomicUsize) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else {
            return;
        };
        if line.starts_with(TOP_BLOCK_START) {
            answers.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Runs one `rvmm top SOCKET --batch` from the moment the QMP socket exists until `stop`,
/// then kills it; counts its refreshes into `answers`. A top that ends before printing
/// anything (the socket was there but not yet listening) is started again.
fn watch_with_top(rvmm: &Path, qmp: &Path, stop: &AtomicBool, answers: &Arc<AtomicUsize>) {
    let poll = Duration::from_millis(10);
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if !qmp.exists() {
            std::thread::sleep(poll);
            continue;
        }
        let Ok(mut top) = Command::new(rvmm)
            .arg("top")
            .arg(qmp)
            .args(["--batch", "--delay", "1", "--iterations"])
            .arg(TOP_ITERATIONS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        else {
            return;
        };
        let reader = top.stdout.take().map(|out| {
            let answers = answers.clone();
            std::thread::spawn(move || count_top_blocks(out, &answers))
        });
        let ended_alone = loop {
            if stop.load(Ordering::SeqCst) {
                let _ = top.kill();
                break false;
            }
            match top.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => {
                    let _ = top.kill();
                    break false;
                }
            }
        };
        let _ = top.wait();
        if let Some(r) = reader {
            let _ = r.join();
        }
        if !ended_alone || answers.load(Ordering::SeqCst) > 0 {
            return;
        }
        std::thread::sleep(poll);
    }
}

/// Samples every [`PERIOD`] on a thread until dropped; counts the answers.
struct Monitor {
    stop: Arc<AtomicBool>,
    answers: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(watcher: Watcher, rvmm: PathBuf, qmp: PathBuf, metrics: PathBuf) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(AtomicUsize::new(0));
        let thread = (watcher != Watcher::None).then(|| {
            let (stop, answers) = (stop.clone(), answers.clone());
            std::thread::spawn(move || {
                if watcher == Watcher::Top {
                    return watch_with_top(&rvmm, &qmp, &stop, &answers);
                }
                let mut next = Instant::now() + PERIOD;
                while !stop.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(50)));
                        continue;
                    }
                    next += PERIOD;
                    if sample(watcher, &rvmm, &qmp, &metrics) {
                        answers.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        });
        Monitor {
            stop,
            answers,
            thread,
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.answers.load(Ordering::SeqCst)
    }
}

/// `(after / before − 1)` in %, of the medians.
pub fn change_pct(before: &[f64], after: &[f64]) -> Option<f64> {
    let (b, a) = (Summary::of(before)?, Summary::of(after)?);
    Some((a.median / b.median - 1.0) * 100.0)
}

/// The median over rounds of `(after[i] / before[i] − 1)` in %: sample i of both comes
/// from the same round, so a drift of the host between rounds cancels out.
pub fn paired_change_pct(before: &[f64], after: &[f64]) -> Option<f64> {
    let ratios: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| (a / b - 1.0) * 100.0)
        .collect();
    Summary::of(&ratios).map(|s| s.median)
}

impl Bench<'_> {
    /// One pio run under `watcher`: exits per second and the monitor's answers.
    fn watched_rate(
        &self,
        watcher: Watcher,
        count: u64,
        dir: &Path,
    ) -> Result<(f64, usize), BenchError> {
        let qmp = dir.join("monitoring.qmp");
        let metrics = dir.join("monitoring.metrics");
        // The previous run's socket, if rvmm left it, must not pass for this run's (the top
        // configuration starts `rvmm top` once the socket exists); rvmm would replace it anyway.
        let _ = std::fs::remove_file(&qmp);
        let shape = self.plan.exits_shape;
        let guest = Guest::Pio { count };
        let mut cmd = self.tools.command(Vmm::Rvmm, shape, guest);
        cmd.arg("--qmp").arg(format!("unix:{}", qmp.display()));
        cmd.arg("--metrics")
            .arg(format!("unix:{}", metrics.display()));
        let monitor = Monitor::start(watcher, self.tools.rvmm.clone(), qmp, metrics);
        let record = crate::measure::run_expecting(
            &mut cmd,
            guest.last_line(),
            Vmm::Rvmm.ok_statuses(),
            self.plan.timeout,
        );
        let answers = monitor.finish();
        let r = record.map_err(Self::err(Vmm::Rvmm, shape, guest))?;
        let loop_ms = match (r.line_at("PROBE-END"), r.line_at("PROBE-PIO")) {
            (Some(b), Some(e)) if e > b => ms(e - b),
            _ => 0.0,
        };
        if loop_ms <= 0.0 {
            return Err(BenchError::NoLoopTime {
                vmm: Vmm::Rvmm.name(),
                loop_ms,
            });
        }
        Ok((count as f64 / (loop_ms / 1e3), answers))
    }

    /// 7. Exits per second unwatched and watched, the configurations rotating each round.
    pub fn monitoring(&self, dir: &Path) -> Result<MonitoringResult, BenchError> {
        let count = if self.plan.runs <= 1 {
            SMOKE_COUNT
        } else {
            FULL_COUNT
        };
        let mut rates: [Vec<f64>; 4] = Default::default();
        let mut answers: [Vec<usize>; 4] = Default::default();
        for round in self.plan.rounds() {
            for i in 0..Watcher::ALL.len() {
                let k = (round + i) % Watcher::ALL.len();
                let (rate, got) = self.watched_rate(Watcher::ALL[k], count, dir)?;
                if self.plan.counted(round) {
                    rates[k].push(rate);
                    answers[k].push(got);
                }
            }
        }
        let [unwatched, qmp, metrics, top] = rates;
        let [_, qmp_answers, metrics_answers, top_answers] = answers;
        (self.log)(&format!(
            "monitoring: exits/s unwatched {}, qmp 1/s {} ({:+.2} % paired), metrics 1/s {} ({:+.2} % paired), top {} ({:+.2} % paired)",
            brief(&unwatched),
            brief(&qmp),
            paired_change_pct(&unwatched, &qmp).unwrap_or(f64::NAN),
            brief(&metrics),
            paired_change_pct(&unwatched, &metrics).unwrap_or(f64::NAN),
            brief(&top),
            paired_change_pct(&unwatched, &top).unwrap_or(f64::NAN),
        ));
        Ok(MonitoringResult {
            count,
            shape: self.plan.exits_shape,
            unwatched,
            qmp,
            metrics,
            qmp_answers,
            metrics_answers,
            top,
            top_answers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_of_medians() {
        let c = change_pct(&[100.0, 50.0, 100.0], &[98.0]).unwrap();
        assert!((c + 2.0).abs() < 1e-9, "{c}");
        let p = paired_change_pct(&[100.0, 50.0, 200.0], &[99.0, 55.0, 100.0]).unwrap();
        assert!((p + 1.0).abs() < 1e-9, "{p}");
        assert_eq!(change_pct(&[], &[1.0]), None);
    }

    #[test]
    fn counts_the_refreshes_of_top_batch_output() {
        let block = "rvmm top - vm0  1 vCPU  interval 1.00s  sorted by VCPU\nVM: busy 1.0% avg\n\nVCPU     TID\n   0     123\n";
        let out = format!("{block}\n{block}\n{block}");
        let answers = AtomicUsize::new(0);
        count_top_blocks(out.as_bytes(), &answers);
        assert_eq!(answers.load(Ordering::SeqCst), 3);
        let answers = AtomicUsize::new(0);
        count_top_blocks(&b""[..], &answers);
        assert_eq!(answers.load(Ordering::SeqCst), 0);
    }
}
