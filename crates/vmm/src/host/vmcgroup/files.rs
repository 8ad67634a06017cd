//! The text of the cgroup files the VM's groups are tuned through: `cpu.stat`, v2's
//! `cpu.max` ("QUOTA PERIOD" or "max PERIOD"), v1's `cfs_quota_us` (-1 for no limit),
//! `/proc/self/cgroup` and the backend's choice. Pure functions, tested without a cgroup
//! file system.

use super::CgroupCpuStat;

/// The counters of a `cpu.stat` text. v1 reports `throttled_time` in nanoseconds, v2
/// `throttled_usec` (and `usage_usec`) in microseconds; both become nanoseconds.
pub fn parse_cpu_stat(text: &str) -> CgroupCpuStat {
    let mut stat = CgroupCpuStat::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(key), Some(value)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(v) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "nr_periods" => stat.nr_periods = v,
            "nr_throttled" => stat.nr_throttled = v,
            "throttled_time" => stat.throttled_ns = v,
            "throttled_usec" => stat.throttled_ns = v.saturating_mul(1000),
            "usage_usec" => stat.usage_ns = Some(v.saturating_mul(1000)),
            _ => {}
        }
    }
    stat
}

/// v2 `cpu.max`: `(quota, period)`, quota -1 for "max".
pub fn parse_cpu_max(text: &str) -> Option<(i64, u64)> {
    let mut f = text.split_whitespace();
    let quota = match f.next()? {
        "max" => -1,
        q => q.parse().ok()?,
    };
    let period = f.next()?.parse().ok()?;
    f.next().is_none().then_some((quota, period))
}

/// v2 `cpu.max` for a quota (-1: no limit) and a period.
pub fn format_cpu_max(quota: i64, period: u64) -> String {
    if quota < 0 {
        format!("max {period}")
    } else {
        format!("{quota} {period}")
    }
}

/// v2 `cpu.weight` back to v1 shares (the inverse of `shares_to_weight`, rounded).
pub fn weight_to_shares(weight: u64) -> u64 {
    (weight * 1024 + 50) / 100
}

/// This process's cgroup per v1 controller and its v2 cgroup, from `/proc/self/cgroup`
/// (`ID:CONTROLLERS:PATH` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    /// `(controller, path)` for every v1 controller.
    pub v1: Vec<(String, String)>,
    /// The `0::PATH` line.
    pub v2: Option<String>,
}

impl Origins {
    pub fn parse(text: &str) -> Origins {
        let mut o = Origins::default();
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if id == "0" && ctrls.is_empty() {
                o.v2 = Some(path.to_string());
            } else {
                for c in ctrls.split(',') {
                    o.v1.push((c.to_string(), path.to_string()));
                }
            }
        }
        o
    }

    /// The cgroup of v1 controller `c` (`/` when the line is missing).
    pub fn v1_path(&self, c: &str) -> String {
        self.v1
            .iter()
            .find(|(name, _)| name == c)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| "/".into())
    }
}

/// Whether a v2 `cgroup.controllers` text lists `name`.
pub fn lists_controller(text: &str, name: &str) -> bool {
    text.split_whitespace().any(|c| c == name)
}

/// The pid of an `rvmm-pid<N>.scope` group's name.
pub fn pid_scope(name: &str) -> Option<u32> {
    name.strip_prefix("rvmm-pid")?
        .strip_suffix(".scope")?
        .parse()
        .ok()
}

/// The index of a `vcpuN` child's name.
pub fn vcpu_child(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("vcpu")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_stat_v1_and_v2() {
        let v1 = parse_cpu_stat("nr_periods 10\nnr_throttled 4\nthrottled_time 123456\n");
        assert_eq!(
            (v1.nr_periods, v1.nr_throttled, v1.throttled_ns, v1.usage_ns),
            (10, 4, 123_456, None)
        );
        let v2 = parse_cpu_stat(
            "usage_usec 5000\nuser_usec 1\nsystem_usec 2\nnr_periods 7\nnr_throttled 3\n\
             throttled_usec 250\nnr_bursts 0\nburst_usec 0\n",
        );
        assert_eq!(
            (v2.nr_periods, v2.nr_throttled, v2.throttled_ns, v2.usage_ns),
            (7, 3, 250_000, Some(5_000_000))
        );
        assert_eq!(
            parse_cpu_stat("garbage\nnr_periods x\n"),
            CgroupCpuStat::default()
        );
    }

    #[test]
    fn cpu_max_both_ways() {
        assert_eq!(parse_cpu_max("max 100000\n"), Some((-1, 100_000)));
        assert_eq!(parse_cpu_max("25000 100000"), Some((25_000, 100_000)));
        assert_eq!(parse_cpu_max("25000"), None);
        assert_eq!(parse_cpu_max("25000 100000 1"), None);
        assert_eq!(parse_cpu_max("lots 100000"), None);
        assert_eq!(format_cpu_max(-1, 100_000), "max 100000");
        assert_eq!(format_cpu_max(25_000, 50_000), "25000 50000");
    }

    #[test]
    fn shares_and_weight() {
        use crate::config::cputune::shares_to_weight;
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(weight_to_shares(100), 1024);
        assert_eq!(weight_to_shares(shares_to_weight(2048)), 2048);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn origins_of_a_hybrid_host() {
        let o = Origins::parse(
            "9:name=systemd:/\n4:memory:/process_api/ab\n2:cpu,cpuacct:/user.slice\n0::/x\n",
        );
        assert_eq!(o.v1_path("memory"), "/process_api/ab");
        assert_eq!(o.v1_path("cpuacct"), "/user.slice");
        assert_eq!(o.v1_path("cpuset"), "/");
        assert_eq!(o.v2.as_deref(), Some("/x"));
    }

    #[test]
    fn names() {
        assert_eq!(pid_scope("rvmm-pid42.scope"), Some(42));
        assert_eq!(pid_scope("rvmm-web.scope"), None);
        assert_eq!(vcpu_child("vcpu12"), Some(12));
        assert_eq!(vcpu_child("vcpu"), None);
        assert_eq!(vcpu_child("vcpu1x"), None);
        assert!(lists_controller("cpuset cpu io memory", "cpu"));
        assert!(!lists_controller("cpuset io", "cpu"));
    }
}
