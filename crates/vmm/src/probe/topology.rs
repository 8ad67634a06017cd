//! The package / die / core IDs a Linux 6.1 guest (Debian 12's kernel) derives from one
//! vCPU's CPUID, and the lscpu-style counts over all vCPUs.
//!
//! Mirrors, as plain functions over the dumped leaves, arch/x86/kernel/cpu of Linux 6.1:
//! - topology.c `detect_extended_topology`: leaf 1FH is preferred over 0BH when valid
//!   (subleaf 0 has EBX != 0 and level type SMT); core_id = (x2APIC ID >> SMT shift) masked up
//!   to the package shift (so it counts cores across dies), die_id = (ID >> core shift) masked
//!   up to the die shift only when a die level exists, package = ID >> last shift;
//! - common.c `detect_ht` for the legacy path (HTT set, no CmpLegacy, no extended topology):
//!   CPUID.1:EBX[23:16] logical processors and, on Intel, CPUID.4:EAX[31:26] cores;
//! - amd.c: `early_init_amd_mc` (80000008H:ECX NC and ApicIdSize), `amd_detect_cmp`, and
//!   `amd_get_topology` (8000001EH core and node IDs when TopologyExtensions is set, then leaf
//!   0BH, then the pre-Zen multi-node core_id fixup).
//!
//! Vendors: GenuineIntel, CentaurHauls and "  Shanghai  " take the Intel path; AuthenticAMD
//! and HygonGenuine the AMD path (hygon.c differs only in family checks, treated as AMD
//! family 17H); anything else only `detect_ht` with one core per package.

use serde::Serialize;

use super::leaves::{BitField, Leaves, EAX, EBX, ECX, EDX, EXT_BASE};

/// CPUID.01H:EBX[31:24] Initial APIC ID.
const LEAF1_APIC_ID: BitField = BitField::new(31, 24);
/// CPUID.01H:EBX[23:16] Maximum number of addressable IDs for logical processors.
const LEAF1_LOGICAL_COUNT: BitField = BitField::new(23, 16);
/// CPUID.01H:EDX[28] HTT (Max APIC IDs field is valid).
const LEAF1_EDX_HTT: u32 = 28;
/// CPUID.(EAX=04H,ECX=0):EAX[4:0] Cache Type (0 = no more caches).
const LEAF4_CACHE_TYPE: BitField = BitField::new(4, 0);
/// CPUID.(EAX=04H,ECX=0):EAX[31:26] Maximum number of addressable core IDs in the package - 1.
const LEAF4_CORES_MINUS_1: BitField = BitField::new(31, 26);
/// CPUID.(EAX=0BH/1FH,ECX=n):EAX[4:0] shift of the x2APIC ID to the next level's ID.
const EXT_SHIFT: BitField = BitField::new(4, 0);
/// CPUID.(EAX=0BH/1FH,ECX=n):EBX[15:0] logical processors at this level.
const EXT_COUNT: BitField = BitField::new(15, 0);
/// CPUID.(EAX=0BH/1FH,ECX=n):ECX[15:8] level type.
const EXT_TYPE: BitField = BitField::new(15, 8);
/// Level types (SDM vol. 2A, CPUID leaf 1FH): 0 invalid, 1 SMT, 2 core, 5 die.
const LEVEL_INVALID: u32 = 0;
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;
const LEVEL_DIE: u32 = 5;
/// Subleaves walked before giving up on a leaf that never reports an invalid level.
const EXT_MAX_SUBLEAVES: u32 = 64;
/// CPUID.80000001H:ECX[1] CmpLegacy, [19] NodeId MSR, [22] TopologyExtensions.
const X1_ECX_CMP_LEGACY: u32 = 1;
const X1_ECX_NODEID_MSR: u32 = 19;
const X1_ECX_TOPOEXT: u32 = 22;
/// CPUID.80000008H:ECX[7:0] NC (threads in the package - 1), [15:12] ApicIdSize (AMD APM).
const X8_ECX_NC: BitField = BitField::new(7, 0);
const X8_ECX_APIC_ID_SIZE: BitField = BitField::new(15, 12);
/// CPUID.8000001EH:EBX[7:0] CoreId, [15:8] ThreadsPerCore - 1 (AMD APM).
const X1E_EBX_CORE_ID: BitField = BitField::new(7, 0);
const X1E_EBX_THREADS_MINUS_1: BitField = BitField::new(15, 8);
/// CPUID.8000001EH:ECX[7:0] NodeId, [10:8] NodesPerProcessor - 1 (AMD APM).
const X1E_ECX_NODE_ID: BitField = BitField::new(7, 0);
const X1E_ECX_NODES_MINUS_1: BitField = BitField::new(10, 8);
const LEAF_X8: u32 = EXT_BASE + 8;
const LEAF_X1E: u32 = EXT_BASE + 0x1e;
/// AMD family 17H (Zen): core_id comes from 8000001EH and cores count threads.
const AMD_FAMILY_ZEN: u32 = 0x17;

