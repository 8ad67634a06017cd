//! `query-hotpluggable-cpus`: every vCPU slot up to maxcpus, highest first as QEMU lists
//! them; slots holding a vCPU carry its `qom-path` (QEMU 7.2's HotpluggableCPU shape), so a
//! plug or an eject shows here at once.

use serde::{Deserialize, Serialize};

use super::cpu_slot::{type_name, CpuInstanceProperties, CpuSlots};
use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::cpu::topology::CpuTopology;

pub const NAME: &str = "query-hotpluggable-cpus";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryHotpluggableCpus;

/// QEMU's HotpluggableCPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HotpluggableCpu {
    pub props: CpuInstanceProperties,
    pub vcpus_count: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub qom_path: Option<String>,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// The slots of `topology` when `slots` hold vCPUs, for CPUs of `model`.
pub(crate) fn hotpluggable_cpus(
    topology: &CpuTopology,
    slots: &CpuSlots,
    model: &str,
) -> Vec<HotpluggableCpu> {
    (0..topology.max_cpus())
        .rev()
        .map(|index| HotpluggableCpu {
            props: CpuInstanceProperties::of(topology, index),
            vcpus_count: 1,
            qom_path: slots.get(index).map(|c| c.qom_path.clone()),
            type_name: type_name(model),
        })
        .collect()
}

impl QmpCommand for QueryHotpluggableCpus {
    const NAME: &'static str = NAME;
    type Reply = Vec<HotpluggableCpu>;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryHotpluggableCpus)
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Self::Reply, QmpError> {
        Ok(hotpluggable_cpus(
            vm.topology(),
            vm.cpu_slots(),
            vm.cpu_model(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::smp::SmpConfig;
    use serde_json::json;

    #[test]
    fn hotpluggable_as_qemu() {
        let t = SmpConfig::parse("2,sockets=2,cores=2,maxcpus=4")
            .unwrap()
            .topology();
        let v = serde_json::to_value(hotpluggable_cpus(&t, &CpuSlots::boot(2), "qemu64")).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 4);
        assert_eq!(
            v[0],
            json!({"props": {"core-id": 1, "thread-id": 0, "socket-id": 1}, "vcpus-count": 1, "type": "qemu64-x86_64-cpu"})
        );
        assert_eq!(
            v[3],
            json!({"props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "vcpus-count": 1,
                   "qom-path": "/machine/unattached/device[0]", "type": "qemu64-x86_64-cpu"})
        );
    }
}
