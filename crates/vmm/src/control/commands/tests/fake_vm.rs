//! A VM made of plain data, for running commands without KVM: it records what commands do
//! (events, pins, the end) and answers queries from its fields.

use crate::config::cputune::{SchedInfo, SchedParam};
use crate::host::vmcgroup::CgroupCpuStat;
use crate::machine::stats::KvmStat;
use crate::monitor::sample::{example_kvm_stats, HostNodeCpus, ThreadSample};
use std::collections::BTreeMap;

use crate::config::smp::SmpConfig;
use crate::control::commands::cpu_slot::CpuSlots;
use crate::control::qmp::Event;
use crate::control::view::{
    BalloonStatus, EmulatorThread, EndRequest, HostCpuView, RunState, VcpuThread, VmError, VmView,
};
use crate::cpu::filter::HostCpuSupport;
use crate::cpu::models::expand::HostIdentity;
use crate::cpu::support::testing;
use crate::cpu::topology::CpuTopology;
use crate::util::cpulist::cpulist;
use crate::vcpu::affinity::AffinityError;
use crate::vcpu::info::{VcpuInfo, VcpuState};

pub(super) struct FakeVm {
    pub name: Option<String>,
    pub topology: CpuTopology,
    pub support: HostCpuSupport,
    pub identity: HostIdentity,
    pub state: RunState,
    pub events: Vec<Event>,
    pub ended: Option<EndRequest>,
    pub power_presses: u32,
    pub vcpus: Vec<VcpuThread>,
    /// Affinity by thread id.
    pub affinity: BTreeMap<i32, Vec<u32>>,
    pub configured: BTreeMap<u32, Vec<u32>>,
    pub explicit: BTreeMap<u32, Vec<u32>>,
    pub host_cpus: u32,
    pub emulator: Vec<(i32, String)>,
    pub main: Vec<u32>,
    pub slots: CpuSlots,
    /// Slots plugged, unplug requests and ejects, in order.
    pub plugged: Vec<u32>,
    pub unplug_requests: Vec<u32>,
    pub ejected: Vec<u32>,
    /// When set, plugging fails with this text.
    pub plug_error: Option<String>,
    /// When set, reading KVM statistics fails with this text (a kernel without them).
    pub stats_error: Option<String>,
    /// The VM's cgroup parameters; `None`: the VM has no cgroup.
    pub sched: Option<SchedInfo>,
    /// When set, the kernel refuses every schedinfo change with this text.
    pub sched_error: Option<String>,
    /// Each vCPU group's bandwidth and throttling, by slot.
    pub cgroups: BTreeMap<u32, CgroupCpuStat>,
    pub balloon: Option<BalloonStatus>,
}

/// libvirt's defaults for a fresh group: shares 1024, the kernel's period, no quota.
pub(super) fn default_sched() -> SchedInfo {
    SchedInfo {
        cpu_shares: 1024,
        vcpu_period: 100_000,
        vcpu_quota: -1,
        emulator_period: 100_000,
        emulator_quota: -1,
        global_period: 100_000,
        global_quota: -1,
    }
}

/// `changes` applied to `info` in order, as the VM's cgroup would take them.
pub(super) fn apply_sched(mut info: SchedInfo, changes: &[SchedParam]) -> SchedInfo {
    for change in changes {
        match *change {
            SchedParam::CpuShares(v) => info.cpu_shares = v,
            SchedParam::VcpuPeriod(v) => info.vcpu_period = v,
            SchedParam::VcpuQuota(v) => info.vcpu_quota = v,
            SchedParam::EmulatorPeriod(v) => info.emulator_period = v,
            SchedParam::EmulatorQuota(v) => info.emulator_quota = v,
            SchedParam::GlobalPeriod(v) => info.global_period = v,
            SchedParam::GlobalQuota(v) => info.global_quota = v,
        }
    }
    info
}

