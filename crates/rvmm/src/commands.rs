//! What each subcommand does: turn its arguments into library calls and print the result.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use vmm::config::cpu::parse_cpu;
use vmm::config::memory::parse_memory;
use vmm::config::{BootSource, NumaConfig, SmpConfig, VmConfig};
use vmm::probe::view::GuestView;
use vmm::vcpu::VmOutcome;
use vmm::vmm::{RunOptions, Vmm};

use crate::cli::{Cli, Command, ProbeArgs, RunArgs};

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(args),
        Command::Probe(args) => probe(args),
    }
}

fn vm_config(args: &RunArgs) -> Result<VmConfig> {
    let smp = SmpConfig::parse(&args.smp)?;
    let cpu = parse_cpu(&args.cpu)?;
    let memory = parse_memory(&args.memory)?;
    let numa = NumaConfig::parse(&args.numa)?;
    let boot = match &args.kernel {
        Some(kernel) => BootSource::Kernel {
            kernel: kernel.clone(),
            initrd: args.initrd.clone(),
            cmdline: args.append.clone().unwrap_or_default(),
        },
        None => BootSource::Probe {
            cmdline: args.append.clone().unwrap_or_default(),
            initrd: args.initrd.clone(),
        },
    };
    let config = VmConfig {
        name: args.name.clone(),
        boot,
        smp,
        cpu,
        memory: memory.size,
        memory_backing: memory.backing,
        numa,
    };
    config.validate()?;
    Ok(config)
}

fn outcome_code(outcome: &VmOutcome) -> ExitCode {
    match outcome {
        VmOutcome::Fault { vcpu, fault, detail } => {
            eprintln!("rvmm: vCPU {vcpu}: {fault}\n{detail}");
            ExitCode::from(1)
        }
        VmOutcome::Signal(sig) => {
            eprintln!("rvmm: terminating on signal {sig}");
            ExitCode::SUCCESS
        }
        _ => ExitCode::SUCCESS,
    }
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let config = vm_config(&args)?;
    let is_probe = matches!(config.boot, BootSource::Probe { .. });
    let mut vmm = Vmm::build(config, is_probe, args.raw)?;
    for w in &vmm.warnings {
        eprintln!("rvmm: warning: {w}");
    }
    if !is_probe {
        let outcome = vmm.run(RunOptions {
            console_input: true,
            serial_listener: None,
        })?;
        return Ok(outcome_code(&outcome));
    }
    // The probe: print the decoded view as soon as the dump is complete.
    let mut printed = false;
    let mut decode_error: Option<String> = None;
    let json = args.json;
    let listener = |out: &[u8]| {
        if printed {
            return;
        }
        let text = String::from_utf8_lossy(out);
        if !text.contains("PROBE-END") {
            return;
        }
        printed = true;
        match vmm::probe::decode::parse(&text) {
            Ok(dump) => {
                match GuestView::from_dump(&dump) {
                    Ok(view) if json => println!("{}", serde_json::to_string_pretty(&view).unwrap_or_default()),
                    Ok(view) => print!("{}", view.render()),
                    Err(e) => decode_error = Some(e.to_string()),
                }
            }
            Err(e) => decode_error = Some(e.to_string()),
        }
    };
    let outcome = vmm.run(RunOptions {
        console_input: false,
        serial_listener: Some(Box::new(listener)),
    })?;
    let code = outcome_code(&outcome);
    if let Some(e) = decode_error {
        bail!("probe dump: {e}");
    }
    if !printed && matches!(outcome, VmOutcome::Poweroff | VmOutcome::Reset) {
        let out = vmm.serial_output().unwrap_or_default();
        bail!(
            "the probe guest powered off without a complete dump; its output was:\n{}",
            String::from_utf8_lossy(&out)
        );
    }
    Ok(code)
}

fn probe(args: ProbeArgs) -> Result<ExitCode> {
    if let Some(path) = args.elf {
        std::fs::write(&path, vmm::probe::image::PROBE_ELF)
            .with_context(|| format!("--elf: cannot write {}", path.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = args.decode else {
        bail!("probe: give --elf FILE or --decode LOG");
    };
    let mut raw = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut raw).context("--decode: reading stdin")?;
    } else {
        raw = std::fs::read(&path).with_context(|| format!("--decode: cannot read {}", path.display()))?;
    }
    let text = String::from_utf8_lossy(&raw);
    let dump = vmm::probe::decode::parse(&text).with_context(|| format!("--decode: {}", path.display()))?;
    let view = GuestView::from_dump(&dump).with_context(|| format!("--decode: {}", path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", view.render());
    }
    Ok(ExitCode::SUCCESS)
}
