//! `announce-self {"initial": ms, "max": ms, "rounds": n, "step": ms, "interfaces"?:
//! [name], "id"?: str}` (QEMU's qapi/net.json): sends the NICs' RARP self-announcements
//! again, in QEMU's rounds (`devices::virtio::announce`), as after a migration. The four
//! numbers are required, as in QEMU, and range-checked with the texts QEMU uses for its
//! announce parameters (`config::announce`; QEMU 7.2 itself takes any integer here). `interfaces` names NICs as
//! `netN` (their place in the `--net` order) or by tap; a name no NIC has is refused, where
//! QEMU would ignore it. `id` is accepted for QEMU's sake: rvmm keeps one announcement per
//! VM, and a new one replaces the one still running.

use serde::Serialize;
use serde_json::Value;

use super::{ClientRequest, Empty, QmpCommand};
use crate::config::announce::AnnounceParams;
use crate::control::args::{type_error, Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;

pub const NAME: &str = "announce-self";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnounceSelf {
    #[serde(flatten)]
    pub params: AnnounceParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ClientRequest for AnnounceSelf {
    const NAME: &'static str = NAME;
    type Reply = Empty;
}

/// A required integer member; a negative one is out of every range (u64::MAX).
fn int(args: &mut Args, name: &str) -> Result<u64, QmpError> {
    match args.take(name, Presence::Required)? {
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64().unwrap_or(u64::MAX)),
        Some(Value::Number(n)) if n.is_i64() => Ok(u64::MAX),
        _ => Err(type_error(name, "integer")),
    }
}

impl QmpCommand for AnnounceSelf {
    const NAME: &'static str = NAME;
    type Reply = Empty;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let params = AnnounceParams {
            initial: int(args, "initial")?,
            max: int(args, "max")?,
            rounds: int(args, "rounds")?,
            step: int(args, "step")?,
        };
        let interfaces = match args.take("interfaces", Presence::Optional)? {
            None => None,
            Some(Value::Array(list)) => Some(
                list.into_iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(type_error(&format!("interfaces[{i}]"), "string")),
                    })
                    .collect::<Result<Vec<String>, QmpError>>()?,
            ),
            Some(_) => return Err(type_error("interfaces", "array")),
        };
        let id = args.string("id", Presence::Optional)?;
        params
            .check("")
            .map_err(|e| QmpError::generic(e.to_string()))?;
        Ok(AnnounceSelf {
            params,
            interfaces,
            id,
        })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Empty, QmpError> {
        vm.announce_self(self.params, self.interfaces.as_deref())?;
        Ok(Empty {})
    }
}
