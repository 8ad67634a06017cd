//! Small shared vocabulary that every layer may use and that depends on no other module:
//! the kernel's CPU list syntax and how a user-named file is opened and read (regular files
//! within a size limit), and durations as options spell them (`500ms`, `30s`). Nothing here
//! knows about VMs, the host or KVM.

pub mod cpulist;
pub mod duration;
pub mod file;
