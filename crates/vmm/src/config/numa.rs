//! The `--numa` front end: guest NUMA nodes, their distances and their host binding, with
//! QEMU 7.2's rules (hw/core/numa.c `parse_numa_node`, `parse_numa_distance`,
//! `numa_complete_configuration`, and `machine_numa_finish_cpu_init` in hw/core/machine.c).
//!
//! Grammar, one option per `--numa`:
//! - `node[,nodeid=N][,cpus=LIST]...[,mem=SIZE][,host-nodes=LIST]...[,policy=P]`: a guest
//!   node. `nodeid` defaults to the number of nodes given before it; `cpus=` (vCPU indices,
//!   `A`, `A-B` or any cpulist) may repeat and adds up; `mem` is the node's RAM (a bare
//!   number is MiB, as QEMU). `host-nodes` (may repeat) and `policy=bind|preferred|
//!   interleave` bind the node's memory to host NUMA nodes; `host-nodes` alone means `bind`
//!   (libvirt's `strict`).
//! - `dist,src=A,dst=B,val=D`: the distance from node A to node B (10..255).
//!
//! Rules kept from QEMU: node IDs below 128, unique and without gaps; every vCPU index below
//! maxcpus and in at most one node; node memory adds up to `-m`; distances at least 10, a
//! node's distance to itself exactly 10; a distance given one way only applies both ways,
//! and when one pair differs by direction every pair needs both. vCPUs no `cpus=` names go
//! where QEMU puts them: by package (`socket % nodes`) when no node lists vCPUs, else to
//! node 0 with QEMU's warning. Unlike QEMU, all `dist` options are checked after all `node`
//! options, so their order on the command line does not matter. Two rules are rvmm's own:
//! node memory is a multiple of 4 KiB (the host binds it page by page), and `memdev=` is
//! refused (backing options go on `-m`). Host nodes are checked against the host when the
//! VM is built (`memory::numa`).

use thiserror::Error;

use super::size::{parse_size, DefaultUnit, SizeError};
use super::smp::SmpConfig;
use crate::util::cpulist::{cpulist, parse_cpulist, CpuSet};

/// Most guest NUMA nodes (QEMU's MAX_NODES).
pub const MAX_NODES: u32 = 128;
/// The distance from a node to itself, and the smallest distance (QEMU's
/// NUMA_DISTANCE_MIN; ACPI 6.x §5.2.17 normalizes local distance to 10).
pub const NUMA_DISTANCE_MIN: u8 = 10;
/// Granularity of node memory: host binding (mbind) works on whole pages.
const NODE_MEM_ALIGN: u64 = 4096;

/// How a guest node's memory is bound to host nodes (`set_mempolicy(2)` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPolicy {
    /// Only from the listed host nodes (MPOL_BIND).
    Bind,
    /// From the listed host nodes when they have free memory, else elsewhere
    /// (MPOL_PREFERRED, or MPOL_PREFERRED_MANY for several nodes).
    Preferred,
    /// Page by page round-robin over the listed host nodes (MPOL_INTERLEAVE).
    Interleave,
}

impl HostPolicy {
    /// The `policy=` spelling.
    pub fn name(self) -> &'static str {
        match self {
            HostPolicy::Bind => "bind",
            HostPolicy::Preferred => "preferred",
            HostPolicy::Interleave => "interleave",
        }
    }
}

/// One `--numa node,...` as given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumaNodeSpec {
    /// The option text, for error messages.
    pub text: String,
    pub nodeid: Option<u32>,
    /// vCPU indices from every `cpus=`, in order, each once.
    pub cpus: Vec<u32>,
    pub mem: Option<u64>,
    /// Host nodes from every `host-nodes=`, sorted and distinct.
    pub host_nodes: Vec<u32>,
    pub policy: Option<HostPolicy>,
}

/// One `--numa dist,...` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaDistSpec {
    pub text: String,
    pub src: u32,
    pub dst: u32,
    pub val: u32,
}

/// Every `--numa` option, as given (empty: no guest NUMA).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NumaConfig {
    pub nodes: Vec<NumaNodeSpec>,
    pub distances: Vec<NumaDistSpec>,
}

/// A guest node's binding to host nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBinding {
    /// Host node IDs, sorted and distinct, never empty.
    pub nodes: Vec<u32>,
    pub policy: HostPolicy,
}

/// One resolved guest node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNode {
    pub id: u32,
    /// RAM in bytes (0 for a memory-less node).
    pub mem: u64,
    /// The vCPU slots in this node, ascending.
    pub cpus: Vec<u32>,
    pub host: Option<HostBinding>,
}

