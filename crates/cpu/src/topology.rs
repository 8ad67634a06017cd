//! x86 vCPU topology: how a vCPU index maps to package/die/core/thread IDs and to its
//! APIC ID, exactly as QEMU 7.2 computes them (include/hw/i386/topology.h,
//! `x86_cpu_apic_id_from_index()` in hw/i386/x86.c).
//!
//! Each level gets a field of the APIC ID just wide enough for its count
//! (`apicid_bitwidth_for_count`), SMT lowest, then core, then die, then package; so when
//! a count is not a power of two the APIC IDs have holes. The CPUID leaves that describe
//! this topology are encoded in the submodules; cache descriptions live in `cache`.
//! Turning `--smp` text into the counts (QEMU's rules for omitted values) is the VMM's.

pub mod apply;
pub mod cache_leaves;
pub mod field;
pub mod leaves;

/// A vCPU's position in the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopoIds {
    /// Package (socket) ID.
    pub pkg: u32,
    /// Die ID within the package.
    pub die: u32,
    /// Core ID within the die.
    pub core: u32,
    /// SMT (thread) ID within the core.
    pub smt: u32,
}

/// The counts of a resolved topology, as the VMM's `--smp` front end produces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopologyCounts {
    pub sockets: u32,
    /// Dies per socket.
    pub dies: u32,
    /// Cores per die.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
    /// vCPU slots, present plus hot-pluggable.
    pub max_cpus: u32,
}

/// The vCPU topology of a VM: counts per level plus the number of vCPU slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTopology {
    sockets: u32,
    dies: u32,
    cores: u32,
    threads: u32,
    max_cpus: u32,
}

/// Bits needed to hold IDs `0..count` (QEMU's `apicid_bitwidth_for_count`): 0 for a count
/// of 1, otherwise the bit length of `count - 1`. A count of 0 is treated as 1.
pub fn apicid_bitwidth_for_count(count: u32) -> u32 {
    let last = count.saturating_sub(1);
    u32::BITS - last.leading_zeros()
}

impl CpuTopology {
    /// The topology of resolved counts; a count of 0 reads as 1, so every count is at
    /// least 1 by construction.
    pub fn new(counts: TopologyCounts) -> CpuTopology {
        CpuTopology {
            sockets: counts.sockets.max(1),
            dies: counts.dies.max(1),
            cores: counts.cores.max(1),
            threads: counts.threads.max(1),
            max_cpus: counts.max_cpus.max(1),
        }
    }

    pub fn sockets(&self) -> u32 {
        self.sockets
    }
    /// Dies per package.
    pub fn dies(&self) -> u32 {
        self.dies
    }
    /// Cores per die.
    pub fn cores(&self) -> u32 {
        self.cores
    }
    /// Threads per core.
    pub fn threads(&self) -> u32 {
        self.threads
    }
    /// vCPU slots (`maxcpus`).
    pub fn max_cpus(&self) -> u32 {
        self.max_cpus
    }

    /// Width of the SMT ID field (`apicid_smt_width`).
    pub fn smt_width(&self) -> u32 {
        apicid_bitwidth_for_count(self.threads)
    }
    /// Width of the core ID field (`apicid_core_width`).
    pub fn core_width(&self) -> u32 {
        apicid_bitwidth_for_count(self.cores)
    }
    /// Width of the die ID field (`apicid_die_width`).
    pub fn die_width(&self) -> u32 {
        apicid_bitwidth_for_count(self.dies)
    }
    /// Bit offset of the core ID (`apicid_core_offset`) = SMT width.
    pub fn core_offset(&self) -> u32 {
        self.smt_width()
    }
    /// Bit offset of the die ID (`apicid_die_offset`) = core offset + core width.
    pub fn die_offset(&self) -> u32 {
        self.core_offset() + self.core_width()
    }
    /// Bit offset of the package ID (`apicid_pkg_offset`) = die offset + die width.
    pub fn pkg_offset(&self) -> u32 {
        self.die_offset() + self.die_width()
    }

    /// The IDs of vCPU slot `index` (`x86_topo_ids_from_idx`): indexes fill threads first,
    /// then cores, then dies, then packages.
    pub fn ids(&self, index: u32) -> TopoIds {
        TopoIds {
            pkg: index / (self.dies * self.cores * self.threads),
            die: index / (self.cores * self.threads) % self.dies,
            core: index / self.threads % self.cores,
            smt: index % self.threads,
        }
    }

    /// The APIC ID built from topology IDs (`x86_apicid_from_topo_ids`).
    pub fn apic_id_from_ids(&self, ids: &TopoIds) -> u32 {
        (ids.pkg << self.pkg_offset())
            | (ids.die << self.die_offset())
            | (ids.core << self.core_offset())
            | ids.smt
    }

