//! `__org.rvmm_vcpuinfo` (libvirt's `vcpuinfo`): every vCPU slot up to maxcpus as the
//! kernel sees its thread (state, last host CPU, CPU time, affinity); slots without a vCPU
//! are `offline`, with the affinity their vCPU would get; a present vCPU of a VM with a
//! cgroup of its own also gets its group's quota and throttling. The record and its virsh
//! layout are `vcpu::info`'s.

use serde::Serialize;

use super::{ClientRequest, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::util::cpulist::cpulist;
pub use crate::vcpu::info::VcpuInfoReport;
use crate::vcpu::info::{VcpuInfo, VcpuState};

pub const NAME: &str = "__org.rvmm_vcpuinfo";

/// The command (it takes no arguments), also as a client sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VcpuInfoQuery {}

impl ClientRequest for VcpuInfoQuery {
    const NAME: &'static str = NAME;
    type Reply = VcpuInfoReport;
}

impl QmpCommand for VcpuInfoQuery {
    const NAME: &'static str = NAME;
    type Reply = VcpuInfoReport;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(VcpuInfoQuery {})
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<VcpuInfoReport, QmpError> {
        let host_cpus = vm.host_cpu_count()?;
        let present = vm.vcpus();
        let mut vcpus = Vec::new();
        for index in 0..vm.topology().max_cpus() {
            let info = match present.iter().find(|v| v.index == index) {
                Some(&v) => VcpuInfo {
                    cgroup: vm.vcpu_cgroup(index),
                    ..vm.vcpu_info(v)?
                },
                None => {
                    let affinity = match vm.configured_pin(index) {
                        Some(cpus) => cpus,
                        None => vm.main_affinity()?,
                    };
                    VcpuInfo {
                        vcpu: index,
                        thread_id: None,
                        state: VcpuState::Offline,
                        cpu: None,
                        cpu_time_ns: 0,
                        utime: 0,
                        stime: 0,
                        affinity: cpulist(&affinity),
                        cgroup: None,
                    }
                }
            };
            vcpus.push(info);
        }
        Ok(VcpuInfoReport { host_cpus, vcpus })
    }
}
