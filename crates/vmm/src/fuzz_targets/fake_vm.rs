//! The plain-data VM the `qmp` target runs commands against, and the synthetic host its CPU
//! model queries (and the `domain_xml` target's host-model domains) consult: two present vCPUs
//! of four slots on an eight-CPU host, whose KVM offers a Haswell-like CPU. Nothing here
//! touches a thread, /dev/kvm or /proc.

use crate::config::cputune::{SchedInfo, SchedParam};
use crate::host::vmcgroup::CgroupCpuStat;
use crate::machine::stats::KvmStat;
use crate::monitor::sample::{example_kvm_stats, HostNodeCpus, ThreadSample};
use std::collections::BTreeMap;

use crate::config::smp::SmpConfig;
use crate::control::commands::cpu_slot::CpuSlots;
use crate::control::qmp::Event;
use crate::control::view::{
    EmulatorThread, EndRequest, HostCpuView, RunState, VcpuThread, VmError, VmView,
};
use crate::cpu::cpuid::CpuidEntry;
use crate::cpu::filter::HostCpuSupport;
use crate::cpu::models::expand::HostIdentity;
use crate::cpu::models::VendorId;
use crate::cpu::topology::CpuTopology;
use crate::util::cpulist::cpulist;
use crate::vcpu::affinity::AffinityError;
use crate::vcpu::info::{VcpuInfo, VcpuState};

/// Host CPUs the fake host has.
const HOST_CPUS: u32 = 8;

fn leaf(function: u32, index: u32, regs: [u32; 4]) -> CpuidEntry {
    CpuidEntry {
        function,
        index,
        flags: 0,
        eax: regs[0],
        ebx: regs[1],
        ecx: regs[2],
        edx: regs[3],
    }
}

/// An Intel host whose KVM offers a Haswell without a few features (the CPU crate's test
/// host, which the VMM cannot use outside its own tests).
pub(super) fn host() -> (HostCpuSupport, HostIdentity) {
    let vendor = VendorId::INTEL;
    let (b, d, c) = vendor.regs();
    let support = HostCpuSupport {
        cpuid: vec![
            leaf(0, 0, [0xd, b, c, d]),
            leaf(1, 0, [0x306c3, 0, 0x16b8_2203, 0x078b_fbff]),
            leaf(7, 0, [0, 0x3a9, 0, 1 << 29]),
            leaf(0xA, 0, [0x0730_0402, 0, 0, 0x603]),
            leaf(0xD, 0, [0x7, 0x340, 0x340, 0]),
            leaf(0xD, 1, [0x1, 0, 0, 0]),
            leaf(0xD, 2, [0x100, 0x240, 0, 0]),
            leaf(0x4000_0001, 0, [0x0100_07fb, 0, 0, 0]),
            leaf(0x8000_0000, 0, [0x8000_0008, 0, 0, 0]),
            leaf(0x8000_0001, 0, [0, 0, 0x21, 0x2810_0800]),
            leaf(0x8000_0008, 0, [0x3027, 0, 0, 0]),
        ],
        msr_features: BTreeMap::from([(0x10A, 0b11)]),
        irqchip_in_kernel: true,
        irqchip_split: false,
        tsc_deadline_timer: true,
        has_msr_arch_capabilities: true,
        xcomp_guest_supp: None,
        tsx_broken: false,
    };
    let identity = HostIdentity {
        vendor,
        family: 6,
        model: 60,
        stepping: 3,
        model_id: "Fuzz CPU".to_string(),
    };
    (support, identity)
}

/// A running VM of `-smp 2,maxcpus=4` made of plain data.
pub(super) struct FakeVm {
    topology: CpuTopology,
    support: HostCpuSupport,
    identity: HostIdentity,
    state: RunState,
    vcpus: Vec<VcpuThread>,
    /// Affinity by thread id (vCPUs 100.., emulator threads 1 and 2).
    affinity: BTreeMap<i32, Vec<u32>>,
    explicit: BTreeMap<u32, Vec<u32>>,
    main: Vec<u32>,
    slots: CpuSlots,
    /// The VM's cgroup parameters, as a fresh group has them.
    sched: SchedInfo,
}

impl FakeVm {
    pub(super) fn new() -> FakeVm {
        let smp = SmpConfig::parse("2,maxcpus=4").expect("a valid -smp");
        let everything: Vec<u32> = (0..HOST_CPUS).collect();
        let vcpus: Vec<VcpuThread> = (0..smp.cpus)
            .map(|index| VcpuThread {
                index,
                thread_id: 100 + index as i32,
            })
            .collect();
        let (support, identity) = host();
        FakeVm {
            topology: smp.topology(),
            support,
            identity,
            state: RunState::Running,
            affinity: vcpus
                .iter()
                .map(|v| v.thread_id)
                .chain([1, 2])
                .map(|tid| (tid, everything.clone()))
                .collect(),
            vcpus,
            explicit: BTreeMap::new(),
            main: everything,
            slots: CpuSlots::boot(smp.cpus),
            sched: SchedInfo {
                cpu_shares: 1024,
                vcpu_period: 100_000,
                vcpu_quota: -1,
                emulator_period: 100_000,
                emulator_quota: -1,
                global_period: 100_000,
                global_quota: -1,
            },
        }
    }

