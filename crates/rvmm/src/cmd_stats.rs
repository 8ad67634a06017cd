//! `rvmm stats` (issue 13; being built).

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::StatsArgs;

pub fn stats(args: StatsArgs) -> Result<ExitCode> {
    if args.perf {
        return crate::cmd_perf::perf(&args);
    }
    bail!("rvmm stats {}: not built yet", args.vm)
}
