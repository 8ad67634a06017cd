//! `query-name`: the VM's `--name`, or `{}` without one, as QEMU.

use serde::{Deserialize, Serialize};

use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;

pub const NAME: &str = "query-name";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryName;

/// QEMU's NameInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameInfo {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

impl QmpCommand for QueryName {
    const NAME: &'static str = NAME;
    type Reply = NameInfo;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryName)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<NameInfo, QmpError> {
        Ok(NameInfo {
            name: vm.name().map(str::to_string),
        })
    }
}
