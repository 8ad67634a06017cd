//! `migrate-set-capabilities {"capabilities": [{"capability": NAME, "state": bool}, ...]}`
//! (QEMU's qapi/migration.json): turns migration capabilities on or off for the next
//! migration. rvmm has `events` (MIGRATION events; on by default, QEMU's default is off)
//! and `pause-before-switchover` (the paused source waits in `pre-switchover` for
//! `migrate-continue`). Any other name is refused naming it and the supported ones; the
//! whole list is checked before any capability changes. Refused while a migration is under
//! way, with QEMU's text.

use serde::Serialize;
use serde_json::Value;

use super::{ClientRequest, Empty, QmpCommand};
use crate::control::args::{type_error, Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::migration::{CapabilityState, MigrationCapabilities};

pub const NAME: &str = "migrate-set-capabilities";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateSetCapabilities {
    pub capabilities: Vec<CapabilityState>,
}

impl ClientRequest for MigrateSetCapabilities {
    const NAME: &'static str = NAME;
    type Reply = Empty;
}

/// Member `i` of `capabilities`.
fn element(i: usize, v: Value) -> Result<CapabilityState, QmpError> {
    let at = format!("capabilities[{i}]");
    let Value::Object(map) = v else {
        return Err(type_error(&at, "object"));
    };
    let mut args = Args::new(map);
    let named = |e: QmpError| {
        QmpError::generic(
            e.desc
                .replacen("'capability'", &format!("'{at}.capability'"), 1)
                .replacen("'state'", &format!("'{at}.state'"), 1),
        )
    };
    let capability = args
        .string("capability", Presence::Required)
        .map_err(named)?
        .unwrap_or_default();
    let state = match args.take("state", Presence::Required).map_err(named)? {
        Some(Value::Bool(b)) => b,
        _ => return Err(type_error(&format!("{at}.state"), "boolean")),
    };
    args.finish(&format!("{at}."))?;
    if !MigrationCapabilities::NAMES.contains(&capability.as_str()) {
        return Err(QmpError::generic(format!(
            "Parameter 'capability' does not accept value '{capability}' (rvmm's \
             migration capabilities: {})",
            MigrationCapabilities::NAMES.join(", ")
        )));
    }
    Ok(CapabilityState { capability, state })
}

impl MigrateSetCapabilities {
    /// Sets the listed capabilities in `caps` (also what an `--incoming` VM does before
    /// the migration arrives).
    pub fn apply(&self, caps: &mut MigrationCapabilities) -> Result<(), QmpError> {
        for c in &self.capabilities {
            caps.set(&c.capability, c.state)
                .map_err(QmpError::generic)?;
        }
        Ok(())
    }
}

impl QmpCommand for MigrateSetCapabilities {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let capabilities = match args.take("capabilities", Presence::Required)? {
            Some(Value::Array(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, v)| element(i, v))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(type_error("capabilities", "array")),
        };
        Ok(MigrateSetCapabilities { capabilities })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        let mut caps = vm.migration_capabilities();
        self.apply(&mut caps)?;
        vm.set_migration_capabilities(caps)?;
        Ok(Empty {})
    }
}
