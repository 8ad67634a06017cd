//! Reading one vCPU's dumped CPUID the way a guest kernel does: leaves above the reported
//! maximum (CPUID.0:EAX, CPUID.80000000H:EAX) read as zero, and the identity fields (vendor,
//! brand, family/model/stepping, hypervisor signature) decoded as Linux decodes them.
//!
//! Feature names live in `flags`, topology in `topology`; this module owns the field layout.

use super::decode::CpuDump;

/// Register positions in a dumped `[EAX, EBX, ECX, EDX]`.
pub const EAX: usize = 0;
pub const EBX: usize = 1;
pub const ECX: usize = 2;
pub const EDX: usize = 3;

/// First extended leaf (CPUID.80000000H:EAX is the highest extended leaf).
pub const EXT_BASE: u32 = 0x8000_0000;
/// Hypervisor leaves (CPUID.40000000H:EBX,ECX,EDX is the hypervisor signature).
pub const HV_BASE: u32 = 0x4000_0000;
/// Last leaf of the hypervisor range (Intel SDM: 40000000H-4FFFFFFFH are reserved for it).
const HV_LAST: u32 = 0x4FFF_FFFF;
/// Brand string leaves 80000002H..80000004H (16 bytes each).
const BRAND_LEAVES: [u32; 3] = [0x8000_0002, 0x8000_0003, 0x8000_0004];

/// A contiguous bit field `[hi:lo]` of a 32-bit register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitField {
    pub hi: u32,
    pub lo: u32,
}

impl BitField {
    pub const fn new(hi: u32, lo: u32) -> Self {
        Self { hi, lo }
    }

    /// The field's value, shifted down to bit 0.
    pub const fn of(self, value: u32) -> u32 {
        let width = self.hi - self.lo + 1;
        let mask = if width >= 32 {
            u32::MAX
        } else {
            (1u32 << width) - 1
        };
        (value >> self.lo) & mask
    }
}

/// CPUID.01H:EAX[3:0] Stepping ID.
pub const STEPPING: BitField = BitField::new(3, 0);
/// CPUID.01H:EAX[7:4] Model.
pub const MODEL: BitField = BitField::new(7, 4);
/// CPUID.01H:EAX[11:8] Family ID.
pub const FAMILY: BitField = BitField::new(11, 8);
/// CPUID.01H:EAX[19:16] Extended Model ID.
pub const EXT_MODEL: BitField = BitField::new(19, 16);
/// CPUID.01H:EAX[27:20] Extended Family ID.
pub const EXT_FAMILY: BitField = BitField::new(27, 20);
/// The base family value that says "add the extended family".
const FAMILY_EXTENDED: u32 = 0xF;
/// Linux adds the extended model for every family >= 6 (arch/x86/lib/cpu.c x86_model); the
/// SDM says for families 6 and 0FH, which is the same for every CPU made.
const FAMILY_WITH_EXT_MODEL: u32 = 6;

/// A vCPU's dumped CPUID, read like hardware: leaves beyond the maximum are zero.
#[derive(Debug, Clone, Copy)]
pub struct Leaves<'a> {
    dump: &'a CpuDump,
    level: u32,
    xlevel: u32,
}

impl<'a> Leaves<'a> {
    pub fn new(dump: &'a CpuDump) -> Self {
        let level = dump.get(0, 0).map_or(0, |r| r[EAX]);
        let xlevel = dump
            .get(EXT_BASE, 0)
            .map(|r| r[EAX])
            .filter(|x| *x >= EXT_BASE)
            .unwrap_or(0);
        Self {
            dump,
            level,
            xlevel,
        }
    }

    /// The dump this reads.
    pub fn dump(&self) -> &'a CpuDump {
        self.dump
    }

    /// CPUID.0:EAX, the highest basic leaf.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// CPUID.80000000H:EAX, the highest extended leaf (0 when there are none).
    pub fn xlevel(&self) -> u32 {
        self.xlevel
    }

    /// Whether `leaf` is within the range the CPU reports (basic or extended; hypervisor
    /// leaves count when dumped).
    pub fn has(&self, leaf: u32) -> bool {
        if leaf >= EXT_BASE {
            self.xlevel != 0 && leaf <= self.xlevel
        } else if (HV_BASE..=HV_LAST).contains(&leaf) {
            self.dump.get(leaf, 0).is_some()
        } else {
            leaf <= self.level
        }
    }

    /// CPUID(leaf, sub): zero when the leaf is out of range or was not dumped.
    pub fn get(&self, leaf: u32, sub: u32) -> [u32; 4] {
        if !self.has(leaf) {
            return [0; 4];
        }
        self.dump.get(leaf, sub).unwrap_or([0; 4])
    }

    /// One bit of CPUID(leaf, sub).reg.
    pub fn bit(&self, leaf: u32, sub: u32, reg: usize, bit: u32) -> bool {
        self.get(leaf, sub)[reg] & (1 << bit) != 0
    }

    /// The vendor string, CPUID.0:EBX,EDX,ECX ("GenuineIntel").
    pub fn vendor(&self) -> String {
        let Some(r) = self.dump.get(0, 0) else {
            return String::new();
        };
        regs_string(&[r[EBX], r[EDX], r[ECX]])
    }

    /// The brand string, CPUID.80000002H-80000004H, trimmed as /proc/cpuinfo shows it
    /// (empty when the CPU has none).
    pub fn brand(&self) -> String {
        if !BRAND_LEAVES.iter().all(|l| self.has(*l)) {
            return String::new();
        }
        let words: Vec<u32> = BRAND_LEAVES.iter().flat_map(|l| self.get(*l, 0)).collect();
        regs_string(&words)
    }

    /// The hypervisor signature, CPUID.40000000H:EBX,ECX,EDX ("KVMKVMKVM"), when the
    /// hypervisor leaves were dumped and the signature is not blank.
    pub fn hypervisor(&self) -> Option<String> {
        let r = self.dump.get(HV_BASE, 0)?;
        let sig = regs_string(&[r[EBX], r[ECX], r[EDX]]);
        (!sig.is_empty()).then_some(sig)
    }

    /// CPUID.40000000H:EAX, the highest hypervisor leaf, when dumped.
    pub fn hypervisor_level(&self) -> Option<u32> {
        self.dump.get(HV_BASE, 0).map(|r| r[EAX])
    }

    /// (family, model, stepping) as Linux computes them (x86_family, x86_model).
    pub fn signature(&self) -> (u32, u32, u32) {
        let eax = self.get(1, 0)[EAX];
        let mut family = FAMILY.of(eax);
        if family == FAMILY_EXTENDED {
            family += EXT_FAMILY.of(eax);
        }
        let mut model = MODEL.of(eax);
        if family >= FAMILY_WITH_EXT_MODEL {
            model += EXT_MODEL.of(eax) << 4;
        }
        (family, model, STEPPING.of(eax))
    }
}