/// The resolved guest NUMA layout. Node memory is laid out back to back in node order
/// across guest RAM (the order QEMU's SRAT describes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestNuma {
    /// Nodes by ID (index == id); empty when the guest has no NUMA.
    pub nodes: Vec<GuestNode>,
    /// The node of every vCPU slot up to maxcpus.
    pub cpu_nodes: Vec<u32>,
    /// The full distance matrix, `distances[src][dst]`; empty without `--numa dist`
    /// (then QEMU builds no SLIT).
    pub distances: Vec<Vec<u8>>,
    /// Things QEMU accepts with a warning.
    pub warnings: Vec<String>,
}

impl GuestNuma {
    /// `(node id, memory size)` in node order, as `boot::acpi::qemu_memory_affinity` takes.
    pub fn node_sizes(&self) -> Vec<(u32, u64)> {
        self.nodes.iter().map(|n| (n.id, n.mem)).collect()
    }

    /// Where each node's memory starts as an offset into guest RAM (RAM counted without
    /// the MMIO gap): `(node, offset, length)`.
    pub fn node_offsets(&self) -> Vec<(u32, u64, u64)> {
        let mut offset = 0;
        self.nodes
            .iter()
            .map(|n| {
                let at = offset;
                offset += n.mem;
                (n.id, at, n.mem)
            })
            .collect()
    }

    /// The SLIT matrix row-major, as `AcpiPlatform::distances` takes it.
    pub fn flat_distances(&self) -> Vec<u8> {
        self.distances.iter().flatten().copied().collect()
    }
}

/// Errors from `--numa`: each names the option text (or `--numa` for rules across
/// options), the bad value and the rule.
#[derive(Debug, PartialEq, Eq, Error)]
pub enum NumaError {
    #[error("--numa {text}: unknown type '{kind}' (expected node or dist)")]
    UnknownType { text: String, kind: String },
    #[error("--numa {text}: unknown key '{key}' for {kind} (expected {expected})")]
    UnknownKey {
        text: String,
        key: String,
        kind: &'static str,
        expected: &'static str,
    },
    #[error("--numa {text}: '{item}' is not key=value")]
    BareValue { text: String, item: String },
    #[error("--numa {text}: {key}='{value}' is not a number")]
    NotANumber {
        text: String,
        key: &'static str,
        value: String,
    },
    #[error("--numa {text}: {key}='{value}': {reason}")]
    BadList {
        text: String,
        key: &'static str,
        value: String,
        /// The cpulist parser's message.
        reason: String,
    },
    #[error("--numa {text}: {source}")]
    BadSize { text: String, source: SizeError },
    #[error("--numa {text}: policy='{value}' is not bind, preferred or interleave")]
    BadPolicy { text: String, value: String },
    #[error(
        "--numa {text}: memdev= is not supported; give the node's RAM as mem=SIZE and the \
         backing options on -m"
    )]
    Memdev { text: String },
    #[error("--numa {text}: dist needs src=, dst= and val= ('{key}' is missing)")]
    MissingDistKey { text: String, key: &'static str },
    #[error("--numa {text}: val='{value}' is not a distance (an integer from 10 to 255)")]
    BadDistanceValue { text: String, value: String },
    #[error("--numa {text}: policy={policy} needs host-nodes=LIST")]
    PolicyWithoutHostNodes { text: String, policy: &'static str },
    #[error(
        "--numa {text}: max number of NUMA nodes reached: nodeid {nodeid} (node IDs must be \
         below {MAX_NODES})"
    )]
    TooManyNodes { text: String, nodeid: u32 },
    #[error("--numa {text}: duplicate NUMA nodeid: {nodeid}")]
    DuplicateNode { text: String, nodeid: u32 },
    #[error("--numa {text}: CPU index ({cpu}) should be smaller than maxcpus ({maxcpus})")]
    CpuOutOfRange {
        text: String,
        cpu: u32,
        maxcpus: u32,
    },
    #[error("--numa {text}: vCPU {cpu} is already assigned to node {node}")]
    CpuInTwoNodes { text: String, cpu: u32, node: u32 },
    #[error(
        "--numa {text}: mem={mem} bytes is not a multiple of 4 KiB (host binding works on \
         whole pages)"
    )]
    NodeMemUnaligned { text: String, mem: u64 },
    #[error(
        "--numa {text}: total memory for NUMA nodes so far ({total} bytes) plus mem={mem} \
         bytes exceeds 2^64 bytes (it must equal RAM size -m)"
    )]
    MemoryTotalOverflow { text: String, total: u64, mem: u64 },
    #[error("--numa: node ID missing: {0} (node IDs must run from 0 without gaps)")]
    NodeMissing(u32),
    #[error(
        "--numa: total memory for NUMA nodes ({total:#x}) should equal RAM size -m ({ram:#x})"
    )]
    MemoryMismatch { total: u64, ram: u64 },
    #[error("--numa {text}: parameter '{param}' expects an integer between 0 and {max}", max = MAX_NODES - 1)]
    DistNodeTooLarge { text: String, param: &'static str },
    #[error(
        "--numa {text}: source/destination NUMA node is missing; declare it with --numa \
         node,nodeid=N"
    )]
    DistNodeMissing { text: String },
    #[error("--numa {text}: NUMA distance ({val}) is invalid, it shouldn't be less than {NUMA_DISTANCE_MIN}")]
    DistanceTooSmall { text: String, val: u32 },
    #[error("--numa {text}: local distance of node {node} should be {NUMA_DISTANCE_MIN}")]
    BadLocalDistance { text: String, node: u32 },
    #[error(
        "--numa: the distance between node {src} and {dst} is missing; give at least one \
         distance value between each pair of nodes"
    )]
    DistanceMissing { src: u32, dst: u32 },
    #[error(
        "--numa: at least one asymmetrical pair of distances is given; give distances for \
         both directions of all node pairs"
    )]
    AsymmetricIncomplete,
}

