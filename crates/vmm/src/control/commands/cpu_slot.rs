//! How QEMU names a vCPU slot, shared by `query-cpus-fast` and `query-hotpluggable-cpus`:
//! its topology properties (x86's CpuInstanceProperties), its object path and its CPU type.
//!
//! rvmm has no QOM tree: `qom-path` mimics QEMU's `/machine/unattached/device[N]`, numbered
//! by vCPU index (QEMU numbers unattached devices in creation order, which gives the same
//! numbers for the boot vCPUs).

use serde::{Deserialize, Serialize};

use crate::cpu::topology::CpuTopology;

/// QMP's target name for this architecture.
pub const TARGET: &str = "x86_64";

/// QEMU's object path for vCPU `index`.
pub fn qom_path(index: u32) -> String {
    format!("/machine/unattached/device[{index}]")
}

/// The QOM type of a CPU of `model` (`Haswell-x86_64-cpu`).
pub fn type_name(model: &str) -> String {
    format!("{model}-{TARGET}-cpu")
}

/// Where a vCPU slot sits in the topology. `die-id` is there only when a socket has more
/// than one die, as QEMU 7.2 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuInstanceProperties {
    pub socket_id: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub die_id: Option<u32>,
    pub core_id: u32,
    pub thread_id: u32,
}

impl CpuInstanceProperties {
    /// The properties of vCPU slot `index`.
    pub fn of(topology: &CpuTopology, index: u32) -> Self {
        let ids = topology.ids(index);
        CpuInstanceProperties {
            socket_id: ids.pkg,
            die_id: (topology.dies() > 1).then_some(ids.die),
            core_id: ids.core,
            thread_id: ids.smt,
        }
    }
}
