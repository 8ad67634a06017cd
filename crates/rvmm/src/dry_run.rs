//! `rvmm run --dry-run [--show-cpuid]`: the resolved configuration as stable `key: value`
//! lines (compared line for line between front ends, e.g. `--domain X --dry-run` against
//! the same VM given as flags), ending with `flags:`, the `rvmm run` flags that build the
//! same configuration (`config::flags`), and optionally each boot vCPU's CPUID table exactly as rvmm
//! would hand it to KVM_SET_CPUID2. Nothing is created: no VM, no vCPU, no guest memory.
//!
//! The configuration part needs no /dev/kvm; `--show-cpuid` opens it to read what KVM
//! supports (the tables depend on it).

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::output::{errln, out};
use anyhow::Result;
use vmm::config::cputune::{first_tuning_option, shares_to_weight, Bandwidth, CgroupSwitch};
use vmm::config::flags::{command_line, run_args};
use vmm::config::size::format_size;
use vmm::config::{BootSource, MemoryBacking, PinningConfig, VmConfig};
use vmm::cpu::availability::resolved_name;
use vmm::cpu::builder::VcpuCpuid;
use vmm::cpu::filter::Check;
use vmm::host::KvmHost;
use vmm::util::cpulist::cpulist;
use vmm::vcpu::cpuid::tables_for;