/// How the IDs were derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// CPUID leaf 1FH (V2 extended topology).
    Leaf1f,
    /// CPUID leaf 0BH (extended topology).
    Leaf0b,
    /// CPUID.1:EBX[23:16] and leaf 4 (`detect_ht`).
    Legacy,
    /// AMD 8000001EH and 80000008H (no usable leaf 0BH).
    Amd,
    /// None of the above applies: package = APIC ID, core 0.
    Flat,
}

impl Method {
    pub fn describe(self) -> &'static str {
        match self {
            Method::Leaf1f => "CPUID leaf 0x1f",
            Method::Leaf0b => "CPUID leaf 0xb",
            Method::Legacy => "CPUID leaves 1 and 4 (legacy)",
            Method::Amd => "CPUID leaves 0x80000008 and 0x8000001e (AMD)",
            Method::Flat => "no topology leaves (one core per package)",
        }
    }
}

/// What Linux 6.1 sets for one CPU (/sys/devices/system/cpu/cpuN/topology).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuTopology {
    /// The APIC ID Linux uses (x2APIC ID from leaf 1FH/0BH, else CPUID.1:EBX[31:24]).
    pub apic_id: u32,
    /// physical_package_id.
    pub package: u32,
    /// die_id.
    pub die: u32,
    /// core_id.
    pub core: u32,
    pub method: Method,
}

/// Which kernel CPU driver handles the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Intel,
    Amd,
    Other,
}

fn driver(vendor: &str) -> Driver {
    match vendor {
        "GenuineIntel" | "CentaurHauls" | "  Shanghai  " | "Shanghai" => Driver::Intel,
        "AuthenticAMD" | "HygonGenuine" => Driver::Amd,
        _ => Driver::Other,
    }
}

/// The per-CPU state the kernel threads through its topology functions.
struct State {
    apic: u32,
    package: u32,
    die: u32,
    core: u32,
    max_cores: u32,
    smp_num_siblings: u32,
    method: Method,
}

