//! `query-migrate-parameters`: the parameters rvmm has (downtime-limit in ms,
//! max-bandwidth in bytes/s, 0 for none; announce-initial, -max and -step in ms,
//! announce-rounds).

use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::migration::MigrationParameters;

pub const NAME: &str = "query-migrate-parameters";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryMigrateParameters;

impl QmpCommand for QueryMigrateParameters {
    const NAME: &'static str = NAME;
    type Reply = MigrationParameters;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryMigrateParameters)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<MigrationParameters, QmpError> {
        Ok(vm.migration_parameters())
    }
}
