//! vCPU threads: spawning and naming them (`CPU N/KVM`), the KVM_RUN loop, the pure exit
//! decoder, kicking a running vCPU out of the kernel, and per-vCPU statistics.

pub mod affinity;
pub mod cpuid;
pub mod dump;
pub mod exit;
pub mod info;
pub mod thread;

pub use exit::{ExitAction, VcpuFault};
pub use thread::{VcpuHandle, VcpuRunState, VmControl, VmOutcome};