    fn affinity_of(&self, tid: i32) -> Vec<u32> {
        self.affinity.get(&tid).cloned().unwrap_or_default()
    }
}

impl VmView for FakeVm {
    fn name(&self) -> Option<&str> {
        Some("fuzz")
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
        Ok(())
    }
    fn end(&mut self, _how: EndRequest) {}
    fn emit(&mut self, _event: Event) {}
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
        let thread_id = 100 + index as i32;
        self.vcpus.push(VcpuThread { index, thread_id });
        self.affinity
            .insert(thread_id, (0..HOST_CPUS).collect::<Vec<u32>>());
        Ok(())
    }
    fn request_unplug(&mut self, _index: u32) -> Result<(), VmError> {
        Ok(())
    }
    fn eject_vcpu(&mut self, index: u32) {
        self.vcpus.retain(|v| v.index != index);
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
            affinity: cpulist(&self.affinity_of(vcpu.thread_id)),
            cgroup: None,
        })
    }
    fn configured_pin(&self, _index: u32) -> Option<Vec<u32>> {
        None
    }
    fn explicit_pins(&self) -> Vec<(u32, Vec<u32>)> {
        self.explicit.iter().map(|(v, c)| (*v, c.clone())).collect()
    }
    fn check_host_cpus(&self, what: &str, cpus: &[u32]) -> Result<Vec<String>, VmError> {
        let absent: Vec<u32> = cpus.iter().copied().filter(|&c| c >= HOST_CPUS).collect();
        if absent.is_empty() {
            return Ok(Vec::new());
        }
        Err(AffinityError::NoSuchCpu {
            what: what.to_string(),
            cpus: format!("CPU {} does", cpulist(&absent)),
            possible: format!("0-{}", HOST_CPUS - 1),
        }
        .into())
    }
    fn host_cpu_count(&self) -> Result<u32, VmError> {
        Ok(HOST_CPUS)
    }
    fn affinity(&self, vcpu: VcpuThread) -> Result<Vec<u32>, VmError> {
        Ok(self.affinity_of(vcpu.thread_id))
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
        Ok([(1, "rvmm"), (2, "qmp-accept")]
            .into_iter()
            .map(|(tid, name)| EmulatorThread {
                thread_id: tid,
                name: name.to_string(),
                affinity: self.affinity_of(tid),
            })
            .collect())
    }
    fn pin_emulator(&mut self, cpus: &[u32]) -> Result<(), VmError> {
        for tid in [1, 2] {
            self.affinity.insert(tid, cpus.to_vec());
        }
        self.main = cpus.to_vec();
        Ok(())
    }
    fn vm_kvm_stats(&self) -> Result<Vec<KvmStat>, VmError> {
        Ok(example_kvm_stats(0))
    }
    fn vcpu_kvm_stats(&self, vcpu: VcpuThread) -> Result<Vec<KvmStat>, VmError> {
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
        Ok(self.sched)
    }

    fn set_schedinfo(&mut self, changes: &[SchedParam]) -> Result<SchedInfo, VmError> {
        for change in changes {
            let s = &mut self.sched;
            match *change {
                SchedParam::CpuShares(v) => s.cpu_shares = v,
                SchedParam::VcpuPeriod(v) => s.vcpu_period = v,
                SchedParam::VcpuQuota(v) => s.vcpu_quota = v,
                SchedParam::EmulatorPeriod(v) => s.emulator_period = v,
                SchedParam::EmulatorQuota(v) => s.emulator_quota = v,
                SchedParam::GlobalPeriod(v) => s.global_period = v,
                SchedParam::GlobalQuota(v) => s.global_quota = v,
            }
        }
        Ok(self.sched)
    }

    /// Never writes files (the path comes from fuzz input): always refused.
    fn snapshot(
        &mut self,
        _dir: &std::path::Path,
        _stopped: bool,
    ) -> Result<crate::control::commands::snapshot::SnapshotReply, VmError> {
        Err(VmError::Snapshot(
            "the fuzzing VM takes no snapshots".into(),
        ))
    }

    fn vcpu_cgroup(&self, index: u32) -> Option<CgroupCpuStat> {
        // vCPU 0 has a group with figures, the others none, so both paths run.
        (index == 0).then_some(CgroupCpuStat {
            period_us: self.sched.vcpu_period,
            quota_us: self.sched.vcpu_quota,
            nr_periods: 10,
            nr_throttled: 3,
            throttled_ns: 1_500_000,
            usage_ns: Some(7_000_000),
        })
    }

    fn balloon(&self) -> Option<crate::control::view::BalloonStatus> {
        // A 128 MiB guest whose driver holds 16 MiB.
        Some(crate::control::view::BalloonStatus {
            ram: 128 << 20,
            target: 0,
            actual: 4096,
        })
    }

    fn set_balloon_target(&mut self, _pages: u32) {}
}
