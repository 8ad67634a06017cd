//! `rvmm host`: can this host run VMs, and how.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct HostArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print this host's CPU description (for cpu-baseline / cpu-compare) as JSON.
    #[arg(long)]
    pub cpu_json: bool,
}

pub fn host(_args: HostArgs) -> Result<ExitCode> {
    anyhow::bail!("host: not yet")
}
