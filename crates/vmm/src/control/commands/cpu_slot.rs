//! How QEMU names a vCPU slot, shared by `query-cpus-fast`, `query-hotpluggable-cpus`,
//! `device_add` and `device_del`: its topology properties (x86's CpuInstanceProperties), its
//! object path and its CPU type; which slots hold a vCPU now ([`CpuSlots`]); and what the
//! guest's ejects and `_OST` reports do to them ([`guest_ejected`], [`guest_ost`]).
//!
//! rvmm has no QOM tree: `qom-path` mimics QEMU's. A boot vCPU is
//! `/machine/unattached/device[N]`, numbered by vCPU index (QEMU numbers unattached devices
//! in creation order, which gives the same numbers for the boot vCPUs); a vCPU plugged by
//! `device_add` is `/machine/peripheral/ID`, or without an id
//! `/machine/peripheral-anon/device[N]`, N counting every id-less device ever added.

use serde::{Deserialize, Serialize};

use crate::control::qmp::{AcpiOstInfo, Event};
use crate::control::view::VmView;
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

/// A vCPU slot that holds a vCPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluggedCpu {
    /// The slot's index (QEMU's cpu-index).
    pub index: u32,
    /// The id `device_add` gave it; boot vCPUs have none.
    pub id: Option<String>,
    pub qom_path: String,
    /// Plugged by `device_add` (not present at boot).
    pub hotplugged: bool,
}

/// The slots holding a vCPU, in the order QEMU lists CPUs (creation order: the boot vCPUs,
/// then each plugged one as it was plugged). A snapshot saves it (`snapshot::Snapshot`), so
/// that a restored VM names its vCPUs as the saved one did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuSlots {
    cpus: Vec<PluggedCpu>,
    /// Id-less devices added so far (QEMU's peripheral-anon counter, never reused).
    anon_count: u32,
}

impl CpuSlots {
    /// The boot vCPUs `0..present`.
    pub fn boot(present: u32) -> CpuSlots {
        CpuSlots {
            cpus: (0..present)
                .map(|index| PluggedCpu {
                    index,
                    id: None,
                    qom_path: qom_path(index),
                    hotplugged: false,
                })
                .collect(),
            anon_count: 0,
        }
    }

    /// The slots of a restored VM whose ids were not saved (a snapshot written before
    /// they were, a migration): the vCPUs of slots `present`, those below `boot` as boot
    /// vCPUs, the others as plugged without an id, named by their slot as boot vCPUs are.
    pub fn restored(present: &[u32], boot: u32) -> CpuSlots {
        CpuSlots {
            cpus: present
                .iter()
                .map(|&index| PluggedCpu {
                    index,
                    id: None,
                    qom_path: qom_path(index),
                    hotplugged: index >= boot,
                })
                .collect(),
            anon_count: 0,
        }
    }

    /// Checks that these are the slots `present` (a restored VM's vCPUs), each once; the
    /// error says how they differ.
    pub fn check_present(&self, present: &[u32]) -> Result<(), String> {
        let mut mine: Vec<u32> = self.cpus.iter().map(|c| c.index).collect();
        mine.sort_unstable();
        let mut theirs = present.to_vec();
        theirs.sort_unstable();
        if mine == theirs {
            Ok(())
        } else {
            Err(format!(
                "the saved vCPU slots {mine:?} are not those of the saved vCPUs {theirs:?}"
            ))
        }
    }

    /// Every plugged vCPU, in QEMU's order.
    pub fn iter(&self) -> impl Iterator<Item = &PluggedCpu> {
        self.cpus.iter()
    }

    /// The vCPU in slot `index`, if there is one.
    pub fn get(&self, index: u32) -> Option<&PluggedCpu> {
        self.cpus.iter().find(|c| c.index == index)
    }

    /// The vCPU a `device_del` id names: an absolute QOM path, or the id given at plug time
    /// (a child of /machine/peripheral), as QEMU's `find_device_state` resolves it.
    pub fn find(&self, id: &str) -> Option<&PluggedCpu> {
        if id.starts_with('/') {
            self.cpus.iter().find(|c| c.qom_path == id)
        } else {
            self.cpus.iter().find(|c| c.id.as_deref() == Some(id))
        }
    }

