//! Who a CPU says it is: the CPUID vendor string, the family/model/stepping signature of
//! CPUID.01H:EAX, and the host CPU's identity as `-cpu host` shows it. Plain data shared by
//! the model tables (`models`), expansion and the CPUID leaves; feature bits are
//! `features`' and what the host's KVM offers is `support`'s.

use crate::cpuid::CpuidEntry;

/// A 12-byte CPUID vendor string (CPUID.00H:EBX,EDX,ECX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VendorId(pub [u8; 12]);

impl VendorId {
    pub const INTEL: VendorId = VendorId(*b"GenuineIntel");
    pub const AMD: VendorId = VendorId(*b"AuthenticAMD");
    pub const HYGON: VendorId = VendorId(*b"HygonGenuine");

    /// The vendor string; bytes that are not UTF-8 are replaced.
    pub fn as_string(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// Builds a vendor from the three CPUID.00H registers, in EBX, EDX, ECX order.
    pub fn from_regs(ebx: u32, edx: u32, ecx: u32) -> VendorId {
        let mut id = [0u8; 12];
        id[0..4].copy_from_slice(&ebx.to_le_bytes());
        id[4..8].copy_from_slice(&edx.to_le_bytes());
        id[8..12].copy_from_slice(&ecx.to_le_bytes());
        VendorId(id)
    }

    /// The three registers `(ebx, edx, ecx)` of CPUID.00H that spell this vendor.
    pub fn regs(&self) -> (u32, u32, u32) {
        let word =
            |i: usize| u32::from_le_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]]);
        (word(0), word(4), word(8))
    }

    /// QEMU's `IS_AMD_CPU`: the vendor is exactly "AuthenticAMD".
    pub fn is_amd(&self) -> bool {
        *self == VendorId::AMD
    }

    /// QEMU's `IS_INTEL_CPU`.
    pub fn is_intel(&self) -> bool {
        *self == VendorId::INTEL
    }
}

/// CPUID.01H:EAX[3:0], stepping ID.
const STEPPING_MASK: u32 = 0xf;
/// CPUID.01H:EAX[7:4], model.
const MODEL_SHIFT: u32 = 4;
/// CPUID.01H:EAX[11:8], family ID.
const FAMILY_SHIFT: u32 = 8;
/// CPUID.01H:EAX[19:16], extended model ID.
const EXT_MODEL_SHIFT: u32 = 16;
/// CPUID.01H:EAX[27:20], extended family ID.
const EXT_FAMILY_SHIFT: u32 = 20;
/// The family ID value that means "add the extended family" (SDM Vol. 2A, CPUID, Figure 3-6).
const FAMILY_ID_EXTENDED: u32 = 0xf;
/// Encodes family/model/stepping as CPUID.01H:EAX (SDM Vol. 2A, CPUID, "Version
/// Information"): a family above 0FH is written as 0FH plus the extended family; the model's
/// high nibble always goes to the extended model field, as QEMU does.
pub fn encode_version(family: u32, model: u32, stepping: u32) -> u32 {
    let family_bits = if family > FAMILY_ID_EXTENDED {
        (FAMILY_ID_EXTENDED << FAMILY_SHIFT) | ((family - FAMILY_ID_EXTENDED) << EXT_FAMILY_SHIFT)
    } else {
        family << FAMILY_SHIFT
    };
    family_bits
        | ((model & 0xf) << MODEL_SHIFT)
        | ((model >> 4) << EXT_MODEL_SHIFT)
        | (stepping & STEPPING_MASK)
}

/// Decodes CPUID.01H:EAX into (family, model, stepping) the way QEMU's property getters
/// do: family = family ID + extended family when the family ID is 0FH; model = model +
/// extended model << 4.
pub fn decode_version(eax: u32) -> (u32, u32, u32) {
    let family_id = (eax >> FAMILY_SHIFT) & 0xf;
    let family = if family_id == FAMILY_ID_EXTENDED {
        family_id + ((eax >> EXT_FAMILY_SHIFT) & 0xff)
    } else {
        family_id
    };
    let model = ((eax >> MODEL_SHIFT) & 0xf) | (((eax >> EXT_MODEL_SHIFT) & 0xf) << 4);
    (family, model, eax & STEPPING_MASK)
}

/// The host CPU's identity as `-cpu host` shows it (from the host's raw CPUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    pub vendor: VendorId,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub model_id: String,
}

impl HostIdentity {
    /// Decodes leaves 0, 1 and 0x80000002-4 of a CPUID dump (QEMU's `host_cpu_vendor_fms`
    /// and `host_cpu_fill_model_id`). `None` if leaf 0 or 1 is missing.
    pub fn from_cpuid(entries: &[CpuidEntry]) -> Option<HostIdentity> {
        let find = |leaf: u32| entries.iter().find(|e| e.function == leaf && e.index == 0);
        let l0 = find(0)?;
        let l1 = find(1)?;
        let (family, model, stepping) = decode_version(l1.eax);
        let mut brand = Vec::with_capacity(48);
        for leaf in 0x8000_0002..=0x8000_0004 {
            if let Some(e) = find(leaf) {
                for r in [e.eax, e.ebx, e.ecx, e.edx] {
                    brand.extend_from_slice(&r.to_le_bytes());
                }
            }
        }
        let end = brand.iter().position(|b| *b == 0).unwrap_or(brand.len());
        Some(HostIdentity {
            vendor: VendorId::from_regs(l0.ebx, l0.edx, l0.ecx),
            family,
            model,
            stepping,
            model_id: String::from_utf8_lossy(&brand[..end]).into_owned(),
        })
    }
}
