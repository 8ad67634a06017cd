//! Self-announcement of the NICs (QEMU's `announce-self` and its post-migration rounds):
//! each round sends every chosen NIC's RARP frame ([`super::net::rarp_announcement`]) so
//! that switches and bridges learn the port the guest's MAC is now behind. The rounds are
//! QEMU's: the first at once, then after `initial` ms, `initial + step`, ... each gap at
//! most `max` ms, `rounds` in all.
//!
//! The rounds after the first run on a thread of their own (`announce`), which holds the
//! NICs' transports and sends each frame under the transport's lock. One [`Announcer`] per
//! VM: a new announcement replaces the one still running (as QEMU's does for the same
//! id), and the VM's end stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::mmio::MmioTransport;

/// QEMU's limits on the announce parameters (ms, ms, count, ms).
pub const MAX_INITIAL_MS: u64 = 100_000;
pub const MAX_MAX_MS: u64 = 100_000;
pub const MAX_ROUNDS: u64 = 1000;
pub const MAX_STEP_MS: u64 = 10_000;

/// Why announce parameters are refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AnnounceError {
    /// QEMU's text for a value out of its range (`announce_initial` etc.).
    #[error("Parameter '{name}' expects a value between {low} and {high}")]
    Range {
        name: &'static str,
        low: u64,
        high: u64,
    },
    #[error("announce-self: no NIC named '{name}' (this VM's NICs: {known})")]
    UnknownInterface { name: String, known: String },
}

/// When and how often to announce (QEMU's AnnounceParameters, in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceParams {
    pub initial: u64,
    pub max: u64,
    pub rounds: u64,
    pub step: u64,
}

impl Default for AnnounceParams {
    /// QEMU's defaults: 5 rounds, 50 ms apart and then 100 ms more each time, at most 550.
    fn default() -> Self {
        AnnounceParams {
            initial: 50,
            max: 550,
            rounds: 5,
            step: 100,
        }
    }
}

impl AnnounceParams {
    /// Checks each value against QEMU's range; `prefix` names them as the command does
    /// (`announce_` for migrate-set-parameters, nothing for announce-self).
    pub fn check(&self, prefix: &'static str) -> Result<(), AnnounceError> {
        let checks: [(&'static str, &'static str, u64, u64, u64); 4] = [
            (
                "initial",
                "announce_initial",
                self.initial,
                0,
                MAX_INITIAL_MS,
            ),
            ("max", "announce_max", self.max, 0, MAX_MAX_MS),
            ("rounds", "announce_rounds", self.rounds, 0, MAX_ROUNDS),
            // A step of 0 is refused, as QEMU does (its text still says 0).
            ("step", "announce_step", self.step, 1, MAX_STEP_MS),
        ];
        for (bare, prefixed, value, low, high) in checks {
            if value < low || value > high {
                return Err(AnnounceError::Range {
                    name: if prefix.is_empty() { bare } else { prefixed },
                    low: 0,
                    high,
                });
            }
        }
        Ok(())
    }

    /// The wait before each round after the first: `initial`, `initial + step`, ...,
    /// each at most `max`.
    pub fn gaps(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..self.rounds.saturating_sub(1)).map(move |i| {
            let ms = self
                .initial
                .saturating_add(i.saturating_mul(self.step))
                .min(self.max);
            Duration::from_millis(ms)
        })
    }
}

/// A NIC as announce-self's `interfaces` names it: `netN` (its place among the VM's
/// NICs, as libvirt names them) or the name of its tap.
#[derive(Clone)]
pub struct AnnounceTarget {
    pub name: String,
    pub tap: Option<String>,
    pub transport: Arc<Mutex<MmioTransport>>,
}