    /// Records a vCPU plugged into slot `index` with `id`; its QOM path.
    pub fn plug(&mut self, index: u32, id: Option<String>) -> String {
        let qom_path = match &id {
            Some(id) => format!("/machine/peripheral/{id}"),
            None => {
                let n = self.anon_count;
                self.anon_count = self.anon_count.saturating_add(1);
                format!("/machine/peripheral-anon/device[{n}]")
            }
        };
        self.cpus.retain(|c| c.index != index);
        self.cpus.push(PluggedCpu {
            index,
            id,
            qom_path: qom_path.clone(),
            hotplugged: true,
        });
        qom_path
    }

    /// Forgets the vCPU in slot `index` (the guest ejected it); what it was.
    pub fn remove(&mut self, index: u32) -> Option<PluggedCpu> {
        let at = self.cpus.iter().position(|c| c.index == index)?;
        Some(self.cpus.remove(at))
    }
}

/// The guest ejected the vCPU in `slot` (QEMU's acpi_cpu eject → unplug → unparent): its
/// thread parks, the slot is free, and DEVICE_DELETED says which device went. An eject of
/// a slot with no vCPU changes nothing.
pub(crate) fn guest_ejected(vm: &mut dyn VmView, slot: u32) {
    let Some(cpu) = vm.cpu_slots_mut().remove(slot) else {
        return;
    };
    vm.eject_vcpu(slot);
    // QEMU unrealizes the vCPU's local APIC, a child device without an id, first.
    vm.emit(Event::DeviceDeleted {
        device: None,
        path: format!("{}/lapic", cpu.qom_path),
    });
    vm.emit(Event::DeviceDeleted {
        device: cpu.id,
        path: cpu.qom_path,
    });
}

/// The guest reported `_OST` `event`/`status` for `slot` (QEMU's ACPI_DEVICE_OST, whose
/// `device` is the id of the vCPU in the slot, when it has one).
pub(crate) fn guest_ost(vm: &mut dyn VmView, slot: u32, event: u32, status: u32) {
    let device = vm.cpu_slots().get(slot).and_then(|c| c.id.clone());
    vm.emit(Event::AcpiDeviceOst(AcpiOstInfo {
        device,
        slot: slot.to_string(),
        source: event,
        status,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_through_the_snapshots_json() {
        let mut slots = CpuSlots::boot(1);
        slots.plug(2, Some("cpu2".into()));
        slots.plug(3, None);
        let back: CpuSlots = serde_json::from_value(serde_json::to_value(&slots).unwrap()).unwrap();
        assert_eq!(back, slots);
        assert_eq!(back.find("cpu2").map(|c| c.index), Some(2));
    }

    #[test]
    fn restored_slots_without_ids_name_hot_added_vcpus_by_slot() {
        let slots = CpuSlots::restored(&[0, 2], 1);
        let cpus: Vec<_> = slots.iter().cloned().collect();
        assert_eq!(
            cpus,
            [
                PluggedCpu {
                    index: 0,
                    id: None,
                    qom_path: qom_path(0),
                    hotplugged: false,
                },
                PluggedCpu {
                    index: 2,
                    id: None,
                    qom_path: qom_path(2),
                    hotplugged: true,
                },
            ]
        );
        assert_eq!(
            slots.find("/machine/unattached/device[2]").map(|c| c.index),
            Some(2)
        );
    }

    #[test]
    fn saved_slots_must_be_those_of_the_saved_vcpus() {
        let mut slots = CpuSlots::boot(1);
        slots.plug(2, Some("cpu2".into()));
        assert_eq!(slots.check_present(&[2, 0]), Ok(()));
        assert_eq!(
            slots.check_present(&[0, 1]),
            Err("the saved vCPU slots [0, 2] are not those of the saved vCPUs [0, 1]".into())
        );
        assert!(slots.check_present(&[0, 2, 2]).is_err());
    }
}
