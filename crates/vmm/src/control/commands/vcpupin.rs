//! `__org.rvmm_vcpupin {vcpu?, cpus?}` (libvirt's `vcpupin`): with `vcpu` and `cpus`, pins
//! that vCPU's thread, warning about host CPUs it now shares with another pinned vCPU; then
//! reports the affinity of that vCPU, or of every vCPU without `vcpu`.

use serde::{Deserialize, Serialize};

use super::{ClientRequest, QmpCommand};
use crate::control::args::{Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::{VcpuThread, VmView};
use crate::util::cpulist::cpulist;
use crate::vcpu::affinity::shared_cpu_warnings;

pub const NAME: &str = "__org.rvmm_vcpupin";

/// Without `cpus`: report; with `cpus` (and `vcpu`): pin, then report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuPin {
    pub vcpu: Option<u32>,
    pub cpus: Option<Vec<u32>>,
}

/// The arguments as a client sends them: the CPU list as text, which the server parses
/// and checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VcpuPinRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
}

impl ClientRequest for VcpuPinRequest {
    const NAME: &'static str = NAME;
    type Reply = VcpuPinReply;
}

/// One vCPU's affinity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VcpuPinRow {
    pub vcpu: u32,
    pub thread_id: i32,
    /// A kernel CPU list (`0-3,8`).
    pub cpus: String,
}

/// The reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuPinReply {
    pub vcpus: Vec<VcpuPinRow>,
    pub warnings: Vec<String>,
}

/// The present vCPU `index`, or the error naming the ones there are.
pub(crate) fn find_vcpu(vcpus: &[VcpuThread], index: u32) -> Result<VcpuThread, QmpError> {
    vcpus
        .iter()
        .find(|v| v.index == index)
        .copied()
        .ok_or_else(|| {
            QmpError::generic(format!(
                "vCPU {index} does not exist (the VM has vCPUs 0-{})",
                vcpus.len().saturating_sub(1)
            ))
        })
}

impl VcpuPin {
    /// Pins `vcpu` to `cpus`; the warnings for the pairs this pin makes, not for older ones.
    fn pin(vm: &mut dyn VmView, vcpu: VcpuThread, cpus: &[u32]) -> Result<Vec<String>, QmpError> {
        let what = format!("vcpupin {} {}", vcpu.index, cpulist(cpus));
        let mut warnings = vm.check_host_cpus(&what, cpus)?;
        vm.pin_vcpu(vcpu, cpus)?;
        let v = vcpu.index;
        for (other, other_cpus) in vm.explicit_pins().into_iter().filter(|(w, _)| *w != v) {
            let mine = (v, cpus.to_vec());
            let theirs = (other, other_cpus);
            let pair = if v < other {
                [mine, theirs]
            } else {
                [theirs, mine]
            };
            warnings.extend(shared_cpu_warnings("vcpupin", &pair));
        }
        Ok(warnings)
    }
}

impl QmpCommand for VcpuPin {
    const NAME: &'static str = NAME;
    type Reply = VcpuPinReply;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let vcpu = args.uint32("vcpu", Presence::Optional)?;
        let cpus = args.cpulist("cpus")?;
        if cpus.is_some() && vcpu.is_none() {
            return Err(QmpError::generic(
                "Parameter 'vcpu' is missing (needed with 'cpus')".to_string(),
            ));
        }
        Ok(VcpuPin { vcpu, cpus })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<VcpuPinReply, QmpError> {
        let vcpus = vm.vcpus();
        let target = match self.vcpu {
            Some(index) => Some(find_vcpu(&vcpus, index)?),
            None => None,
        };
        let warnings = match (target, &self.cpus) {
            (Some(vcpu), Some(cpus)) => Self::pin(vm, vcpu, cpus)?,
            _ => Vec::new(),
        };
        let mut rows = Vec::new();
        for v in vcpus
            .iter()
            .filter(|v| target.is_none_or(|t| t.index == v.index))
        {
            rows.push(VcpuPinRow {
                vcpu: v.index,
                thread_id: v.thread_id,
                cpus: cpulist(&vm.affinity(*v)?),
            });
        }
        Ok(VcpuPinReply {
            vcpus: rows,
            warnings,
        })
    }
}
