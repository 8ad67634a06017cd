//! `migrate-continue {"state": "pre-switchover"}` (QEMU's qapi/migration.json): lets a
//! migration that waits in `state` go on. Only `pre-switchover` waits (capability
//! `pause-before-switchover`): the source then sends the machine state (status `device`)
//! and completes. A migration not in `state`, or none, is refused with QEMU's text and
//! what rvmm saw.

use serde::Serialize;

use super::{ClientRequest, Empty, QmpCommand};
use crate::control::args::{Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::migration::MigrationStatus;

pub const NAME: &str = "migrate-continue";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MigrateContinue {
    pub state: MigrationStatus,
}

impl ClientRequest for MigrateContinue {
    const NAME: &'static str = NAME;
    type Reply = Empty;
}

impl QmpCommand for MigrateContinue {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let text = args
            .string("state", Presence::Required)?
            .unwrap_or_default();
        let state = text.parse().map_err(|()| {
            QmpError::generic(format!("Parameter 'state' does not accept value '{text}'"))
        })?;
        Ok(MigrateContinue { state })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        vm.migrate_continue(self.state)?;
        Ok(Empty {})
    }
}