    /// The topology IDs held in an APIC ID (`x86_topo_ids_from_apicid`).
    pub fn ids_from_apic_id(&self, apic_id: u32) -> TopoIds {
        let field = |offset: u32, width: u32| (apic_id >> offset) & low_mask(width);
        TopoIds {
            pkg: apic_id.checked_shr(self.pkg_offset()).unwrap_or(0),
            die: field(self.die_offset(), self.die_width()),
            core: field(self.core_offset(), self.core_width()),
            smt: field(0, self.smt_width()),
        }
    }

    /// The APIC ID of vCPU slot `index` (`x86_cpu_apic_id_from_index`).
    pub fn apic_id(&self, index: u32) -> u32 {
        self.apic_id_from_ids(&self.ids(index))
    }

    /// The APIC IDs of all `maxcpus` slots, by index (QEMU's possible_cpus arch_ids).
    pub fn apic_ids(&self) -> Vec<u32> {
        (0..self.max_cpus).map(|i| self.apic_id(i)).collect()
    }

    /// The slot index whose APIC ID is `apic_id`, if any (holes and IDs past maxcpus: None).
    pub fn index_of_apic_id(&self, apic_id: u32) -> Option<u32> {
        let ids = self.ids_from_apic_id(apic_id);
        if ids.smt >= self.threads || ids.core >= self.cores || ids.die >= self.dies {
            return None;
        }
        // Checked: the package field of an arbitrary APIC ID can be up to 2^32 - 1, and an
        // index that does not fit is past maxcpus anyway.
        let index = ids
            .pkg
            .checked_mul(self.dies)
            .and_then(|v| v.checked_add(ids.die))
            .and_then(|v| v.checked_mul(self.cores))
            .and_then(|v| v.checked_add(ids.core))
            .and_then(|v| v.checked_mul(self.threads))
            .and_then(|v| v.checked_add(ids.smt))?;
        (index < self.max_cpus).then_some(index)
    }

    /// One more than the largest APIC ID (QEMU's `x86ms->apic_id_limit`); QEMU requires
    /// the in-kernel irqchip with the x2APIC API when this exceeds 255.
    pub fn apic_id_limit(&self) -> u32 {
        self.apic_id(self.max_cpus - 1) + 1
    }

    /// The NUMA node QEMU 7.2 gives slot `index` when `-numa` assigns it none
    /// (`x86_get_default_cpu_node_id`): package ID modulo the node count.
    pub fn default_numa_node(&self, index: u32, num_nodes: u32) -> u32 {
        self.ids(index).pkg % num_nodes.max(1)
    }

    /// Logical processors per package: `dies * cores * threads`.
    pub fn threads_per_package(&self) -> u32 {
        self.dies * self.cores * self.threads
    }

    /// Logical processors per die: `cores * threads`. QEMU 7.2 reports this (not the
    /// per-package count) in CPUID.01H:EBX[23:16] and CPUID.0BH level 1 EBX.
    pub fn threads_per_die(&self) -> u32 {
        self.cores * self.threads
    }
}

/// A mask of the low `width` bits (all ones for 32 and above).
fn low_mask(width: u32) -> u32 {
    1u32.checked_shl(width).map_or(u32::MAX, |bit| bit - 1)
}

