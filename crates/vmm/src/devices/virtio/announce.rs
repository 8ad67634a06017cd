//! Self-announcement of the NICs (QEMU's `announce-self` and its post-migration rounds):
//! each round sends every chosen NIC's RARP frame ([`super::net::rarp_announcement`]) so
//! that switches and bridges learn the port the guest's MAC is now behind. The rounds are
//! QEMU's ([`AnnounceParams`], in `config::announce`): the first at once, then after
//! `initial` ms, `initial + step`, ... each gap at most `max` ms, `rounds` in all.
//!
//! The rounds after the first run on a thread of their own (`announce`), which holds the
//! NICs' transports and sends each frame under the transport's lock. One [`Announcer`] per
//! VM: a new announcement replaces the one still running (as QEMU's does for the same
//! id), and the VM's end stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use thiserror::Error;

use super::mmio::MmioTransport;
pub use crate::config::announce::AnnounceParams;

/// Why announce-self's NICs cannot be chosen.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AnnounceError {
    #[error("announce-self: no NIC named '{name}' (this VM's NICs: {known})")]
    UnknownInterface { name: String, known: String },
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