/// The configuration as `key: value` lines, one fact per line, in a fixed order.
pub fn render_config(config: &VmConfig) -> String {
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "{key}: {value}");
    };
    line(&mut out, "name", config.name.as_deref().unwrap_or("-"));
    match &config.boot {
        BootSource::Probe { initrd, .. } => {
            line(&mut out, "boot", "probe");
            line(&mut out, "kernel", "-");
            let initrd = initrd.as_ref().map(|p| p.display().to_string());
            line(&mut out, "initrd", initrd.as_deref().unwrap_or("-"));
            line(&mut out, "cmdline", &vmm::vmm::guest_cmdline(config));
        }
        BootSource::Kernel { kernel, initrd, .. } => {
            line(&mut out, "boot", "kernel");
            line(&mut out, "kernel", &kernel.display().to_string());
            let initrd = initrd.as_ref().map(|p| p.display().to_string());
            line(&mut out, "initrd", initrd.as_deref().unwrap_or("-"));
            line(&mut out, "cmdline", &vmm::vmm::guest_cmdline(config));
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
    render_backing(&mut out, &config.memory_backing);
    render_numa(&mut out, config);
    render_pinning(&mut out, &config.pinning);
    render_cgroup(&mut out, config);
    for (i, net) in config.nets.iter().enumerate() {
        let tap = match (&net.tap, net.fd) {
            (Some(t), _) => format!("tap={t}"),
            (None, Some(fd)) => format!("fd={fd} (inherited; checked at start)"),
            (None, None) => "tap=(created at start; the kernel names it tapN)".to_string(),
        };
        let _ = writeln!(out, "net.{i}: {tap} mac={}", net.mac);
    }
    line(&mut out, "balloon", &balloon_line(config));
    line(&mut out, "flags", &command_line(&run_args(config)));
    out
}

/// The balloon: off, or its features and the first target (libvirt's `<currentMemory>`).
fn balloon_line(config: &VmConfig) -> String {
    let Some(b) = &config.balloon else {
        return "off".to_string();
    };
    let mut s = format!(
        "on deflate-on-oom={} free-page-reporting={}",
        switch(b.deflate_on_oom),
        switch(b.free_page_reporting)
    );
    if let Some(m) = b.initial_memory {
        let _ = write!(s, " initial-memory={} ({m} bytes)", format_size(m));
    }
    s
}

fn switch(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn optional_switch(value: Option<bool>) -> &'static str {
    value.map_or("default", switch)
}

fn list_or_dash(cpus: Option<&[u32]>) -> String {
    match cpus {
        Some(c) if !c.is_empty() => cpulist(c),
        _ => "-".to_string(),
    }
}

/// How the host backs guest RAM: one `memory.KEY: value` line per `-m` option.
fn render_backing(out: &mut String, b: &MemoryBacking) {
    let hugepages = match (b.hugepages, b.hugepage_size) {
        (false, _) => "off".to_string(),
        (true, None) => "on (the host's default huge page size)".to_string(),
        (true, Some(size)) => format!("on ({} pages)", format_size(size)),
    };
    let _ = writeln!(out, "memory.hugepages: {hugepages}");
    let path = b.mem_path.as_ref().map(|p| p.display().to_string());
    let _ = writeln!(out, "memory.mem-path: {}", path.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "memory.prealloc: {}", switch(b.prealloc));
    let _ = writeln!(out, "memory.merge: {}", optional_switch(b.merge));
    let _ = writeln!(out, "memory.thp: {}", optional_switch(b.thp));
    let _ = writeln!(out, "memory.shared: {}", switch(b.shared));
}

/// The resolved guest NUMA nodes (vCPUs, memory, host binding) and distance matrix.
fn render_numa(out: &mut String, config: &VmConfig) {
    let numa = match config.numa.resolve(&config.smp, config.memory) {
        Ok(n) => n,
        Err(e) => {
            let _ = writeln!(out, "numa.nodes: invalid ({e})");
            return;
        }
    };
    let _ = writeln!(out, "numa.nodes: {}", numa.nodes.len());
    for n in &numa.nodes {
        let host = match &n.host {
            Some(h) => format!("{}:{}", h.policy.name(), cpulist(&h.nodes)),
            None => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "numa.node{}: cpus={} mem={} host={host}",
            n.id,
            list_or_dash(Some(&n.cpus)),
            format_size(n.mem)
        );
    }
    let rows: Vec<String> = numa
        .distances
        .iter()
        .map(|row| row.iter().map(u8::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    let distances = if rows.is_empty() {
        "-".to_string()
    } else {
        rows.join(" / ")
    };
    let _ = writeln!(out, "numa.distances: {distances}");
}

/// Where the VM's threads may run.
fn render_pinning(out: &mut String, p: &PinningConfig) {
    let _ = writeln!(out, "pinning.cpuset: {}", list_or_dash(p.cpuset.as_deref()));
    let _ = writeln!(
        out,
        "pinning.emulator: {}",
        list_or_dash(p.emulator.as_deref())
    );
    for pin in &p.vcpus {
        let _ = writeln!(out, "pinning.vcpu{}: {}", pin.vcpu, cpulist(&pin.cpus));
    }
}

/// The cgroup plan: whether, where, and what goes into the groups (only what is set).
fn render_cgroup(out: &mut String, config: &VmConfig) {
    let c = &config.cgroup;
    let scope = match &config.name {
        Some(name) => c.scope_path(Some(name), 0),
        None => format!(
            "{}/rvmm-pid<PID>.scope",
            c.parent_path().trim_end_matches('/')
        ),
    };
    let mode = match c.switch {
        CgroupSwitch::Off => "off".to_string(),
        CgroupSwitch::On => format!("on {scope}"),
        CgroupSwitch::Auto => match first_tuning_option(&config.cputune, &config.memtune, c) {
            Some((option, _)) => format!("on {scope} (required by {option})"),
            None => format!("auto {scope}"),
        },
    };
    let _ = writeln!(out, "cgroup: {mode}");
    if c.switch == CgroupSwitch::Off {
        return;
    }
    let t = &config.cputune;
    if let Some(s) = t.shares {
        let _ = writeln!(
            out,
            "cgroup.shares: {s} (v2 cpu.weight {})",
            shares_to_weight(s)
        );
    }
    let bandwidth = |b: &Bandwidth| {
        let period = b.period_us.map_or("default".to_string(), |p| p.to_string());
        let quota = match b.quota_us {
            None => "default".to_string(),
            Some(-1) => "unlimited".to_string(),
            Some(q) => q.to_string(),
        };
        format!("period={period} quota={quota}")
    };
    for (group, b) in [
        ("global", &t.global),
        ("vcpu", &t.vcpu),
        ("emulator", &t.emulator),
    ] {
        if b.is_set() {
            let _ = writeln!(out, "cgroup.{group}: {}", bandwidth(b));
        }
    }
    if let Some(l) = config.memtune.hard_limit {
        let _ = writeln!(out, "cgroup.memory-limit: {} ({l} bytes)", format_size(l));
    }
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
    out!("{}", render_config(config))?;
    if show_cpuid {
        let host = KvmHost::open()?;
        let tables = tables_for(config, &host.cpu_support, &host.identity)?;
        for w in &tables.plan.warnings {
            errln!("rvmm: warning: {w}");
        }
        for vcpu in &tables.vcpus {
            out!("{}", render_cpuid(vcpu))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
