//! `migrate_cancel`: cancels the migration under way (its status becomes `cancelled` and
//! the VM goes on); nothing to do when none is. The final phase, once begun, is not
//! interrupted.

use super::{Empty, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;

pub const NAME: &str = "migrate_cancel";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateCancel;

impl QmpCommand for MigrateCancel {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(MigrateCancel)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        vm.migrate_cancel();
        Ok(Empty {})
    }
}
