//! Host capabilities, probed once: /dev/kvm and its capabilities, the CPUID and MSRs KVM can
//! give a guest, host CPUs, NUMA nodes, huge page pools and KSM.
//!
//! Everything is read from the kernel (ioctls, procfs, sysfs), never guessed; callers get
//! plain structs and never talk to /dev/kvm for capabilities themselves.

pub mod cpuinfo;
pub mod hugepages;
pub mod iov;
pub mod isolation;
pub mod kvm;
pub mod meminfo;
pub mod numa;
pub mod numactl;
pub mod pages;
pub mod report;
pub mod sched;
pub mod sysfs;
pub mod virt;

pub use kvm::{KvmError, KvmHost};