/// Test input in `--smp`'s spelling, for topologies written out in full: `[N,]key=value...`
/// with every omitted count 1, maxcpus defaulting to N and N to the product. QEMU's rules
/// for omitted values are the VMM's `--smp` parser's; tests here only spell what it yields.
#[cfg(test)]
pub(crate) fn explicit(text: &str) -> (u32, CpuTopology) {
    let (mut cpus, mut maxcpus) = (None, None);
    let mut c = TopologyCounts {
        sockets: 1,
        dies: 1,
        cores: 1,
        threads: 1,
        max_cpus: 0,
    };
    for item in text.split(',') {
        let (key, value) = item.split_once('=').unwrap_or(("cpus", item));
        let value: u32 = value.parse().expect("number");
        match key {
            "cpus" => cpus = Some(value),
            "maxcpus" => maxcpus = Some(value),
            "sockets" => c.sockets = value,
            "dies" => c.dies = value,
            "cores" => c.cores = value,
            "threads" => c.threads = value,
            _ => panic!("unknown key {key}"),
        }
    }
    let product = c.sockets * c.dies * c.cores * c.threads;
    c.max_cpus = maxcpus.or(cpus).unwrap_or(product);
    assert_eq!(product, c.max_cpus, "{text}: not written out in full");
    (cpus.unwrap_or(c.max_cpus), CpuTopology::new(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(sockets: u32, dies: u32, cores: u32, threads: u32) -> CpuTopology {
        CpuTopology::new(TopologyCounts {
            sockets,
            dies,
            cores,
            threads,
            max_cpus: sockets * dies * cores * threads,
        })
    }

    #[test]
    fn bitwidth_is_bits_of_count_minus_one() {
        let table = [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (8, 3),
            (9, 4),
            (255, 8),
            (256, 8),
        ];
        for (count, width) in table {
            assert_eq!(apicid_bitwidth_for_count(count), width, "count {count}");
        }
    }

    /// (sockets, dies, cores, threads) → widths (smt, core, die) and offsets (core, die, pkg).
    #[test]
    fn widths_and_offsets() {
        let table = [
            ((1, 1, 1, 1), (0, 0, 0), (0, 0, 0)),
            ((1, 1, 3, 2), (1, 2, 0), (1, 3, 3)),
            ((2, 2, 2, 1), (0, 1, 1), (0, 1, 2)),
            ((2, 1, 2, 2), (1, 1, 0), (1, 2, 2)),
            ((1, 3, 5, 3), (2, 3, 2), (2, 5, 7)),
        ];
        for ((s, d, c, t), (smt_w, core_w, die_w), (core_o, die_o, pkg_o)) in table {
            let tp = topo(s, d, c, t);
            let got = (tp.smt_width(), tp.core_width(), tp.die_width());
            assert_eq!(got, (smt_w, core_w, die_w), "{s}/{d}/{c}/{t}");
            let got = (tp.core_offset(), tp.die_offset(), tp.pkg_offset());
            assert_eq!(got, (core_o, die_o, pkg_o), "{s}/{d}/{c}/{t}");
        }
    }

    /// APIC IDs of every slot. The 6-cpu and 8-cpu rows match the initial APIC IDs in the
    /// CPUID.01H:EBX[31:24] tables QEMU 7.2 handed KVM_SET_CPUID2 for the same `-smp`.
    #[test]
    fn apic_ids_are_padded_for_non_power_of_two_counts() {
        type Shape = (u32, u32, u32, u32);
        let table: &[(Shape, &[u32])] = &[
            ((1, 1, 3, 2), &[0, 1, 2, 3, 4, 5]),
            ((2, 2, 2, 1), &[0, 1, 2, 3, 4, 5, 6, 7]),
            ((2, 1, 3, 1), &[0, 1, 2, 4, 5, 6]),
            ((2, 1, 3, 2), &[0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]),
            ((1, 3, 3, 1), &[0, 1, 2, 4, 5, 6, 8, 9, 10]),
            ((2, 1, 1, 3), &[0, 1, 2, 4, 5, 6]),
            ((1, 2, 5, 1), &[0, 1, 2, 3, 4, 8, 9, 10, 11, 12]),
        ];
        for ((s, d, c, t), ids) in table {
            assert_eq!(topo(*s, *d, *c, *t).apic_ids(), *ids, "{s}/{d}/{c}/{t}");
        }
    }

    #[test]
    fn ids_of_slots_and_back() {
        let tp = topo(1, 1, 3, 2);
        assert_eq!(
            tp.ids(5),
            TopoIds {
                pkg: 0,
                die: 0,
                core: 2,
                smt: 1
            }
        );
        let tp = topo(2, 2, 2, 1);
        let expected = [
            (0, 0, 0, 0),
            (0, 0, 1, 0),
            (0, 1, 0, 0),
            (0, 1, 1, 0),
            (1, 0, 0, 0),
            (1, 0, 1, 0),
            (1, 1, 0, 0),
            (1, 1, 1, 0),
        ];
        for (index, (pkg, die, core, smt)) in expected.into_iter().enumerate() {
            let ids = TopoIds {
                pkg,
                die,
                core,
                smt,
            };
            let index = index as u32;
            assert_eq!(tp.ids(index), ids);
            assert_eq!(tp.ids_from_apic_id(tp.apic_id(index)), ids);
            assert_eq!(tp.index_of_apic_id(tp.apic_id(index)), Some(index));
        }
        let tp = topo(2, 1, 3, 2);
        assert_eq!(tp.index_of_apic_id(6), None, "hole: core 3 does not exist");
        assert_eq!(tp.index_of_apic_id(9), Some(7));
        assert_eq!(tp.index_of_apic_id(16), None, "package 2 does not exist");
        // Any u32 (a guest or a client may name one): None, never an overflow.
        assert_eq!(tp.index_of_apic_id(u32::MAX), None);
    }

    #[test]
    fn apic_id_limit_counts_the_holes() {
        assert_eq!(topo(2, 1, 3, 2).apic_id_limit(), 14);
        assert_eq!(topo(1, 1, 1, 1).apic_id_limit(), 1);
        // 255 cores in one socket: IDs 0..=254, the last xAPIC-addressable layout.
        assert_eq!(topo(1, 1, 255, 1).apic_id_limit(), 255);
        assert_eq!(topo(3, 1, 65, 1).apic_id_limit(), 128 * 2 + 65);
    }

    #[test]
    fn default_numa_node_is_package_modulo_nodes() {
        let tp = topo(3, 1, 2, 1);
        let nodes: Vec<u32> = (0..6).map(|i| tp.default_numa_node(i, 2)).collect();
        assert_eq!(nodes, [0, 0, 1, 1, 0, 0]);
    }

    #[test]
    fn per_package_and_per_die_counts() {
        let tp = topo(2, 2, 3, 2);
        assert_eq!((tp.threads_per_package(), tp.threads_per_die()), (12, 6));
    }
}

#[cfg(test)]
mod qemu_golden_tests;

#[cfg(test)]
mod encoder_tests;
