//! Encoders for the CPUID leaves that describe the vCPU topology (1, 0xB, 0x1F,
//! 0x80000001, 0x80000008, 0x8000001E), each following the matching case of QEMU 7.2's
//! `cpu_x86_cpuid()` (target/i386/cpu.c) and, for which subleaves exist, the loop in
//! `kvm_arch_init_vcpu()` (target/i386/kvm/kvm.c) that builds the KVM_SET_CPUID2 table.
//!
//! QEMU 7.2 quirks kept on purpose (the guest sees them under QEMU): the "logical
//! processors" counts of leaves 1, 0xB and 0x80000008 are `cores * threads` per *die*,
//! not per package, while the shifts include the die width. Cache leaves live in
//! `cache_leaves`; which leaves a table gets is decided in `apply`.

use crate::cpuid::KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

use super::field::BitField;
use super::CpuTopology;
use crate::cache::CacheModel;
use crate::cpuid::CpuidEntry;

/// The CPU vendor as the topology encoders distinguish it (QEMU's `IS_INTEL_CPU` /
/// `IS_AMD_CPU` compare the exact vendor string; Hygon, Zhaoxin, VIA... are `Other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuVendor {
    Intel,
    Amd,
    Other,
}

impl CpuVendor {
    /// From the 12-character CPUID.0 vendor string.
    pub fn from_vendor_id(id: &str) -> CpuVendor {
        match id {
            "GenuineIntel" => CpuVendor::Intel,
            "AuthenticAMD" => CpuVendor::Amd,
            _ => CpuVendor::Other,
        }
    }
}

/// `-cpu` properties that change the topology and cache leaves, with QEMU 7.2's defaults
/// for current machine types (all on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopologyFlags {
    /// `l3-cache`: report the L3 in leaf 2 ECX, leaf 4 subleaf 3 and 0x80000006 EDX.
    pub l3_cache: bool,
    /// `cpuid-0xb`: fill leaf 0xB (off gives one all-zero subleaf).
    pub cpuid_0xb: bool,
    /// `x-vendor-cpuid-only`: an AMD vendor gets zeros in the Intel cache leaves 2 and 4.
    pub vendor_cpuid_only: bool,
}

impl Default for TopologyFlags {
    fn default() -> Self {
        TopologyFlags {
            l3_cache: true,
            cpuid_0xb: true,
            vendor_cpuid_only: true,
        }
    }
}

/// Everything the topology and cache encoders need for one vCPU.
#[derive(Debug, Clone, Copy)]
pub struct TopologyContext<'a> {
    pub vendor: CpuVendor,
    pub topology: &'a CpuTopology,
    pub caches: &'a CacheModel,
    pub flags: TopologyFlags,
    /// This vCPU's APIC ID.
    pub apic_id: u32,
}

/// CPUID.01H:EBX[31:24] Initial APIC ID.
pub const LEAF1_EBX_INITIAL_APIC_ID: BitField = BitField::new(31, 24);
/// CPUID.01H:EBX[23:16] Maximum number of addressable IDs for logical processors in this
/// physical package (QEMU: `cores * threads`, only when above 1).
pub const LEAF1_EBX_LOGICAL_COUNT: BitField = BitField::new(23, 16);
/// CPUID.01H:EBX[15:8] CLFLUSH line size, in 8-byte units.
pub const LEAF1_EBX_CLFLUSH_SIZE: BitField = BitField::new(15, 8);
/// CPUID.01H:EDX[28] HTT: the logical processor count field is valid.
pub const LEAF1_EDX_HTT: BitField = BitField::bit(28);
/// QEMU's CLFLUSH line size: 8 quadwords = 64 bytes ("Linux wants it").
pub const CLFLUSH_QWORDS: u32 = 8;

/// CPUID.(EAX=0BH/1FH,ECX=n):EAX[4:0] Shift right of the x2APIC ID to get the next level.
pub const EXT_TOPO_EAX_SHIFT: BitField = BitField::new(4, 0);
/// CPUID.(EAX=0BH/1FH,ECX=n):EBX[15:0] Number of logical processors at this level.
pub const EXT_TOPO_EBX_COUNT: BitField = BitField::new(15, 0);
/// CPUID.(EAX=0BH/1FH,ECX=n):ECX[7:0] Level number (the input ECX).
pub const EXT_TOPO_ECX_LEVEL: BitField = BitField::new(7, 0);
/// CPUID.(EAX=0BH/1FH,ECX=n):ECX[15:8] Level type.
pub const EXT_TOPO_ECX_TYPE: BitField = BitField::new(15, 8);
/// Level types of CPUID.0BH/1FH:ECX[15:8].
pub const LEVEL_TYPE_INVALID: u32 = 0;
pub const LEVEL_TYPE_SMT: u32 = 1;
pub const LEVEL_TYPE_CORE: u32 = 2;
pub const LEVEL_TYPE_DIE: u32 = 5;