/// Registers read as little-endian ASCII, cut at the first NUL and trimmed.
fn regs_string(regs: &[u32]) -> String {
    let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_le_bytes()).collect();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(entries: &[(u32, u32, [u32; 4])]) -> CpuDump {
        CpuDump {
            index: 0,
            leaves: entries.iter().map(|(l, s, r)| ((*l, *s), *r)).collect(),
        }
    }

    #[test]
    fn bit_field_extracts() {
        assert_eq!(BitField::new(31, 24).of(0x1234_5678), 0x12);
        assert_eq!(BitField::new(4, 0).of(0xffff_ffe3), 0x03);
        assert_eq!(BitField::new(31, 0).of(0xdead_beef), 0xdead_beef);
    }

    #[test]
    fn signature_follows_linux() {
        // QEMU's qemu64: family 15, model 107, stepping 1 (0x000f06b1... 6 = ext model).
        let c = cpu(&[(0, 0, [1, 0, 0, 0]), (1, 0, [0x0006_0fb1, 0, 0, 0])]);
        assert_eq!(Leaves::new(&c).signature(), (15, 107, 1));
        // AMD Zen 2: 0x00830f10 -> family 0x17, model 0x31, stepping 0.
        let c = cpu(&[(0, 0, [1, 0, 0, 0]), (1, 0, [0x0083_0f10, 0, 0, 0])]);
        assert_eq!(Leaves::new(&c).signature(), (0x17, 0x31, 0));
        // Family 5 never takes the extended model.
        let c = cpu(&[(0, 0, [1, 0, 0, 0]), (1, 0, [0x0001_0543, 0, 0, 0])]);
        assert_eq!(Leaves::new(&c).signature(), (5, 4, 3));
    }

    #[test]
    fn out_of_range_leaves_read_zero() {
        let c = cpu(&[
            (0, 0, [4, 0, 0, 0]),
            (0xb, 0, [1, 2, 0x100, 7]),
            (EXT_BASE, 0, [0x8000_0001, 0, 0, 0]),
            (0x8000_0008, 0, [0x3028, 0, 0, 0]),
        ]);
        let l = Leaves::new(&c);
        assert_eq!(l.get(0xb, 0), [0; 4]);
        assert_eq!(l.get(0x8000_0008, 0), [0; 4]);
        assert_eq!(l.get(3, 0), [0; 4]);
        assert!(l.has(4) && !l.has(5) && l.has(0x8000_0001) && !l.has(0x8000_0002));
    }

    /// Little-endian words of `text`, NUL-padded to `n` words.
    fn words(text: &str, n: usize) -> Vec<u32> {
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(n * 4, 0);
        bytes
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn strings() {
        let v = words("GenuntelineI", 3); // EBX, EDX, ECX order: "Genu" "ntel" "ineI"
        let h = words("KVMKVMKVM", 3);
        let b = words("  QEMU Virtual CPU version 2.5+  ", 12);
        let mut entries = vec![
            (0, 0, [0xd, v[0], v[1], v[2]]),
            (HV_BASE, 0, [0x4000_0001, h[0], h[1], h[2]]),
            (EXT_BASE, 0, [0x8000_0004, 0, 0, 0]),
        ];
        for (i, leaf) in BRAND_LEAVES.iter().enumerate() {
            entries.push((
                *leaf,
                0,
                [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]],
            ));
        }
        let c = cpu(&entries);
        let l = Leaves::new(&c);
        assert_eq!(l.vendor(), "GenuineIntel");
        assert_eq!(l.hypervisor().as_deref(), Some("KVMKVMKVM"));
        assert_eq!(l.hypervisor_level(), Some(0x4000_0001));
        assert_eq!(l.brand(), "QEMU Virtual CPU version 2.5+");
        // No brand leaves: no brand.
        let c = cpu(&[(0, 0, [1, 0, 0, 0])]);
        assert_eq!(Leaves::new(&c).brand(), "");
        assert_eq!(Leaves::new(&c).hypervisor(), None);
    }
}
