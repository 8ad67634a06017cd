//! The CPUID leaves a CPU model decides: vendor and levels (leaves 0 and 80000000H), the
//! version signature (leaf 1 EAX and 80000001H EAX), the brand string (80000002H-80000004H)
//! and the feature registers, as `CpuidEntry` patches that `builder` merges with
//! KVM's supported table and the topology encoders (which own leaf 1 EBX[31:16], leaves 4,
//! 0BH, 1FH, 8000001EH and 80000008H ECX). Follows QEMU 7.2's `cpu_x86_cpuid`.

use super::expand::ExpandedCpu;
use crate::cpuid::{CpuidEntry, CpuidReg, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
use crate::features::{FeatureSet, FeatureWord as W};
pub use crate::identity::{decode_version, encode_version};
use crate::support::{HostCpuSupport, AMD_ALIASES};

/// CPUID.01H:EBX[15:8], CLFLUSH line size in 8-byte units (8 = 64 bytes), as QEMU sets it.
const CLFLUSH_LINE_SIZE_8B: u32 = 8 << 8;
/// CPUID.01H:ECX[15], PDCM (IA32_PERF_CAPABILITIES present): hidden with `pmu=off`.
const CPUID_1_ECX_PDCM: u32 = 1 << 15;
/// CPUID.01H:ECX[26], XSAVE.
const CPUID_1_ECX_XSAVE: u64 = 1 << 26;
/// CPUID.(EAX=07H,ECX=0):EBX[25], Intel PT.
const CPUID_7_0_EBX_INTEL_PT: u64 = 1 << 25;
/// CPUID.(EAX=14H,ECX=0):ECX[31], LIP.
const CPUID_14_0_ECX_LIP: u64 = 1 << 31;
/// CPUID.80000001H:ECX[2], SVM.
const CPUID_8000_0001_ECX_SVM: u64 = 1 << 2;
/// CPUID.80000001H:EDX[29] LM (long mode).
const CPUID_8000_0001_EDX_LM: u64 = 1 << 29;
/// CPUID.07H:ECX[16] LA57 (5-level paging).
const CPUID_7_0_ECX_LA57: u64 = 1 << 16;
/// CPUID.05H:ECX[0] EMX (MWAIT extensions enumerated) and ECX[1] IBE (interrupts as break
/// events): QEMU sets both in every model's MONITOR/MWAIT leaf.
const CPUID_5_ECX_EMX_IBE: u32 = 0b11;
/// QEMU's physical address width for named models when host-phys-bits is off (its pc and
/// q35 machines; microvm turns host-phys-bits on).
const QEMU_DEFAULT_PHYS_BITS: u32 = 40;
/// CPUID.80000008H:EAX[15:8] linear address bits: 48, or 57 with LA57.
const LINEAR_BITS_48: u32 = 48 << 8;
const LINEAR_BITS_57: u32 = 57 << 8;
/// Size of the legacy XSAVE region plus the XSAVE header (SDM Vol. 1, 13.4).
const XSAVE_LEGACY_AND_HEADER: u32 = 576;
/// Highest XSAVE component QEMU 7.2 knows (XTILEDATA).
const XSAVE_LAST_COMPONENT: u32 = 18;

/// The brand string as the twelve registers of CPUID.80000002H-80000004H (EAX, EBX, ECX,
/// EDX each), little-endian, NUL-padded to 48 bytes; longer strings are cut at 48.
pub fn brand_regs(model_id: &str) -> [u32; 12] {
    let mut bytes = [0u8; 48];
    for (dst, src) in bytes.iter_mut().zip(model_id.bytes()) {
        *dst = src;
    }
    let mut regs = [0u32; 12];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = u32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ]);
    }
    regs
}

fn entry(function: u32, index: Option<u32>, regs: [u32; 4]) -> CpuidEntry {
    CpuidEntry {
        function,
        index: index.unwrap_or(0),
        flags: if index.is_some() {
            KVM_CPUID_FLAG_SIGNIFCANT_INDEX
        } else {
            0
        },
        eax: regs[0],
        ebx: regs[1],
        ecx: regs[2],
        edx: regs[3],
    }
}

fn low(f: &FeatureSet, w: W) -> u32 {
    // CPUID words hold 32 bits; the high half is always zero.
    (f.word(w) & 0xffff_ffff) as u32
}

