//! Builds each vCPU's CPUID table from what KVM supports, stamped with the vCPU's identity
//! (its APIC ID and the package it sits in).
//!
//! This is the one place a vCPU's CPUID is assembled; the model and topology encoders feed it.

use super::cpuid::{find_mut, CpuidEntry};

/// CPUID.01H:EBX[31:24] initial APIC ID, EBX[23:16] max logical processors per package
/// (SDM Vol. 2A, CPUID, Table 3-8).
const LEAF1_EBX_APIC_ID_SHIFT: u32 = 24;
const LEAF1_EBX_LOGICAL_SHIFT: u32 = 16;
/// CPUID.01H:EDX[28] HTT: EBX[23:16] is valid.
const LEAF1_EDX_HTT: u32 = 1 << 28;

/// What every vCPU's table is built from.
#[derive(Debug, Clone)]
pub struct CpuidContext<'a> {
    /// KVM_GET_SUPPORTED_CPUID.
    pub supported: &'a [CpuidEntry],
    /// Logical processors per package.
    pub per_package: u32,
}

/// The CPUID table for the vCPU whose APIC ID is `apic_id`.
pub fn vcpu_cpuid(ctx: &CpuidContext, apic_id: u32) -> Vec<CpuidEntry> {
    let mut t = ctx.supported.to_vec();
    if let Some(e) = find_mut(&mut t, 1, 0) {
        e.ebx &= 0x0000_ffff;
        e.ebx |= (apic_id & 0xff) << LEAF1_EBX_APIC_ID_SHIFT;
        if ctx.per_package > 1 {
            e.ebx |= (ctx.per_package.min(0xff)) << LEAF1_EBX_LOGICAL_SHIFT;
            e.edx |= LEAF1_EDX_HTT;
        } else {
            e.edx &= !LEAF1_EDX_HTT;
        }
    }
    for e in t.iter_mut().filter(|e| e.function == 0xb || e.function == 0x1f) {
        // CPUID.(EAX=0BH,ECX=n):EDX[31:0] x2APIC ID of the current logical processor.
        e.edx = apic_id;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_apic_id() {
        let supported = [
            CpuidEntry { function: 1, ebx: 0xff00_0800, edx: 0, ..Default::default() },
            CpuidEntry { function: 0xb, index: 0, flags: 1, ..Default::default() },
        ];
        let t = vcpu_cpuid(&CpuidContext { supported: &supported, per_package: 4 }, 3);
        assert_eq!(t[0].ebx, 0x0304_0800);
        assert_eq!(t[0].edx & LEAF1_EDX_HTT, LEAF1_EDX_HTT);
        assert_eq!(t[1].edx, 3);
        let t = vcpu_cpuid(&CpuidContext { supported: &supported, per_package: 1 }, 0);
        assert_eq!(t[0].ebx, 0x0000_0800);
        assert_eq!(t[0].edx & LEAF1_EDX_HTT, 0);
    }
}
