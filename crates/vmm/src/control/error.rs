//! The error a QMP command answers with: QEMU's error class and its description, shared by
//! the protocol (`qmp`), the argument checks (`args`) and the commands (`commands`), so
//! that none of them has to import another for it. How a reply carries it is `qmp`'s job.

use serde::Serialize;
use thiserror::Error;

/// QMP error classes (qapi/error.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorClass {
    GenericError,
    CommandNotFound,
    DeviceNotActive,
    DeviceNotFound,
    KVMMissingCap,
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{class:?}: {desc}")]
pub struct QmpError {
    pub class: ErrorClass,
    pub desc: String,
}

impl QmpError {
    pub fn generic(desc: impl Into<String>) -> Self {
        QmpError {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    pub fn command_not_found(name: &str) -> Self {
        QmpError {
            class: ErrorClass::CommandNotFound,
            desc: format!("The command {name} has not been found"),
        }
    }
}
