//! The CPUID table one vCPU sees, as plain data: built from what KVM supports, the CPU
//! model and the topology. The conversion to and from `kvm_bindings::CpuId` is the VMM's
//! (this crate knows no KVM ioctls); the entry layout and flag values follow the KVM ABI
//! (`struct kvm_cpuid_entry2` in linux/kvm.h) so that conversion is a field-by-field copy.

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

/// `KVM_CPUID_FLAG_SIGNIFCANT_INDEX` (linux/kvm.h, spelling as in the kernel): the entry is
/// selected by the subleaf (ECX) too.
pub const KVM_CPUID_FLAG_SIGNIFCANT_INDEX: u32 = 1;
/// `KVM_CPUID_FLAG_STATEFUL_FUNC`: leaf 2's "call again" form (obsolete, still reported).
pub const KVM_CPUID_FLAG_STATEFUL_FUNC: u32 = 2;
/// `KVM_CPUID_FLAG_STATE_READ_NEXT`: with STATEFUL_FUNC, the entry to read next.
pub const KVM_CPUID_FLAG_STATE_READ_NEXT: u32 = 4;

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
