//! rvmm's guest CPU identity, as pure data and functions: named features, QEMU 7.2's CPU
//! model tables and their expansion, filtering against what the host's KVM offers,
//! topology (APIC IDs and the CPUID topology leaves), cache descriptions, the per-vCPU
//! CPUID table, model availability, baselines and comparisons, host CPU descriptions, the
//! libvirt feature map, and boot MSRs.
//!
//! This crate knows no KVM ioctls, no threads and no command-line syntax: the VMM reads the
//! host into `support::HostCpuSupport` / `identity::HostIdentity`, parses `--cpu`/`--smp`
//! into `spec::CpuSpec` / `topology::CpuTopology`, and hands the `cpuid::CpuidEntry`
//! tables `builder` returns to KVM_SET_CPUID2 itself.

// CPUID words, leaf numbers and bit positions are 32- and 8-bit fields: a narrowing cast
// must say why it cannot lose bits (or use try_from).
#![deny(clippy::cast_possible_truncation)]
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

pub mod availability;
pub mod baseline;
pub mod builder;
pub mod cache;
pub mod cpuid;
pub mod features;
pub mod filter;
pub mod hostdesc;
pub mod identity;
pub mod libvirt_map;
pub mod models;
pub mod msr;
pub mod spec;
pub mod support;
pub mod topology;
pub mod xml_limits;
