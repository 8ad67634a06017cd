//! Encoders for the CPUID cache leaves (2, 4, 0x80000005, 0x80000006, 0x8000001D) from a
//! [`CacheModel`](crate::cache::CacheModel) and the topology, following QEMU 7.2's
//! `cpu_x86_cpuid()` cases and its helpers `cpuid2_cache_descriptor`,
//! `encode_cache_cpuid4`, `encode_cache_cpuid80000005`, `encode_cache_cpuid80000006` and
//! `encode_cache_cpuid8000001d` (target/i386/cpu.c). Host cache passthrough
//! (`host-cache-info=on`) is not modelled.

use crate::cpuid::{KVM_CPUID_FLAG_STATEFUL_FUNC, KVM_CPUID_FLAG_STATE_READ_NEXT};

use super::field::BitField;
use super::leaves::{indexed_entry, CpuVendor, TopologyContext};
use crate::cache::{amd_encoded_associativity, cpuid2_descriptor, tlb, CacheInfo};
use crate::cpuid::CpuidEntry;

/// CPUID.02H:EAX[7:0] Number of times leaf 2 must be executed (always 1).
pub const LEAF2_EAX_ITERATIONS: BitField = BitField::new(7, 0);
/// CPUID.02H:EDX descriptor bytes QEMU fills: L1d in [23:16], L1i in [15:8], L2 in [7:0].
pub const LEAF2_EDX_L1D: BitField = BitField::new(23, 16);
pub const LEAF2_EDX_L1I: BitField = BitField::new(15, 8);
pub const LEAF2_EDX_L2: BitField = BitField::new(7, 0);
/// CPUID.02H:ECX[7:0] QEMU's L3 descriptor byte (with l3-cache=on).
pub const LEAF2_ECX_L3: BitField = BitField::new(7, 0);

/// CPUID.04H:EAX[4:0] (and 8000001DH) Cache Type Field.
pub const CACHE_EAX_TYPE: BitField = BitField::new(4, 0);
/// CPUID.04H:EAX[7:5] Cache Level.
pub const CACHE_EAX_LEVEL: BitField = BitField::new(7, 5);
/// CPUID.04H:EAX[8] Self Initializing cache level.
pub const CACHE_EAX_SELF_INIT: BitField = BitField::bit(8);
/// CPUID.04H:EAX[25:14] Maximum number of addressable IDs for logical processors sharing
/// this cache, minus 1 (8000001DH: NumSharingCache minus 1).
pub const CACHE_EAX_SHARING: BitField = BitField::new(25, 14);
/// CPUID.04H:EAX[31:26] Maximum number of addressable IDs for processor cores in the
/// physical package, minus 1.
pub const LEAF4_EAX_CORES: BitField = BitField::new(31, 26);
/// CPUID.04H:EBX[11:0] System Coherency Line Size minus 1.
pub const CACHE_EBX_LINE_SIZE: BitField = BitField::new(11, 0);
/// CPUID.04H:EBX[21:12] Physical Line partitions minus 1.
pub const CACHE_EBX_PARTITIONS: BitField = BitField::new(21, 12);
/// CPUID.04H:EBX[31:22] Ways of associativity minus 1.
pub const CACHE_EBX_WAYS: BitField = BitField::new(31, 22);
/// CPUID.04H:ECX[31:0] Number of Sets minus 1.
pub const CACHE_ECX_SETS: BitField = BitField::new(31, 0);
/// CPUID.04H:EDX[0] Write-Back Invalidate/Invalidate does not act on lower sharers.
pub const CACHE_EDX_NO_INVD_SHARING: BitField = BitField::bit(0);
/// CPUID.04H:EDX[1] Cache Inclusiveness.
pub const CACHE_EDX_INCLUSIVE: BitField = BitField::bit(1);
/// CPUID.04H:EDX[2] Complex Cache Indexing.
pub const CACHE_EDX_COMPLEX_INDEX: BitField = BitField::bit(2);

