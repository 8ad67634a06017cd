//! `rvmm run --dry-run [--show-cpuid]`: the resolved configuration as stable `key: value`
//! lines (compared line for line between front ends, e.g. `--domain X --dry-run` against
//! the same VM given as flags), and optionally each boot vCPU's CPUID table exactly as rvmm
//! would hand it to KVM_SET_CPUID2. Nothing is created: no VM, no vCPU, no guest memory.
//!
//! The configuration part needs no /dev/kvm; `--show-cpuid` opens it to read what KVM
//! supports (the tables depend on it).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use vmm::config::size::format_size;
use vmm::config::{BootSource, VmConfig};
use vmm::cpu::availability::resolved_name;
use vmm::cpu::builder::{tables_for, VcpuCpuid};
use vmm::cpu::filter::Check;
use vmm::host::KvmHost;

/// The configuration as `key: value` lines, one fact per line, in a fixed order.
pub fn render_config(config: &VmConfig) -> String {
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "{key}: {value}");
    };
    line(&mut out, "name", config.name.as_deref().unwrap_or("-"));
    match &config.boot {
        BootSource::Probe { cmdline, initrd } => {
            line(&mut out, "boot", "probe");
            line(&mut out, "kernel", "-");
            let initrd = initrd.as_ref().map(|p| p.display().to_string());
            line(&mut out, "initrd", initrd.as_deref().unwrap_or("-"));
            line(&mut out, "cmdline", cmdline);
        }
        BootSource::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            line(&mut out, "boot", "kernel");
            line(&mut out, "kernel", &kernel.display().to_string());
            let initrd = initrd.as_ref().map(|p| p.display().to_string());
            line(&mut out, "initrd", initrd.as_deref().unwrap_or("-"));
            line(&mut out, "cmdline", cmdline);
        }
    }
    let s = &config.smp;
    line(
        &mut out,
        "smp",
        &format!(
            "cpus={} maxcpus={} sockets={} dies={} cores={} threads={}",
            s.cpus, s.maxcpus, s.sockets, s.dies, s.cores, s.threads
        ),
    );
    let cpu = &config.cpu;
    line(&mut out, "cpu.model", &cpu.model);
    let resolved = resolved_name(&cpu.model).unwrap_or_else(|| cpu.model.clone());
    line(&mut out, "cpu.resolved", &resolved);
    let changes: Vec<String> = cpu
        .changes
        .iter()
        .map(|(name, on)| format!("{}{name}", if *on { '+' } else { '-' }))
        .collect();
    line(
        &mut out,
        "cpu.features",
        if changes.is_empty() {
            "-".to_string()
        } else {
            changes.join(",")
        }
        .as_str(),
    );
    let pmu = match cpu.pmu {
        None => "default",
        Some(true) => "on",
        Some(false) => "off",
    };
    line(&mut out, "cpu.pmu", pmu);
    let check = match cpu.check {
        Check::None => "off",
        Check::Warn => "check",
        Check::Enforce => "enforce",
    };
    line(&mut out, "cpu.check", check);
    line(
        &mut out,
        "memory",
        &format!("{} ({} bytes)", format_size(config.memory), config.memory),
    );
    out
}

/// One vCPU's table: a header line, then one line per entry with every field in hex.
pub fn render_cpuid(vcpu: &VcpuCpuid) -> String {
    let mut out = format!(
        "vCPU {} (APIC ID {}): {} CPUID entries for KVM_SET_CPUID2\n",
        vcpu.index,
        vcpu.apic_id,
        vcpu.entries.len()
    );
    out.push_str("  function   index      flags      eax        ebx        ecx        edx\n");
    for e in &vcpu.entries {
        let _ = writeln!(
            out,
            "  0x{:08x} 0x{:08x} 0x{:08x} 0x{:08x} 0x{:08x} 0x{:08x} 0x{:08x}",
            e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx
        );
    }
    out
}

/// Prints the configuration and, with `show_cpuid`, every boot vCPU's CPUID table.
pub fn dry_run(config: &VmConfig, show_cpuid: bool) -> Result<ExitCode> {
    print!("{}", render_config(config));
    if show_cpuid {
        let host = KvmHost::open()?;
        let tables = tables_for(config, &host.cpu_support, &host.identity)?;
        for w in &tables.plan.warnings {
            eprintln!("rvmm: warning: {w}");
        }
        for vcpu in &tables.vcpus {
            print!("{}", render_cpuid(vcpu));
        }
    }
    Ok(ExitCode::SUCCESS)
}
