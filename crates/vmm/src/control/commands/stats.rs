//! `__org.rvmm_stats {vcpu?}`: one look at what the VM costs the host ([`StatsReport`]):
//! KVM's binary statistics of the VM and of each present vCPU, read generically from the
//! kernel's descriptors, and each thread's scheduler figures. `rvmm stats`, `rvmm top`,
//! `rvmm advise` and the metrics endpoint are built on it; QEMU's `query-stats` answers
//! from the same KVM files.
//!
//! A kernel without binary statistics still gets the thread figures: the report's
//! `kvm-error` says why the KVM part is empty.

use serde::Serialize;

use super::vcpupin::find_vcpu;
use super::{ClientRequest, QmpCommand};
use crate::control::args::{Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::{VmError, VmView};
use crate::monitor::sample::{monotonic_ns, StatsReport, VcpuSample};

pub const NAME: &str = "__org.rvmm_stats";

/// The command: every present vCPU, or only `vcpu`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<u32>,
}

impl ClientRequest for StatsQuery {
    const NAME: &'static str = NAME;
    type Reply = StatsReport;
}

impl QmpCommand for StatsQuery {
    const NAME: &'static str = NAME;
    type Reply = StatsReport;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        Ok(StatsQuery {
            vcpu: args.uint32("vcpu", Presence::Optional)?,
        })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<StatsReport, QmpError> {
        let mut present = vm.vcpus();
        present.sort_by_key(|v| v.index);
        if let Some(index) = self.vcpu {
            present = vec![find_vcpu(&present, index)?];
        }
        let mut kvm_error = None;
        let mut note = |e: VmError| {
            kvm_error.get_or_insert(e.to_string());
            Vec::new()
        };
        let time_ns = monotonic_ns();
        let vm_stats = vm.vm_kvm_stats().unwrap_or_else(&mut note);
        let mut vcpus = Vec::new();
        for v in &present {
            let info = vm.vcpu_info(*v)?;
            let kvm = vm.vcpu_kvm_stats(*v).unwrap_or_else(&mut note);
            let (guest_node, memory_host_nodes) = match vm.guest_node(v.index) {
                Some((node, host)) => (Some(node), host),
                None => (None, Vec::new()),
            };
            vcpus.push(VcpuSample {
                vcpu: v.index,
                state: info.state,
                thread: vm.thread_sample(v.thread_id)?,
                kvm,
                guest_node,
                memory_host_nodes,
                cgroup: vm.vcpu_cgroup(v.index),
            });
        }
        let mut emulator = Vec::new();
        for t in vm.emulator_threads()? {
            // A thread may end between listing and reading (a QMP client's).
            if let Ok(s) = vm.thread_sample(t.thread_id) {
                emulator.push(s);
            }
        }
        Ok(StatsReport {
            name: vm.name().map(str::to_string),
            pid: std::process::id() as i32,
            time_ns,
            host_cpus: vm.host_cpu_count()?,
            vm: vm_stats,
            kvm_error,
            vcpus,
            emulator,
            host_nodes: vm.host_nodes(),
        })
    }
}
