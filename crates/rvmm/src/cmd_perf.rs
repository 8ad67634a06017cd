//! `rvmm stats --perf` (issue 13; being built).

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::StatsArgs;

pub fn perf(args: &StatsArgs) -> Result<ExitCode> {
    bail!("rvmm stats --perf {}: not built yet", args.vm)
}
