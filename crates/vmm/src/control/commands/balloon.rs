//! `balloon` (QEMU's qapi/machine.json): asks the guest to give memory back until it has
//! `value` bytes, as QEMU: the balloon's target is `(RAM - value) / 4 KiB` pages; a value
//! above RAM is RAM (an empty balloon); a value of 0 or less is refused; without a balloon
//! the error is DeviceNotActive. The guest's driver answers in its own time
//! (BALLOON_CHANGE, `query-balloon`).

use serde_json::Value;

use super::{Empty, QmpCommand};
use crate::control::args::{type_error, Args, Presence};
use crate::control::error::{ErrorClass, QmpError};
use crate::control::view::VmView;

pub const NAME: &str = "balloon";

/// QEMU's text when there is no balloon (have_balloon, softmmu/balloon.c).
pub const NO_BALLOON: &str = "No balloon device has been activated";

/// The error `balloon` and `query-balloon` give without a balloon device.
pub fn no_balloon() -> QmpError {
    QmpError {
        class: ErrorClass::DeviceNotActive,
        desc: NO_BALLOON.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balloon {
    /// The guest memory wanted, in bytes.
    pub value: i64,
}

impl QmpCommand for Balloon {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        match args.take("value", Presence::Required)? {
            Some(Value::Number(n)) => match n.as_i64() {
                Some(value) => Ok(Balloon { value }),
                None => Err(type_error("value", "integer")),
            },
            _ => Err(type_error("value", "integer")),
        }
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        let Some(status) = vm.balloon() else {
            return Err(no_balloon());
        };
        if self.value <= 0 {
            // QEMU's QERR_INVALID_PARAMETER_VALUE with its C parameter's name.
            return Err(QmpError::generic("Parameter 'target' expects a size"));
        }
        let wanted = (self.value as u64).min(status.ram);
        let pages = (status.ram - wanted) >> 12;
        vm.set_balloon_target(u32::try_from(pages).unwrap_or(u32::MAX));
        Ok(Empty {})
    }
}