fn parse_u32(text: &str, key: &'static str, value: &str) -> Result<u32, NumaError> {
    value.parse().map_err(|_| NumaError::NotANumber {
        text: text.to_string(),
        key,
        value: value.to_string(),
    })
}

fn parse_list(text: &str, key: &'static str, value: &str) -> Result<Vec<u32>, NumaError> {
    parse_cpulist(value).map_err(|e| NumaError::BadList {
        text: text.to_string(),
        key,
        value: value.to_string(),
        reason: e.to_string(),
    })
}

fn parse_node(text: &str, items: &[&str]) -> Result<NumaNodeSpec, NumaError> {
    let mut node = NumaNodeSpec {
        text: text.to_string(),
        ..Default::default()
    };
    let mut seen = CpuSet::new();
    for &item in items {
        let Some((key, value)) = item.split_once('=') else {
            return Err(NumaError::BareValue {
                text: text.to_string(),
                item: item.to_string(),
            });
        };
        match key {
            "nodeid" => node.nodeid = Some(parse_u32(text, "nodeid", value)?),
            "cpus" => {
                // Kept distinct (in the order given), so repeating `cpus=` cannot grow the
                // list past one entry per CPU number.
                for cpu in parse_list(text, "cpus", value)? {
                    if !seen.contains(cpu) {
                        seen.insert(cpu);
                        node.cpus.push(cpu);
                    }
                }
            }
            "mem" => {
                let mem = parse_size("mem", value, DefaultUnit::Mebibytes).map_err(|source| {
                    NumaError::BadSize {
                        text: text.to_string(),
                        source,
                    }
                })?;
                node.mem = Some(mem);
            }
            "host-nodes" => {
                node.host_nodes
                    .extend(parse_list(text, "host-nodes", value)?);
                node.host_nodes.sort_unstable();
                node.host_nodes.dedup();
            }
            "policy" => {
                node.policy = Some(match value {
                    "bind" => HostPolicy::Bind,
                    "preferred" => HostPolicy::Preferred,
                    "interleave" => HostPolicy::Interleave,
                    _ => {
                        return Err(NumaError::BadPolicy {
                            text: text.to_string(),
                            value: value.to_string(),
                        })
                    }
                })
            }
            "memdev" => {
                return Err(NumaError::Memdev {
                    text: text.to_string(),
                })
            }
            _ => {
                return Err(NumaError::UnknownKey {
                    text: text.to_string(),
                    key: key.to_string(),
                    kind: "node",
                    expected: "nodeid, cpus, mem, host-nodes, policy",
                })
            }
        }
    }
    if let (Some(policy), true) = (node.policy, node.host_nodes.is_empty()) {
        return Err(NumaError::PolicyWithoutHostNodes {
            text: text.to_string(),
            policy: policy.name(),
        });
    }
    Ok(node)
}

