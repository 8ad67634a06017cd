//! `system_reset`: sends QEMU's `RESET` event, then ends the VM with outcome Reset (rvmm
//! has no in-place reset yet).

use super::{Empty, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::qmp::{Event, ShutdownCause};
use crate::control::view::{EndRequest, VmView};

pub const NAME: &str = "system_reset";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemReset;

impl QmpCommand for SystemReset {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(SystemReset)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        vm.emit(Event::Reset(ShutdownCause::HostQmpSystemReset));
        vm.end(EndRequest::Reset);
        Ok(Empty {})
    }
}
