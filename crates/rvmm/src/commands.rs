//! What each subcommand does: turn its arguments into library calls and print the result.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use vmm::config::balloon::BalloonConfig;
use vmm::config::cpu::{parse_cpu, DEFAULT_MODEL};
use vmm::config::cputune::{CgroupSwitch, TuningOptions};
use vmm::config::disk::DiskConfig;
use vmm::config::libvirt::{parse_domain, DomainEnv, DomainHost};
use vmm::config::machine::parse_machine;
use vmm::config::memory::parse_memory;
use vmm::config::net::NetConfig;
use vmm::config::{BootSource, MachineConfig, NumaConfig, PinningConfig, SmpConfig, VmConfig};
use vmm::control as ctl;
use vmm::cpu::libvirt_map::LibvirtCpuMap;
use vmm::devices::serial::SerialOutput;
use vmm::host::KvmHost;
use vmm::probe::serial::{Echo, ProbeCapture};
use vmm::probe::view::GuestView;
use vmm::util::file::{open_regular, read_regular, read_regular_or_stdin, FileError, FileKind};
use vmm::vcpu::VmOutcome;
use vmm::vmm::{BuildOptions, Console, RunOptions, SerialWatch, Vmm};

use crate::cli::{Cli, Command, ProbeArgs, RunArgs};
use crate::output::{errln, out, outln};

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(*args, None),
        Command::Probe(args) => probe(args),
        Command::Host(args) => crate::cmd_host::host(args),
        Command::CpuModels(args) => crate::cmd_cpu::cpu_models(args),
        Command::CpuBaseline(args) => crate::cmd_cpu::cpu_baseline(args),
        Command::CpuCompare(args) => crate::cmd_cpu::cpu_compare(args),
        Command::Vcpuinfo(args) => crate::cmd_qmp::vcpuinfo(args),
        Command::Vcpupin(args) => crate::cmd_qmp::vcpupin(args),
        Command::Emulatorpin(args) => crate::cmd_qmp::emulatorpin(args),
        Command::Setvcpus(args) => crate::cmd_vcpus::setvcpus(args),
        Command::Vcpucount(args) => crate::cmd_vcpus::vcpucount(args),
        Command::Setmem(args) => crate::cmd_balloon::setmem(args),
        Command::Dommemstat(args) => crate::cmd_balloon::dommemstat(args),
        Command::Qmp(args) => crate::cmd_qmp::qmp(args),
        Command::Stats(args) => crate::cmd_stats::stats(args),
        Command::Top(args) => crate::cmd_top::top(args),
        Command::Advise(args) => crate::cmd_advise::advise(args),
        Command::Schedinfo(args) => crate::cmd_schedinfo::schedinfo(args),
        Command::Snapshot(args) => crate::cmd_snapshot::snapshot(args),
        Command::Migrate(args) => crate::cmd_migrate::migrate(args),
    }
}

/// The QMP socket `--qmp` names, else the one the VM's name implies (creating the runtime
/// directory), else none.
pub(crate) fn qmp_socket(
    qmp: Option<&str>,
    name: Option<&str>,
) -> Result<Option<std::path::PathBuf>> {
    if let Some(q) = qmp {
        return Ok(Some(ctl::parse_qmp_option(q)?));
    }
    let Some(name) = name else {
        return Ok(None);
    };
    ctl::check_name(name)?;
    let dir = ctl::default_runtime_dir();
    ctl::ensure_runtime_dir(&dir)?;
    Ok(Some(ctl::socket_for_name(&dir, name)))
}

/// The first flag given that a `--domain` file replaces.
fn domain_conflict(args: &RunArgs) -> Option<&'static str> {
    [
        ("--kernel", args.kernel.is_some()),
        ("--initrd", args.initrd.is_some()),
        ("--append", args.append.is_some()),
        ("--smp", args.smp.is_some()),
        ("--cpu", args.cpu.is_some()),
        ("-m", args.memory.is_some()),
        ("--numa", !args.numa.is_empty()),
        ("--name", args.name.is_some()),
        ("--vcpu-pin", !args.vcpu_pin.is_empty()),
        ("--cpuset", args.cpuset.is_some()),
        ("--emulator-pin", args.emulator_pin.is_some()),
        ("--cpu-shares", args.cpu_shares.is_some()),
        ("--cpu-quota", !args.cpu_quota.is_empty()),
        ("--memory-limit", args.memory_limit.is_some()),
        ("--balloon", args.balloon.is_some()),
    ]
    .into_iter()
    .find_map(|(flag, given)| given.then_some(flag))
}

