//! What a guest sees, derived from a probe dump: CPU identity and flags, the topology Linux
//! 6.1 would build (per vCPU and lscpu's counts), the MADT's processor slots and interrupt
//! entries, and the NUMA layout from SRAT/SLIT, as Linux would number its nodes.
//!
//! `GuestView` is plain data for `--json` (serde) and for `render`, which prints it for a
//! person. Cross-checks that do not stop decoding (vCPUs that disagree, MADT order, SRAT gaps,
//! an invalid SLIT) become warnings next to the dump's own.

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use super::acpi_parse::{
    parse_madt, parse_slit, parse_srat, AcpiParseError, Madt, Slit, Srat, SratCpu, SratMemory,
};
use super::decode::ProbeDump;
use super::flags::flags;
use super::leaves::Leaves;
use super::topology::{self, Counts, CpuTopology, Method};

/// SLIT distance of a node to itself, and the default for a remote node (ACPI 6.5 5.2.17;
/// Linux's LOCAL_DISTANCE and REMOTE_DISTANCE).
pub const LOCAL_DISTANCE: u8 = 10;
pub const REMOTE_DISTANCE: u8 = 20;

/// Why a dump cannot be viewed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ViewError {
    #[error("the probe dump has no CPUs")]
    NoCpus,
    #[error(transparent)]
    Acpi(#[from] AcpiParseError),
}

/// One vCPU as Linux would number it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VcpuView {
    /// Position in MADT order (Linux's CPU number when all are online).
    pub cpu: u32,
    pub apic_id: u32,
    pub package: u32,
    pub die: u32,
    pub core: u32,
    /// Rank of this thread inside its core, by APIC ID.
    pub thread: u32,
    /// Linux NUMA node, when the SRAT places this APIC ID.
    pub node: Option<u32>,
}

/// The topology summary: how it was derived and lscpu's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopologyView {
    /// The derivation used for CPU 0.
    pub method: Method,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The MADT and its processor slot counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MadtView {
    /// Processor entries (type 0 and 9).
    pub slots: usize,
    /// Processor entries with the Enabled flag.
    pub enabled: usize,
    #[serde(flatten)]
    pub table: Madt,
}

/// One Linux NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumaNode {
    /// Linux's node number (proximity domains numbered in order of first appearance).
    pub node: u32,
    pub proximity_domain: u32,
    /// Dumped vCPUs whose APIC ID the SRAT places here, by CPU number.
    pub cpus: Vec<u32>,
    /// Every enabled SRAT processor entry of the node (hotplug slots included), by APIC ID.
    pub apic_ids: Vec<u32>,
    /// Enabled, not hot-pluggable memory.
    pub memory_bytes: u64,
    /// Enabled, hot-pluggable memory.
    pub hotpluggable_bytes: u64,
    /// Distance to every node, in node order (SLIT, or 10/20 without a valid SLIT).
    pub distances: Vec<u8>,
}

/// The SRAT/SLIT view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumaView {
    pub cpu_affinity: Vec<SratCpu>,
    pub memory_affinity: Vec<SratMemory>,
    /// The SLIT matrix by proximity domain, when there is a SLIT.
    pub slit: Option<Vec<Vec<u8>>>,
    pub nodes: Vec<NumaNode>,
}

/// What the guest saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestView {
    pub vcpus: usize,
    pub vendor: String,
    pub brand: String,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub cpuid_level: u32,
    pub xlevel: u32,
    pub hypervisor: Option<String>,
    pub hypervisor_level: Option<u32>,
    /// CPU 0's flags in /proc/cpuinfo order and spelling.
    pub flags: Vec<&'static str>,
    pub topology: TopologyView,
    pub cpus: Vec<VcpuView>,
    pub madt: Option<MadtView>,
    pub numa: Option<NumaView>,
    pub warnings: Vec<String>,
}