/// The CPUID entries the model decides, for a vCPU whose features (after filtering) are
/// `features`. Leaves above the CPU's levels are not emitted. `host` provides what QEMU
/// passes through: leaf 0AH with `pmu=on`, the XSAVE component sizes and offsets, and
/// 80000008H EAX (address sizes).
pub fn model_leaves(
    cpu: &ExpandedCpu,
    features: &FeatureSet,
    host: &HostCpuSupport,
) -> Vec<CpuidEntry> {
    let f = features;
    let (vb, vd, vc) = cpu.vendor.regs();
    let version = encode_version(cpu.family, cpu.model, cpu.stepping);
    let mut out = vec![entry(0, None, [cpu.level, vb, vc, vd])];
    let mut leaf_1_ecx = low(f, W::Cpuid1Ecx);
    if !cpu.pmu {
        leaf_1_ecx &= !CPUID_1_ECX_PDCM;
    }
    out.push(entry(
        1,
        None,
        [
            version,
            CLFLUSH_LINE_SIZE_8B,
            leaf_1_ecx,
            low(f, W::Cpuid1Edx),
        ],
    ));
    if cpu.level >= 5 {
        out.push(entry(5, None, [0, 0, CPUID_5_ECX_EMX_IBE, 0]));
    }
    if cpu.level >= 6 {
        out.push(entry(6, None, [low(f, W::Cpuid6Eax), 0, 0, 0]));
    }
    if cpu.level >= 7 {
        let ebx = low(f, W::Cpuid7_0Ebx);
        out.push(entry(
            7,
            Some(0),
            [
                cpu.level_func7,
                ebx,
                low(f, W::Cpuid7_0Ecx),
                low(f, W::Cpuid7_0Edx),
            ],
        ));
        // QEMU lists subleaf 1 only when subleaf 0's EAX (the last subleaf) says it exists.
        if cpu.level_func7 >= 1 {
            out.push(entry(7, Some(1), [low(f, W::Cpuid7_1Eax), 0, 0, 0]));
        }
    }
    if cpu.level >= 0xA {
        let regs = if cpu.pmu {
            [CpuidReg::Eax, CpuidReg::Ebx, CpuidReg::Ecx, CpuidReg::Edx]
                .map(|r| host.raw_cpuid(0xA, 0, r))
        } else {
            [0; 4]
        };
        out.push(entry(0xA, None, regs));
    }
    if cpu.level >= 0xD {
        // QEMU leaves out every 0DH subleaf whose EAX is zero (kvm_arch_init_vcpu).
        out.extend(xsave_leaves(f, host).into_iter().filter(|e| e.eax != 0));
    }
    if cpu.level >= 0x14 {
        out.extend(intel_pt_leaves(f));
    }
    out.push(entry(
        0x4000_0001,
        None,
        [low(f, W::Kvm), 0, 0, low(f, W::KvmHints)],
    ));
    out.extend(extended_leaves(cpu, f, host, version));
    if cpu.xlevel2 >= 0xC000_0000 {
        out.push(entry(0xC000_0000, None, [cpu.xlevel2, 0, 0, 0]));
        if cpu.xlevel2 >= 0xC000_0001 {
            out.push(entry(
                0xC000_0001,
                None,
                [0, 0, 0, low(f, W::CpuidC000_0001Edx)],
            ));
        }
    }
    out
}

fn extended_leaves(
    cpu: &ExpandedCpu,
    f: &FeatureSet,
    host: &HostCpuSupport,
    version: u32,
) -> Vec<CpuidEntry> {
    let (vb, vd, vc) = cpu.vendor.regs();
    let mut out = vec![entry(0x8000_0000, None, [cpu.xlevel, vb, vc, vd])];
    if cpu.xlevel >= 0x8000_0001 {
        let mut edx = low(f, W::Cpuid8000_0001Edx);
        if cpu.vendor.is_amd() {
            // On AMD, 80000001H:EDX repeats these 01H:EDX bits (QEMU's x86_cpu_realizefn).
            let aliases = (AMD_ALIASES & 0xffff_ffff) as u32;
            edx = (edx & !aliases) | (low(f, W::Cpuid1Edx) & aliases);
        }
        out.push(entry(
            0x8000_0001,
            None,
            [version, 0, low(f, W::Cpuid8000_0001Ecx), edx],
        ));
    }
    let brand = brand_regs(&cpu.model_id);
    for (i, leaf) in (0x8000_0002..=0x8000_0004u32).enumerate() {
        if cpu.xlevel >= leaf {
            let r = &brand[4 * i..4 * i + 4];
            out.push(entry(leaf, None, [r[0], r[1], r[2], r[3]]));
        }
    }
    if cpu.xlevel >= 0x8000_0007 {
        out.push(entry(
            0x8000_0007,
            None,
            [0, 0, 0, low(f, W::Cpuid8000_0007Edx)],
        ));
    }
    if cpu.xlevel >= 0x8000_0008 {
        // QEMU -M pc: 40 physical address bits for named models (TCG_PHYS_ADDR_BITS, as
        // host-phys-bits is off), the host's for host/max; plus 57 linear bits with LA57 or
        // 48 without, for 64-bit CPUs.
        let phys = if matches!(cpu.name.as_str(), "host" | "max") {
            host.raw_cpuid(0x8000_0008, 0, CpuidReg::Eax) & 0xff
        } else {
            QEMU_DEFAULT_PHYS_BITS
        };
        let address_sizes = if f.contains(W::Cpuid8000_0001Edx, CPUID_8000_0001_EDX_LM) {
            phys | if f.contains(W::Cpuid7_0Ecx, CPUID_7_0_ECX_LA57) {
                LINEAR_BITS_57
            } else {
                LINEAR_BITS_48
            }
        } else {
            phys
        };
        out.push(entry(
            0x8000_0008,
            None,
            [address_sizes, low(f, W::Cpuid8000_0008Ebx), 0, 0],
        ));
    }
    if cpu.xlevel >= 0x8000_000A {
        let regs = if f.contains(W::Cpuid8000_0001Ecx, CPUID_8000_0001_ECX_SVM) {
            // SVM revision 1 and 16 ASIDs, as QEMU reports them.
            [1, 0x10, 0, low(f, W::Svm)]
        } else {
            [0; 4]
        };
        out.push(entry(0x8000_000A, None, regs));
    }
    out
}

