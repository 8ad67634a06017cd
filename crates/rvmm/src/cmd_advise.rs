//! `rvmm advise` (issue 13; being built).

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::AdviseArgs;

pub fn advise(args: AdviseArgs) -> Result<ExitCode> {
    bail!("rvmm advise {}: not built yet", args.vm)
}
