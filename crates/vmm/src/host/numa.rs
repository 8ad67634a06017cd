//! The host's NUMA nodes from /sys/devices/system/node: each online node's CPUs, total and
//! free memory (`nodeN/meminfo`), distances (`nodeN/distance`) and hugetlb pools
//! (`nodeN/hugepages`), and their text as `numactl --hardware` prints it. A kernel without
//! NUMA support shows one node 0 holding every online CPU, with /proc/meminfo's figures (as
//! libnuma does).
//!
//! `HostNuma` is plain data; tests build fake multi-node hosts directly or read a fixture
//! tree. Binding guest memory to these nodes is `memory::numa`'s job.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::memory::{parse_meminfo, HugePools};
use super::sysfs::HostFs;
use crate::util::cpulist::{cpulist, parse_cpulist};

/// The sysfs directory of NUMA nodes.
pub const NODE_DIR: &str = "/sys/devices/system/node";

/// One host NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HostNode {
    pub id: u32,
    /// Host CPUs on this node.
    pub cpus: Vec<u32>,
    /// `Node N MemTotal`, bytes.
    pub mem_total: u64,
    /// `Node N MemFree`, bytes.
    pub mem_free: u64,
    /// Distances to every online node, in node order.
    pub distances: Vec<u32>,
    /// This node's hugetlb pools (no reservation counts: the kernel keeps those globally).
    #[serde(skip)]
    pub huge_pages: HugePools,
}

