//! The `rvmm` binary: argv → VmConfig → Vmm. The only place anyhow lives.
//!
//! Every bad input ends here as one line on stderr (`rvmm: <what was wrong>`) and exit
//! status 1 (2 for command-line syntax), never a panic.

mod cli;
mod cmd_cpu;
mod cmd_host;
mod cmd_qmp;
mod commands;
mod dry_run;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::parse() {
        Ok(a) => a,
        Err(code) => return code,
    };
    match commands::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rvmm: {e:#}");
            ExitCode::from(1)
        }
    }
}
