//! `rvmm advise VM [--window DURATION] [--interval DURATION] [--json]`: samples
//! `__org.rvmm_stats` every interval across the window, then prints the per-vCPU and
//! whole-VM average and peak, the sizing recommendation with its reasons (figures and rule)
//! and the command that applies it, and the host side's contention if any. The rules are
//! `vmm::monitor::advise`'s; this module only samples and renders.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use vmm::control::commands::query_hotpluggable_cpus::{self, HotpluggableCpu};
use vmm::control::commands::stats::StatsQuery;
use vmm::control::QmpClient;
use vmm::monitor::advise::{advise as make_advice, Advice, HostView};
use vmm::monitor::rates::{rates, VmRates};
use vmm::monitor::sample::StatsReport;
use vmm::util::duration::parse_duration;

use crate::cli::AdviseArgs;
use crate::cmd_qmp::connect;
use crate::output::{errln, out};
use crate::vcpu_plan::{slots, VcpuCount};

/// The window and interval, checked: the window holds at least two intervals.
fn parse_times(args: &AdviseArgs) -> Result<(Duration, Duration)> {
    let window = parse_duration("--window", &args.window)?;
    let interval = parse_duration("--interval", &args.interval)?;
    if window < interval * 2 {
        bail!(
            "--window {} must hold at least two --interval {} samples (the average and the peak need two intervals or more)",
            args.window,
            args.interval
        );
    }
    Ok((window, interval))
}

/// One sample; an error here means the VM went away.
fn sample(
    client: &mut QmpClient,
    vm: &str,
    started: Instant,
    window: Duration,
) -> Result<StatsReport> {
    client.request(&StatsQuery { vcpu: None }).map_err(|e| {
        anyhow!(
            "{vm}: the VM exited while being watched ({:.1} s into the {:.1} s window): {e}",
            started.elapsed().as_secs_f64(),
            window.as_secs_f64()
        )
    })
}

/// Samples every `interval` for `window`; one [`VmRates`] per interval.
fn watch(
    client: &mut QmpClient,
    vm: &str,
    window: Duration,
    interval: Duration,
) -> Result<(Vec<VmRates>, StatsReport)> {
    let intervals = (window.as_nanos() / interval.as_nanos()) as u32;
    let started = Instant::now();
    let mut before = sample(client, vm, started, window)?;
    let first = before.clone();
    let mut series = Vec::new();
    for k in 1..=intervals {
        let due = started + interval * k;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let after = sample(client, vm, started, window)?;
        let r = rates(&before, &after).map_err(|e| {
            anyhow!("{vm}: the VM exited while being watched (its samples no longer match): {e}")
        })?;
        series.push(r);
        before = after;
    }
    Ok((series, first))
}

