//! `rvmm setmem VM SIZE` and `rvmm dommemstat VM` (virsh's commands for a running domain's
//! balloon): `setmem` sends QMP `balloon` with SIZE in bytes (a bare number is KiB, as
//! virsh's scaled integers; suffixes B, K/KiB, M/MiB, G/GiB, T/TiB are binary, KB, MB, GB,
//! TB decimal); the guest's driver inflates or deflates in its own time. `dommemstat`
//! prints, as virsh does in KiB, `actual` (query-balloon) and `rss` (the VMM process's
//! VmRSS, read through a vCPU thread's /proc entry).

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use vmm::control::commands::query_balloon::BalloonInfo;

use crate::cli::{DommemstatArgs, SetmemArgs};
use crate::cmd_qmp::connect;
use crate::output::outln;

/// SIZE in bytes (virsh's scaled integer, default unit KiB).
pub fn parse_setmem_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let rule = || {
        anyhow!(
            "setmem: SIZE '{text}' is not a size (a whole number with an optional unit: \
             B, K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, GB, TB; a bare number is KiB)"
        )
    };
    if num.is_empty() {
        return Err(rule());
    }
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "k" | "kib" => 1 << 10,
        "b" => 1,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(rule()),
    };
    let n: u64 = num.parse().map_err(|_| rule())?;
    let bytes = n
        .checked_mul(mult)
        .filter(|b| i64::try_from(*b).is_ok())
        .ok_or_else(|| anyhow!("setmem: SIZE '{text}' is too large"))?;
    if bytes == 0 {
        bail!("setmem: SIZE must be above 0 (the guest cannot give up all its memory)");
    }
    Ok(bytes)
}

pub fn setmem(args: SetmemArgs) -> Result<ExitCode> {
    let bytes = parse_setmem_size(&args.size)?;
    connect(&args.vm)?
        .execute("balloon", Some(json!({ "value": bytes })))
        .context("setmem")?;
    Ok(ExitCode::SUCCESS)
}

/// VmRSS in KiB of the process a thread `tid` belongs to.
fn rss_kib(tid: i64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn dommemstat(args: DommemstatArgs) -> Result<ExitCode> {
    let mut client = connect(&args.vm)?;
    let info: BalloonInfo = client.call("query-balloon", None).context("dommemstat")?;
    outln!("actual {}", info.actual >> 10)?;
    let cpus = client
        .execute("query-cpus-fast", None)
        .context("dommemstat")?;
    if let Some(rss) = cpus
        .get(0)
        .and_then(|c| c["thread-id"].as_i64())
        .and_then(rss_kib)
    {
        outln!("rss {rss}")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_virsh() {
        assert_eq!(parse_setmem_size("1048576").unwrap(), 1 << 30);
        assert_eq!(parse_setmem_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_setmem_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_setmem_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_setmem_size("4096b").unwrap(), 4096);
        for bad in ["", "M", "1.5G", "12X", "-1"] {
            assert!(
                parse_setmem_size(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("is not a size"),
                "{bad}"
            );
        }
        assert!(parse_setmem_size("0")
            .unwrap_err()
            .to_string()
            .contains("above 0"));
        assert!(parse_setmem_size("99999999999T")
            .unwrap_err()
            .to_string()
            .contains("too large"));
    }
}