/// CPUID.80000001H:ECX[1] CmpLegacy (APM): core multi-processing legacy mode.
pub const EXT1_ECX_CMP_LEGACY: BitField = BitField::bit(1);
/// CPUID.80000001H:ECX[22] TopologyExtensions (APM): leaves 0x8000001D/E are valid.
pub const EXT1_ECX_TOPOEXT: BitField = BitField::bit(22);

/// CPUID.80000008H:ECX[15:12] ApicIdSize (APM: ApicIdCoreIdSize), APIC ID bits for the
/// thread within the package.
pub const EXT8_ECX_APIC_ID_SIZE: BitField = BitField::new(15, 12);
/// CPUID.80000008H:ECX[7:0] NC: threads in the package minus 1.
pub const EXT8_ECX_NC: BitField = BitField::new(7, 0);

/// CPUID.8000001EH:EBX[15:8] ThreadsPerComputeUnit (APM): threads per core minus 1.
pub const EXT1E_EBX_THREADS_PER_CORE: BitField = BitField::new(15, 8);
/// CPUID.8000001EH:EBX[7:0] ComputeUnitId / CoreId.
pub const EXT1E_EBX_CORE_ID: BitField = BitField::new(7, 0);
/// CPUID.8000001EH:ECX NodesPerProcessor minus 1: the APM defines [10:8]; QEMU writes
/// `dies - 1` into the whole byte [15:8].
pub const EXT1E_ECX_NODES_PER_PROCESSOR: BitField = BitField::new(15, 8);
/// CPUID.8000001EH:ECX[7:0] NodeId.
pub const EXT1E_ECX_NODE_ID: BitField = BitField::new(7, 0);

/// QEMU's `cs->nr_cores * cs->nr_threads`: logical processors per die.
fn logical_per_die(ctx: &TopologyContext) -> u32 {
    ctx.topology.threads_per_die()
}

/// An entry for leaf `function`, subleaf `index`, with KVM's significant-index flag.
pub(crate) fn indexed_entry(function: u32, index: u32) -> CpuidEntry {
    CpuidEntry {
        function,
        index,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        ..CpuidEntry::default()
    }
}

/// Leaf 1: writes EBX as QEMU does (initial APIC ID, logical count when above 1, CLFLUSH
/// size 8, brand index 0) and sets EDX.HTT when the count is above 1 (never clears it).
/// EAX, ECX and the other EDX bits are the feature builder's.
pub fn patch_leaf_0x1(ctx: &TopologyContext, entry: &mut CpuidEntry) {
    let count = logical_per_die(ctx);
    let mut ebx = LEAF1_EBX_INITIAL_APIC_ID.encode(ctx.apic_id)
        | LEAF1_EBX_CLFLUSH_SIZE.encode(CLFLUSH_QWORDS);
    if count > 1 {
        // QEMU ORs an unmasked `count << 16`; from 256 up it would spill into the APIC ID.
        LEAF1_EBX_LOGICAL_COUNT.set(&mut ebx, count);
        LEAF1_EDX_HTT.set_flag(&mut entry.edx, true);
    }
    entry.ebx = ebx;
}

/// One level of the extended topology leaves 0xB and 0x1F.
struct TopoLevel {
    level_type: u32,
    /// x2APIC ID shift to the next level.
    shift: u32,
    /// Logical processors at this level.
    count: u32,
}

/// The subleaves of leaf 0xB or 0x1F: one per level, numbered from 0, then the invalid
/// level that ends the enumeration (QEMU's KVM table keeps it). EDX is the x2APIC ID.
fn ext_topo_leaf(function: u32, apic_id: u32, levels: &[TopoLevel]) -> Vec<CpuidEntry> {
    let invalid = TopoLevel {
        level_type: LEVEL_TYPE_INVALID,
        shift: 0,
        count: 0,
    };
    levels
        .iter()
        .chain([&invalid])
        .zip(0u32..)
        .map(|(l, number)| {
            let mut e = indexed_entry(function, number);
            e.eax = EXT_TOPO_EAX_SHIFT.encode(l.shift);
            e.ebx = EXT_TOPO_EBX_COUNT.encode(l.count);
            e.ecx = EXT_TOPO_ECX_LEVEL.encode(number) | EXT_TOPO_ECX_TYPE.encode(l.level_type);
            e.edx = apic_id;
            e
        })
        .collect()
}