fn render(a: &Advice, interval: &str) -> String {
    let mut s = String::new();
    let f = &a.figures;
    let _ = writeln!(
        s,
        "VM {}: {} vCPUs (maxcpus {}) on {} host CPUs, watched {:.1} s in {} intervals of {interval}",
        a.vm, a.vcpus, a.maxcpus, a.host_cpus, f.window_s, f.intervals
    );
    let _ = writeln!(
        s,
        "{:>5} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}  affinity",
        "vCPU",
        "thread",
        "busy-avg",
        "busy-peak",
        "steal-avg",
        "steal-pk",
        "demand-avg",
        "demand-pk"
    );
    for v in &a.vcpu_figures {
        let _ = writeln!(
            s,
            "{:>5} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>10.1}  {}",
            v.vcpu,
            v.thread_id,
            v.busy.average,
            v.busy.peak,
            v.steal.average,
            v.steal.peak,
            v.demand.average,
            v.demand.peak,
            v.affinity
        );
    }
    let _ = writeln!(
        s,
        "{:>5} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>10.1}  (mean over vCPUs; 100 = all fully used)",
        "VM", "", f.busy.average, f.busy.peak, f.steal.average, f.steal.peak, f.demand.average, f.demand.peak
    );
    let z = &a.sizing;
    let change = if z.to == z.from {
        format!("{} vCPUs", z.from)
    } else {
        format!("{} → {} vCPUs", z.from, z.to)
    };
    let _ = writeln!(s, "\nrecommendation: {} ({change})", z.rule.name());
    for w in &z.why {
        let _ = writeln!(s, "  why: {w}");
    }
    if let Some(c) = &z.command {
        let _ = writeln!(s, "  command: {c}");
    }
    if let Some(r) = &z.restart {
        let _ = writeln!(s, "  restart: rvmm run {} ...", r.rvmm);
        let _ = writeln!(s, "  libvirt: {}", r.libvirt_xml);
    }
    match &a.contention {
        None => {
            let _ = writeln!(
                s,
                "\nhost: not contended (mean steal {:.1} % ≤ {} %)",
                f.steal.average,
                vmm::monitor::advise::STEAL_CONTENDED_PCT
            );
        }
        Some(c) => {
            let _ = writeln!(s, "\nhost: contended (mean steal {:.1} %)", c.steal_average);
            for w in &c.why {
                let _ = writeln!(s, "  why: {w}");
            }
            for cmd in &c.commands {
                let _ = writeln!(s, "  command: {cmd}");
            }
        }
    }
    if let Some(p) = &a.placement {
        let verdict = if p.misplaced.is_empty() {
            "vCPUs near their memory"
        } else {
            "vCPUs away from their memory"
        };
        let _ = writeln!(
            s,
            "
NUMA placement: {verdict}"
        );
        for w in &p.why {
            let _ = writeln!(s, "  why: {w}");
        }
        for cmd in &p.commands {
            let _ = writeln!(s, "  command: {cmd}");
        }
        for x in &p.libvirt_xml {
            let _ = writeln!(s, "  libvirt: {x}");
        }
    }
    s
}

pub fn advise(args: AdviseArgs) -> Result<ExitCode> {
    let (window, interval) = parse_times(&args)?;
    let mut client = connect(&args.vm)?;
    let reply: Vec<HotpluggableCpu> = client
        .call(query_hotpluggable_cpus::NAME, None)
        .context(query_hotpluggable_cpus::NAME)?;
    let count = VcpuCount::of(&slots(reply)?);
    let (series, first) = watch(&mut client, &args.vm, window, interval)?;
    if let Some(e) = &first.kvm_error {
        errln!(
            "rvmm: warning: {}: no KVM binary statistics ({e}); busy includes KVM's halt polling",
            args.vm
        );
    }
    let host = HostView {
        vm: args.vm.clone(),
        host_cpus: first.host_cpus,
        vcpus: count.current,
        maxcpus: count.maximum,
        host_nodes: first.host_nodes.clone(),
    };
    let advice = make_advice(&series, &host).map_err(|e| anyhow!("{}: {e}", args.vm))?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&advice)?;
        text.push('\n');
        out!("{text}")?;
    } else {
        out!("{}", render(&advice, &args.interval))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(window: &str, interval: &str) -> AdviseArgs {
        AdviseArgs {
            vm: "x".into(),
            window: window.into(),
            interval: interval.into(),
            json: false,
        }
    }

    #[test]
    fn window_must_hold_two_intervals() {
        let e = parse_times(&args("1s", "1s")).unwrap_err().to_string();
        assert_eq!(
            e,
            "--window 1s must hold at least two --interval 1s samples (the average and the peak need two intervals or more)"
        );
        assert!(parse_times(&args("2s", "1s")).is_ok());
        assert!(parse_times(&args("1.9s", "1s")).is_err());
    }

    #[test]
    fn bad_durations_name_the_option() {
        let e = parse_times(&args("soon", "1s")).unwrap_err().to_string();
        assert!(e.contains("--window") && e.contains("soon"), "{e}");
        let e = parse_times(&args("3s", "0")).unwrap_err().to_string();
        assert!(
            e.contains("--interval") && e.contains("greater than zero"),
            "{e}"
        );
    }
}
