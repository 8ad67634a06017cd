//! `migrate-set-parameters {"downtime-limit"?: ms, "max-bandwidth"?: bytes/s,
//! "announce-initial"?: ms, "announce-max"?: ms, "announce-rounds"?: n, "announce-step"?:
//! ms}`: the parameters of the next migration, range-checked with QEMU's texts
//! (downtime-limit up to 2000 s, max-bandwidth up to 2 TiB/s, 0 being no bandwidth limit;
//! the announce ones as `config::announce` says). Other QEMU parameters are
//! refused as unexpected.

use serde::Serialize;
use serde_json::Value;

use super::{ClientRequest, Empty, QmpCommand};
use crate::config::announce::AnnounceParams;
use crate::control::args::{type_error, Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::migration::MigrationParameters;

pub const NAME: &str = "migrate-set-parameters";

/// QEMU's MAX_MIGRATE_DOWNTIME (ms).
const MAX_DOWNTIME_MS: u64 = 2_000_000;
/// QEMU's SIZE_MAX / MiB bound on max-bandwidth (2 TiB/s).
const MAX_BANDWIDTH: u64 = 2 << 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrateSetParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downtime_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bandwidth: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_initial: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_max: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_rounds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce_step: Option<u64>,
}

impl MigrateSetParameters {
    /// Sets in `p` the members given (also what an `--incoming` VM answers before the
    /// migration arrives).
    pub fn apply(&self, p: &mut MigrationParameters) {
        p.downtime_limit = self.downtime_limit.unwrap_or(p.downtime_limit);
        p.max_bandwidth = self.max_bandwidth.unwrap_or(p.max_bandwidth);
        p.announce_initial = self.announce_initial.unwrap_or(p.announce_initial);
        p.announce_max = self.announce_max.unwrap_or(p.announce_max);
        p.announce_rounds = self.announce_rounds.unwrap_or(p.announce_rounds);
        p.announce_step = self.announce_step.unwrap_or(p.announce_step);
    }
}

impl ClientRequest for MigrateSetParameters {
    const NAME: &'static str = NAME;
    type Reply = Empty;
}

fn uint(args: &mut Args, name: &str) -> Result<Option<u64>, QmpError> {
    match args.take(name, Presence::Optional)? {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| type_error(name, "uint64")),
        Some(_) => Err(type_error(name, "uint64")),
    }
}

impl QmpCommand for MigrateSetParameters {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let downtime_limit = uint(args, "downtime-limit")?;
        let max_bandwidth = uint(args, "max-bandwidth")?;
        if downtime_limit.is_some_and(|d| d > MAX_DOWNTIME_MS) {
            return Err(QmpError::generic(
                "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000 seconds",
            ));
        }
        if max_bandwidth.is_some_and(|b| b > MAX_BANDWIDTH) {
            return Err(QmpError::generic(
                "Parameter 'max_bandwidth' expects an integer in the range of 0 to 2199023255552 bytes/second",
            ));
        }
        let announce_initial = uint(args, "announce-initial")?;
        let announce_max = uint(args, "announce-max")?;
        let announce_rounds = uint(args, "announce-rounds")?;
        let announce_step = uint(args, "announce-step")?;
        // Each given value within QEMU's range (the others are the defaults, within it).
        let given = AnnounceParams {
            initial: announce_initial.unwrap_or(0),
            max: announce_max.unwrap_or(0),
            rounds: announce_rounds.unwrap_or(0),
            step: announce_step.unwrap_or(1),
        };
        given
            .check("announce_")
            .map_err(|e| QmpError::generic(e.to_string()))?;
        Ok(MigrateSetParameters {
            downtime_limit,
            max_bandwidth,
            announce_initial,
            announce_max,
            announce_rounds,
            announce_step,
        })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        let mut p = vm.migration_parameters();
        self.apply(&mut p);
        vm.set_migration_parameters(p);
        Ok(Empty {})
    }
}