/// Linux's get_count_order: ceil(log2(n)), with 0 and 1 both giving 0.
fn count_order(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// A mask of the low `bits` bits.
fn low_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

/// `value >> shift` without overflow for shifts of 32 and more.
fn shr(value: u32, shift: u32) -> u32 {
    value.checked_shr(shift).unwrap_or(0)
}

/// The extended topology leaf Linux would use (1FH before 0BH), if any.
pub fn extended_leaf(cpu: &Leaves) -> Option<u32> {
    [0x1f, 0xb].into_iter().find(|&leaf| {
        let r = cpu.get(leaf, 0);
        cpu.level() >= leaf && r[EBX] != 0 && EXT_TYPE.of(r[ECX]) == LEVEL_SMT
    })
}

/// The APIC ID Linux records: leaf 1FH/0BH EDX when one is valid, else CPUID.1:EBX[31:24].
pub fn apic_id(cpu: &Leaves) -> u32 {
    match extended_leaf(cpu) {
        Some(leaf) => cpu.get(leaf, 0)[EDX],
        None => LEAF1_APIC_ID.of(cpu.get(1, 0)[EBX]),
    }
}

/// topology.c detect_extended_topology; false when no extended leaf is valid.
fn detect_extended_topology(cpu: &Leaves, s: &mut State) -> bool {
    let Some(leaf) = extended_leaf(cpu) else {
        return false;
    };
    let r = cpu.get(leaf, 0);
    s.apic = r[EDX];
    let ht_width = EXT_SHIFT.of(r[EAX]);
    let mut core_level_siblings = EXT_COUNT.of(r[EBX]);
    s.smp_num_siblings = s.smp_num_siblings.max(EXT_COUNT.of(r[EBX]));
    let mut core_plus_width = ht_width;
    let mut die_plus_width = ht_width;
    let mut pkg_width = ht_width;
    let mut die_present = false;
    for sub in 1..EXT_MAX_SUBLEAVES {
        let r = cpu.get(leaf, sub);
        let level = EXT_TYPE.of(r[ECX]);
        let shift = EXT_SHIFT.of(r[EAX]);
        if level == LEVEL_CORE {
            core_level_siblings = EXT_COUNT.of(r[EBX]);
            core_plus_width = shift;
            die_plus_width = shift;
        }
        if level == LEVEL_DIE {
            die_present = true;
            die_plus_width = shift;
        }
        if level == LEVEL_INVALID {
            break;
        }
        pkg_width = shift;
    }
    let core_select = shr(low_mask(pkg_width), ht_width);
    let die_select = shr(low_mask(die_plus_width), core_plus_width);
    s.core = shr(s.apic, ht_width) & core_select;
    if die_present {
        s.die = shr(s.apic, core_plus_width) & die_select;
    }
    s.package = shr(s.apic, pkg_width);
    s.max_cores = core_level_siblings / s.smp_num_siblings.max(1);
    s.method = if leaf == 0x1f {
        Method::Leaf1f
    } else {
        Method::Leaf0b
    };
    true
}

/// common.c detect_ht (run for every vendor on x86_64 after the vendor's init).
fn detect_ht(cpu: &Leaves, s: &mut State) {
    let ext_topology = matches!(s.method, Method::Leaf1f | Method::Leaf0b);
    if !cpu.bit(1, 0, EDX, LEAF1_EDX_HTT)
        || cpu.bit(EXT_BASE + 1, 0, ECX, X1_ECX_CMP_LEGACY)
        || ext_topology
    {
        return;
    }
    let siblings = LEAF1_LOGICAL_COUNT.of(cpu.get(1, 0)[EBX]);
    s.package = shr(s.apic, count_order(siblings));
    let max_cores = s.max_cores.max(1);
    let threads = siblings / max_cores;
    s.core = shr(s.apic, count_order(threads)) & low_mask(count_order(max_cores));
    if s.method == Method::Flat {
        s.method = Method::Legacy;
    }
}

/// intel.c init_intel's topology part, then detect_ht.
fn intel(cpu: &Leaves, s: &mut State) {
    if !detect_extended_topology(cpu, s) {
        let r = cpu.get(4, 0);
        s.max_cores = if cpu.level() >= 4 && LEAF4_CACHE_TYPE.of(r[EAX]) != 0 {
            LEAF4_CORES_MINUS_1.of(r[EAX]) + 1
        } else {
            1
        };
    }
    detect_ht(cpu, s);
}

/// amd.c early_init_amd_mc, amd_detect_cmp and amd_get_topology, then detect_ht.
fn amd(cpu: &Leaves, s: &mut State) {
    let (family, _, _) = cpu.signature();
    let mut coreid_bits = 0;
    if cpu.xlevel() >= LEAF_X8 {
        let ecx = cpu.get(LEAF_X8, 0)[ECX];
        s.max_cores = X8_ECX_NC.of(ecx) + 1;
        coreid_bits = X8_ECX_APIC_ID_SIZE.of(ecx);
        if coreid_bits == 0 {
            coreid_bits = count_order(s.max_cores);
        }
    }
    let topoext = cpu.bit(EXT_BASE + 1, 0, ECX, X1_ECX_TOPOEXT);
    let x1e = cpu.get(LEAF_X1E, 0);
    if topoext {
        s.smp_num_siblings = X1E_EBX_THREADS_MINUS_1.of(x1e[EBX]) + 1;
    }
    // amd_detect_cmp: the low ApicIdSize bits are the core, the rest the socket.
    s.core = s.apic & low_mask(coreid_bits);
    s.package = shr(s.apic, coreid_bits);
    s.die = s.package;
    s.method = Method::Amd;
    // amd_get_topology.
    let nodes_per_socket = if topoext {
        s.die = X1E_ECX_NODE_ID.of(x1e[ECX]);
        if family >= AMD_FAMILY_ZEN {
            s.core = X1E_EBX_CORE_ID.of(x1e[EBX]);
            if s.smp_num_siblings > 1 {
                s.max_cores /= s.smp_num_siblings;
            }
        }
        detect_extended_topology(cpu, s);
        X1E_ECX_NODES_MINUS_1.of(x1e[ECX]) + 1
    } else if cpu.bit(EXT_BASE + 1, 0, ECX, X1_ECX_NODEID_MSR) {
        // The node ID comes from MSR C001_100C, which the probe does not dump.
        s.die = 0;
        1
    } else {
        1
    };
    if nodes_per_socket > 1 && family < AMD_FAMILY_ZEN {
        let cores_per_node = s.max_cores / nodes_per_socket;
        if cores_per_node > 0 {
            s.core %= cores_per_node;
        }
    }
    detect_ht(cpu, s);
}

/// The IDs Linux 6.1 gives this vCPU.
pub fn derive(cpu: &Leaves) -> CpuTopology {
    let apic = LEAF1_APIC_ID.of(cpu.get(1, 0)[EBX]);
    let mut s = State {
        apic,
        package: apic,
        die: 0,
        core: 0,
        max_cores: 1,
        smp_num_siblings: 1,
        method: Method::Flat,
    };
    match driver(&cpu.vendor()) {
        Driver::Intel => intel(cpu, &mut s),
        Driver::Amd => amd(cpu, &mut s),
        Driver::Other => detect_ht(cpu, &mut s),
    }
    CpuTopology {
        apic_id: s.apic,
        package: s.package,
        die: s.die,
        core: s.core,
        method: s.method,
    }
}

/// lscpu-style counts over all online CPUs, computed as Linux builds its sibling maps
/// (threads share package, die and core_id; a socket is a package) and as util-linux 2.38's
/// lscpu divides them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub sockets: usize,
    pub dies_per_socket: usize,
    pub cores_per_die: usize,
    pub cores_per_socket: usize,
    pub threads_per_core: usize,
}

