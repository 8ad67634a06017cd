//! `system_powerdown`: presses the ACPI power button, then sends `POWERDOWN`. A guest
//! without an ACPI power button driver (the probe) ignores the press, so only the event is
//! certain.

use super::{Empty, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::qmp::Event;
use crate::control::view::VmView;

pub const NAME: &str = "system_powerdown";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemPowerdown;

impl QmpCommand for SystemPowerdown {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(SystemPowerdown)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        vm.press_power_button()?;
        vm.emit(Event::Powerdown);
        Ok(Empty {})
    }
}