/// CPUID.80000005H:EAX/EBX (APM): [31:24] L1 DTLB ways, [23:16] L1 DTLB entries,
/// [15:8] L1 ITLB ways, [7:0] L1 ITLB entries (EAX for 2M/4M pages, EBX for 4K).
pub const L1_TLB_D_WAYS: BitField = BitField::new(31, 24);
pub const L1_TLB_D_ENTRIES: BitField = BitField::new(23, 16);
pub const L1_TLB_I_WAYS: BitField = BitField::new(15, 8);
pub const L1_TLB_I_ENTRIES: BitField = BitField::new(7, 0);
/// CPUID.80000005H:ECX/EDX (APM): [31:24] L1 size in KiB, [23:16] ways,
/// [15:8] lines per tag, [7:0] line size (ECX data cache, EDX instruction cache).
pub const L1_CACHE_SIZE_KB: BitField = BitField::new(31, 24);
pub const L1_CACHE_WAYS: BitField = BitField::new(23, 16);
pub const L1_CACHE_LINES_PER_TAG: BitField = BitField::new(15, 8);
pub const L1_CACHE_LINE_SIZE: BitField = BitField::new(7, 0);
/// CPUID.80000006H:EAX/EBX (APM): [31:28] L2 DTLB ways (encoded), [27:16] entries,
/// [15:12] L2 ITLB ways (encoded), [11:0] entries.
pub const L2_TLB_D_WAYS: BitField = BitField::new(31, 28);
pub const L2_TLB_D_ENTRIES: BitField = BitField::new(27, 16);
pub const L2_TLB_I_WAYS: BitField = BitField::new(15, 12);
pub const L2_TLB_I_ENTRIES: BitField = BitField::new(11, 0);
/// CPUID.80000006H:ECX (APM): [31:16] L2 size in KiB, [15:12] ways (encoded),
/// [11:8] lines per tag, [7:0] line size.
pub const L2_CACHE_SIZE_KB: BitField = BitField::new(31, 16);
/// CPUID.80000006H:EDX[31:18] L3 size in 512 KiB units.
pub const L3_CACHE_SIZE_512K: BitField = BitField::new(31, 18);
/// CPUID.80000006H:ECX/EDX[15:12] ways (encoded), [11:8] lines per tag, [7:0] line size.
pub const L23_CACHE_WAYS: BitField = BitField::new(15, 12);
pub const L23_CACHE_LINES_PER_TAG: BitField = BitField::new(11, 8);
pub const L23_CACHE_LINE_SIZE: BitField = BitField::new(7, 0);

/// `v - 1` for the "minus 1" fields; a zero count (never in QEMU's tables) encodes as 0.
fn minus_one(v: u32) -> u32 {
    v.saturating_sub(1)
}

/// Zeros for leaves 2 and 4 when `x-vendor-cpuid-only` hides them from an AMD guest.
fn intel_cache_leaves_hidden(ctx: &TopologyContext) -> bool {
    ctx.flags.vendor_cpuid_only && ctx.vendor == CpuVendor::Amd
}

/// Leaf 2 (one iteration): L1d/L1i/L2 descriptors in EDX, the L3's in ECX with l3-cache.
/// Flags as QEMU's table: stateful, read-next.
pub fn leaf_0x2(ctx: &TopologyContext) -> CpuidEntry {
    let mut e = CpuidEntry {
        function: 2,
        flags: KVM_CPUID_FLAG_STATEFUL_FUNC | KVM_CPUID_FLAG_STATE_READ_NEXT,
        ..CpuidEntry::default()
    };
    if intel_cache_leaves_hidden(ctx) {
        return e;
    }
    let set = &ctx.caches.cpuid2;
    let descriptor = |c: &CacheInfo| u32::from(cpuid2_descriptor(c));
    e.eax = LEAF2_EAX_ITERATIONS.encode(1);
    if ctx.flags.l3_cache {
        e.ecx = LEAF2_ECX_L3.encode(descriptor(&set.l3));
    }
    e.edx = LEAF2_EDX_L1D.encode(descriptor(&set.l1d))
        | LEAF2_EDX_L1I.encode(descriptor(&set.l1i))
        | LEAF2_EDX_L2.encode(descriptor(&set.l2));
    e
}