/// Checks the kernel and initrd files exist before anything is built, so a typo costs
/// nothing; `names` are how the options are called in messages.
fn check_boot_files(boot: &BootSource, names: [&str; 2]) -> Result<()> {
    let (kernel, initrd) = match boot {
        BootSource::Probe { initrd, .. } => (None, initrd),
        BootSource::Kernel { kernel, initrd, .. } => (Some(kernel), initrd),
    };
    for (option, path) in names.into_iter().zip([kernel, initrd.as_ref()]) {
        if let Some(p) = path {
            open_regular(option, p, FileKind::Image)?;
        }
    }
    Ok(())
}

/// `--domain FILE`: the libvirt domain's configuration and the warnings about what it
/// ignores. The host's KVM (for host-model and feature policies) and libvirt's CPU map (for
/// feature names) are used when available.
fn domain_config(args: &RunArgs, path: &Path) -> Result<(VmConfig, Vec<String>)> {
    if let Some(flag) = domain_conflict(args) {
        bail!("{flag} conflicts with --domain");
    }
    let shown = path.display().to_string();
    let bytes = read_regular("--domain", path, FileKind::Text).map_err(|e| match e {
        FileError::Open { error, .. } => anyhow!("--domain {shown}: cannot read: {error}"),
        e => e.into(),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| anyhow!("--domain {shown}: not UTF-8 text: {}", e.utf8_error()))?;
    let map = LibvirtCpuMap::load().ok();
    let host = KvmHost::open().ok();
    let env = DomainEnv {
        cpu_map: map.as_ref(),
        host: host.as_ref().map(|h| DomainHost {
            support: &h.cpu_support,
            identity: &h.identity,
        }),
    };
    let mut domain = parse_domain(&text, &shown, &env)?;
    domain.config.machine = machine_config(args)?;
    domain.config.cgroup = tuning_options(args).parse()?.cgroup;
    // --disk adds disks after the domain's own.
    domain
        .config
        .disks
        .extend(DiskConfig::parse_all(&args.disk)?);
    // --net adds NICs after the domain's <interface> ones.
    let first = domain.config.nets.len();
    for (i, text) in args.net.iter().enumerate() {
        let index = first.saturating_add(i);
        domain.config.nets.push(NetConfig::parse(text, index)?);
    }
    vmm::config::net::check_unique(&domain.config.nets)?;
    check_domain_cgroup(&domain.config, &shown)?;
    // The disks and NICs added count against the virtio slots too.
    domain.config.validate()?;
    check_boot_files(
        &domain.config.boot,
        [
            &format!("--domain {shown}: <kernel>"),
            &format!("--domain {shown}: <initrd>"),
        ],
    )?;
    Ok((domain.config, domain.warnings))
}

/// The cgroup and tuning options as given (`--cgroup` and `--cgroup-parent` also apply to
/// a `--domain`; the tuning options conflict with it).
fn tuning_options(args: &RunArgs) -> TuningOptions<'_> {
    TuningOptions {
        cpu_shares: args.cpu_shares.as_deref(),
        cpu_quota: &args.cpu_quota,
        memory_limit: args.memory_limit.as_deref(),
        cgroup: args.cgroup.as_deref(),
        cgroup_parent: args.cgroup_parent.as_deref(),
    }
}

