//! The commands rvmm's QMP server accepts: one module per command, each holding the
//! command's arguments (checked as QEMU's generated visitors check them, with the same error
//! texts), its execution against the narrow view of the VM ([`VmView`]), and the serde type
//! of its reply, which rvmm's own subcommands deserialize. [`Command`], the list
//! `query-commands` reports and the dispatch by name are all generated from the one list in
//! `command_set!` below: a new command is a new module plus one line there.
//!
//! rvmm's own commands follow QMP's rule for commands that are not QEMU's
//! (docs/devel/qapi-code-gen.rst, "Downstream extensions"): a name starting with
//! `__RFQDN_`, here `__org.rvmm_`. We prefer it to the `x-` prefix, which QEMU reserves for
//! its own unstable interfaces and could collide with a future QEMU command, and to a bare
//! `rvmm-` prefix, which the QMP rules do not provide for. Clients can therefore tell at a
//! glance which commands a QEMU would not have.
//!
//! The wire protocol (`qmp`) sees this set only through [`ParseCommand`]; running a command
//! is the VMM thread's call to [`Command::execute`].

pub mod announce_self;
pub mod balloon;
pub mod cont;
pub mod cpu_slot;
pub mod device_add;
pub mod device_del;
pub mod emulatorpin;
pub mod migrate;
pub mod migrate_cancel;
pub mod migrate_continue;
pub mod migrate_set_capabilities;
pub mod migrate_set_parameters;
pub mod query_balloon;
pub mod query_commands;
pub mod query_cpu_definitions;
pub mod query_cpu_model_expansion;
pub mod query_cpus_fast;
pub mod query_hotpluggable_cpus;
pub mod query_migrate;
pub mod query_migrate_capabilities;
pub mod query_migrate_parameters;
pub mod query_name;
pub mod query_stats;
pub mod query_stats_schemas;
pub mod query_status;
pub mod query_version;
pub mod quit;
pub mod schedinfo;
pub mod snapshot;
pub mod stats;
pub mod stop;
pub mod system_powerdown;
pub mod system_reset;
pub mod vcpuinfo;
pub mod vcpupin;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::args::Args;
use super::error::QmpError;
use super::qmp::{ParseCommand, CAPABILITIES_COMMAND};
use super::view::VmView;

pub use query_cpu_model_expansion::ExpansionType;

/// rvmm's downstream prefix (reverse domain name, QMP's `__RFQDN_`).
pub const RVMM_PREFIX: &str = "__org.rvmm_";
/// Reads or sets one vCPU's affinity (libvirt's `vcpupin`).
pub const CMD_VCPUPIN: &str = vcpupin::NAME;
/// Reads or sets the emulator threads' affinity (libvirt's `emulatorpin`).
pub const CMD_EMULATORPIN: &str = emulatorpin::NAME;
/// Per-vCPU state, host CPU, CPU time and affinity (libvirt's `vcpuinfo`).
pub const CMD_VCPUINFO: &str = vcpuinfo::NAME;
/// KVM statistics and thread figures of the VM and every vCPU (`rvmm stats`).
pub const CMD_STATS: &str = stats::NAME;
/// Reads or sets the VM's cgroup shares and CPU quotas (libvirt's `schedinfo`).
pub const CMD_SCHEDINFO: &str = schedinfo::NAME;
/// Saves the VM's snapshot into a directory (`rvmm snapshot`).
pub const CMD_SNAPSHOT: &str = snapshot::NAME;

/// One QMP command: its name, its arguments, how it runs and what it returns.
pub(crate) trait QmpCommand: Sized {
    /// The name clients `execute`.
    const NAME: &'static str;
    /// The `return` member's type.
    type Reply: Serialize;
    /// Takes this command's members from `args` in schema order; members left over are
    /// rejected afterwards.
    fn parse(args: &mut Args) -> Result<Self, QmpError>;
    /// Runs the command against the VM.
    fn execute(&self, vm: &mut dyn VmView) -> Result<Self::Reply, QmpError>;
}

/// A command as a client sends it: its name, its `arguments` (the type serializes to that
/// object) and the type its reply is read into. rvmm's own subcommands send these.
pub trait ClientRequest: Serialize {
    const NAME: &'static str;
    type Reply: DeserializeOwned;
}

