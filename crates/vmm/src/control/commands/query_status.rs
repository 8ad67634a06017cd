//! `query-status`: running or paused (by `stop`), in QEMU 7.2's StatusInfo shape.

use serde::{Deserialize, Serialize};

use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
pub use crate::control::view::RunState;
use crate::control::view::VmView;

pub const NAME: &str = "query-status";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryStatus;

/// QEMU's StatusInfo (`singlestep` is always false: rvmm has no TCG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub status: RunState,
    pub singlestep: bool,
    pub running: bool,
}

impl StatusInfo {
    /// The status of a VM in `state`.
    pub fn of(state: RunState) -> Self {
        StatusInfo {
            status: state,
            singlestep: false,
            running: state == RunState::Running,
        }
    }
}

impl QmpCommand for QueryStatus {
    const NAME: &'static str = NAME;
    type Reply = StatusInfo;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryStatus)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<StatusInfo, QmpError> {
        Ok(StatusInfo::of(vm.run_state()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_members() {
        assert_eq!(
            serde_json::to_value(StatusInfo::of(RunState::Running)).unwrap(),
            json!({"status": "running", "singlestep": false, "running": true})
        );
        assert_eq!(
            serde_json::to_value(StatusInfo::of(RunState::Paused)).unwrap(),
            json!({"status": "paused", "singlestep": false, "running": false})
        );
    }
}