/// `--cgroup off` with a domain whose `<cputune>`/`<memtune>` need a cgroup: an error
/// naming the element (the flags' rules are `VmConfig::validate`'s).
fn check_domain_cgroup(config: &VmConfig, shown: &str) -> Result<()> {
    if config.cgroup.switch == CgroupSwitch::Off {
        let t = &config.cputune;
        let element = [
            (t.shares.is_some(), "<cputune><shares>"),
            (t.vcpu.is_set(), "<cputune><period>/<quota>"),
            (t.global.is_set(), "<cputune><global_period>/<global_quota>"),
            (
                t.emulator.is_set(),
                "<cputune><emulator_period>/<emulator_quota>",
            ),
            (config.memtune.hard_limit.is_some(), "<memtune><hard_limit>"),
        ]
        .into_iter()
        .find_map(|(set, e)| set.then_some(e));
        if let Some(element) = element {
            bail!(
                "--cgroup off conflicts with {element} of --domain {shown}: without a cgroup \
                 of its own the VM's CPU and memory tuning cannot be applied"
            );
        }
    }
    config.validate()?;
    Ok(())
}

/// `--machine` (the same with or without `--domain`).
fn machine_config(args: &RunArgs) -> Result<MachineConfig> {
    Ok(match &args.machine {
        Some(text) => parse_machine(text)?,
        None => MachineConfig::default(),
    })
}

/// The VM the arguments describe (from `--domain` or the flags) and warnings to print.
pub(crate) fn vm_config(args: &RunArgs) -> Result<(VmConfig, Vec<String>)> {
    if let Some(path) = &args.domain {
        return domain_config(args, path);
    }
    let smp = SmpConfig::parse(args.smp.as_deref().unwrap_or("1"))?;
    let cpu = parse_cpu(args.cpu.as_deref().unwrap_or(DEFAULT_MODEL))?;
    let memory = parse_memory(args.memory.as_deref().unwrap_or("128M"))?;
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
    check_boot_files(&boot, ["--kernel", "--initrd"])?;
    let pinning = PinningConfig::parse(
        &args.vcpu_pin,
        args.cpuset.as_deref(),
        args.emulator_pin.as_deref(),
    )?;
    let tuning = tuning_options(args).parse()?;
    let config = VmConfig {
        name: args.name.clone(),
        boot,
        smp,
        cpu,
        memory: memory.size,
        memory_backing: memory.backing,
        numa,
        pinning,
        qmp: None,
        metrics: None,
        machine: machine_config(args)?,
        cputune: tuning.cputune,
        memtune: tuning.memtune,
        cgroup: tuning.cgroup,
        disks: DiskConfig::parse_all(&args.disk)?,
        nets: NetConfig::parse_all(&args.net)?,
        balloon: match &args.balloon {
            Some(text) => BalloonConfig::parse(text)?,
            None => None,
        },
    };
    config.validate()?;
    Ok((config, Vec::new()))
}

pub(crate) fn outcome_code(outcome: &VmOutcome) -> ExitCode {
    match outcome {
        VmOutcome::Fault {
            vcpu,
            fault,
            detail,
        } => {
            errln!("rvmm: vCPU {vcpu}: {fault}\n{detail}");
            ExitCode::from(1)
        }
        VmOutcome::Signal(sig) => {
            errln!("rvmm: terminating on signal {sig}");
            ExitCode::SUCCESS
        }
        VmOutcome::DebugExit(_) => ExitCode::from(outcome.exit_code() as u8),
        _ => ExitCode::SUCCESS,
    }
}

pub(crate) fn print_build_warnings(vmm: &Vmm) {
    for w in &vmm.warnings {
        errln!("rvmm: warning: {w}");
    }
}

