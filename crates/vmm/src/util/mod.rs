//! Small shared vocabulary that every layer may use and that depends on no other module:
//! the kernel's CPU list syntax. Nothing here knows about VMs, the host or KVM.

pub mod cpulist;