/// Keeps the NICs of `targets` that `interfaces` names (all of them without a list).
pub fn choose(
    targets: &[AnnounceTarget],
    interfaces: Option<&[String]>,
) -> Result<Vec<AnnounceTarget>, AnnounceError> {
    let Some(names) = interfaces else {
        return Ok(targets.to_vec());
    };
    let mut chosen: Vec<AnnounceTarget> = Vec::new();
    for name in names {
        let Some(t) = targets
            .iter()
            .find(|t| t.name == *name || t.tap.as_deref() == Some(name))
        else {
            let known: Vec<String> = targets
                .iter()
                .map(|t| match &t.tap {
                    Some(tap) => format!("{} (tap {tap})", t.name),
                    None => t.name.clone(),
                })
                .collect();
            return Err(AnnounceError::UnknownInterface {
                name: name.clone(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        };
        if !chosen.iter().any(|c| c.name == t.name) {
            chosen.push(t.clone());
        }
    }
    Ok(chosen)
}

/// Sends one round: each target's frame; how many were sent.
fn round(targets: &[AnnounceTarget]) -> usize {
    targets
        .iter()
        .filter(|t| {
            t.transport
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .announce()
        })
        .count()
}

struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The VM's announcement in progress, if any.
#[derive(Default)]
pub struct Announcer {
    running: Mutex<Option<Running>>,
}

impl Announcer {
    /// Stops the announcement in progress (its thread ends at once), if any.
    pub fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = running {
            r.stop.store(true, Ordering::SeqCst);
            r.thread.thread().unpark();
            let _ = r.thread.join();
        }
    }

    /// Replaces the announcement in progress with `params`' rounds for `targets`: the
    /// first now (how many NICs it reached is returned), the rest on a thread. With 0
    /// rounds nothing is sent.
    pub fn start(&self, targets: Vec<AnnounceTarget>, params: AnnounceParams) -> usize {
        self.stop();
        if params.rounds == 0 || targets.is_empty() {
            return 0;
        }
        let sent = round(&targets);
        if params.rounds == 1 {
            return sent;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("announce".into())
            .spawn(move || {
                // It writes frames to taps it already has and sleeps: the io role's calls.
                crate::sandbox::apply(crate::sandbox::Role::Io);
                for gap in params.gaps() {
                    let until = Instant::now() + gap;
                    loop {
                        if flag.load(Ordering::SeqCst) {
                            return;
                        }
                        let now = Instant::now();
                        if now >= until {
                            break;
                        }
                        std::thread::park_timeout(until - now);
                    }
                    round(&targets);
                }
            });
        // Without a thread the first round stands alone.
        if let Ok(thread) = spawned {
            *self.running.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Running { stop, thread });
        }
        sent
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gaps_grow_by_step_up_to_max() {
        let p = AnnounceParams::default();
        let ms: Vec<u128> = p.gaps().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [50, 150, 250, 350]);
        let capped = AnnounceParams {
            initial: 100,
            max: 250,
            rounds: 5,
            step: 100,
        };
        let ms: Vec<u128> = capped.gaps().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [100, 200, 250, 250]);
        let one = AnnounceParams {
            rounds: 1,
            ..AnnounceParams::default()
        };
        assert_eq!(one.gaps().count(), 0);
        let none = AnnounceParams {
            rounds: 0,
            ..AnnounceParams::default()
        };
        assert_eq!(none.gaps().count(), 0);
    }

    #[test]
    fn values_beyond_qemus_limits_are_refused_with_its_text() {
        let ok = AnnounceParams::default();
        assert_eq!(ok.check("announce_"), Ok(()));
        let cases = [
            (
                AnnounceParams {
                    initial: 100_001,
                    ..ok
                },
                "Parameter 'announce_initial' expects a value between 0 and 100000",
                "Parameter 'initial' expects a value between 0 and 100000",
            ),
            (
                AnnounceParams { max: 100_001, ..ok },
                "Parameter 'announce_max' expects a value between 0 and 100000",
                "Parameter 'max' expects a value between 0 and 100000",
            ),
            (
                AnnounceParams { rounds: 1001, ..ok },
                "Parameter 'announce_rounds' expects a value between 0 and 1000",
                "Parameter 'rounds' expects a value between 0 and 1000",
            ),
            (
                AnnounceParams { step: 0, ..ok },
                "Parameter 'announce_step' expects a value between 0 and 10000",
                "Parameter 'step' expects a value between 0 and 10000",
            ),
        ];
        for (p, prefixed, bare) in cases {
            assert_eq!(p.check("announce_").unwrap_err().to_string(), prefixed);
            assert_eq!(p.check("").unwrap_err().to_string(), bare);
        }
    }
}
