//! CPU feature names as Linux 6.1 prints them in /proc/cpuinfo `flags`, for the CPUID bits
//! the kernel copies straight from hardware: leaves 1 ECX/EDX, 7.0 EBX/ECX/EDX, 7.1 EAX,
//! 0DH.1 EAX, 80000001H ECX/EDX and 80000008H EBX.
//!
//! Names follow arch/x86/include/asm/cpufeatures.h of Linux 6.1 (the quoted name when the
//! comment has one, else the lower-cased macro name); bits whose name there is "" (hidden, e.g.
//! OSXSAVE, the AMD IBPB/IBRS/STIBP copies) are left out, as are bits Linux 6.1 has no name
//! for. The order is /proc/cpuinfo's (by Linux capability word, then bit). /proc/cpuinfo also
//! shows flags Linux synthesizes (constant_tsc, xtopology, cpuid, ...; on AMD 3dnowprefetch
//! whenever lm is set) and may clear some of these at run time (la57 without 5-level paging,
//! a missing dependency); those are not modeled here: the list is the raw CPUID bits.

use super::leaves::{Leaves, EAX, EBX, ECX, EDX, EXT_BASE};

/// One named CPUID feature bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub leaf: u32,
    pub sub: u32,
    /// Register index into `[EAX, EBX, ECX, EDX]`.
    pub reg: usize,
    pub bit: u32,
}

const fn f(name: &'static str, leaf: u32, sub: u32, reg: usize, bit: u32) -> Feature {
    Feature {
        name,
        leaf,
        sub,
        reg,
        bit,
    }
}

const L1: u32 = 1;
const L7: u32 = 7;
const LD: u32 = 0xd;
const X1: u32 = EXT_BASE + 1;
const X8: u32 = EXT_BASE + 8;

