//! The `rvmm` binary: argv → VmConfig → Vmm. The only place anyhow lives.
//!
//! Every bad input ends here as one line on stderr (`rvmm: <what was wrong>`) and exit
//! status 1 (2 for command-line syntax), never a panic. So does a failed write of the
//! results (`rvmm: writing to stdout: No space left on device`); a closed stdout pipe ends
//! the commands that only print by SIGPIPE, as other Unix tools (output.rs says which).

mod cli;
mod cmd_advise;
mod cmd_balloon;
mod cmd_cpu;
mod cmd_host;
mod cmd_migrate;
mod cmd_perf;
mod cmd_qmp;
mod cmd_schedinfo;
mod cmd_snapshot;
mod cmd_stats;
mod cmd_top;
mod cmd_vcpus;
mod commands;
mod dry_run;
mod output;
mod qemu_cli;
mod top_term;
mod vcpu_plan;

use std::process::ExitCode;

use cli::Command;
use output::{errln, set_sigpipe, SigPipe};

/// Whether `command` talks over sockets, where a closed peer must be an error (EPIPE) rather
/// than the end of rvmm: the VMM itself (its QMP server) and the QMP clients.
fn uses_sockets(command: &Command) -> bool {
    match command {
        Command::Run(args) => !args.dry_run,
        Command::Vcpuinfo(_)
        | Command::Vcpupin(_)
        | Command::Emulatorpin(_)
        | Command::Setvcpus(_)
        | Command::Vcpucount(_)
        | Command::Setmem(_)
        | Command::Dommemstat(_)
        | Command::Qmp(_)
        | Command::Stats(_)
        | Command::Top(_)
        | Command::Advise(_)
        | Command::Schedinfo(_)
        | Command::Snapshot(_)
        | Command::Migrate(_) => true,
        Command::Probe(_)
        | Command::Host(_)
        | Command::CpuModels(_)
        | Command::CpuBaseline(_)
        | Command::CpuCompare(_) => false,
    }
}

fn main() -> ExitCode {
    // Help, version and the printing commands end quietly when their reader goes away.
    set_sigpipe(SigPipe::Default);
    // Invoked as qemu-system-x86_64: QEMU's command line (qemu_cli.rs).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.first().is_some_and(qemu_cli::invoked_as_qemu) {
        return qemu_cli::main(argv);
    }
    // `rvmm --version` prints QEMU's first line, as the personality does.
    if argv.len() == 2 && matches!(argv[1].to_str(), Some("--version" | "-V")) {
        return match output::out!("{}", qemu_cli::version_text()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                errln!("rvmm: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let args = match cli::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    if uses_sockets(&args.command) {
        set_sigpipe(SigPipe::Ignore);
    }
    match commands::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            errln!("rvmm: {e:#}");
            ExitCode::from(1)
        }
    }
}
