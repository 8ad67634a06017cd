//! The subcommands that talk to a running VM over its QMP socket: `vcpuinfo`, `vcpupin`,
//! `emulatorpin` (libvirt's layouts) and raw `qmp`. Replies are read into the commands' own
//! reply types (`vmm::control::commands::*`), the ones the server sends.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use vmm::control::commands::emulatorpin::{self, EmulatorPinReply};
use vmm::control::commands::vcpuinfo::{self, VcpuInfoReport};
use vmm::control::commands::vcpupin::{self, VcpuPinReply};
use vmm::control::{self as ctl, QmpClient};
use vmm::vcpu::info::{render_emulatorpin, render_vcpuinfo, render_vcpupin};

use crate::cli::{EmulatorpinArgs, QmpArgs, VcpuinfoArgs, VcpupinArgs};

/// Connects to the VM a `VM` argument names.
fn connect(vm: &str) -> Result<QmpClient> {
    let path = ctl::resolve_vm(&ctl::default_runtime_dir(), vm);
    Ok(QmpClient::connect(&path)?)
}

/// Prints a reply's warnings on stderr.
fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("rvmm: warning: {w}");
    }
}

pub fn vcpuinfo(args: VcpuinfoArgs) -> Result<ExitCode> {
    let reply: Value = connect(&args.vm)?
        .call(vcpuinfo::NAME, None)
        .context("vcpuinfo")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        let report: VcpuInfoReport =
            serde_json::from_value(reply).context("vcpuinfo: unexpected reply")?;
        print!("{}", render_vcpuinfo(&report));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn vcpupin(args: VcpupinArgs) -> Result<ExitCode> {
    let mut request = Map::new();
    if let Some(v) = args.vcpu {
        request.insert("vcpu".into(), v.into());
    }
    if let Some(c) = &args.cpulist {
        request.insert("cpus".into(), c.clone().into());
    }
    let reply: VcpuPinReply = connect(&args.vm)?
        .call(vcpupin::NAME, Some(request.into()))
        .context("vcpupin")?;
    print_warnings(&reply.warnings);
    if args.cpulist.is_none() {
        let rows: Vec<(u32, String)> = reply.vcpus.into_iter().map(|r| (r.vcpu, r.cpus)).collect();
        print!("{}", render_vcpupin(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn emulatorpin(args: EmulatorpinArgs) -> Result<ExitCode> {
    let request = match &args.cpulist {
        Some(c) => json!({"cpus": c}),
        None => json!({}),
    };
    let reply: EmulatorPinReply = connect(&args.vm)?
        .call(emulatorpin::NAME, Some(request))
        .context("emulatorpin")?;
    print_warnings(&reply.warnings);
    if args.cpulist.is_none() {
        print!("{}", render_emulatorpin(&reply.cpus));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn qmp(args: QmpArgs) -> Result<ExitCode> {
    let reply = connect(&args.vm)?.raw(&args.request).context("qmp")?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(if reply.get("error").is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
