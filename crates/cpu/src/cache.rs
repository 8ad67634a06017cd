//! The cache hierarchy a guest is told about, as data: QEMU 7.2's cache descriptions
//! (target/i386/cpu.c: the `legacy_*_cache` definitions used by every model without its
//! own cache info, and `epyc_cache_info`, `epyc_rome_cache_info`, `epyc_milan_cache_info`),
//! the Intel CPUID leaf 2 descriptor table, and the fixed TLB values of leaves
//! 0x80000005/0x80000006. The register encoders live in `topology::cache_leaves`.

/// Cache type, as CPUID.04H:EAX[4:0] and CPUID.8000001DH:EAX[4:0] encode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheType {
    Data,
    Instruction,
    Unified,
}

impl CacheType {
    /// CPUID.04H:EAX[4:0] Cache Type Field: 1 data, 2 instruction, 3 unified.
    pub const fn cpuid_code(self) -> u32 {
        match self {
            CacheType::Data => 1,
            CacheType::Instruction => 2,
            CacheType::Unified => 3,
        }
    }
}

/// One cache, with the fields of QEMU's `CPUCacheInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheInfo {
    pub kind: CacheType,
    /// 1, 2 or 3.
    pub level: u32,
    /// Bytes.
    pub size: u32,
    /// Bytes per line.
    pub line_size: u32,
    /// Ways.
    pub associativity: u32,
    /// Physical line partitions.
    pub partitions: u32,
    pub sets: u32,
    /// Lines per tag (AMD leaves 0x80000005/6 only).
    pub lines_per_tag: u32,
    /// Self-initializing cache level (CPUID.04H:EAX[8]).
    pub self_init: bool,
    /// WBINVD/INVD does not act on lower levels' sharers (CPUID.04H:EDX[0]).
    pub no_invd_sharing: bool,
    /// Inclusive of lower levels (CPUID.04H:EDX[1]).
    pub inclusive: bool,
    /// Complex (hashed) indexing (CPUID.04H:EDX[2]).
    pub complex_indexing: bool,
}

const KIB: u32 = 1024;
const MIB: u32 = 1024 * 1024;

/// Field defaults shared by the tables below (QEMU leaves unnamed fields zero/false).
const BASE: CacheInfo = CacheInfo {
    kind: CacheType::Unified,
    level: 0,
    size: 0,
    line_size: 64,
    associativity: 0,
    partitions: 0,
    sets: 0,
    lines_per_tag: 0,
    self_init: false,
    no_invd_sharing: false,
    inclusive: false,
    complex_indexing: false,
};

/// The four caches one set of CPUID leaves describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheSet {
    pub l1d: CacheInfo,
    pub l1i: CacheInfo,
    pub l2: CacheInfo,
    pub l3: CacheInfo,
}

/// The caches behind each family of CPUID leaves (QEMU's `env->cache_info_cpuid2`,
/// `cache_info_cpuid4` and `cache_info_amd`). They differ only with legacy caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheModel {
    /// Leaf 2 descriptors.
    pub cpuid2: CacheSet,
    /// Leaf 4 (Intel deterministic cache parameters).
    pub cpuid4: CacheSet,
    /// Leaves 0x80000005, 0x80000006 and 0x8000001D (AMD).
    pub amd: CacheSet,
}

impl CacheModel {
    /// QEMU's legacy caches (`legacy-cache=on`, the default for every model without cache
    /// info): leaf 2 says L2 2 MiB 8-way while leaf 4 says 4 MiB 16-way, and the AMD leaves
    /// say L1 64 KiB 2-way and L2 512 KiB, as QEMU's own FIXME comments note.
    pub const fn legacy() -> CacheModel {
        CacheModel {
            cpuid2: CacheSet {
                l1d: LEGACY_L1D,
                l1i: LEGACY_L1I,
                l2: LEGACY_L2_CPUID2,
                l3: LEGACY_L3,
            },
            cpuid4: CacheSet {
                l1d: LEGACY_L1D,
                l1i: LEGACY_L1I,
                l2: LEGACY_L2,
                l3: LEGACY_L3,
            },
            amd: CacheSet {
                l1d: LEGACY_L1D_AMD,
                l1i: LEGACY_L1I_AMD,
                l2: LEGACY_L2_AMD,
                l3: LEGACY_L3,
            },
        }
    }

