//! The host's NUMA nodes from /sys/devices/system/node: each online node's CPUs, total and
//! free memory (`nodeN/meminfo`) and distances (`nodeN/distance`), rendered exactly as
//! `numactl --hardware` prints them. A kernel without NUMA support shows one node 0 holding
//! every CPU, with /proc/meminfo's figures (as libnuma does).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::meminfo::parse_meminfo;
use super::sysfs::HostFs;
use crate::util::cpulist::{cpulist, parse_cpulist};

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumaNode {
    pub id: u32,
    pub cpus: Vec<u32>,
    /// `Node N MemTotal`, bytes.
    pub mem_total: u64,
    /// `Node N MemFree`, bytes.
    pub mem_free: u64,
    /// Distances to every online node, in node order.
    pub distances: Vec<u32>,
}

/// The host's NUMA layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostNuma {
    pub nodes: Vec<NumaNode>,
}

/// Parses a node's meminfo (`Node 0 MemTotal:  5990400 kB` lines) into key → bytes, the
/// `Node N` prefix dropped.
pub fn parse_node_meminfo(text: &str) -> BTreeMap<String, u64> {
    let stripped: String = text
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("Node"), Some(_), Some(rest)) => rest.trim_start().to_string(),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    parse_meminfo(&stripped)
}

/// Parses `nodeN/distance`: whitespace-separated numbers.
pub fn parse_distances(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect()
}

impl HostNuma {
    /// Reads the online nodes.
    pub fn read(fs: &HostFs) -> HostNuma {
        let online = fs
            .read_trim("/sys/devices/system/node/online")
            .and_then(|s| parse_cpulist(&s).ok());
        let Some(online) = online else {
            // No NUMA in this kernel: one node with everything.
            let cpus = fs
                .read_trim("/sys/devices/system/cpu/online")
                .and_then(|s| parse_cpulist(&s).ok())
                .unwrap_or_default();
            let mem = parse_meminfo(&fs.read("/proc/meminfo").unwrap_or_default());
            return HostNuma {
                nodes: vec![NumaNode {
                    id: 0,
                    cpus,
                    mem_total: mem.get("MemTotal").copied().unwrap_or(0),
                    mem_free: mem.get("MemFree").copied().unwrap_or(0),
                    distances: vec![10],
                }],
            };
        };
        let nodes = online
            .iter()
            .map(|&id| {
                let dir = format!("/sys/devices/system/node/node{id}");
                let cpus = fs
                    .read_trim(&format!("{dir}/cpulist"))
                    .filter(|s| !s.is_empty())
                    .and_then(|s| parse_cpulist(&s).ok())
                    .unwrap_or_default();
                let mem =
                    parse_node_meminfo(&fs.read(&format!("{dir}/meminfo")).unwrap_or_default());
                NumaNode {
                    id,
                    cpus,
                    mem_total: mem.get("MemTotal").copied().unwrap_or(0),
                    mem_free: mem.get("MemFree").copied().unwrap_or(0),
                    distances: parse_distances(
                        &fs.read(&format!("{dir}/distance")).unwrap_or_default(),
                    ),
                }
            })
            .collect();
        HostNuma { nodes }
    }

    /// The text `numactl --hardware` prints for these nodes.
    pub fn render_numactl(&self) -> String {
        let mut out = String::new();
        let ids: Vec<u32> = self.nodes.iter().map(|n| n.id).collect();
        let _ = writeln!(out, "available: {} nodes ({})", ids.len(), cpulist(&ids));
        for n in &self.nodes {
            let cpus: Vec<String> = n.cpus.iter().map(|c| c.to_string()).collect();
            let _ = writeln!(out, "node {} cpus: {}", n.id, cpus.join(" "));
            let _ = writeln!(out, "node {} size: {} MB", n.id, n.mem_total >> 20);
            let _ = writeln!(out, "node {} free: {} MB", n.id, n.mem_free >> 20);
        }
        out.push_str("node distances:\nnode ");
        for id in &ids {
            let _ = write!(out, "{id:>3} ");
        }
        out.push('\n');
        for n in &self.nodes {
            let _ = write!(out, "{:>3}: ", n.id);
            for d in &n.distances {
                let _ = write!(out, "{d:>3} ");
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_meminfo_drops_the_prefix() {
        let m = parse_node_meminfo(
            "Node 0 MemTotal:        5990400 kB\nNode 0 MemFree:         4693504 kB\nNode 0 HugePages_Total:     0\n",
        );
        assert_eq!(m["MemTotal"], 5990400 * 1024);
        assert_eq!(m["MemFree"], 4693504 * 1024);
        assert_eq!(m["HugePages_Total"], 0);
    }

    #[test]
    fn renders_like_numactl() {
        let numa = HostNuma {
            nodes: vec![
                NumaNode {
                    id: 0,
                    cpus: vec![0, 1],
                    mem_total: 5850 << 20,
                    mem_free: (4583 << 20) + 5,
                    distances: vec![10, 21],
                },
                NumaNode {
                    id: 1,
                    cpus: vec![],
                    mem_total: 1 << 30,
                    mem_free: 0,
                    distances: vec![21, 10],
                },
            ],
        };
        assert_eq!(
            numa.render_numactl(),
            "available: 2 nodes (0-1)\nnode 0 cpus: 0 1\nnode 0 size: 5850 MB\nnode 0 free: 4583 MB\n\
node 1 cpus: \nnode 1 size: 1024 MB\nnode 1 free: 0 MB\nnode distances:\nnode   0   1 \n  0:  10  21 \n  1:  21  10 \n"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(parse_distances("10 21 31\n"), [10, 21, 31]);
    }
}