/// The `{}` most commands return.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Generates [`Command`] (one variant per command type), [`COMMAND_NAMES`] and the
/// name → parser and variant → executor dispatch from one list.
macro_rules! command_set {
    ($($variant:ident($command:ty),)*) => {
        /// A parsed request for the VMM thread.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $($variant($command),)*
        }

        /// Every command name, in the order `query-commands` lists them: the protocol's
        /// `qmp_capabilities`, then [`Command`]'s variants in order.
        pub const COMMAND_NAMES: &[&str] = &[
            CAPABILITIES_COMMAND,
            $(<$command as QmpCommand>::NAME,)*
        ];

        impl Command {
            /// The command's wire name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Command::$variant(_) => <$command as QmpCommand>::NAME,)*
                }
            }

            /// Runs the command; its reply as the JSON value the protocol sends.
            pub(crate) fn execute(&self, vm: &mut dyn VmView) -> Result<Value, QmpError> {
                match self {
                    $(Command::$variant(c) => reply_value(&c.execute(vm)?),)*
                }
            }

            /// The command `name` with `args` taken by its parser.
            fn parse_with(name: &str, args: &mut Args) -> Result<Command, QmpError> {
                $(
                    if name == <$command as QmpCommand>::NAME {
                        return Ok(Command::$variant(<$command as QmpCommand>::parse(args)?));
                    }
                )*
                Err(QmpError::command_not_found(name))
            }
        }
    };
}

command_set! {
    QueryCommands(query_commands::QueryCommands),
    QueryVersion(query_version::QueryVersion),
    QueryName(query_name::QueryName),
    QueryStatus(query_status::QueryStatus),
    Stop(stop::Stop),
    Cont(cont::Cont),
    SystemPowerdown(system_powerdown::SystemPowerdown),
    SystemReset(system_reset::SystemReset),
    Quit(quit::Quit),
    QueryCpusFast(query_cpus_fast::QueryCpusFast),
    QueryHotpluggableCpus(query_hotpluggable_cpus::QueryHotpluggableCpus),
    QueryCpuDefinitions(query_cpu_definitions::QueryCpuDefinitions),
    QueryCpuModelExpansion(query_cpu_model_expansion::QueryCpuModelExpansion),
    VcpuPin(vcpupin::VcpuPin),
    EmulatorPin(emulatorpin::EmulatorPin),
    VcpuInfo(vcpuinfo::VcpuInfoQuery),
    DeviceAdd(device_add::DeviceAdd),
    DeviceDel(device_del::DeviceDel),
    Stats(stats::StatsQuery),
    QueryStats(query_stats::QueryStats),
    QueryStatsSchemas(query_stats_schemas::QueryStatsSchemas),
    SchedInfo(schedinfo::SchedInfoCommand),
    Snapshot(snapshot::SnapshotCommand),
    Balloon(balloon::Balloon),
    QueryBalloon(query_balloon::QueryBalloon),
    Migrate(migrate::Migrate),
    QueryMigrate(query_migrate::QueryMigrate),
    MigrateSetParameters(migrate_set_parameters::MigrateSetParameters),
    QueryMigrateParameters(query_migrate_parameters::QueryMigrateParameters),
    MigrateCancel(migrate_cancel::MigrateCancel),
    MigrateSetCapabilities(migrate_set_capabilities::MigrateSetCapabilities),
    QueryMigrateCapabilities(query_migrate_capabilities::QueryMigrateCapabilities),
    MigrateContinue(migrate_continue::MigrateContinue),
    AnnounceSelf(announce_self::AnnounceSelf),
}

fn reply_value<R: Serialize>(reply: &R) -> Result<Value, QmpError> {
    serde_json::to_value(reply).map_err(|e| QmpError::generic(e.to_string()))
}

impl ParseCommand for Command {
    /// Turns a command name and its `arguments` into a `Command`.
    fn parse(name: &str, arguments: Map<String, Value>) -> Result<Command, QmpError> {
        let mut args = Args::new(arguments);
        let command = Command::parse_with(name, &mut args)?;
        args.finish("")?;
        Ok(command)
    }
}

/// Turns a command name and its `arguments` into a `Command` (the protocol calls this
/// through [`ParseCommand`]).
pub fn parse(name: &str, arguments: Map<String, Value>) -> Result<Command, QmpError> {
    <Command as ParseCommand>::parse(name, arguments)
}
