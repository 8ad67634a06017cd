//! `rvmm snapshot VM DIR [--stop]` (QMP `__org.rvmm_snapshot`) and `rvmm run --restore DIR`
//! (docs/snapshot.md).
//!
//! `--restore` rebuilds the VM from the snapshot's own flags (`config.flags` in
//! `state.json`); flags that would change the machine conflict with it and are refused by
//! name before anything is read or made. Runtime options (`--name`, `--qmp`, `--metrics`,
//! `--sandbox`, `--cgroup`, `--cgroup-parent`, `--raw`) may be given. The snapshot is checked
//! (format, version, checksums, sizes), the VM built, this host checked against the saved
//! CPU state, and only then does anything run: the guest goes on from where it was, its
//! serial output on stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use vmm::control::commands::snapshot::SnapshotCommand;
use vmm::vmm::{BuildOptions, Console, RunOptions, Vmm};

use crate::cli::{Cli, Command, RunArgs, SnapshotArgs};
use crate::cmd_qmp::connect;
use crate::output::{errln, outln};

pub fn snapshot(args: SnapshotArgs) -> Result<ExitCode> {
    let dir = absolute(&args.dir)?;
    let reply = connect(&args.vm)?
        .request(&SnapshotCommand {
            path: dir.display().to_string(),
            stop: args.stop,
        })
        .context("snapshot")?;
    outln!(
        "snapshot of {} vCPUs and {} MiB of guest RAM ({} MiB of data) written to {} in {} ms; the VM is {}",
        reply.vcpus,
        reply.memory_bytes >> 20,
        reply.data_bytes >> 20,
        reply.path,
        reply.milliseconds,
        if reply.stopped { "paused" } else { "running" }
    )?;
    Ok(ExitCode::SUCCESS)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("the current directory")?
        .join(p))
}

/// The flags given with `--restore` that the snapshot's configuration replaces.
fn restore_conflicts(args: &RunArgs) -> Vec<&'static str> {
    [
        ("--domain", args.domain.is_some()),
        ("--kernel", args.kernel.is_some()),
        ("--initrd", args.initrd.is_some()),
        ("--append", args.append.is_some()),
        ("--smp", args.smp.is_some()),
        ("--cpu", args.cpu.is_some()),
        ("-m", args.memory.is_some()),
        ("--machine", args.machine.is_some()),
        ("--numa", !args.numa.is_empty()),
        ("--disk", !args.disk.is_empty()),
        ("--net", !args.net.is_empty()),
        ("--balloon", args.balloon.is_some()),
        ("--vcpu-pin", !args.vcpu_pin.is_empty()),
        ("--cpuset", args.cpuset.is_some()),
        ("--emulator-pin", args.emulator_pin.is_some()),
        ("--cpu-shares", args.cpu_shares.is_some()),
        ("--cpu-quota", !args.cpu_quota.is_empty()),
        ("--memory-limit", args.memory_limit.is_some()),
        ("--dry-run", args.dry_run),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect()
}

/// The saved flags as `rvmm run` arguments, with the runtime options given now.
fn saved_run_args(flags: &[String], given: &RunArgs) -> Result<RunArgs> {
    let argv = ["rvmm", "run"]
        .into_iter()
        .map(String::from)
        .chain(flags.iter().cloned());
    let cli = Cli::try_parse_from(argv)
        .map_err(|e| anyhow!("the snapshot's configuration flags do not parse: {e}"))?;
    let Command::Run(mut run) = cli.command else {
        bail!("the snapshot's configuration flags do not parse as `rvmm run`");
    };
    if given.name.is_some() {
        run.name = given.name.clone();
    }
    run.qmp = given.qmp.clone();
    run.metrics = given.metrics.clone();
    run.sandbox = given.sandbox;
    if given.cgroup.is_some() {
        run.cgroup = given.cgroup.clone();
    }
    if given.cgroup_parent.is_some() {
        run.cgroup_parent = given.cgroup_parent.clone();
    }
    Ok(*run)
}

pub fn run_restore(
    args: RunArgs,
    dir: &Path,
    on_started: Option<Box<dyn FnOnce()>>,
) -> Result<ExitCode> {
    let conflicts = restore_conflicts(&args);
    if !conflicts.is_empty() {
        bail!(
            "{} conflict{} with --restore: the VM is rebuilt from the snapshot's own configuration",
            conflicts.join(", "),
            if conflicts.len() == 1 { "s" } else { "" }
        );
    }
    let read_start = std::time::Instant::now();
    let snap = vmm::snapshot::read(dir)?;
    let run = saved_run_args(&snap.config.flags, &args)?;
    let (mut config, warnings) = crate::commands::vm_config(&run)?;
    for w in &warnings {
        errln!("rvmm: warning: {w}");
    }
    config.metrics = run
        .metrics
        .as_deref()
        .map(vmm::config::metrics::MetricsAddress::parse)
        .transpose()?;
    config.qmp = crate::commands::qmp_socket(run.qmp.as_deref(), config.name.as_deref())?;
    vmm::sandbox::init(run.sandbox.into())?;
    let mut vmm = Vmm::build(config, BuildOptions::default())?;
    crate::commands::print_build_warnings(&vmm);
    let report = vmm.restore(&snap, dir)?;
    for w in &report.warnings {
        errln!("rvmm: warning: {w}");
    }
    errln!(
        "rvmm: restored {} vCPUs and {} MiB of guest RAM data from {} in {} ms ({} ms in all)",
        report.vcpus,
        report.data_bytes >> 20,
        dir.display(),
        report.elapsed.as_millis(),
        read_start.elapsed().as_millis()
    );
    let monitor = args
        .monitor
        .as_deref()
        .map(vmm::control::parse_monitor_option)
        .transpose()?;
    let outcome = vmm.run(RunOptions {
        console: Console::Stdin,
        serial_watch: None,
        monitor,
        on_started,
    })?;
    Ok(crate::commands::outcome_code(&outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(argv: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["rvmm", "run"].iter().chain(argv)).unwrap();
        match cli.command {
            Command::Run(r) => *r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn machine_flags_conflict_with_restore_and_runtime_ones_do_not() {
        let a = run_args(&["--restore", "/s", "--smp", "2", "-m", "1G"]);
        assert_eq!(restore_conflicts(&a), ["--smp", "-m"]);
        let a = run_args(&["--restore", "/s", "--name", "x", "--qmp", "unix:/q"]);
        assert!(restore_conflicts(&a).is_empty());
        let saved = [
            "--smp".to_string(),
            "2".to_string(),
            "--name".into(),
            "old".into(),
        ];
        let r = saved_run_args(&saved, &a).unwrap();
        assert_eq!(r.smp.as_deref(), Some("2"));
        assert_eq!(r.name.as_deref(), Some("x"));
        assert_eq!(r.qmp.as_deref(), Some("unix:/q"));
    }
}
