//! `query-migrate-capabilities`: every migration capability rvmm has and its state, in
//! QEMU's shape (`[{"capability": "events", "state": true}, ...]`).

use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::migration::CapabilityState;

pub const NAME: &str = "query-migrate-capabilities";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryMigrateCapabilities;

impl QmpCommand for QueryMigrateCapabilities {
    const NAME: &'static str = NAME;
    type Reply = Vec<CapabilityState>;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryMigrateCapabilities)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Vec<CapabilityState>, QmpError> {
        Ok(vm.migration_capabilities().list())
    }
}