impl FakeVm {
    /// A running VM of `smp` whose present vCPUs run on threads 100, 101, ... on every CPU
    /// of an 8-CPU host.
    pub fn new(smp: &str) -> FakeVm {
        let smp = SmpConfig::parse(smp).unwrap();
        let everything: Vec<u32> = (0..8).collect();
        let vcpus: Vec<VcpuThread> = (0..smp.cpus)
            .map(|index| VcpuThread {
                index,
                thread_id: 100 + index as i32,
            })
            .collect();
        FakeVm {
            name: None,
            topology: smp.topology(),
            support: testing::host(),
            identity: super::super::query_cpu_definitions::tests::identity(),
            state: RunState::Running,
            events: Vec::new(),
            ended: None,
            power_presses: 0,
            affinity: vcpus
                .iter()
                .map(|v| (v.thread_id, everything.clone()))
                .chain([(1, everything.clone()), (2, everything.clone())])
                .collect(),
            vcpus,
            configured: BTreeMap::new(),
            explicit: BTreeMap::new(),
            host_cpus: 8,
            emulator: vec![(1, "rvmm".into()), (2, "qmp-accept".into())],
            main: everything,
            slots: CpuSlots::boot(smp.cpus),
            plugged: Vec::new(),
            unplug_requests: Vec::new(),
            ejected: Vec::new(),
            plug_error: None,
            stats_error: None,
            sched: Some(default_sched()),
            sched_error: None,
            cgroups: BTreeMap::new(),
            balloon: None,
        }
    }
}