/// Counts and, per CPU, the thread's rank inside its core (by APIC ID).
pub fn count(cpus: &[CpuTopology]) -> (Counts, Vec<usize>) {
    use std::collections::{BTreeMap, BTreeSet};
    let packages: BTreeSet<u32> = cpus.iter().map(|c| c.package).collect();
    let dies: BTreeSet<(u32, u32)> = cpus.iter().map(|c| (c.package, c.die)).collect();
    let mut cores: BTreeMap<(u32, u32, u32), Vec<u32>> = BTreeMap::new();
    for c in cpus {
        cores
            .entry((c.package, c.die, c.core))
            .or_default()
            .push(c.apic_id);
    }
    let threads = cores.values().map(Vec::len).max().unwrap_or(0);
    let ranks = cpus
        .iter()
        .map(|c| {
            let mut ids = cores[&(c.package, c.die, c.core)].clone();
            ids.sort_unstable();
            ids.iter().position(|id| *id == c.apic_id).unwrap_or(0)
        })
        .collect();
    let per = |a: usize, b: usize| a.checked_div(b).unwrap_or(0);
    let counts = Counts {
        sockets: packages.len(),
        dies_per_socket: per(dies.len(), packages.len()),
        cores_per_die: per(cores.len(), dies.len()),
        cores_per_socket: per(cores.len(), packages.len()),
        threads_per_core: threads,
    };
    (counts, ranks)
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
