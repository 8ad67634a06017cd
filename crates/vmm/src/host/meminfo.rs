//! Host memory figures from /proc/meminfo and the overcommit policy, for deciding whether a
//! guest of a given size can be backed at all.

use std::collections::BTreeMap;

/// The figures rvmm uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostMemory {
    pub total: u64,
    pub available: u64,
    pub swap_total: u64,
    /// vm.overcommit_memory: 0 heuristic, 1 always, 2 strict.
    pub overcommit_policy: u32,
}

/// Parses /proc/meminfo text into key → bytes.
pub fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(Ok(n)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let mult = match parts.next() {
            Some("kB") => 1024,
            _ => 1,
        };
        out.insert(key.trim().to_string(), n * mult);
    }
    out
}

impl HostMemory {
    /// Reads the running host's figures; missing files read as zeros.
    pub fn read() -> Self {
        let info = parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
        let get = |k: &str| info.get(k).copied().unwrap_or(0);
        let overcommit_policy = std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        HostMemory {
            total: get("MemTotal"),
            available: get("MemAvailable"),
            swap_total: get("SwapTotal"),
            overcommit_policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo_lines() {
        let m = parse_meminfo("MemTotal:       24576000 kB\nHugePages_Total:       4\nBad line\n");
        assert_eq!(m["MemTotal"], 24576000 * 1024);
        assert_eq!(m["HugePages_Total"], 4);
        assert_eq!(m.len(), 2);
    }
}
