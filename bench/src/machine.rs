//! The machine a run happens on: CPU, memory, kernel, which KVM, load, the git commit and the
//! date, read from /proc, /sys and git.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::results::Meta;

fn first_match(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)
            .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
    })
}

/// The first `model name` in a /proc/cpuinfo text.
pub fn cpu_model(cpuinfo: &str) -> String {
    first_match(cpuinfo, "model name").unwrap_or_else(|| "unknown".into())
}

/// MemTotal in MiB from a /proc/meminfo text.
pub fn mem_total_mib(meminfo: &str) -> u64 {
    first_match(meminfo, "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib >> 10)
}

/// The KVM vendor modules loaded (`kvm_intel`, `kvm_amd`, `kvm_pvm`).
pub fn kvm_module() -> String {
    let found: Vec<&str> = ["kvm_intel", "kvm_amd", "kvm_pvm"]
        .into_iter()
        .filter(|m| Path::new("/sys/module").join(m).exists())
        .collect();
    if found.is_empty() {
        "none".into()
    } else {
        found.join(", ")
    }
}

/// The first three fields of /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `abc1234` or `abc1234-dirty` for the repository at `repo`.
pub fn git_commit(repo: &Path) -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = run(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    match run(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => format!("{head}-dirty"),
        _ => head,
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The current UTC time as `2025-01-31T12:34:56Z`.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Everything about the machine that does not need the VMMs.
pub fn describe(repo: &Path) -> Meta {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Meta {
        cpu_model: cpu_model(&read("/proc/cpuinfo")),
        host_cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        host_mem_mib: mem_total_mib(&read("/proc/meminfo")),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        kvm_module: kvm_module(),
        git_commit: git_commit(repo),
        date: now_utc(),
        loadavg_start: loadavg(),
        ..Meta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(cpu_model(cpuinfo), "Intel(R) Xeon(R) CPU @ 2.20GHz");
        assert_eq!(cpu_model(""), "unknown");
        assert_eq!(
            mem_total_mib("MemTotal:       24684000 kB\nMemFree: 1 kB\n"),
            24105
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
