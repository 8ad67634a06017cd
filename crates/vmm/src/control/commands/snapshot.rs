//! `__org.rvmm_snapshot {"path": DIR, "stop"?: bool}`: pauses the VM (when it runs), writes
//! its snapshot into DIR (new or empty; `docs/snapshot.md`), then resumes it, or with
//! `stop: true` leaves it paused and sends `STOP` (as `stop` would). A VM paused before
//! stays paused. On an error the VM goes on as it was. The reply says what was written.
//! A VM with virtio devices is refused (their queues are not saved yet).

use serde::{Deserialize, Serialize};

use super::{ClientRequest, QmpCommand};
use crate::control::args::{type_error, Args, Presence};
use crate::control::error::QmpError;
use crate::control::qmp::Event;
use crate::control::view::{RunState, VmView};

pub const NAME: &str = "__org.rvmm_snapshot";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotCommand {
    pub path: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
}

impl ClientRequest for SnapshotCommand {
    const NAME: &'static str = NAME;
    type Reply = SnapshotReply;
}

/// What the snapshot wrote and how long the VM was paused for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotReply {
    pub path: String,
    pub vcpus: u32,
    /// Guest RAM (memory.bin's length).
    pub memory_bytes: u64,
    /// Non-zero guest RAM written (the rest are holes).
    pub data_bytes: u64,
    /// Time spent saving, with the vCPUs paused.
    pub milliseconds: u64,
    /// Whether the VM stays paused.
    pub stopped: bool,
}

impl QmpCommand for SnapshotCommand {
    const NAME: &'static str = NAME;
    type Reply = SnapshotReply;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let path = args.string("path", Presence::Required)?.unwrap_or_default();
        let stop = match args.take("stop", Presence::Optional)? {
            None => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => return Err(type_error("stop", "boolean")),
        };
        Ok(SnapshotCommand { path, stop })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<SnapshotReply, QmpError> {
        let was_running = vm.run_state() == RunState::Running;
        if was_running {
            vm.pause()?;
        }
        let saved = vm.snapshot(std::path::Path::new(&self.path), self.stop || !was_running);
        match saved {
            Ok(mut reply) => {
                if was_running && self.stop {
                    vm.emit(Event::Stop);
                } else if was_running {
                    vm.resume();
                }
                reply.stopped = !was_running || self.stop;
                Ok(reply)
            }
            Err(e) => {
                if was_running {
                    vm.resume();
                }
                Err(e.into())
            }
        }
    }
}
