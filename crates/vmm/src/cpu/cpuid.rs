//! The CPUID table one vCPU sees, as plain data: built from what KVM supports, the CPU
//! model and the topology, then converted to KVM_SET_CPUID2 entries at the KVM edge.

/// One CPUID leaf/subleaf result, in the shape of `kvm_cpuid_entry2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidEntry {
    /// The leaf (EAX input).
    pub function: u32,
    /// The subleaf (ECX input); 0 when the leaf has no subleaves.
    pub index: u32,
    /// KVM_CPUID_FLAG_* bits (SIGNIFCANT_INDEX for leaves with subleaves).
    pub flags: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// The register a CPUID feature bit lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CpuidReg {
    Eax,
    Ebx,
    Ecx,
    Edx,
}
