//! vCPUs: configuring them before the first run (CPUID, MSRs, boot registers), their threads
//! (named `CPU N/KVM` as QEMU names them) with the KVM_RUN loop, the pure exit decoder,
//! kicking a running vCPU out of the kernel, the pause state machine, pinning checks and
//! the per-vCPU facts `vcpuinfo` reports.
//!
//! Also reachable as `crate::vcpu` (the path before the machine layer existed).

pub mod affinity;
pub mod configure;
pub mod cpuid;
pub mod dump;
pub mod exit;
pub mod info;
pub mod thread;

pub use configure::{configure, VcpuSetup};
pub use exit::{ExitAction, VcpuFault};
pub use thread::{SpawnError, VcpuHandle, VcpuRunState, VmControl, VmOutcome};
