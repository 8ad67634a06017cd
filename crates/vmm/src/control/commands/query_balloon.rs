//! `query-balloon`: the guest's memory as the balloon driver last reported it, QEMU's
//! BalloonInfo: `actual` = RAM - the balloon's pages × 4 KiB (RAM until the driver has
//! written `actual`).

use serde::{Deserialize, Serialize};

use super::balloon::no_balloon;
use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;

pub const NAME: &str = "query-balloon";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBalloon;

/// QEMU's BalloonInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalloonInfo {
    /// The guest's memory in bytes.
    pub actual: u64,
}

impl QmpCommand for QueryBalloon {
    const NAME: &'static str = NAME;
    type Reply = BalloonInfo;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryBalloon)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<BalloonInfo, QmpError> {
        let status = vm.balloon().ok_or_else(no_balloon)?;
        Ok(BalloonInfo {
            actual: status.actual_bytes(),
        })
    }
}
