//! The subcommands that talk to a running VM over its QMP socket: `vcpuinfo`, `vcpupin`,
//! `emulatorpin` (libvirt's layouts) and raw `qmp`. Requests and replies are the commands'
//! own types (`vmm::control::commands::*`), the ones the server parses and sends.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::Value;
use vmm::control::commands::emulatorpin::EmulatorPinRequest;
use vmm::control::commands::vcpuinfo::{self, VcpuInfoReport};
use vmm::control::commands::vcpupin::VcpuPinRequest;
use vmm::control::{self as ctl, QmpClient};
use vmm::vcpu::info::{render_emulatorpin, render_vcpuinfo, render_vcpupin};

use crate::cli::{EmulatorpinArgs, QmpArgs, VcpuinfoArgs, VcpupinArgs};
use crate::output::{errln, out, outln};

/// Connects to the VM a `VM` argument names (by name only through a runtime directory that
/// is ours).
pub(crate) fn connect(vm: &str) -> Result<QmpClient> {
    let path = ctl::resolve_vm_checked(&ctl::default_runtime_dir(), vm)?;
    Ok(QmpClient::connect(&path)?)
}

/// Prints a reply's warnings on stderr.
fn print_warnings(warnings: &[String]) {
    for w in warnings {
        errln!("rvmm: warning: {w}");
    }
}

pub fn vcpuinfo(args: VcpuinfoArgs) -> Result<ExitCode> {
    let reply: Value = connect(&args.vm)?
        .call(vcpuinfo::NAME, None)
        .context("vcpuinfo")?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reply)?)?;
    } else {
        let report: VcpuInfoReport =
            serde_json::from_value(reply).context("vcpuinfo: unexpected reply")?;
        out!("{}", render_vcpuinfo(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn vcpupin(args: VcpupinArgs) -> Result<ExitCode> {
    let request = VcpuPinRequest {
        vcpu: args.vcpu,
        cpus: args.cpulist.clone(),
    };
    let reply = connect(&args.vm)?.request(&request).context("vcpupin")?;
    print_warnings(&reply.warnings);
    if args.cpulist.is_none() {
        let rows: Vec<(u32, String)> = reply.vcpus.into_iter().map(|r| (r.vcpu, r.cpus)).collect();
        out!("{}", render_vcpupin(&rows))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn emulatorpin(args: EmulatorpinArgs) -> Result<ExitCode> {
    let request = EmulatorPinRequest {
        cpus: args.cpulist.clone(),
    };
    let reply = connect(&args.vm)?
        .request(&request)
        .context("emulatorpin")?;
    print_warnings(&reply.warnings);
    if args.cpulist.is_none() {
        out!("{}", render_emulatorpin(&reply.cpus))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn qmp(args: QmpArgs) -> Result<ExitCode> {
    let reply = connect(&args.vm)?.raw(&args.request).context("qmp")?;
    outln!("{}", serde_json::to_string_pretty(&reply)?)?;
    Ok(if reply.get("error").is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
