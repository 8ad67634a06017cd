//! `rvmm stats VM [--json] [--vcpu N]`: one `__org.rvmm_stats` look at a running VM, as
//! `virsh domstats --vcpu` lays it out (vmm::monitor::render says which keys are libvirt's
//! and which rvmm's), or the reply itself as JSON. `--perf` is cmd_perf.rs's.

use std::process::ExitCode;

use anyhow::{Context, Result};
use vmm::control::commands::query_hotpluggable_cpus::{self, HotpluggableCpu};
use vmm::control::commands::stats::StatsQuery;
use vmm::monitor::render::{render_domstats, VcpuCounts};

use crate::cli::StatsArgs;
use crate::cmd_qmp::connect;
use crate::output::{out, outln};

pub fn stats(args: StatsArgs) -> Result<ExitCode> {
    if args.perf {
        return crate::cmd_perf::perf(&args);
    }
    let mut client = connect(&args.vm)?;
    let report = client
        .request(&StatsQuery { vcpu: args.vcpu })
        .context("stats")?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let slots: Vec<HotpluggableCpu> = client
        .call(query_hotpluggable_cpus::NAME, None)
        .context("stats")?;
    let counts = VcpuCounts {
        current: slots
            .iter()
            .filter(|s| s.qom_path.is_some())
            .map(|s| s.vcpus_count)
            .sum(),
        maximum: slots.iter().map(|s| s.vcpus_count).sum(),
    };
    out!("{}", render_domstats(&report, counts, &args.vm))?;
    Ok(ExitCode::SUCCESS)
}
