//! The KVM machine layer: every KVM ioctl rvmm makes on a VM or a vCPU, behind named steps.
//!
//! `vm` owns the VM file descriptor: creating it (with the TSS and identity map VMX needs),
//! registering guest RAM as memory slots, the in-kernel irqchip and PIT, and irqfds.
//! `vcpu` owns the vCPUs: creating and configuring them (CPUID, MSRs, registers), the
//! thread that runs KVM_RUN, the pure exit decoder, kicks and the pause state machine, and
//! what `vcpuinfo` reads about their threads. What the machine looks like (the CPUID
//! tables, the RAM layout, the boot entry) is decided elsewhere (`cpu`, `memory`, `boot`)
//! and handed in as plain data. `stats` reads KVM's binary statistics (KVM_GET_STATS_FD) of
//! the VM and of each vCPU; the recipe that puts it together is `vmm::Vmm::build`.

pub mod state;
pub mod stats;
pub mod vcpu;
pub mod vm;

use thiserror::Error;

pub use vm::{IrqLine, MachineOptions, RamSlot, Vm};

/// A KVM call that failed while making or configuring the machine.
#[derive(Debug, Error)]
pub enum MachineError {
    /// An ioctl failed; `what` names it (`KVM_CREATE_VM`, `KVM_IRQFD (COM1)`, ...).
    #[error("{what}: {source}")]
    Kvm {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("{what}: {source}")]
    Eventfd {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("CPUID table: {0}")]
    Cpuid(#[source] vcpu::cpuid::CpuidError),
    #[error("MSR list: too many MSRs")]
    MsrList(#[source] vmm_sys_util::fam::Error),
    #[error("vCPU {vcpu}: KVM accepted {set} of {total} boot MSRs (first refused: {refused:#x})")]
    Msrs {
        vcpu: u32,
        set: usize,
        total: usize,
        refused: u32,
    },
}

/// Names a failed ioctl.
pub(crate) fn kvm_call<T>(
    what: &'static str,
    r: Result<T, kvm_ioctls::Error>,
) -> Result<T, MachineError> {
    r.map_err(|source| MachineError::Kvm { what, source })
}
