//! `rvmm top` (issue 13; being built).

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::TopArgs;

pub fn top(args: TopArgs) -> Result<ExitCode> {
    bail!("rvmm top {}: not built yet", args.vm)
}
