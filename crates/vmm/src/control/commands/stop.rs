//! `stop`: parks every vCPU, then sends `STOP`; nothing to do when already paused.

use super::{Empty, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::qmp::Event;
use crate::control::view::{RunState, VmView};

pub const NAME: &str = "stop";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop;

impl QmpCommand for Stop {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(Stop)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        if vm.run_state() == RunState::Paused {
            return Ok(Empty {});
        }
        vm.pause()?;
        vm.emit(Event::Stop);
        Ok(Empty {})
    }
}
