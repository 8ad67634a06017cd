//! `query-commands`: every command this server accepts, listed from the command set itself
//! (`COMMAND_NAMES`, generated with [`super::Command`]) so the list cannot drift.

use serde::{Deserialize, Serialize};

use super::{QmpCommand, COMMAND_NAMES};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;

pub const NAME: &str = "query-commands";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryCommands;

/// One entry (QEMU's CommandInfo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    pub name: String,
}

impl QmpCommand for QueryCommands {
    const NAME: &'static str = NAME;
    type Reply = Vec<CommandInfo>;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryCommands)
    }

    fn execute(&self, _: &mut dyn VmView) -> Result<Self::Reply, QmpError> {
        Ok(COMMAND_NAMES
            .iter()
            .map(|name| CommandInfo {
                name: name.to_string(),
            })
            .collect())
    }
}
