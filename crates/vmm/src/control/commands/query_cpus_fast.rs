//! `query-cpus-fast`: one entry per present vCPU with its thread and topology properties,
//! in QEMU 7.2's CpuInfoFast shape (checked against a live QEMU 7.2), in QEMU's order (boot
//! vCPUs, then plugged ones as they were plugged); a plugged vCPU's `qom-path` is the one
//! `device_add` gave it.

use serde::{Deserialize, Serialize};

use super::cpu_slot::{qom_path, CpuInstanceProperties, CpuSlots, TARGET};
use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::{VcpuThread, VmView};
use crate::cpu::topology::CpuTopology;

pub const NAME: &str = "query-cpus-fast";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryCpusFast;

/// QEMU's CpuInfoFast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CpuInfoFast {
    pub cpu_index: u32,
    pub qom_path: String,
    pub thread_id: i32,
    pub props: CpuInstanceProperties,
    pub target: String,
}

/// The entries for `vcpus`, named as `slots` names them.
pub(crate) fn cpus_fast(
    topology: &CpuTopology,
    vcpus: &[VcpuThread],
    slots: &CpuSlots,
) -> Vec<CpuInfoFast> {
    vcpus
        .iter()
        .map(|v| CpuInfoFast {
            cpu_index: v.index,
            qom_path: slots
                .get(v.index)
                .map_or_else(|| qom_path(v.index), |c| c.qom_path.clone()),
            thread_id: v.thread_id,
            props: CpuInstanceProperties::of(topology, v.index),
            target: TARGET.to_string(),
        })
        .collect()
}

impl QmpCommand for QueryCpusFast {
    const NAME: &'static str = NAME;
    type Reply = Vec<CpuInfoFast>;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryCpusFast)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Self::Reply, QmpError> {
        Ok(cpus_fast(vm.topology(), &vm.vcpus(), vm.cpu_slots()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::smp::SmpConfig;
    use serde_json::json;

    fn topo(spec: &str) -> CpuTopology {
        SmpConfig::parse(spec).unwrap().topology()
    }

    #[test]
    fn cpus_fast_as_qemu() {
        // QEMU 7.2, -smp 2,sockets=1,dies=2,cores=2,maxcpus=4: vCPU 1 is core 1 of die 0.
        let t = topo("2,sockets=1,dies=2,cores=2,threads=1,maxcpus=4");
        let vcpus = [VcpuThread {
            index: 1,
            thread_id: 4242,
        }];
        assert_eq!(
            serde_json::to_value(cpus_fast(&t, &vcpus, &CpuSlots::boot(2))).unwrap(),
            json!([{"cpu-index": 1, "qom-path": "/machine/unattached/device[1]", "thread-id": 4242,
                    "props": {"core-id": 1, "thread-id": 0, "die-id": 0, "socket-id": 0}, "target": "x86_64"}])
        );
        // One die per socket: no die-id, as QEMU.
        let t = topo("2,sockets=2,cores=2,maxcpus=4");
        assert_eq!(
            serde_json::to_value(CpuInstanceProperties::of(&t, 3)).unwrap(),
            json!({"socket-id": 1, "core-id": 1, "thread-id": 0})
        );
    }
}
