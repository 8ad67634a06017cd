//! The host's NUMA nodes from /sys/devices/system/node: which nodes are online, their CPUs,
//! memory and per-node hugetlb pools.
//!
//! `HostNuma` is plain data; tests build fake multi-node hosts directly or from a fake sysfs
//! tree. A kernel without NUMA (no node directory) reads as one node 0 holding everything.
//! Binding guest memory to these nodes is `memory::numa`'s job.

use std::path::Path;

use super::hugepages::{read_pools, HugePools};
use crate::util::cpulist::{cpulist, parse_cpulist};

/// The sysfs directory of NUMA nodes, relative to the file system root.
pub const NODE_DIR: &str = "sys/devices/system/node";

/// One host NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostNode {
    pub id: u32,
    /// Host CPUs on this node.
    pub cpus: Vec<u32>,
    /// `Node N MemTotal` and `MemFree`, in bytes.
    pub mem_total: u64,
    pub mem_free: u64,
    /// This node's hugetlb pools (no reservation counts: the kernel keeps those globally).
    pub huge_pages: HugePools,
}

/// The host's online NUMA nodes, ascending by ID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostNuma {
    pub nodes: Vec<HostNode>,
}

/// `Node 0 MemTotal:  6121676 kB` lines → (MemTotal, MemFree) in bytes.
pub fn parse_node_meminfo(text: &str) -> (u64, u64) {
    let mut total = 0;
    let mut free = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        // "Node", the node number, the key, the value, the unit.
        let (Some(_), Some(_), Some(key), Some(value)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(v) = value.parse::<u64>() else {
            continue;
        };
        let bytes = if words.next() == Some("kB") {
            v * 1024
        } else {
            v
        };
        match key {
            "MemTotal:" => total = bytes,
            "MemFree:" => free = bytes,
            _ => {}
        }
    }
    (total, free)
}

impl HostNuma {
    /// Reads the running host's nodes.
    pub fn read() -> Self {
        Self::read_from(Path::new("/"))
    }

    /// Reads the nodes from a file system root (`/`, or a fake tree in tests).
    pub fn read_from(root: &Path) -> Self {
        let dir = root.join(NODE_DIR);
        let online = std::fs::read_to_string(dir.join("online")).ok();
        let Some(ids) = online.and_then(|t| parse_cpulist(t.trim()).ok()) else {
            return HostNuma {
                nodes: vec![HostNode {
                    id: 0,
                    ..Default::default()
                }],
            };
        };
        let nodes = ids
            .into_iter()
            .map(|id| {
                let node = dir.join(format!("node{id}"));
                let cpus = std::fs::read_to_string(node.join("cpulist"))
                    .ok()
                    .and_then(|t| parse_cpulist(t.trim()).ok())
                    .unwrap_or_default();
                let (mem_total, mem_free) = parse_node_meminfo(
                    &std::fs::read_to_string(node.join("meminfo")).unwrap_or_default(),
                );
                HostNode {
                    id,
                    cpus,
                    mem_total,
                    mem_free,
                    huge_pages: read_pools(&node.join("hugepages")),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_meminfo() {
        let text = "Node 0 MemTotal:        6121676 kB\nNode 0 MemFree:         5484684 kB\n\
                    Node 0 MemUsed:          636992 kB\nNode 0 HugePages_Total:     0\n";
        assert_eq!(parse_node_meminfo(text), (6121676 * 1024, 5484684 * 1024));
        assert_eq!(parse_node_meminfo("garbage\n"), (0, 0));
    }

    #[test]
    fn reads_a_fake_two_node_tree() {
        let root = std::env::temp_dir().join(format!("rvmm-numa-{}", std::process::id()));
        let dir = root.join(NODE_DIR);
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
            std::fs::write(pool.join("nr_hugepages"), "16\n").unwrap();
            std::fs::write(pool.join("free_hugepages"), free).unwrap();
        }
        std::fs::write(dir.join("online"), "0-1\n").unwrap();
        let host = HostNuma::read_from(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(host.ids_text(), "0-1");
        assert_eq!(host.nodes[1].cpus, vec![2, 3]);
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
        let host = HostNuma::read_from(Path::new("/nonexistent-root"));
        assert_eq!(host.ids_text(), "0");
        assert!(host.node(0).is_some() && host.node(1).is_none());
    }
}