/// Every named bit, in /proc/cpuinfo order.
#[rustfmt::skip]
pub const FEATURES: &[Feature] = &[
    // Word 0: CPUID.01H:EDX.
    f("fpu", L1, 0, EDX, 0), f("vme", L1, 0, EDX, 1), f("de", L1, 0, EDX, 2),
    f("pse", L1, 0, EDX, 3), f("tsc", L1, 0, EDX, 4), f("msr", L1, 0, EDX, 5),
    f("pae", L1, 0, EDX, 6), f("mce", L1, 0, EDX, 7), f("cx8", L1, 0, EDX, 8),
    f("apic", L1, 0, EDX, 9), f("sep", L1, 0, EDX, 11), f("mtrr", L1, 0, EDX, 12),
    f("pge", L1, 0, EDX, 13), f("mca", L1, 0, EDX, 14), f("cmov", L1, 0, EDX, 15),
    f("pat", L1, 0, EDX, 16), f("pse36", L1, 0, EDX, 17), f("pn", L1, 0, EDX, 18),
    f("clflush", L1, 0, EDX, 19), f("dts", L1, 0, EDX, 21), f("acpi", L1, 0, EDX, 22),
    f("mmx", L1, 0, EDX, 23), f("fxsr", L1, 0, EDX, 24), f("sse", L1, 0, EDX, 25),
    f("sse2", L1, 0, EDX, 26), f("ss", L1, 0, EDX, 27), f("ht", L1, 0, EDX, 28),
    f("tm", L1, 0, EDX, 29), f("ia64", L1, 0, EDX, 30), f("pbe", L1, 0, EDX, 31),
    // Word 1: CPUID.80000001H:EDX (bits that duplicate leaf 1 EDX have no name).
    f("syscall", X1, 0, EDX, 11), f("mp", X1, 0, EDX, 19), f("nx", X1, 0, EDX, 20),
    f("mmxext", X1, 0, EDX, 22), f("fxsr_opt", X1, 0, EDX, 25), f("pdpe1gb", X1, 0, EDX, 26),
    f("rdtscp", X1, 0, EDX, 27), f("lm", X1, 0, EDX, 29), f("3dnowext", X1, 0, EDX, 30),
    f("3dnow", X1, 0, EDX, 31),
    // Word 4: CPUID.01H:ECX (bit 27 OSXSAVE is hidden).
    f("pni", L1, 0, ECX, 0), f("pclmulqdq", L1, 0, ECX, 1), f("dtes64", L1, 0, ECX, 2),
    f("monitor", L1, 0, ECX, 3), f("ds_cpl", L1, 0, ECX, 4), f("vmx", L1, 0, ECX, 5),
    f("smx", L1, 0, ECX, 6), f("est", L1, 0, ECX, 7), f("tm2", L1, 0, ECX, 8),
    f("ssse3", L1, 0, ECX, 9), f("cid", L1, 0, ECX, 10), f("sdbg", L1, 0, ECX, 11),
    f("fma", L1, 0, ECX, 12), f("cx16", L1, 0, ECX, 13), f("xtpr", L1, 0, ECX, 14),
    f("pdcm", L1, 0, ECX, 15), f("pcid", L1, 0, ECX, 17), f("dca", L1, 0, ECX, 18),
    f("sse4_1", L1, 0, ECX, 19), f("sse4_2", L1, 0, ECX, 20), f("x2apic", L1, 0, ECX, 21),
    f("movbe", L1, 0, ECX, 22), f("popcnt", L1, 0, ECX, 23),
    f("tsc_deadline_timer", L1, 0, ECX, 24), f("aes", L1, 0, ECX, 25),
    f("xsave", L1, 0, ECX, 26), f("avx", L1, 0, ECX, 28), f("f16c", L1, 0, ECX, 29),
    f("rdrand", L1, 0, ECX, 30), f("hypervisor", L1, 0, ECX, 31),
    // Word 6: CPUID.80000001H:ECX.
    f("lahf_lm", X1, 0, ECX, 0), f("cmp_legacy", X1, 0, ECX, 1), f("svm", X1, 0, ECX, 2),
    f("extapic", X1, 0, ECX, 3), f("cr8_legacy", X1, 0, ECX, 4), f("abm", X1, 0, ECX, 5),
    f("sse4a", X1, 0, ECX, 6), f("misalignsse", X1, 0, ECX, 7),
    f("3dnowprefetch", X1, 0, ECX, 8), f("osvw", X1, 0, ECX, 9), f("ibs", X1, 0, ECX, 10),
    f("xop", X1, 0, ECX, 11), f("skinit", X1, 0, ECX, 12), f("wdt", X1, 0, ECX, 13),
    f("lwp", X1, 0, ECX, 15), f("fma4", X1, 0, ECX, 16), f("tce", X1, 0, ECX, 17),
    f("nodeid_msr", X1, 0, ECX, 19), f("tbm", X1, 0, ECX, 21), f("topoext", X1, 0, ECX, 22),
    f("perfctr_core", X1, 0, ECX, 23), f("perfctr_nb", X1, 0, ECX, 24),
    f("bpext", X1, 0, ECX, 26), f("ptsc", X1, 0, ECX, 27), f("perfctr_llc", X1, 0, ECX, 28),
    f("mwaitx", X1, 0, ECX, 29),
    // Word 9: CPUID.(EAX=07H,ECX=0):EBX (bits 6 FDP_EXCPTN_ONLY, 13 ZERO_FCS_FDS hidden).
    f("fsgsbase", L7, 0, EBX, 0), f("tsc_adjust", L7, 0, EBX, 1), f("sgx", L7, 0, EBX, 2),
    f("bmi1", L7, 0, EBX, 3), f("hle", L7, 0, EBX, 4), f("avx2", L7, 0, EBX, 5),
    f("smep", L7, 0, EBX, 7), f("bmi2", L7, 0, EBX, 8), f("erms", L7, 0, EBX, 9),
    f("invpcid", L7, 0, EBX, 10), f("rtm", L7, 0, EBX, 11), f("cqm", L7, 0, EBX, 12),
    f("mpx", L7, 0, EBX, 14), f("rdt_a", L7, 0, EBX, 15), f("avx512f", L7, 0, EBX, 16),
    f("avx512dq", L7, 0, EBX, 17), f("rdseed", L7, 0, EBX, 18), f("adx", L7, 0, EBX, 19),
    f("smap", L7, 0, EBX, 20), f("avx512ifma", L7, 0, EBX, 21),
    f("clflushopt", L7, 0, EBX, 23), f("clwb", L7, 0, EBX, 24), f("intel_pt", L7, 0, EBX, 25),
    f("avx512pf", L7, 0, EBX, 26), f("avx512er", L7, 0, EBX, 27),
    f("avx512cd", L7, 0, EBX, 28), f("sha_ni", L7, 0, EBX, 29),
    f("avx512bw", L7, 0, EBX, 30), f("avx512vl", L7, 0, EBX, 31),
    // Word 10: CPUID.(EAX=0DH,ECX=1):EAX.
    f("xsaveopt", LD, 1, EAX, 0), f("xsavec", LD, 1, EAX, 1), f("xgetbv1", LD, 1, EAX, 2),
    f("xsaves", LD, 1, EAX, 3), f("xfd", LD, 1, EAX, 4),
    // Word 12: CPUID.(EAX=07H,ECX=1):EAX (Linux 6.1 names only these two).
    f("avx_vnni", L7, 1, EAX, 4), f("avx512_bf16", L7, 1, EAX, 5),
    // Word 13: CPUID.80000008H:EBX (12, 14, 15, 17, 24, 26, 28, 29 hidden).
    f("clzero", X8, 0, EBX, 0), f("irperf", X8, 0, EBX, 1), f("xsaveerptr", X8, 0, EBX, 2),
    f("rdpru", X8, 0, EBX, 4), f("wbnoinvd", X8, 0, EBX, 9), f("amd_ppin", X8, 0, EBX, 23),
    f("virt_ssbd", X8, 0, EBX, 25), f("cppc", X8, 0, EBX, 27), f("brs", X8, 0, EBX, 31),
    // Word 16: CPUID.(EAX=07H,ECX=0):ECX.
    f("avx512vbmi", L7, 0, ECX, 1), f("umip", L7, 0, ECX, 2), f("pku", L7, 0, ECX, 3),
    f("ospke", L7, 0, ECX, 4), f("waitpkg", L7, 0, ECX, 5), f("avx512_vbmi2", L7, 0, ECX, 6),
    f("gfni", L7, 0, ECX, 8), f("vaes", L7, 0, ECX, 9), f("vpclmulqdq", L7, 0, ECX, 10),
    f("avx512_vnni", L7, 0, ECX, 11), f("avx512_bitalg", L7, 0, ECX, 12),
    f("tme", L7, 0, ECX, 13), f("avx512_vpopcntdq", L7, 0, ECX, 14), f("la57", L7, 0, ECX, 16),
    f("rdpid", L7, 0, ECX, 22), f("bus_lock_detect", L7, 0, ECX, 24),
    f("cldemote", L7, 0, ECX, 25), f("movdiri", L7, 0, ECX, 27),
    f("movdir64b", L7, 0, ECX, 28), f("enqcmd", L7, 0, ECX, 29), f("sgx_lc", L7, 0, ECX, 30),
    // Word 18: CPUID.(EAX=07H,ECX=0):EDX (9, 11, 13, 15, 26, 27, 30, 31 hidden).
    f("avx512_4vnniw", L7, 0, EDX, 2), f("avx512_4fmaps", L7, 0, EDX, 3),
    f("fsrm", L7, 0, EDX, 4), f("avx512_vp2intersect", L7, 0, EDX, 8),
    f("md_clear", L7, 0, EDX, 10), f("serialize", L7, 0, EDX, 14),
    f("tsxldtrk", L7, 0, EDX, 16), f("pconfig", L7, 0, EDX, 18), f("arch_lbr", L7, 0, EDX, 19),
    f("ibt", L7, 0, EDX, 20), f("amx_bf16", L7, 0, EDX, 22), f("avx512_fp16", L7, 0, EDX, 23),
    f("amx_tile", L7, 0, EDX, 24), f("amx_int8", L7, 0, EDX, 25),
    f("flush_l1d", L7, 0, EDX, 28), f("arch_capabilities", L7, 0, EDX, 29),
];

