//! VmConfig, the one internal description of a VM, and the front ends that build it
//! (size and key=value grammars, `--smp`, `--cpu`, `--numa`, memory options, libvirt XML).
//!
//! Front ends parse user text into VmConfig and reject bad input with an error naming the
//! option, the value and the rule; nothing here touches KVM or the host.

pub mod cpulist;