/// EBX/ECX/EDX shared by leaves 4 and 0x8000001D, and EAX's type/level/self-init part.
fn encode_cache_common(cache: &CacheInfo, e: &mut CpuidEntry) {
    e.eax = CACHE_EAX_TYPE.encode(cache.kind.cpuid_code())
        | CACHE_EAX_LEVEL.encode(cache.level)
        | CACHE_EAX_SELF_INIT.encode(u32::from(cache.self_init));
    e.ebx = CACHE_EBX_LINE_SIZE.encode(minus_one(cache.line_size))
        | CACHE_EBX_PARTITIONS.encode(minus_one(cache.partitions))
        | CACHE_EBX_WAYS.encode(minus_one(cache.associativity));
    e.ecx = CACHE_ECX_SETS.encode(minus_one(cache.sets));
    e.edx = CACHE_EDX_NO_INVD_SHARING.encode(u32::from(cache.no_invd_sharing))
        | CACHE_EDX_INCLUSIVE.encode(u32::from(cache.inclusive))
        | CACHE_EDX_COMPLEX_INDEX.encode(u32::from(cache.complex_indexing));
}

/// One leaf-4 subleaf (`encode_cache_cpuid4`): `num_apic_ids` logical processors share
/// the cache, `num_cores` cores per package.
pub fn encode_cache_cpuid4(
    cache: &CacheInfo,
    num_apic_ids: u32,
    num_cores: u32,
    index: u32,
) -> CpuidEntry {
    let mut e = indexed_entry(4, index);
    encode_cache_common(cache, &mut e);
    e.eax |= LEAF4_EAX_CORES.encode(minus_one(num_cores))
        | CACHE_EAX_SHARING.encode(minus_one(num_apic_ids));
    e
}

/// Leaf 4 subleaves as QEMU's KVM table has them, ending with the all-zero subleaf:
/// L1d and L1i shared by 1, L2 by `threads`, L3 (with l3-cache) by `1 << die_offset`;
/// EAX[31:26] is `cores - 1` (cores per die). One zero subleaf when hidden from AMD.
pub fn leaf_0x4(ctx: &TopologyContext) -> Vec<CpuidEntry> {
    if intel_cache_leaves_hidden(ctx) {
        return vec![indexed_entry(4, 0)];
    }
    let t = ctx.topology;
    let set = &ctx.caches.cpuid4;
    let cores = t.cores();
    let mut out = vec![
        encode_cache_cpuid4(&set.l1d, 1, cores, 0),
        encode_cache_cpuid4(&set.l1i, 1, cores, 1),
        encode_cache_cpuid4(&set.l2, t.threads(), cores, 2),
    ];
    if ctx.flags.l3_cache {
        out.push(encode_cache_cpuid4(
            &set.l3,
            1u32.checked_shl(t.die_offset()).unwrap_or(0),
            cores,
            3,
        ));
    }
    // At most a handful of cache levels: the count always fits.
    let end = u32::try_from(out.len()).unwrap_or(u32::MAX);
    out.push(indexed_entry(4, end));
    out
}

/// ECX/EDX of leaf 0x80000005 for one L1 cache (`encode_cache_cpuid80000005`).
fn encode_l1_amd(cache: &CacheInfo) -> u32 {
    L1_CACHE_SIZE_KB.encode(cache.size / 1024)
        | L1_CACHE_WAYS.encode(cache.associativity)
        | L1_CACHE_LINES_PER_TAG.encode(cache.lines_per_tag)
        | L1_CACHE_LINE_SIZE.encode(cache.line_size)
}

