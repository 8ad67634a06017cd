//! `device_add {driver, id?, socket-id, die-id?, core-id, thread-id}` for vCPUs, as QEMU 7.2
//! -M pc does it: the checks and texts of `qemu_opts_create` (id), `qdev_device_add`
//! (driver, properties) and `x86_cpu_pre_plug` (CPU type, topology ids, a free slot), in
//! that order; then the VM plugs the slot (`VmView::plug_vcpu`) and the vCPU is recorded
//! with its id and QOM path.
//!
//! QEMU takes device_add's arguments through QemuOpts: every member becomes a string first
//! (numbers as their decimal text, booleans as `on`/`off`; objects, arrays and null are
//! dropped, as is an `id` that is not a string), so `"socket-id": "1"` works as `1` does, and
//! the topology ids are then read as QEMU's int32 properties (-1, the default, means unset).

use serde::Serialize;
use serde_json::{Map, Value};

use super::cpu_slot::type_name;
use super::{ClientRequest, Empty, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::cpu::models::all_names;
use crate::cpu::topology::TopoIds;

pub const NAME: &str = "device_add";

/// The x86 CPU properties rvmm takes, in the order QEMU's pre-plug checks them.
const TOPOLOGY_PROPERTIES: [&str; 4] = ["socket-id", "die-id", "core-id", "thread-id"];

/// The abstract parent of every x86 CPU type.
const ABSTRACT_CPU_TYPE: &str = "x86_64-cpu";

/// The request as QemuOpts holds it: every member as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAdd {
    pub driver: Option<String>,
    pub id: Option<String>,
    /// The other members, by name.
    pub properties: Vec<(String, String)>,
}

/// A vCPU plug as a client sends it (`rvmm setvcpus`): the slot's properties as
/// `query-hotpluggable-cpus` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeviceAddRequest {
    pub driver: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub socket_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub die_id: Option<u32>,
    pub core_id: u32,
    pub thread_id: u32,
}

impl ClientRequest for DeviceAddRequest {
    const NAME: &'static str = NAME;
    type Reply = Empty;
}

/// A member's value as QemuOpts keeps it, or None for the types it drops.
fn opt_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "on" } else { "off" }.to_string()),
        _ => None,
    }
}

