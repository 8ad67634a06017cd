//! rvmm's library: everything between a parsed command line and a running KVM guest.
//!
//! The crate is split by concern. Pure modules (config, cpu tables and encoders, memory
//! layout, ACPI, exit decoding, the probe decoder) take plain data and return plain data
//! and are unit-tested without /dev/kvm; the modules that touch KVM (host probing, guest
//! memory mapping, vCPU threads, the VMM run loop) sit at the edges.

pub mod boot;
pub mod config;
pub mod control;
/// CPU identity lives in its own crate (no KVM, no command-line syntax); `crate::cpu::…`
/// and `vmm::cpu::…` name it here.
pub use rvmm_cpu as cpu;
pub mod devices;
pub mod fuzz_targets;
pub mod host;
pub mod machine;
pub mod memory;
pub mod migration;
pub mod monitor;
pub mod probe;
pub mod sandbox;
pub mod snapshot;
pub mod util;
/// The vCPU layer's old path; it lives in `machine::vcpu` now.
pub use machine::vcpu;
pub mod vmm;