fn parse_dist(text: &str, items: &[&str]) -> Result<NumaDistSpec, NumaError> {
    let (mut src, mut dst, mut val) = (None, None, None);
    for &item in items {
        let Some((key, value)) = item.split_once('=') else {
            return Err(NumaError::BareValue {
                text: text.to_string(),
                item: item.to_string(),
            });
        };
        match key {
            "src" => src = Some(parse_u32(text, "src", value)?),
            "dst" => dst = Some(parse_u32(text, "dst", value)?),
            "val" => {
                let v: u8 = value.parse().map_err(|_| NumaError::BadDistanceValue {
                    text: text.to_string(),
                    value: value.to_string(),
                })?;
                val = Some(u32::from(v));
            }
            _ => {
                return Err(NumaError::UnknownKey {
                    text: text.to_string(),
                    key: key.to_string(),
                    kind: "dist",
                    expected: "src, dst, val",
                })
            }
        }
    }
    let missing = |key| NumaError::MissingDistKey {
        text: text.to_string(),
        key,
    };
    Ok(NumaDistSpec {
        text: text.to_string(),
        src: src.ok_or_else(|| missing("src"))?,
        dst: dst.ok_or_else(|| missing("dst"))?,
        val: val.ok_or_else(|| missing("val"))?,
    })
}

impl NumaConfig {
    /// Parses every `--numa` option text, in order.
    pub fn parse<S: AsRef<str>>(options: &[S]) -> Result<NumaConfig, NumaError> {
        let mut config = NumaConfig::default();
        for text in options {
            config.add(text.as_ref())?;
        }
        Ok(config)
    }

    /// Parses one `--numa` option and adds it.
    pub fn add(&mut self, text: &str) -> Result<(), NumaError> {
        let items: Vec<&str> = text.split(',').filter(|i| !i.is_empty()).collect();
        let (kind, rest) = match items.split_first() {
            Some((first, rest)) => (first.strip_prefix("type=").unwrap_or(first), rest),
            None => ("", &[][..]),
        };
        match kind {
            "node" => self.nodes.push(parse_node(text, rest)?),
            "dist" => self.distances.push(parse_dist(text, rest)?),
            _ => {
                return Err(NumaError::UnknownType {
                    text: text.to_string(),
                    kind: kind.to_string(),
                })
            }
        }
        Ok(())
    }

    /// True when no `--numa` was given.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.distances.is_empty()
    }

    /// Applies QEMU's rules for a guest with `smp` vCPUs and `memory` bytes of RAM.
    pub fn resolve(&self, smp: &SmpConfig, memory: u64) -> Result<GuestNuma, NumaError> {
        if self.is_empty() {
            return Ok(GuestNuma::default());
        }
        // Nodes, in command-line order (QEMU's parse_numa_node).
        let mut slots: Vec<Option<&NumaNodeSpec>> = vec![None; MAX_NODES as usize];
        // `smp` comes from `SmpOptions::resolve`, which bounds maxcpus by MAX_VCPUS.
        let mut cpu_nodes: Vec<Option<u32>> = vec![None; smp.maxcpus as usize];
        let mut max_id = 0u32;
        for (count, spec) in self.nodes.iter().enumerate() {
            let text = || spec.text.clone();
            let id = spec.nodeid.unwrap_or(count as u32);
            if id >= MAX_NODES {
                return Err(NumaError::TooManyNodes {
                    text: text(),
                    nodeid: id,
                });
            }
            if slots[id as usize].is_some() {
                return Err(NumaError::DuplicateNode {
                    text: text(),
                    nodeid: id,
                });
            }
            for &cpu in &spec.cpus {
                let Some(slot) = cpu_nodes.get_mut(cpu as usize) else {
                    return Err(NumaError::CpuOutOfRange {
                        text: text(),
                        cpu,
                        maxcpus: smp.maxcpus,
                    });
                };
                match *slot {
                    Some(node) if node != id => {
                        return Err(NumaError::CpuInTwoNodes {
                            text: text(),
                            cpu,
                            node,
                        })
                    }
                    _ => *slot = Some(id),
                }
            }
            let mem = spec.mem.unwrap_or(0);
            if mem % NODE_MEM_ALIGN != 0 {
                return Err(NumaError::NodeMemUnaligned { text: text(), mem });
            }
            slots[id as usize] = Some(spec);
            max_id = max_id.max(id + 1);
        }
        // numa_complete_configuration: no gaps (largest missing ID first), memory adds up.
        if let Some(missing) = (0..max_id).rev().find(|&i| slots[i as usize].is_none()) {
            return Err(NumaError::NodeMissing(missing));
        }
        let specs: Vec<&NumaNodeSpec> = slots
            .iter()
            .take(max_id as usize)
            .flatten()
            .copied()
            .collect();
        let mut total: u64 = 0;
        for spec in &specs {
            let mem = spec.mem.unwrap_or(0);
            total = total
                .checked_add(mem)
                .ok_or_else(|| NumaError::MemoryTotalOverflow {
                    text: spec.text.clone(),
                    total,
                    mem,
                })?;
        }
        if total != memory {
            return Err(NumaError::MemoryMismatch { total, ram: memory });
        }
        let distances = resolve_distances(&self.distances, &specs)?;

        // machine_numa_finish_cpu_init: default placement, or node 0 with a warning.
        let mut warnings = Vec::new();
        let topology = smp.topology();
        let default_mapping = cpu_nodes.iter().all(Option::is_none);
        let unlisted: Vec<u32> = (0..smp.maxcpus)
            .filter(|&i| cpu_nodes[i as usize].is_none())
            .collect();
        if !default_mapping && !unlisted.is_empty() {
            warnings.push(format!(
                "--numa: vCPU(s) {} are in no NUMA node and go to node 0; list every vCPU up to \
                 maxcpus in some node's cpus= (QEMU warns the same: partial NUMA mappings are \
                 obsolete)",
                cpulist(&unlisted)
            ));
        }
        let cpu_nodes: Vec<u32> = cpu_nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n {
                Some(n) => *n,
                None if default_mapping => topology.default_numa_node(i as u32, max_id),
                None => 0,
            })
            .collect();
        let nodes = specs
            .iter()
            .enumerate()
            .map(|(id, spec)| GuestNode {
                id: id as u32,
                mem: spec.mem.unwrap_or(0),
                cpus: (0..smp.maxcpus)
                    .filter(|&c| cpu_nodes[c as usize] == id as u32)
                    .collect(),
                host: (!spec.host_nodes.is_empty()).then(|| HostBinding {
                    nodes: spec.host_nodes.clone(),
                    policy: spec.policy.unwrap_or(HostPolicy::Bind),
                }),
            })
            .collect();
        Ok(GuestNuma {
            nodes,
            cpu_nodes,
            distances,
            warnings,
        })
    }
}

