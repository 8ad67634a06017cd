//! `rvmm host [--json] [--cpu-json]`: this host's ability to run VMs (the library's
//! `vmm::host::report`), or its CPU description for cpu-baseline/cpu-compare
//! (`vmm::cpu::hostdesc`).

use std::process::ExitCode;

use crate::output::{out, outln};
use anyhow::Result;
use clap::Args;
use vmm::host::kvm::kvm_path;
use vmm::host::report::HostReport;
use vmm::host::{Host, KvmHost};

#[derive(Debug, Args)]
pub struct HostArgs {
    /// Print JSON instead of text.
    #[arg(long, conflicts_with = "cpu_json")]
    pub json: bool,
    /// Print this host's CPU description as JSON (the input of cpu-baseline / cpu-compare):
    /// vendor, family/model/stepping, model name and the features KVM can give a guest.
    #[arg(long)]
    pub cpu_json: bool,
}

pub fn host(args: HostArgs) -> Result<ExitCode> {
    if args.cpu_json {
        let kvm = KvmHost::open()?;
        let desc = vmm::cpu::hostdesc::HostCpuDesc::from_kvm(&kvm.cpu_support, &kvm.identity);
        outln!("{}", desc.to_json())?;
        return Ok(ExitCode::SUCCESS);
    }
    let kvm = KvmHost::open();
    let report = HostReport::read(&Host::real(), &kvm_path(), kvm.as_ref().ok())?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", report.render())?;
    }
    Ok(ExitCode::SUCCESS)
}
