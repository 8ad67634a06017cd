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
mod cmd_perf;
mod cmd_qmp;
mod cmd_schedinfo;
mod cmd_stats;
mod cmd_top;
mod cmd_vcpus;
mod commands;
mod dry_run;
mod output;
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
        | Command::Schedinfo(_) => true,
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
