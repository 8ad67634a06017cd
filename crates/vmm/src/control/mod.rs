//! The control plane: the QMP server on a Unix socket, turning requests into commands for
//! the VMM thread and VMM events into QMP events; a small synchronous QMP client for rvmm's
//! own subcommands; and where control sockets live.
//!
//! The layers, each importing only those below it:
//! - `error`: the QMP error (class and description) everything else answers with;
//! - `args`: a command's arguments checked as QEMU's QAPI visitors check them;
//! - `qmp`: the wire protocol (pure), which knows the command set only through
//!   `qmp::ParseCommand`;
//! - `view`: the narrow view of the running VM that commands act on (`VmView`);
//! - `commands`: one module per command (arguments, execution, reply type), and the
//!   `Command` enum generated from their list;
//! - `server`: the socket and its client threads, handing `Command`s to the VMM thread,
//!   which runs them against its `VmView` (`vmm::commands`); `client`: the other end;
//! - `metrics`: the `--metrics` HTTP endpoint, a second way in for `__org.rvmm_stats`
//!   (Prometheus's text format);
//! - `hmp`: the human monitor (`--monitor`, QEMU's `-monitor`), a third way in: text
//!   commands turned into the same `Command`s;
//! - `runtime`: where control sockets live (`--name`, `--qmp`, the runtime directory).

pub(crate) mod args;
pub mod client;
pub mod commands;
pub mod error;
pub mod hmp;
pub mod metrics;
pub mod qmp;
pub mod runtime;
pub mod server;
pub mod socket;
pub(crate) mod view;

pub use client::{ClientError, QmpClient};
pub use commands::Command;
pub use error::{ErrorClass, QmpError};
pub use hmp::{parse_monitor_option, HmpError, HmpServer};
pub use metrics::{MetricsError, MetricsServer};
pub use runtime::{
    check_name, check_runtime_dir, default_runtime_dir, ensure_runtime_dir, parse_qmp_option,
    resolve_vm, resolve_vm_checked, runtime_dir, socket_for_name, ControlError, MAX_NAME,
};
pub use server::{QmpServer, Request, ServerError};