/// `rvmm run` (and the QEMU personality, which passes `on_started` for `-daemonize`).
pub(crate) fn run(args: RunArgs, on_started: Option<Box<dyn FnOnce()>>) -> Result<ExitCode> {
    // --incoming listens first: a port in use is the one message, nothing is built.
    let incoming = crate::cmd_migrate::incoming_listener(&args)?;
    if let Some(dir) = args.restore.clone() {
        return crate::cmd_snapshot::run_restore(args, &dir, on_started);
    }
    let (mut config, warnings) = vm_config(&args)?;
    for w in &warnings {
        errln!("rvmm: warning: {w}");
    }
    config.metrics = args
        .metrics
        .as_deref()
        .map(vmm::config::metrics::MetricsAddress::parse)
        .transpose()?;
    if args.dry_run {
        return crate::dry_run::dry_run(&config, args.show_cpuid);
    }
    config.qmp = qmp_socket(args.qmp.as_deref(), config.name.as_deref())?;
    let monitor = args
        .monitor
        .as_deref()
        .map(ctl::parse_monitor_option)
        .transpose()?;
    vmm::sandbox::init(args.sandbox.into())?;
    let is_probe = matches!(config.boot, BootSource::Probe { .. });
    if !is_probe {
        let mut vmm = Vmm::build(
            config,
            BuildOptions {
                incoming: incoming.is_some(),
                ..BuildOptions::default()
            },
        )?;
        print_build_warnings(&vmm);
        if let Some(l) = incoming {
            vmm.set_incoming(l);
        }
        let outcome = vmm.run(RunOptions {
            console: Console::Stdin,
            serial_watch: None,
            monitor,
            on_started,
        })?;
        return Ok(outcome_code(&outcome));
    }
    // The probe: its serial output is captured, and the decoded view printed as soon as the
    // dump is complete.
    let echo = if args.raw { Echo::Stdout } else { Echo::Quiet };
    let capture = ProbeCapture::new(echo).context("probe serial capture")?;
    let mut vmm = Vmm::build(
        config,
        BuildOptions {
            serial: SerialOutput::To(capture.sink()),
            incoming: incoming.is_some(),
        },
    )?;
    print_build_warnings(&vmm);
    if let Some(l) = incoming {
        vmm.set_incoming(l);
    }
    let mut printed = false;
    let mut decode_error: Option<String> = None;
    let mut write_error: Option<anyhow::Error> = None;
    let json = args.json;
    let on_ready = || {
        capture.clear_marker();
        if printed {
            return;
        }
        let out = capture.output();
        let text = String::from_utf8_lossy(&out);
        if !text.contains("PROBE-END") {
            return;
        }
        printed = true;
        let view = vmm::probe::decode::parse(&text)
            .map_err(|e| e.to_string())
            .and_then(|dump| GuestView::from_dump(&dump).map_err(|e| e.to_string()));
        match view {
            Ok(view) => {
                let written = if json {
                    outln!(
                        "{}",
                        serde_json::to_string_pretty(&view).unwrap_or_default()
                    )
                } else {
                    out!("{}", view.render())
                };
                write_error = written.err();
            }
            Err(e) => decode_error = Some(e),
        }
    };
    let outcome = vmm.run(RunOptions {
        console: Console::Stdin,
        serial_watch: Some(SerialWatch {
            fd: capture.marker(),
            on_ready: Box::new(on_ready),
        }),
        monitor,
        on_started,
    })?;
    capture.finish_echo(std::time::Duration::from_secs(5));
    let code = outcome_code(&outcome);
    if let Some(e) = write_error {
        return Err(e);
    }
    if let Some(e) = decode_error {
        bail!("probe dump: {e}");
    }
    if !printed {
        let out = String::from_utf8_lossy(&capture.output()).into_owned();
        // A dump cut short by the guest itself is an error; one cut short by the user
        // (quit, a signal) is not.
        let guest_ended = matches!(
            outcome,
            VmOutcome::Poweroff | VmOutcome::Reset | VmOutcome::DebugExit(_)
        );
        let has_dump = out.contains("PROBE-BEGIN");
        if has_dump && guest_ended {
            bail!("the probe guest's dump is incomplete (no PROBE-END); its output was:\n{out}");
        }
        // Modes without a dump (hello, reset, triplefault): show what the guest said.
        if !args.raw && !has_dump {
            out!("{out}")?;
        }
    }
    Ok(code)
}

fn probe(args: ProbeArgs) -> Result<ExitCode> {
    if let Some(path) = args.elf {
        vmm::util::file::write_regular("--elf", &path, vmm::probe::image::PROBE_ELF)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = args.decode else {
        bail!("probe: give --elf FILE or --decode LOG");
    };
    let raw = read_regular_or_stdin("--decode", &path, FileKind::Text)?;
    let text = String::from_utf8_lossy(&raw);
    let dump = vmm::probe::decode::parse(&text)
        .with_context(|| format!("--decode: {}", path.display()))?;
    let view =
        GuestView::from_dump(&dump).with_context(|| format!("--decode: {}", path.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&view)?)?;
    } else {
        out!("{}", view.render())?;
    }
    Ok(ExitCode::SUCCESS)
}
