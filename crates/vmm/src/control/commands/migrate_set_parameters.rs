//! `migrate-set-parameters {"downtime-limit"?: ms, "max-bandwidth"?: bytes/s}`: the
//! parameters of the next migration, range-checked with QEMU's texts (downtime-limit up to
//! 2000 s, max-bandwidth up to 2 TiB/s; 0 is no bandwidth limit). Other QEMU parameters are
//! refused as unexpected.

use serde::Serialize;
use serde_json::Value;

use super::{ClientRequest, Empty, QmpCommand};
use crate::control::args::{type_error, Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;

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
        Ok(MigrateSetParameters {
            downtime_limit,
            max_bandwidth,
        })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        let mut p = vm.migration_parameters();
        if let Some(d) = self.downtime_limit {
            p.downtime_limit = d;
        }
        if let Some(b) = self.max_bandwidth {
            p.max_bandwidth = b;
        }
        vm.set_migration_parameters(p);
        Ok(Empty {})
    }
}