    /// One model's cache info used for every leaf (`legacy-cache=off`).
    pub const fn uniform(set: CacheSet) -> CacheModel {
        CacheModel {
            cpuid2: set,
            cpuid4: set,
            amd: set,
        }
    }

    /// What QEMU 7.2 uses for a model with default properties: the model's own cache
    /// info when it has one (legacy-cache defaults to off then), else the legacy caches.
    pub fn for_caches(caches: Option<ModelCaches>) -> CacheModel {
        caches.map_or(CacheModel::legacy(), |c| CacheModel::uniform(c.set()))
    }
}

/// The cache tables QEMU 7.2 models define (`CPUCaches`), as a model's typed field: EPYC
/// and Dhyana use `epyc_cache_info`, EPYC-Rome `epyc_rome_cache_info`, EPYC-Milan
/// `epyc_milan_cache_info`; no other 7.2 model has any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelCaches {
    Epyc,
    EpycRome,
    EpycMilan,
}

impl ModelCaches {
    /// The caches of the table.
    pub const fn set(self) -> CacheSet {
        match self {
            ModelCaches::Epyc => EPYC_CACHES,
            ModelCaches::EpycRome => EPYC_ROME_CACHES,
            ModelCaches::EpycMilan => EPYC_MILAN_CACHES,
        }
    }

    /// QEMU's name for the table.
    pub const fn qemu_name(self) -> &'static str {
        match self {
            ModelCaches::Epyc => "epyc_cache_info",
            ModelCaches::EpycRome => "epyc_rome_cache_info",
            ModelCaches::EpycMilan => "epyc_milan_cache_info",
        }
    }
}

/// `legacy_l1d_cache`: 32 KiB, 8-way, 64 sets.
pub const LEGACY_L1D: CacheInfo = CacheInfo {
    kind: CacheType::Data,
    level: 1,
    size: 32 * KIB,
    associativity: 8,
    partitions: 1,
    sets: 64,
    self_init: true,
    no_invd_sharing: true,
    ..BASE
};

/// `legacy_l1i_cache`: 32 KiB, 8-way, 64 sets.
pub const LEGACY_L1I: CacheInfo = CacheInfo {
    kind: CacheType::Instruction,
    ..LEGACY_L1D
};

/// `legacy_l1d_cache_amd`: 64 KiB, 2-way, 512 sets, one line per tag.
pub const LEGACY_L1D_AMD: CacheInfo = CacheInfo {
    kind: CacheType::Data,
    level: 1,
    size: 64 * KIB,
    associativity: 2,
    partitions: 1,
    sets: 512,
    lines_per_tag: 1,
    self_init: true,
    no_invd_sharing: true,
    ..BASE
};

/// `legacy_l1i_cache_amd`: as the AMD L1d, for instructions.
pub const LEGACY_L1I_AMD: CacheInfo = CacheInfo {
    kind: CacheType::Instruction,
    ..LEGACY_L1D_AMD
};

/// `legacy_l2_cache`: 4 MiB, 16-way, 4096 sets (leaf 4).
pub const LEGACY_L2: CacheInfo = CacheInfo {
    level: 2,
    size: 4 * MIB,
    associativity: 16,
    partitions: 1,
    sets: 4096,
    self_init: true,
    no_invd_sharing: true,
    ..BASE
};

/// `legacy_l2_cache_cpuid2`: 2 MiB, 8-way (leaf 2 only; no sets/partitions).
pub const LEGACY_L2_CPUID2: CacheInfo = CacheInfo {
    level: 2,
    size: 2 * MIB,
    associativity: 8,
    ..BASE
};

/// `legacy_l2_cache_amd`: 512 KiB, 16-way, 512 sets, not self-initializing.
pub const LEGACY_L2_AMD: CacheInfo = CacheInfo {
    level: 2,
    size: 512 * KIB,
    associativity: 16,
    partitions: 1,
    sets: 512,
    lines_per_tag: 1,
    ..BASE
};