/// The host's online NUMA nodes, ascending by ID.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HostNuma {
    pub nodes: Vec<HostNode>,
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
            .read_trim(&format!("{NODE_DIR}/online"))
            .and_then(|s| parse_cpulist(&s).ok());
        let Some(online) = online else {
            // No NUMA in this kernel: one node with everything.
            let cpus = fs
                .read_trim("/sys/devices/system/cpu/online")
                .and_then(|s| parse_cpulist(&s).ok())
                .unwrap_or_default();
            let mem = parse_meminfo(&fs.read("/proc/meminfo").unwrap_or_default());
            return HostNuma {
                nodes: vec![HostNode {
                    id: 0,
                    cpus,
                    mem_total: mem.get("MemTotal").copied().unwrap_or(0),
                    mem_free: mem.get("MemFree").copied().unwrap_or(0),
                    distances: vec![10],
                    huge_pages: HugePools::default(),
                }],
            };
        };
        let nodes = online
            .iter()
            .map(|&id| {
                let dir = format!("{NODE_DIR}/node{id}");
                let cpus = fs
                    .read_trim(&format!("{dir}/cpulist"))
                    .filter(|s| !s.is_empty())
                    .and_then(|s| parse_cpulist(&s).ok())
                    .unwrap_or_default();
                let mem =
                    parse_node_meminfo(&fs.read(&format!("{dir}/meminfo")).unwrap_or_default());
                HostNode {
                    id,
                    cpus,
                    mem_total: mem.get("MemTotal").copied().unwrap_or(0),
                    mem_free: mem.get("MemFree").copied().unwrap_or(0),
                    distances: parse_distances(
                        &fs.read(&format!("{dir}/distance")).unwrap_or_default(),
                    ),
                    huge_pages: HugePools::read(fs, &format!("{dir}/hugepages")),
                }
            })
            .collect();
        HostNuma { nodes }
    }

    /// The node with this ID, if online.
    pub fn node(&self, id: u32) -> Option<&HostNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The online node IDs as a list (`0`, `0-1`, `0,2`), for messages.
    pub fn ids_text(&self) -> String {
        cpulist(&self.nodes.iter().map(|n| n.id).collect::<Vec<_>>())
    }

    /// Free pages of `page_size` summed over `nodes` (missing nodes count as none).
    pub fn free_huge_pages(&self, page_size: u64, nodes: &[u32]) -> u64 {
        nodes
            .iter()
            .filter_map(|&id| self.node(id))
            .filter_map(|n| n.huge_pages.get(page_size))
            .map(|p| p.free)
            .sum()
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
    fn node_meminfo() {
        // Was the second node meminfo parser's test: (MemTotal, MemFree) in bytes.
        let text = "Node 0 MemTotal:        6121676 kB\nNode 0 MemFree:         5484684 kB\n\
                    Node 0 MemUsed:          636992 kB\nNode 0 HugePages_Total:     0\n";
        let m = parse_node_meminfo(text);
        assert_eq!(
            (m["MemTotal"], m["MemFree"]),
            (6121676 * 1024, 5484684 * 1024)
        );
        let garbage = parse_node_meminfo("garbage\n");
        assert_eq!(
            (garbage.get("MemTotal"), garbage.get("MemFree")),
            (None, None)
        );
    }

    #[test]
    fn renders_like_numactl() {
        let numa = HostNuma {
            nodes: vec![
                HostNode {
                    id: 0,
                    cpus: vec![0, 1],
                    mem_total: 5850 << 20,
                    mem_free: (4583 << 20) + 5,
                    distances: vec![10, 21],
                    ..Default::default()
                },
                HostNode {
                    id: 1,
                    cpus: vec![],
                    mem_total: 1 << 30,
                    mem_free: 0,
                    distances: vec![21, 10],
                    ..Default::default()
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

    #[test]
    fn reads_a_fake_two_node_tree() {
        let root = std::env::temp_dir().join(format!("rvmm-numa-{}", std::process::id()));
        let fs = HostFs::at(&root);
        let dir = fs.path(NODE_DIR);
        for (id, cpus, free) in [(0, "0-1\n", "10"), (1, "2-3\n", "3")] {
            let node = dir.join(format!("node{id}"));
            let pool = node.join("hugepages/hugepages-2048kB");
            std::fs::create_dir_all(&pool).unwrap();
            std::fs::write(node.join("cpulist"), cpus).unwrap();
            std::fs::write(
                node.join("meminfo"),
                format!("Node {id} MemTotal: 1024 kB\nNode {id} MemFree: 512 kB\n"),
            )
            .unwrap();
            std::fs::write(node.join("distance"), ["10 20\n", "20 10\n"][id]).unwrap();
            std::fs::write(pool.join("nr_hugepages"), "16\n").unwrap();
            std::fs::write(pool.join("free_hugepages"), free).unwrap();
        }
        std::fs::write(dir.join("online"), "0-1\n").unwrap();
        let host = HostNuma::read(&fs);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(host.ids_text(), "0-1");
        assert_eq!(host.nodes[1].cpus, vec![2, 3]);
        assert_eq!(host.nodes[1].distances, vec![20, 10]);
        assert_eq!(
            (host.nodes[0].mem_total, host.nodes[0].mem_free),
            (1 << 20, 512 << 10)
        );
        assert_eq!(host.nodes[0].huge_pages.get(2 << 20).unwrap().total, 16);
        assert_eq!(host.free_huge_pages(2 << 20, &[0, 1]), 13);
        assert_eq!(host.free_huge_pages(2 << 20, &[1, 7]), 3);
        assert_eq!(host.free_huge_pages(1 << 30, &[0]), 0);
    }

    #[test]
    fn no_numa_reads_as_node_0() {
        let host = HostNuma::read(&HostFs::at("/nonexistent-root"));
        assert_eq!(host.ids_text(), "0");
        assert!(host.node(0).is_some() && host.node(1).is_none());
        assert_eq!(host.nodes[0].distances, [10]);
    }

    #[test]
    fn no_numa_node_0_holds_every_cpu_and_all_memory() {
        let root = std::env::temp_dir().join(format!("rvmm-nonuma-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sys/devices/system/cpu")).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("sys/devices/system/cpu/online"), "0-3\n").unwrap();
        std::fs::write(
            root.join("proc/meminfo"),
            "MemTotal: 2048 kB\nMemFree: 1024 kB\n",
        )
        .unwrap();
        let host = HostNuma::read(&HostFs::at(&root));
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(host.nodes.len(), 1);
        assert_eq!(host.nodes[0].cpus, [0, 1, 2, 3]);
        assert_eq!(
            (host.nodes[0].mem_total, host.nodes[0].mem_free),
            (2 << 20, 1 << 20)
        );
    }
}
