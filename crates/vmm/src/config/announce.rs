//! The NICs' self-announcement parameters (QEMU's AnnounceParameters: `announce-self`'s
//! arguments and the `announce-*` migration parameters), their ranges with QEMU's texts,
//! and the waits between rounds they give. Sending is `devices::virtio::announce`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// QEMU's limits on the announce parameters (ms, ms, count, ms).
pub const MAX_INITIAL_MS: u64 = 100_000;
pub const MAX_MAX_MS: u64 = 100_000;
pub const MAX_ROUNDS: u64 = 1000;
pub const MAX_STEP_MS: u64 = 10_000;

/// Why announce parameters are refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AnnounceParamsError {
    /// QEMU's text for a value out of its range (`announce_initial` etc.).
    #[error("Parameter '{name}' expects a value between {low} and {high}")]
    Range {
        name: &'static str,
        low: u64,
        high: u64,
    },
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
    pub fn check(&self, prefix: &'static str) -> Result<(), AnnounceParamsError> {
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
                return Err(AnnounceParamsError::Range {
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