/// `legacy_l3_cache`: 16 MiB, 16-way, 16384 sets, inclusive, complex indexing.
pub const LEGACY_L3: CacheInfo = CacheInfo {
    level: 3,
    size: 16 * MIB,
    associativity: 16,
    partitions: 1,
    sets: 16384,
    lines_per_tag: 1,
    self_init: true,
    inclusive: true,
    complex_indexing: true,
    ..BASE
};

/// L1d of the EPYC family: 32 KiB, 8-way, 64 sets.
const EPYC_L1D: CacheInfo = CacheInfo {
    kind: CacheType::Data,
    level: 1,
    size: 32 * KIB,
    associativity: 8,
    partitions: 1,
    sets: 64,
    lines_per_tag: 1,
    self_init: true,
    no_invd_sharing: true,
    ..BASE
};

/// L2 of the EPYC family: 512 KiB, 8-way, 1024 sets.
const EPYC_L2: CacheInfo = CacheInfo {
    level: 2,
    size: 512 * KIB,
    associativity: 8,
    partitions: 1,
    sets: 1024,
    lines_per_tag: 1,
    ..BASE
};

/// `epyc_cache_info` (EPYC, Dhyana): L1i 64 KiB 4-way, L3 8 MiB 16-way.
pub const EPYC_CACHES: CacheSet = CacheSet {
    l1d: EPYC_L1D,
    l1i: CacheInfo {
        kind: CacheType::Instruction,
        size: 64 * KIB,
        associativity: 4,
        sets: 256,
        ..EPYC_L1D
    },
    l2: EPYC_L2,
    l3: CacheInfo {
        size: 8 * MIB,
        sets: 8192,
        ..LEGACY_L3
    },
};

/// `epyc_rome_cache_info`: L1i 32 KiB 8-way, L3 16 MiB 16-way.
pub const EPYC_ROME_CACHES: CacheSet = CacheSet {
    l1d: EPYC_L1D,
    l1i: CacheInfo {
        kind: CacheType::Instruction,
        ..EPYC_L1D
    },
    l2: EPYC_L2,
    l3: LEGACY_L3,
};

/// `epyc_milan_cache_info`: as Rome with a 32 MiB L3 (32768 sets).
pub const EPYC_MILAN_CACHES: CacheSet = CacheSet {
    l3: CacheInfo {
        size: 32 * MIB,
        sets: 32768,
        ..LEGACY_L3
    },
    ..EPYC_ROME_CACHES
};

/// CPUID.02H descriptor byte meaning "no descriptor, use leaf 4" (SDM Table 3-12, 0xFF).
pub const CPUID2_DESCRIPTOR_UNAVAILABLE: u8 = 0xff;

