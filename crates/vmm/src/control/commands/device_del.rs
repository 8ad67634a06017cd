//! `device_del {id}` for vCPUs, as QEMU 7.2 -M pc does it: `id` names a device plugged with
//! that id, or is an absolute QOM path (`/machine/unattached/device[1]` reaches a boot vCPU);
//! the boot CPU (slot 0) is refused; otherwise the guest is asked to eject the vCPU (remove
//! event and GPE) and the command returns at once. DEVICE_DELETED follows only when the guest
//! ejects it (`cpu_slot::guest_ejected`); asking again while the guest has not is allowed,
//! as QEMU allows it for CPUs.

use serde::Serialize;

use super::{ClientRequest, Empty, QmpCommand};
use crate::control::args::{Args, Presence};
use crate::control::error::{ErrorClass, QmpError};
use crate::control::view::VmView;

pub const NAME: &str = "device_del";

/// The command, also as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceDel {
    pub id: String,
}

impl ClientRequest for DeviceDel {
    const NAME: &'static str = NAME;
    type Reply = Empty;
}

impl QmpCommand for DeviceDel {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let id = args.string("id", Presence::Required)?.unwrap_or_default();
        Ok(DeviceDel { id })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        let Some(cpu) = vm.cpu_slots().find(&self.id) else {
            return Err(QmpError {
                class: ErrorClass::DeviceNotFound,
                desc: format!("Device '{}' not found", self.id),
            });
        };
        let index = cpu.index;
        if index == 0 {
            return Err(QmpError::generic("Boot CPU is unpluggable"));
        }
        vm.request_unplug(index)?;
        Ok(Empty {})
    }
}