/// `parse_numa_distance`, `validate_numa_distance` and `complete_init_numa_distance`.
// The matrix is walked by (src, dst) index pairs on purpose: each step reads both m[s][d]
// and its transpose, which iterators cannot express more clearly.
#[allow(clippy::needless_range_loop)]
fn resolve_distances(
    dists: &[NumaDistSpec],
    nodes: &[&NumaNodeSpec],
) -> Result<Vec<Vec<u8>>, NumaError> {
    if dists.is_empty() {
        return Ok(Vec::new());
    }
    let n = nodes.len();
    let mut m = vec![vec![0u8; n]; n];
    for d in dists {
        let text = || d.text.clone();
        for (param, v) in [("src", d.src), ("dst", d.dst)] {
            if v >= MAX_NODES {
                return Err(NumaError::DistNodeTooLarge {
                    text: text(),
                    param,
                });
            }
        }
        if d.src as usize >= n || d.dst as usize >= n {
            return Err(NumaError::DistNodeMissing { text: text() });
        }
        if d.val < u32::from(NUMA_DISTANCE_MIN) {
            return Err(NumaError::DistanceTooSmall {
                text: text(),
                val: d.val,
            });
        }
        if d.src == d.dst && d.val != u32::from(NUMA_DISTANCE_MIN) {
            return Err(NumaError::BadLocalDistance {
                text: text(),
                node: d.src,
            });
        }
        m[d.src as usize][d.dst as usize] = d.val as u8;
    }
    let mut asymmetric = false;
    for src in 0..n {
        for dst in src..n {
            let (a, b) = (m[src][dst], m[dst][src]);
            if a == 0 && b == 0 && src != dst {
                return Err(NumaError::DistanceMissing {
                    src: src as u32,
                    dst: dst as u32,
                });
            }
            asymmetric |= a != 0 && b != 0 && a != b;
        }
    }
    if asymmetric && (0..n).any(|s| (0..n).any(|d| s != d && m[s][d] == 0)) {
        return Err(NumaError::AsymmetricIncomplete);
    }
    for src in 0..n {
        for dst in 0..n {
            if m[src][dst] == 0 {
                m[src][dst] = if src == dst {
                    NUMA_DISTANCE_MIN
                } else {
                    m[dst][src]
                };
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests;
