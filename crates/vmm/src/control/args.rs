//! A command's `arguments` object checked member by member as QEMU's generated QAPI
//! visitors check it, with their texts: "Parameter 'x' is missing", "Invalid parameter type
//! for 'x', expected: string", "Parameter 'x' is unexpected". Used by the protocol (for
//! `qmp_capabilities`) and by every command; what each command's members mean is the
//! command's own business (`commands::*`).

use serde_json::{Map, Value};

use super::error::QmpError;
use crate::util::cpulist::parse_cpulist;

/// Whether a member must be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    Required,
    Optional,
}

/// A command's arguments, consumed member by member in schema order.
#[derive(Debug)]
pub(crate) struct Args {
    map: Map<String, Value>,
}

/// QEMU's text for a member of the wrong JSON type.
pub(crate) fn type_error(name: &str, expected: &str) -> QmpError {
    QmpError::generic(format!(
        "Invalid parameter type for '{name}', expected: {expected}"
    ))
}

impl Args {
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        Args { map }
    }

    /// Takes member `name` whatever its type.
    pub(crate) fn take(
        &mut self,
        name: &str,
        presence: Presence,
    ) -> Result<Option<Value>, QmpError> {
        match self.map.remove(name) {
            Some(v) => Ok(Some(v)),
            None if presence == Presence::Required => {
                Err(QmpError::generic(format!("Parameter '{name}' is missing")))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn string(
        &mut self,
        name: &str,
        presence: Presence,
    ) -> Result<Option<String>, QmpError> {
        match self.take(name, presence)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(type_error(name, "string")),
        }
    }

    pub(crate) fn uint32(
        &mut self,
        name: &str,
        presence: Presence,
    ) -> Result<Option<u32>, QmpError> {
        match self.take(name, presence)? {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| QmpError::generic(format!("Parameter '{name}' expects uint32"))),
            Some(_) => Err(type_error(name, "integer")),
        }
    }

    pub(crate) fn object(
        &mut self,
        name: &str,
        presence: Presence,
    ) -> Result<Option<Map<String, Value>>, QmpError> {
        match self.take(name, presence)? {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(type_error(name, "object")),
        }
    }

    /// An optional CPU list in the kernel's syntax (`0-3,^2`).
    pub(crate) fn cpulist(&mut self, name: &str) -> Result<Option<Vec<u32>>, QmpError> {
        match self.string(name, Presence::Optional)? {
            None => Ok(None),
            Some(text) => parse_cpulist(&text)
                .map(Some)
                .map_err(|e| QmpError::generic(format!("Parameter '{name}': {e}"))),
        }
    }

    /// Takes every member left, for commands whose members are open-ended (`device_add`'s
    /// device properties).
    pub(crate) fn take_all(&mut self) -> Map<String, Value> {
        std::mem::take(&mut self.map)
    }

    /// Rejects members nobody consumed (the first, in name order); `prefix` names the
    /// enclosing member for nested objects (`model.`).
    pub(crate) fn finish(self, prefix: &str) -> Result<(), QmpError> {
        match self.map.keys().next() {
            Some(k) => Err(QmpError::generic(format!(
                "Parameter '{prefix}{k}' is unexpected"
            ))),
            None => Ok(()),
        }
    }
}