/// The CPUID.02H descriptors QEMU 7.2 knows (`cpuid2_cache_descriptors[]`, from SDM Vol. 2A
/// Table 3-12): (descriptor, level, type, size, ways, line size).
const CPUID2_DESCRIPTORS: &[(u8, u32, CacheType, u32, u32, u32)] = {
    use CacheType::{Data as D, Instruction as I, Unified as U};
    &[
        (0x06, 1, I, 8 * KIB, 4, 32),
        (0x08, 1, I, 16 * KIB, 4, 32),
        (0x09, 1, I, 32 * KIB, 4, 64),
        (0x0A, 1, D, 8 * KIB, 2, 32),
        (0x0C, 1, D, 16 * KIB, 4, 32),
        (0x0D, 1, D, 16 * KIB, 4, 64),
        (0x0E, 1, D, 24 * KIB, 6, 64),
        (0x1D, 2, U, 128 * KIB, 2, 64),
        (0x21, 2, U, 256 * KIB, 8, 64),
        (0x24, 2, U, MIB, 16, 64),
        (0x2C, 1, D, 32 * KIB, 8, 64),
        (0x30, 1, I, 32 * KIB, 8, 64),
        (0x41, 2, U, 128 * KIB, 4, 32),
        (0x42, 2, U, 256 * KIB, 4, 32),
        (0x43, 2, U, 512 * KIB, 4, 32),
        (0x44, 2, U, MIB, 4, 32),
        (0x45, 2, U, 2 * MIB, 4, 32),
        (0x46, 3, U, 4 * MIB, 4, 64),
        (0x47, 3, U, 8 * MIB, 8, 64),
        (0x48, 2, U, 3 * MIB, 12, 64),
        (0x4A, 3, U, 6 * MIB, 12, 64),
        (0x4B, 3, U, 8 * MIB, 16, 64),
        (0x4C, 3, U, 12 * MIB, 12, 64),
        (0x4D, 3, U, 16 * MIB, 16, 64),
        (0x4E, 2, U, 6 * MIB, 24, 64),
        (0x60, 1, D, 16 * KIB, 8, 64),
        (0x66, 1, D, 8 * KIB, 4, 64),
        (0x67, 1, D, 16 * KIB, 4, 64),
        (0x68, 1, D, 32 * KIB, 4, 64),
        (0x78, 2, U, MIB, 4, 64),
        (0x7D, 2, U, 2 * MIB, 8, 64),
        (0x7F, 2, U, 512 * KIB, 2, 64),
        (0x80, 2, U, 512 * KIB, 8, 64),
        (0x82, 2, U, 256 * KIB, 8, 32),
        (0x83, 2, U, 512 * KIB, 8, 32),
        (0x84, 2, U, MIB, 8, 32),
        (0x85, 2, U, 2 * MIB, 8, 32),
        (0x86, 2, U, 512 * KIB, 4, 64),
        (0x87, 2, U, MIB, 8, 64),
        (0xD0, 3, U, 512 * KIB, 4, 64),
        (0xD1, 3, U, MIB, 4, 64),
        (0xD2, 3, U, 2 * MIB, 4, 64),
        (0xD6, 3, U, MIB, 8, 64),
        (0xD7, 3, U, 2 * MIB, 8, 64),
        (0xD8, 3, U, 4 * MIB, 8, 64),
        (0xDC, 3, U, 3 * MIB / 2, 12, 64),
        (0xDD, 3, U, 3 * MIB, 12, 64),
        (0xDE, 3, U, 6 * MIB, 12, 64),
        (0xE2, 3, U, 2 * MIB, 16, 64),
        (0xE3, 3, U, 4 * MIB, 16, 64),
        (0xE4, 3, U, 8 * MIB, 16, 64),
        (0xEA, 3, U, 12 * MIB, 24, 64),
        (0xEB, 3, U, 18 * MIB, 24, 64),
        (0xEC, 3, U, 24 * MIB, 24, 64),
    ]
};

/// The CPUID.02H descriptor byte for `cache` (`cpuid2_cache_descriptor()`): the lowest
/// descriptor with the same level, type, size, line size and ways, else 0xFF.
pub fn cpuid2_descriptor(cache: &CacheInfo) -> u8 {
    CPUID2_DESCRIPTORS
        .iter()
        .find(|&&(_, level, kind, size, ways, line)| {
            level == cache.level
                && kind == cache.kind
                && size == cache.size
                && ways == cache.associativity
                && line == cache.line_size
        })
        .map_or(CPUID2_DESCRIPTOR_UNAVAILABLE, |d| d.0)
}

/// Associativity as CPUID.80000006H encodes it (QEMU's `AMD_ENC_ASSOC`, APM Vol. 3
/// "L2/L3 cache and TLB associativity field encoding"); 0xFF means fully associative.
pub const fn amd_encoded_associativity(ways: u32) -> u32 {
    match ways {
        0 | 1 => ways,
        2 => 0x2,
        4 => 0x4,
        8 => 0x6,
        16 => 0x8,
        32 => 0xA,
        48 => 0xB,
        64 => 0xC,
        96 => 0xD,
        128 => 0xE,
        0xFF => 0xF,
        _ => 0,
    }
}