/// Leaf 0xB subleaves as QEMU's KVM table has them: SMT (shift = core offset, count =
/// threads), core (shift = package offset, count = cores * threads), then the invalid
/// level 2 that ends the enumeration. With `cpuid-0xb=off`, one all-zero subleaf.
pub fn leaf_0xb(ctx: &TopologyContext) -> Vec<CpuidEntry> {
    if !ctx.flags.cpuid_0xb {
        return vec![indexed_entry(0xB, 0)];
    }
    let t = ctx.topology;
    let levels = [
        TopoLevel {
            level_type: LEVEL_TYPE_SMT,
            shift: t.core_offset(),
            count: t.threads(),
        },
        TopoLevel {
            level_type: LEVEL_TYPE_CORE,
            shift: t.pkg_offset(),
            count: logical_per_die(ctx),
        },
    ];
    ext_topo_leaf(0xB, ctx.apic_id, &levels)
}

/// Leaf 0x1F subleaves: only when dies > 1 (otherwise QEMU leaves the leaf out of the
/// table): SMT, core (shift = die offset), die (shift = package offset, count = dies *
/// cores * threads), then the invalid level 3.
pub fn leaf_0x1f(ctx: &TopologyContext) -> Vec<CpuidEntry> {
    let t = ctx.topology;
    if t.dies() < 2 {
        return Vec::new();
    }
    let levels = [
        TopoLevel {
            level_type: LEVEL_TYPE_SMT,
            shift: t.core_offset(),
            count: t.threads(),
        },
        TopoLevel {
            level_type: LEVEL_TYPE_CORE,
            shift: t.die_offset(),
            count: logical_per_die(ctx),
        },
        TopoLevel {
            level_type: LEVEL_TYPE_DIE,
            shift: t.pkg_offset(),
            count: t.threads_per_package(),
        },
    ];
    ext_topo_leaf(0x1F, ctx.apic_id, &levels)
}

/// Leaf 0x80000001: sets ECX.CmpLegacy when cores * threads > 1 and the vendor is not
/// Intel ("The Linux kernel checks for the CMPLegacy bit and discards multiple thread
/// information if it is set. So don't set it here for Intel"). TopoExt (ECX[22]) is a
/// model feature bit, left to the feature builder.
pub fn patch_leaf_0x80000001(ctx: &TopologyContext, entry: &mut CpuidEntry) {
    if logical_per_die(ctx) > 1 && ctx.vendor != CpuVendor::Intel {
        EXT1_ECX_CMP_LEGACY.set_flag(&mut entry.ecx, true);
    }
}

/// Leaf 0x80000008: writes ECX as QEMU does, `(pkg_offset << 12) | (cores * threads - 1)`
/// when cores * threads > 1, else 0. EAX/EBX are the builder's; QEMU also zeroes EDX.
pub fn patch_leaf_0x80000008(ctx: &TopologyContext, entry: &mut CpuidEntry) {
    let count = logical_per_die(ctx);
    entry.ecx = if count > 1 {
        EXT8_ECX_APIC_ID_SIZE.encode(ctx.topology.pkg_offset()) | EXT8_ECX_NC.encode(count - 1)
    } else {
        0
    };
}

/// Leaf 0x8000001E (`encode_topo_cpuid8000001e`): EAX the extended APIC ID, EBX threads
/// per core - 1 and the core ID, ECX dies - 1 and the node ID (the APIC ID bits above
/// the die offset, i.e. package and die). All zero when the core ID exceeds 255.
pub fn leaf_0x8000001e(ctx: &TopologyContext) -> CpuidEntry {
    let t = ctx.topology;
    let ids = t.ids_from_apic_id(ctx.apic_id);
    let mut e = CpuidEntry {
        function: 0x8000_001E,
        ..CpuidEntry::default()
    };
    if ids.core > 255 {
        return e;
    }
    e.eax = ctx.apic_id;
    e.ebx = EXT1E_EBX_THREADS_PER_CORE.encode(t.threads() - 1) | EXT1E_EBX_CORE_ID.encode(ids.core);
    let node_id = ctx.apic_id.checked_shr(t.die_offset()).unwrap_or(0);
    e.ecx = EXT1E_ECX_NODES_PER_PROCESSOR.encode(t.dies() - 1) | EXT1E_ECX_NODE_ID.encode(node_id);
    e
}

/// QEMU's realize-time warning for an AMD vendor with threads > 1 but no TopoExt.
pub fn hyperthreading_warning(vendor: CpuVendor, topoext: bool, threads: u32) -> Option<String> {
    (vendor == CpuVendor::Amd && !topoext && threads > 1).then(|| {
        format!(
            "This family of AMD CPU doesn't support hyperthreading({threads}); \
             configure --smp properly or enable the topoext feature"
        )
    })
}
