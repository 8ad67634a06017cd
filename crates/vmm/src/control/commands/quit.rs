//! `quit`: sends `SHUTDOWN` (`host-qmp-quit`), then ends the VM with outcome Quit.

use super::{Empty, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::qmp::{Event, ShutdownCause};
use crate::control::view::{EndRequest, VmView};

pub const NAME: &str = "quit";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quit;

impl QmpCommand for Quit {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(Quit)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        vm.emit(Event::Shutdown(ShutdownCause::HostQmpQuit));
        vm.end(EndRequest::Quit);
        Ok(Empty {})
    }
}
