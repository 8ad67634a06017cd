//! `query-migrate`: the current or last migration in QEMU's MigrationInfo shape (status,
//! total-time, setup-time, downtime, expected-downtime, ram {...}, error-desc); `{}` before
//! any.

use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::migration::MigrationInfo;

pub const NAME: &str = "query-migrate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryMigrate;

impl QmpCommand for QueryMigrate {
    const NAME: &'static str = NAME;
    type Reply = MigrationInfo;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryMigrate)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<MigrationInfo, QmpError> {
        Ok(vm.query_migrate())
    }
}