impl GuestView {
    /// Derives the view; fails only when there is no CPU or an ACPI table is malformed.
    pub fn from_dump(dump: &ProbeDump) -> Result<Self, ViewError> {
        let leaves: Vec<Leaves> = dump.cpus.iter().map(Leaves::new).collect();
        let bsp = leaves.first().ok_or(ViewError::NoCpus)?;
        let mut warnings = dump.warnings.clone();
        let bsp_flags = flags(bsp);
        compare_cpus(&leaves, &bsp_flags, &mut warnings);

        let topos: Vec<CpuTopology> = leaves.iter().map(topology::derive).collect();
        let (counts, ranks) = topology::count(&topos);
        check_apic_ids(&topos, &mut warnings);

        let madt = dump
            .table("APIC")
            .map(|t| parse_madt(&t.data))
            .transpose()?;
        if let Some(m) = &madt {
            check_madt(m, &topos, &mut warnings);
        }
        let srat = dump
            .table("SRAT")
            .map(|t| parse_srat(&t.data))
            .transpose()?;
        let slit = dump
            .table("SLIT")
            .map(|t| parse_slit(&t.data))
            .transpose()?;
        let numa = numa_view(srat, slit, &topos, &mut warnings);
        let node_of = |apic: u32| -> Option<u32> {
            let numa = numa.as_ref()?;
            numa.nodes
                .iter()
                .find(|n| n.apic_ids.contains(&apic))
                .map(|n| n.node)
        };
        let cpus = topos
            .iter()
            .zip(&ranks)
            .enumerate()
            .map(|(i, (t, rank))| VcpuView {
                cpu: i as u32,
                apic_id: t.apic_id,
                package: t.package,
                die: t.die,
                core: t.core,
                thread: *rank as u32,
                node: node_of(t.apic_id),
            })
            .collect();
        let (family, model, stepping) = bsp.signature();
        Ok(GuestView {
            vcpus: dump.cpus.len(),
            vendor: bsp.vendor(),
            brand: bsp.brand(),
            family,
            model,
            stepping,
            cpuid_level: bsp.level(),
            xlevel: bsp.xlevel(),
            hypervisor: bsp.hypervisor(),
            hypervisor_level: bsp.hypervisor_level(),
            flags: bsp_flags,
            topology: TopologyView {
                method: topos[0].method,
                counts,
            },
            cpus,
            madt: madt.map(|table| MadtView {
                slots: table.processors.len(),
                enabled: table.processors.iter().filter(|p| p.enabled).count(),
                table,
            }),
            numa,
            warnings,
        })
    }
}

/// Warns when a vCPU's identity or flags differ from CPU 0's.
fn compare_cpus(leaves: &[Leaves], bsp_flags: &[&'static str], warnings: &mut Vec<String>) {
    let bsp = &leaves[0];
    for (i, cpu) in leaves.iter().enumerate().skip(1) {
        if cpu.vendor() != bsp.vendor() {
            warnings.push(format!(
                "cpu {i}: vendor \"{}\" differs from cpu 0's \"{}\"",
                cpu.vendor(),
                bsp.vendor()
            ));
        }
        if cpu.signature() != bsp.signature() {
            let (f, m, s) = cpu.signature();
            let (bf, bm, bs) = bsp.signature();
            warnings.push(format!(
                "cpu {i}: family {f} model {m} stepping {s} differs from cpu 0's family {bf} model {bm} stepping {bs}"
            ));
        }
        let own = flags(cpu);
        let extra: Vec<&str> = own
            .iter()
            .filter(|f| !bsp_flags.contains(f))
            .copied()
            .collect();
        let missing: Vec<&str> = bsp_flags
            .iter()
            .filter(|f| !own.contains(f))
            .copied()
            .collect();
        if !extra.is_empty() || !missing.is_empty() {
            let diff: Vec<String> = extra
                .iter()
                .map(|f| format!("+{f}"))
                .chain(missing.iter().map(|f| format!("-{f}")))
                .collect();
            warnings.push(format!(
                "cpu {i}: flags differ from cpu 0's ({})",
                diff.join(" ")
            ));
        }
    }
}

/// Warns about vCPUs sharing an APIC ID.
fn check_apic_ids(topos: &[CpuTopology], warnings: &mut Vec<String>) {
    let mut first_with: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, t) in topos.iter().enumerate() {
        let first = *first_with.entry(t.apic_id).or_insert(i);
        if first != i {
            warnings.push(format!(
                "cpus {first} and {i} report the same APIC ID {}",
                t.apic_id
            ));
        }
    }
}

