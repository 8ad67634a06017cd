//! `rvmm schedinfo VM [--set KEY=VALUE ...] [--json]` (virsh schedinfo for a running
//! domain): the VM's cgroup shares and CFS quotas through `__org.rvmm_schedinfo`, printed
//! in virsh's layout (`Scheduler      : posix`, then one `name: value` line per
//! parameter). rvmm has no I/O threads, so virsh's `iothread_period`/`iothread_quota`
//! lines are not printed.
//!
//! Every `--set` is checked here with the server's own parser before the VM is asked, so
//! a bad one is one error naming it and nothing is changed; the server checks again.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use vmm::config::cputune::SchedParam;
use vmm::control::commands::schedinfo::{parse_sched_param, render_schedinfo, SchedInfoRequest};

use crate::cli::SchedinfoArgs;
use crate::cmd_qmp::connect;
use crate::output::{out, outln};

/// Each `--set KEY=VALUE`, checked; the first bad one is the error.
fn parse_sets(sets: &[String]) -> Result<Vec<SchedParam>> {
    sets.iter()
        .map(|s| {
            let (key, value) = s.split_once('=').ok_or_else(|| {
                anyhow!("schedinfo: --set {s}: expected KEY=VALUE (e.g. vcpu_quota=25000)")
            })?;
            parse_sched_param(key.trim(), value).map_err(|e| anyhow!("schedinfo: --set {e}"))
        })
        .collect()
}

pub fn schedinfo(args: SchedinfoArgs) -> Result<ExitCode> {
    let changes = parse_sets(&args.set)?;
    let reply = connect(&args.vm)?
        .request(&SchedInfoRequest::setting(&changes))
        .context("schedinfo")?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&reply)?)?;
    } else {
        out!("{}", render_schedinfo(&reply))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(list: &[&str]) -> Result<Vec<SchedParam>> {
        parse_sets(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn sets_are_checked_before_anything_is_sent() {
        assert_eq!(
            sets(&["vcpu_quota=25000", "cpu_shares=512", "vcpu_quota=-1"]).unwrap(),
            [
                SchedParam::VcpuQuota(25_000),
                SchedParam::CpuShares(512),
                SchedParam::VcpuQuota(-1)
            ]
        );
        assert!(sets(&[]).unwrap().is_empty());
        assert_eq!(
            sets(&["cpu_shares=512", "vcpu_quota=0"])
                .unwrap_err()
                .to_string(),
            "schedinfo: --set vcpu_quota: 0 is not a valid quota (a CFS quota is -1 (no limit) \
             or 1000 to 17592186044415 microseconds; 0 and other negative values are refused)"
        );
        assert_eq!(
            sets(&["vcpu_quota"]).unwrap_err().to_string(),
            "schedinfo: --set vcpu_quota: expected KEY=VALUE (e.g. vcpu_quota=25000)"
        );
        assert_eq!(
            sets(&["iothread_quota=-1"]).unwrap_err().to_string(),
            "schedinfo: --set iothread_quota: rvmm has no iothreads (its I/O runs in the \
             emulator threads: use emulator_period/emulator_quota)"
        );
        assert_eq!(
            sets(&["vcpu_period=fast"]).unwrap_err().to_string(),
            "schedinfo: --set vcpu_period: 'fast' is not a number (a CFS period is 1000 to 1000000 \
             microseconds (the kernel's cpu.cfs_period_us range))"
        );
    }
}