/// Leaf 0DH: subleaf 0 (XCR0 components and the area size they need), subleaf 1 (XSAVE
/// extensions and IA32_XSS components), and subleaves 2..=18 copied from KVM for enabled
/// components, zero otherwise.
fn xsave_leaves(f: &FeatureSet, host: &HostCpuSupport) -> Vec<CpuidEntry> {
    if !f.contains(W::Cpuid1Ecx, CPUID_1_ECX_XSAVE) {
        return vec![entry(0xD, Some(0), [0; 4]), entry(0xD, Some(1), [0; 4])];
    }
    let xcr0 = f.word(W::XsaveXcr0Lo) | (f.word(W::XsaveXcr0Hi) << 32);
    let xss = f.word(W::XsaveXssLo) | (f.word(W::XsaveXssHi) << 32);
    let mut area = XSAVE_LEGACY_AND_HEADER;
    let mut subleaves = Vec::new();
    for i in 2..=XSAVE_LAST_COMPONENT {
        let enabled = (xcr0 | xss) & (1u64 << i) != 0;
        let regs = if enabled {
            [CpuidReg::Eax, CpuidReg::Ebx, CpuidReg::Ecx, CpuidReg::Edx]
                .map(|r| host.raw_cpuid(0xD, i, r))
        } else {
            [0; 4]
        };
        if enabled && xcr0 & (1u64 << i) != 0 {
            // EAX = component size, EBX = its offset in the standard format.
            area = area.max(regs[0] + regs[1]);
        }
        subleaves.push(entry(0xD, Some(i), regs));
    }
    let mut out = vec![
        entry(
            0xD,
            Some(0),
            [(xcr0 & 0xffff_ffff) as u32, area, area, (xcr0 >> 32) as u32],
        ),
        entry(
            0xD,
            Some(1),
            [
                low(f, W::Xsave),
                0,
                (xss & 0xffff_ffff) as u32,
                (xss >> 32) as u32,
            ],
        ),
    ];
    out.extend(subleaves);
    out
}

/// Leaf 14H with QEMU's fixed Intel PT capabilities when `intel-pt` is on, zero otherwise.
fn intel_pt_leaves(f: &FeatureSet) -> Vec<CpuidEntry> {
    if !f.contains(W::Cpuid7_0Ebx, CPUID_7_0_EBX_INTEL_PT) {
        return vec![entry(0x14, Some(0), [0; 4])];
    }
    let lip = if f.contains(W::Cpuid14_0Ecx, CPUID_14_0_ECX_LIP) {
        1 << 31
    } else {
        0
    };
    vec![
        // Max subleaf 1; CR3 filter, PSB/CYC, IP filter, MTC; ToPA, multi-entry ToPA, single range.
        entry(0x14, Some(0), [1, 0xf, 0x7 | lip, 0]),
        // MTC periods 0,3,6,9 and 2 address ranges; PSB 2K-64K and cycle thresholds 0,2^0-2^11.
        entry(
            0x14,
            Some(1),
            [(0x0249 << 16) | 2, (0x003f << 16) | 0x1fff, 0, 0],
        ),
    ]
}

#[cfg(test)]
mod tests;