impl VmView for FakeVm {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn topology(&self) -> &CpuTopology {
        &self.topology
    }
    fn cpu_model(&self) -> &str {
        "qemu64"
    }
    fn host_cpu(&self) -> HostCpuView<'_> {
        HostCpuView {
            support: &self.support,
            identity: &self.identity,
        }
    }
    fn run_state(&self) -> RunState {
        self.state
    }
    fn pause(&mut self) -> Result<(), VmError> {
        self.state = RunState::Paused;
        Ok(())
    }
    fn resume(&mut self) {
        self.state = RunState::Running;
    }
    fn press_power_button(&mut self) -> Result<(), VmError> {
        self.power_presses += 1;
        Ok(())
    }
    fn end(&mut self, how: EndRequest) {
        self.ended = Some(how);
    }
    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }
    fn vcpus(&self) -> Vec<VcpuThread> {
        self.vcpus.clone()
    }
    fn cpu_slots(&self) -> &CpuSlots {
        &self.slots
    }
    fn cpu_slots_mut(&mut self) -> &mut CpuSlots {
        &mut self.slots
    }
    fn plug_vcpu(&mut self, index: u32) -> Result<(), VmError> {
        if let Some(e) = &self.plug_error {
            return Err(VmError::Hotplug(e.clone()));
        }
        let thread_id = 100 + index as i32;
        self.vcpus.push(VcpuThread { index, thread_id });
        self.affinity
            .insert(thread_id, (0..self.host_cpus).collect());
        self.plugged.push(index);
        Ok(())
    }
    fn request_unplug(&mut self, index: u32) -> Result<(), VmError> {
        self.unplug_requests.push(index);
        Ok(())
    }
    fn eject_vcpu(&mut self, index: u32) {
        self.vcpus.retain(|v| v.index != index);
        self.ejected.push(index);
    }
    fn vcpu_info(&self, vcpu: VcpuThread) -> Result<VcpuInfo, VmError> {
        Ok(VcpuInfo {
            vcpu: vcpu.index,
            thread_id: Some(vcpu.thread_id),
            state: match self.state {
                RunState::Paused | RunState::Inmigrate | RunState::Postmigrate => VcpuState::Paused,
                RunState::Running => VcpuState::Running,
            },
            cpu: Some(0),
            cpu_time_ns: 0,
            utime: 0,
            stime: 0,
            affinity: cpulist(&self.affinity[&vcpu.thread_id]),
            cgroup: None,
        })
    }
    fn configured_pin(&self, index: u32) -> Option<Vec<u32>> {
        self.configured.get(&index).cloned()
    }
    fn explicit_pins(&self) -> Vec<(u32, Vec<u32>)> {
        self.explicit.iter().map(|(v, c)| (*v, c.clone())).collect()
    }
    fn check_host_cpus(&self, what: &str, cpus: &[u32]) -> Result<Vec<String>, VmError> {
        let absent: Vec<u32> = cpus
            .iter()
            .copied()
            .filter(|&c| c >= self.host_cpus)
            .collect();
        if absent.is_empty() {
            return Ok(Vec::new());
        }
        Err(AffinityError::NoSuchCpu {
            what: what.to_string(),
            cpus: format!("CPU {} does", cpulist(&absent)),
            possible: format!("0-{}", self.host_cpus - 1),
        }
        .into())
    }
    fn host_cpu_count(&self) -> Result<u32, VmError> {
        Ok(self.host_cpus)
    }
    fn affinity(&self, vcpu: VcpuThread) -> Result<Vec<u32>, VmError> {
        Ok(self.affinity[&vcpu.thread_id].clone())
    }
    fn main_affinity(&self) -> Result<Vec<u32>, VmError> {
        Ok(self.main.clone())
    }
    fn pin_vcpu(&mut self, vcpu: VcpuThread, cpus: &[u32]) -> Result<(), VmError> {
        self.affinity.insert(vcpu.thread_id, cpus.to_vec());
        self.explicit.insert(vcpu.index, cpus.to_vec());
        Ok(())
    }
    fn emulator_threads(&self) -> Result<Vec<EmulatorThread>, VmError> {
        Ok(self
            .emulator
            .iter()
            .map(|(tid, name)| EmulatorThread {
                thread_id: *tid,
                name: name.clone(),
                affinity: self.affinity[tid].clone(),
            })
            .collect())
    }
    fn pin_emulator(&mut self, cpus: &[u32]) -> Result<(), VmError> {
        for (tid, _) in &self.emulator {
            self.affinity.insert(*tid, cpus.to_vec());
        }
        self.main = cpus.to_vec();
        Ok(())
    }
    fn vm_kvm_stats(&self) -> Result<Vec<KvmStat>, VmError> {
        if let Some(e) = &self.stats_error {
            return Err(VmError::Stats(e.clone()));
        }
        Ok(example_kvm_stats(0))
    }
    fn vcpu_kvm_stats(&self, vcpu: VcpuThread) -> Result<Vec<KvmStat>, VmError> {
        if let Some(e) = &self.stats_error {
            return Err(VmError::Stats(e.clone()));
        }
        Ok(example_kvm_stats(100 * (vcpu.index as u64 + 1)))
    }
    fn thread_sample(&self, thread_id: i32) -> Result<ThreadSample, VmError> {
        Ok(ThreadSample {
            thread_id,
            affinity: cpulist(self.affinity.get(&thread_id).map_or(&[][..], |a| a)),
            ..ThreadSample::default()
        })
    }

    fn guest_node(&self, _index: u32) -> Option<(u32, Vec<u32>)> {
        None
    }

    fn host_nodes(&self) -> Vec<HostNodeCpus> {
        vec![HostNodeCpus {
            node: 0,
            cpus: "0-3".into(),
        }]
    }

    fn schedinfo(&self) -> Result<SchedInfo, VmError> {
        self.sched.ok_or(VmError::NoCgroup)
    }

    fn set_schedinfo(&mut self, changes: &[SchedParam]) -> Result<SchedInfo, VmError> {
        let info = self.sched.ok_or(VmError::NoCgroup)?;
        if let Some(e) = &self.sched_error {
            return Err(VmError::Cgroup(e.clone()));
        }
        let after = apply_sched(info, changes);
        self.sched = Some(after);
        Ok(after)
    }

    fn vcpu_cgroup(&self, index: u32) -> Option<CgroupCpuStat> {
        self.cgroups.get(&index).copied()
    }

    fn snapshot(
        &mut self,
        dir: &std::path::Path,
        stopped: bool,
    ) -> Result<crate::control::commands::snapshot::SnapshotReply, VmError> {
        if dir.as_os_str().is_empty() {
            return Err(VmError::Snapshot("no directory".into()));
        }
        Ok(crate::control::commands::snapshot::SnapshotReply {
            path: dir.display().to_string(),
            vcpus: 2,
            memory_bytes: 0,
            data_bytes: 0,
            milliseconds: 0,
            stopped,
        })
    }

    fn balloon(&self) -> Option<BalloonStatus> {
        self.balloon
    }
    fn set_balloon_target(&mut self, pages: u32) {
        if let Some(b) = &mut self.balloon {
            b.target = pages;
        }
    }
}
