//! Guest CPU identity: topology (APIC IDs and the CPUID topology leaves), named features,
//! CPU model tables, the per-vCPU CPUID table handed to KVM_SET_CPUID2, and boot MSRs.

pub mod builder;
pub mod cache;
pub mod cpuid;
pub mod features;
pub mod filter;
pub mod models;
pub mod msr;
pub mod topology;