/// Warns when the vCPUs do not match the MADT's enabled processors, in order.
fn check_madt(madt: &Madt, topos: &[CpuTopology], warnings: &mut Vec<String>) {
    let enabled: Vec<u32> = madt
        .processors
        .iter()
        .filter(|p| p.enabled)
        .map(|p| p.apic_id)
        .collect();
    if enabled.len() != topos.len() {
        warnings.push(format!(
            "the MADT enables {} processors but {} vCPUs reported",
            enabled.len(),
            topos.len()
        ));
    }
    for (i, (t, madt_id)) in topos.iter().zip(&enabled).enumerate() {
        if t.apic_id != *madt_id {
            warnings.push(format!(
                "cpu {i} has APIC ID {} but the MADT's enabled processor {i} has APIC ID {madt_id}",
                t.apic_id
            ));
        }
    }
}

/// Builds the NUMA view: Linux numbers proximity domains in the order enabled SRAT processor
/// entries (types 0 and 2, table order) and then enabled memory entries first name them.
fn numa_view(
    srat: Option<Srat>,
    slit: Option<Slit>,
    topos: &[CpuTopology],
    warnings: &mut Vec<String>,
) -> Option<NumaView> {
    if srat.is_none() && slit.is_none() {
        return None;
    }
    let srat = srat.unwrap_or(Srat {
        cpus: Vec::new(),
        memory: Vec::new(),
        other: Vec::new(),
    });
    let mut domains: Vec<u32> = Vec::new();
    let pxms = srat
        .cpus
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.proximity_domain)
        .chain(
            srat.memory
                .iter()
                .filter(|m| m.enabled)
                .map(|m| m.proximity_domain),
        );
    for pxm in pxms {
        if !domains.contains(&pxm) {
            domains.push(pxm);
        }
    }
    let slit_matrix = slit.map(|s| s.distances);
    let valid_slit = slit_matrix.as_ref().filter(|m| slit_valid(m));
    if slit_matrix.is_some() && valid_slit.is_none() {
        warnings.push(format!(
            "the SLIT is invalid (a diagonal entry is not {LOCAL_DISTANCE} or an off-diagonal one is not above it); Linux ignores it"
        ));
    }
    let distance = |from: u32, to: u32| -> u8 {
        let fallback = if from == to {
            LOCAL_DISTANCE
        } else {
            REMOTE_DISTANCE
        };
        valid_slit
            .and_then(|m| m.get(from as usize)?.get(to as usize).copied())
            .unwrap_or(fallback)
    };
    let nodes = domains
        .iter()
        .enumerate()
        .map(|(node, &pxm)| {
            let apic_ids: Vec<u32> = srat
                .cpus
                .iter()
                .filter(|c| c.enabled && c.proximity_domain == pxm)
                .map(|c| c.apic_id)
                .collect();
            let cpus = topos
                .iter()
                .enumerate()
                .filter(|(_, t)| apic_ids.contains(&t.apic_id))
                .map(|(i, _)| i as u32)
                .collect();
            let mem = |hotplug: bool| -> u64 {
                srat.memory
                    .iter()
                    .filter(|m| m.enabled && m.proximity_domain == pxm && m.hotpluggable == hotplug)
                    .map(|m| m.length)
                    .fold(0u64, u64::saturating_add)
            };
            NumaNode {
                node: node as u32,
                proximity_domain: pxm,
                cpus,
                apic_ids,
                memory_bytes: mem(false),
                hotpluggable_bytes: mem(true),
                distances: domains.iter().map(|&to| distance(pxm, to)).collect(),
            }
        })
        .collect::<Vec<_>>();
    if !nodes.is_empty() {
        for (i, t) in topos.iter().enumerate() {
            if !nodes.iter().any(|n| n.apic_ids.contains(&t.apic_id)) {
                warnings.push(format!(
                    "cpu {i} (APIC ID {}) has no enabled SRAT processor affinity entry",
                    t.apic_id
                ));
            }
        }
    }
    Some(NumaView {
        cpu_affinity: srat.cpus,
        memory_affinity: srat.memory,
        slit: slit_matrix,
        nodes,
    })
}

/// Linux's slit_valid: every diagonal entry is LOCAL_DISTANCE, every other entry above it.
fn slit_valid(matrix: &[Vec<u8>]) -> bool {
    matrix.iter().enumerate().all(|(i, row)| {
        row.iter().enumerate().all(|(j, d)| {
            if i == j {
                *d == LOCAL_DISTANCE
            } else {
                *d > LOCAL_DISTANCE
            }
        })
    })
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "oracle_tests.rs"]
mod oracle_tests;
