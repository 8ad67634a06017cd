//! `cont`: resumes a paused VM and sends `RESUME`; nothing to do when it runs. A source
//! that migrated away (postmigrate) runs again only once it has its disks and taps back
//! from the destination (as QEMU reactivates its images): libvirt does this when the
//! destination fails after the handover.

use super::{Empty, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::qmp::Event;
use crate::control::view::{RunState, VmView};

pub const NAME: &str = "cont";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cont;

impl QmpCommand for Cont {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(Cont)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        match vm.run_state() {
            RunState::Paused => vm.resume(),
            RunState::Postmigrate => vm.resume_after_migration()?,
            RunState::Running | RunState::Inmigrate => return Ok(Empty {}),
        }
        vm.emit(Event::Resume);
        Ok(Empty {})
    }
}
