//! `migrate {"uri": "tcp:HOST:PORT" | "unix:PATH", "detach"?: bool}` (QEMU's
//! qapi/migration.json): starts a live migration and returns at once; the work goes on a
//! migration thread, `query-migrate` follows it and MIGRATION events tell each status
//! change (docs/migration.md). One at a time; a VM with virtio devices is refused.

use serde::Serialize;
use serde_json::Value;

use super::{ClientRequest, Empty, QmpCommand};
use crate::control::args::{type_error, Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;

pub const NAME: &str = "migrate";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migrate {
    pub uri: String,
}

impl ClientRequest for Migrate {
    const NAME: &'static str = NAME;
    type Reply = Empty;
}

impl QmpCommand for Migrate {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let uri = args.string("uri", Presence::Required)?.unwrap_or_default();
        // QEMU's `detach` is ignored (every migration is detached).
        match args.take("detach", Presence::Optional)? {
            None | Some(Value::Bool(_)) => {}
            Some(_) => return Err(type_error("detach", "boolean")),
        }
        Ok(Migrate { uri })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        vm.migrate(&self.uri)?;
        Ok(Empty {})
    }
}
