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

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
use thiserror::Error;

/// Why a CPUID table cannot be handed to KVM.
#[derive(Debug, Error)]
pub enum CpuidError {
    #[error("CPUID table has {0} entries, more than KVM accepts")]
    TooMany(usize),
}

impl CpuidEntry {
    /// The four registers, in EAX, EBX, ECX, EDX order.
    pub fn regs(&self) -> [u32; 4] {
        [self.eax, self.ebx, self.ecx, self.edx]
    }

    /// The register `reg`.
    pub fn reg(&self, reg: CpuidReg) -> u32 {
        match reg {
            CpuidReg::Eax => self.eax,
            CpuidReg::Ebx => self.ebx,
            CpuidReg::Ecx => self.ecx,
            CpuidReg::Edx => self.edx,
        }
    }

    /// The register `reg`, writable.
    pub fn reg_mut(&mut self, reg: CpuidReg) -> &mut u32 {
        match reg {
            CpuidReg::Eax => &mut self.eax,
            CpuidReg::Ebx => &mut self.ebx,
            CpuidReg::Ecx => &mut self.ecx,
            CpuidReg::Edx => &mut self.edx,
        }
    }
}

/// Finds the entry for `function`/`index` (index ignored for leaves without subleaves).
pub fn find(entries: &[CpuidEntry], function: u32, index: u32) -> Option<&CpuidEntry> {
    entries.iter().find(|e| {
        e.function == function
            && (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 0 || e.index == index)
    })
}

/// Finds the entry for `function`/`index`, writable.
pub fn find_mut(entries: &mut [CpuidEntry], function: u32, index: u32) -> Option<&mut CpuidEntry> {
    entries.iter_mut().find(|e| {
        e.function == function
            && (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 0 || e.index == index)
    })
}

/// Converts KVM's table into ours.
pub fn from_kvm(cpuid: &CpuId) -> Vec<CpuidEntry> {
    cpuid
        .as_slice()
        .iter()
        .map(|e| CpuidEntry {
            function: e.function,
            index: e.index,
            flags: e.flags,
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
        })
        .collect()
}

/// Converts our table into the KVM_SET_CPUID2 argument.
pub fn to_kvm(entries: &[CpuidEntry]) -> Result<CpuId, CpuidError> {
    let kvm_entries: Vec<kvm_cpuid_entry2> = entries
        .iter()
        .map(|e| kvm_cpuid_entry2 {
            function: e.function,
            index: e.index,
            flags: e.flags,
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
            ..Default::default()
        })
        .collect();
    CpuId::from_entries(&kvm_entries).map_err(|_| CpuidError::TooMany(entries.len()))
}