/// CPUID.(EAX=07H,ECX=0):EAX, the highest leaf-7 subleaf; Linux reads 7.1 only when >= 1.
const LEAF7_MAX_SUB: usize = EAX;

/// Whether Linux would read this feature's register at all.
fn readable(cpu: &Leaves, feature: &Feature) -> bool {
    if !cpu.has(feature.leaf) {
        return false;
    }
    if feature.leaf == L7 && feature.sub >= 1 {
        return cpu.get(L7, 0)[LEAF7_MAX_SUB] >= feature.sub;
    }
    true
}

/// The named features this vCPU reports, in /proc/cpuinfo order.
pub fn flags(cpu: &Leaves) -> Vec<&'static str> {
    FEATURES
        .iter()
        .filter(|f| readable(cpu, f) && cpu.bit(f.leaf, f.sub, f.reg, f.bit))
        .map(|f| f.name)
        .collect()
}

/// The table entry for a /proc/cpuinfo name.
pub fn feature(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::decode::CpuDump;
    use std::collections::HashSet;

    #[test]
    fn table_has_no_duplicates() {
        let names: HashSet<_> = FEATURES.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), FEATURES.len());
        let bits: HashSet<_> = FEATURES
            .iter()
            .map(|f| (f.leaf, f.sub, f.reg, f.bit))
            .collect();
        assert_eq!(bits.len(), FEATURES.len());
        assert!(FEATURES.iter().all(|f| f.bit < 32));
    }

    #[test]
    fn well_known_spellings() {
        assert_eq!(feature("pni"), Some(&f("pni", 1, 0, ECX, 0)));
        assert_eq!(feature("lm"), Some(&f("lm", 0x8000_0001, 0, EDX, 29)));
        assert_eq!(feature("avx2"), Some(&f("avx2", 7, 0, EBX, 5)));
        assert_eq!(feature("x2apic"), Some(&f("x2apic", 1, 0, ECX, 21)));
        assert_eq!(feature("hypervisor"), Some(&f("hypervisor", 1, 0, ECX, 31)));
        assert_eq!(
            feature("pdpe1gb"),
            Some(&f("pdpe1gb", 0x8000_0001, 0, EDX, 26))
        );
        assert_eq!(feature("osxsave"), None);
        assert_eq!(feature("sse3"), None);
    }

    #[test]
    fn decodes_in_proc_cpuinfo_order() {
        let cpu = CpuDump {
            index: 0,
            leaves: [
                ((0, 0), [0xd, 0, 0, 0]),
                // fpu, sse2, pni, x2apic, osxsave (hidden), hypervisor.
                (
                    (1, 0),
                    [
                        0,
                        0,
                        (1 << 0) | (1 << 21) | (1 << 27) | (1 << 31),
                        1 | (1 << 26),
                    ],
                ),
                // 7.0 EAX=0: the 7.1 avx_vnni bit must be ignored.
                ((7, 0), [0, 1 << 5, 0, 0]),
                ((7, 1), [1 << 4, 0, 0, 0]),
                ((0xd, 1), [1, 0, 0, 0]),
                ((0x8000_0000, 0), [0x8000_0001, 0, 0, 0]),
                ((0x8000_0001, 0), [0, 0, 1, 1 << 29]),
                // Beyond xlevel: clzero must be ignored.
                ((0x8000_0008, 0), [0, 1, 0, 0]),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(
            flags(&Leaves::new(&cpu)),
            [
                "fpu",
                "sse2",
                "lm",
                "pni",
                "x2apic",
                "hypervisor",
                "lahf_lm",
                "avx2",
                "xsaveopt"
            ]
        );
    }
}