/// Leaf 0x80000005: QEMU's fixed L1 TLBs in EAX/EBX, the AMD L1d/L1i in ECX/EDX.
pub fn leaf_0x80000005(ctx: &TopologyContext) -> CpuidEntry {
    let l1_tlb = |d: (u32, u32), i: (u32, u32)| {
        L1_TLB_D_WAYS.encode(d.0)
            | L1_TLB_D_ENTRIES.encode(d.1)
            | L1_TLB_I_WAYS.encode(i.0)
            | L1_TLB_I_ENTRIES.encode(i.1)
    };
    CpuidEntry {
        function: 0x8000_0005,
        eax: l1_tlb(tlb::L1_DTLB_2M, tlb::L1_ITLB_2M),
        ebx: l1_tlb(tlb::L1_DTLB_4K, tlb::L1_ITLB_4K),
        ecx: encode_l1_amd(&ctx.caches.amd.l1d),
        edx: encode_l1_amd(&ctx.caches.amd.l1i),
        ..CpuidEntry::default()
    }
}

/// Leaf 0x80000006: QEMU's fixed L2 TLBs in EAX/EBX, the AMD L2 in ECX and, with
/// l3-cache, the L3 in EDX (`encode_cache_cpuid80000006`).
pub fn leaf_0x80000006(ctx: &TopologyContext) -> CpuidEntry {
    let l2_tlb = |d: (u32, u32), i: (u32, u32)| {
        L2_TLB_D_WAYS.encode(amd_encoded_associativity(d.0))
            | L2_TLB_D_ENTRIES.encode(d.1)
            | L2_TLB_I_WAYS.encode(amd_encoded_associativity(i.0))
            | L2_TLB_I_ENTRIES.encode(i.1)
    };
    let tail = |c: &CacheInfo| {
        L23_CACHE_WAYS.encode(amd_encoded_associativity(c.associativity))
            | L23_CACHE_LINES_PER_TAG.encode(c.lines_per_tag)
            | L23_CACHE_LINE_SIZE.encode(c.line_size)
    };
    let set = &ctx.caches.amd;
    CpuidEntry {
        function: 0x8000_0006,
        eax: l2_tlb(tlb::L2_DTLB_2M, tlb::L2_ITLB_2M),
        ebx: l2_tlb(tlb::L2_DTLB_4K, tlb::L2_ITLB_4K),
        ecx: L2_CACHE_SIZE_KB.encode(set.l2.size / 1024) | tail(&set.l2),
        edx: if ctx.flags.l3_cache {
            L3_CACHE_SIZE_512K.encode(set.l3.size / (512 * 1024)) | tail(&set.l3)
        } else {
            0
        },
        ..CpuidEntry::default()
    }
}

/// One leaf-0x8000001D subleaf (`encode_cache_cpuid8000001d`): the L3 is shared by
/// `cores * threads` (per die), the others by `threads`.
pub fn encode_cache_cpuid8000001d(
    ctx: &TopologyContext,
    cache: &CacheInfo,
    index: u32,
) -> CpuidEntry {
    let t = ctx.topology;
    let mut e = indexed_entry(0x8000_001D, index);
    encode_cache_common(cache, &mut e);
    let sharing = if cache.level == 3 {
        t.threads_per_die()
    } else {
        t.threads()
    };
    e.eax |= CACHE_EAX_SHARING.encode(minus_one(sharing));
    e
}

/// Leaf 0x8000001D subleaves L1d, L1i, L2, L3 (always, whatever l3-cache says) and the
/// all-zero subleaf 4 that ends QEMU's enumeration.
pub fn leaf_0x8000001d(ctx: &TopologyContext) -> Vec<CpuidEntry> {
    let set = &ctx.caches.amd;
    vec![
        encode_cache_cpuid8000001d(ctx, &set.l1d, 0),
        encode_cache_cpuid8000001d(ctx, &set.l1i, 1),
        encode_cache_cpuid8000001d(ctx, &set.l2, 2),
        encode_cache_cpuid8000001d(ctx, &set.l3, 3),
        indexed_entry(0x8000_001D, 4),
    ]
}