/// QEMU's `id_wellformed`: a letter, then letters, digits, `-`, `.` or `_`.
fn id_wellformed(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// QEMU's `qemu_strtoi64(text, NULL, 0, ...)`: optional leading space and sign, then a
/// decimal, `0x` hexadecimal or `0` octal number that runs to the end of the text.
fn strtoi64(text: &str) -> Option<i64> {
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or(t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// One int32 property of an x86 CPU (QEMU's keyval visitor: "expects integer" for text that
/// is no number, "expects int32" for a number out of range).
fn int32_property(name: &str, text: &str) -> Result<i32, QmpError> {
    let value = strtoi64(text)
        .ok_or_else(|| QmpError::generic(format!("Parameter '{name}' expects integer")))?;
    i32::try_from(value).map_err(|_| QmpError::generic(format!("Parameter '{name}' expects int32")))
}

/// Whether `driver` names a CPU type QEMU would register for x86_64.
fn is_cpu_type(driver: &str) -> bool {
    all_names().iter().any(|model| type_name(model) == driver)
}

/// The topology ids requested, each -1 when not set (QEMU's property defaults).
fn requested_ids(driver: &str, properties: &[(String, String)]) -> Result<[i32; 4], QmpError> {
    let mut ids = [-1; 4];
    for (name, text) in properties {
        match TOPOLOGY_PROPERTIES.iter().position(|p| p == name) {
            Some(i) => ids[i] = int32_property(name, text)?,
            None => {
                return Err(QmpError::generic(format!(
                    "Property '{driver}.{name}' not found"
                )))
            }
        }
    }
    Ok(ids)
}

/// `x86_cpu_pre_plug`'s check of one id: set, and at most `last`.
fn check_id(name: &str, value: i32, last: u32) -> Result<u32, QmpError> {
    let Ok(value) = u32::try_from(value) else {
        return Err(QmpError::generic(format!("CPU {name} is not set")));
    };
    if value > last {
        return Err(QmpError::generic(format!(
            "Invalid CPU {name}: {value} must be in range 0:{last}"
        )));
    }
    Ok(value)
}

impl DeviceAdd {
    /// The slot this request plugs, after every check QEMU makes before plugging.
    fn slot(&self, vm: &dyn VmView) -> Result<u32, QmpError> {
        if let Some(id) = &self.id {
            if !id_wellformed(id) {
                return Err(QmpError::generic("Parameter 'id' expects an identifier"));
            }
            if vm.cpu_slots().iter().any(|c| c.id.as_deref() == Some(id)) {
                return Err(QmpError::generic(format!("Duplicate device ID '{id}'")));
            }
        }
        let driver = self
            .driver
            .as_deref()
            .ok_or_else(|| QmpError::generic("Parameter 'driver' is missing"))?;
        if driver == ABSTRACT_CPU_TYPE {
            return Err(QmpError::generic(
                "Parameter 'driver' expects a non-abstract device type",
            ));
        }
        let expected = type_name(vm.cpu_model());
        if !is_cpu_type(driver) && driver != expected {
            return Err(QmpError::generic(format!(
                "'{driver}' is not a valid device model name"
            )));
        }
        let [socket, die, core, thread] = requested_ids(driver, &self.properties)?;
        if driver != expected {
            return Err(QmpError::generic(format!(
                "Invalid CPU type, expected cpu type: '{expected}'"
            )));
        }
        let t = *vm.topology();
        let max_socket = (t.max_cpus() - 1) / t.threads() / t.cores() / t.dies();
        // die-id may be left out when a socket has one die (QEMU 4.0 compatibility).
        let die = if die < 0 && t.dies() == 1 { 0 } else { die };
        let ids = TopoIds {
            pkg: check_id("socket-id", socket, max_socket)?,
            die: check_id("die-id", die, t.dies() - 1)?,
            core: check_id("core-id", core, t.cores() - 1)?,
            smt: check_id("thread-id", thread, t.threads() - 1)?,
        };
        let apic_id = t.apic_id_from_ids(&ids);
        let Some(index) = t.index_of_apic_id(apic_id) else {
            let at = t.ids_from_apic_id(apic_id);
            return Err(QmpError::generic(format!(
                "Invalid CPU [socket: {}, die: {}, core: {}, thread: {}] with APIC ID {apic_id}, valid index range 0:{}",
                at.pkg,
                at.die,
                at.core,
                at.smt,
                t.max_cpus() - 1
            )));
        };
        if vm.cpu_slots().get(index).is_some() {
            return Err(QmpError::generic(format!(
                "CPU[{index}] with APIC ID {apic_id} exists"
            )));
        }
        Ok(index)
    }
}

impl QmpCommand for DeviceAdd {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let mut members: Map<String, Value> = args.take_all();
        let id = match members.remove("id") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let driver = members.remove("driver").as_ref().and_then(opt_text);
        let properties = members
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), opt_text(value)?)))
            .collect();
        Ok(DeviceAdd {
            driver,
            id,
            properties,
        })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        let index = self.slot(vm)?;
        vm.plug_vcpu(index)?;
        vm.cpu_slots_mut().plug(index, self.id.clone());
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_qemu_reads_them() {
        assert_eq!(strtoi64("12"), Some(12));
        assert_eq!(strtoi64(" -3"), Some(-3));
        assert_eq!(strtoi64("0x10"), Some(16));
        assert_eq!(strtoi64("010"), Some(8));
        assert_eq!(strtoi64("0"), Some(0));
        assert_eq!(strtoi64("1.5"), None);
        assert_eq!(strtoi64("1 "), None);
        assert_eq!(strtoi64(""), None);
        assert_eq!(strtoi64("on"), None);
        assert_eq!(strtoi64("99999999999999999999"), None);
        assert!(id_wellformed("cpu-2.a_b"));
        assert!(!id_wellformed("2cpu"));
        assert!(!id_wellformed(""));
        assert!(!id_wellformed("cpu 2"));
    }
}