/// QEMU's fixed TLB description for leaves 0x80000005/6: (ways, entries).
pub mod tlb {
    /// L1 data and instruction TLBs, 2M/4M and 4K pages: direct mapped, 255 entries.
    pub const L1_DTLB_2M: (u32, u32) = (1, 255);
    pub const L1_ITLB_2M: (u32, u32) = (1, 255);
    pub const L1_DTLB_4K: (u32, u32) = (1, 255);
    pub const L1_ITLB_4K: (u32, u32) = (1, 255);
    /// L2 TLBs for 2M/4M pages: disabled.
    pub const L2_DTLB_2M: (u32, u32) = (0, 0);
    pub const L2_ITLB_2M: (u32, u32) = (0, 0);
    /// L2 TLBs for 4K pages: 4-way, 512 entries.
    pub const L2_DTLB_4K: (u32, u32) = (4, 512);
    pub const L2_ITLB_4K: (u32, u32) = (4, 512);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_tables() -> Vec<(&'static str, CacheInfo)> {
        let mut out = Vec::new();
        let legacy = CacheModel::legacy();
        for (name, set) in [
            ("legacy cpuid4", legacy.cpuid4),
            ("legacy amd", legacy.amd),
            ("epyc", EPYC_CACHES),
            ("rome", EPYC_ROME_CACHES),
            ("milan", EPYC_MILAN_CACHES),
        ] {
            out.extend([
                (name, set.l1d),
                (name, set.l1i),
                (name, set.l2),
                (name, set.l3),
            ]);
        }
        out
    }

    /// The invariants QEMU asserts in encode_cache_cpuid4/8000001d.
    #[test]
    fn geometry_is_consistent() {
        for (name, c) in all_tables() {
            let product = c.line_size * c.associativity * c.partitions * c.sets;
            assert_eq!(c.size, product, "{name} L{} {:?}", c.level, c.kind);
            assert!(c.associativity < c.sets, "{name} L{}", c.level);
        }
    }

    #[test]
    fn legacy_descriptors_are_the_ones_qemu_reports() {
        // QEMU 7.2 leaf 2 for every legacy-cache model: ECX=0x4d, EDX=0x002c307d.
        let set = CacheModel::legacy().cpuid2;
        let got = [&set.l1d, &set.l1i, &set.l2, &set.l3].map(cpuid2_descriptor);
        assert_eq!(got, [0x2C, 0x30, 0x7D, 0x4D]);
    }

    #[test]
    fn epyc_descriptors_include_unavailable() {
        let got = [
            &EPYC_CACHES.l1d,
            &EPYC_CACHES.l1i,
            &EPYC_CACHES.l2,
            &EPYC_CACHES.l3,
        ]
        .map(cpuid2_descriptor);
        // 8 MiB 16-way matches 0x4B before 0xE4: the lowest descriptor wins, as in QEMU.
        assert_eq!(got, [0x2C, 0xFF, 0x80, 0x4B]);
        assert_eq!(cpuid2_descriptor(&EPYC_ROME_CACHES.l1i), 0x30);
        assert_eq!(cpuid2_descriptor(&EPYC_ROME_CACHES.l3), 0x4D);
        assert_eq!(cpuid2_descriptor(&EPYC_MILAN_CACHES.l3), 0xFF);
    }

    #[test]
    fn models_with_cache_info() {
        // The model tables name the cache table; versions and aliases share their model's.
        let model_cache_info = |name: &str| crate::models::model_caches(name).map(ModelCaches::set);
        assert_eq!(model_cache_info("EPYC"), Some(EPYC_CACHES));
        assert_eq!(model_cache_info("EPYC-v3"), Some(EPYC_CACHES));
        assert_eq!(model_cache_info("EPYC-IBPB"), Some(EPYC_CACHES));
        assert_eq!(model_cache_info("Dhyana-v2"), Some(EPYC_CACHES));
        assert_eq!(model_cache_info("EPYC-Rome-v2"), Some(EPYC_ROME_CACHES));
        assert_eq!(model_cache_info("EPYC-Milan"), Some(EPYC_MILAN_CACHES));
        assert_eq!(model_cache_info("Skylake-Server"), None);
        assert_eq!(model_cache_info("qemu64"), None);
        let haswell = crate::models::model_caches("Haswell");
        assert_eq!(CacheModel::for_caches(haswell), CacheModel::legacy());
        assert_eq!(EPYC_MILAN_CACHES.l3.size, 32 * MIB);
    }

    #[test]
    fn amd_associativity_codes() {
        let table = [
            (1, 1),
            (2, 2),
            (4, 4),
            (8, 6),
            (16, 8),
            (96, 0xD),
            (0xFF, 0xF),
            (3, 0),
        ];
        for (ways, code) in table {
            assert_eq!(amd_encoded_associativity(ways), code, "{ways} ways");
        }
    }
}
