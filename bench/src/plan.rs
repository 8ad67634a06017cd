//! What to measure and how often: the full plan behind docs/benchmarks.md and the tiny one
//! the smoke test runs. Also how runs alternate between the VMMs.

use std::path::PathBuf;
use std::time::Duration;

use crate::vmms::{Shape, Vmm};

/// The shapes, counts and repetitions of every benchmark.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Counted runs per VMM and configuration.
    pub runs: usize,
    /// One uncounted run of each VMM before the counted ones.
    pub warmup: bool,
    /// Start times of the minimal guest (mode=hello).
    pub start_hello: Vec<Shape>,
    /// Start times of the probe's full dump.
    pub start_dump: Vec<Shape>,
    /// Memory overhead: the shape (the 1 vCPU, 512 MiB).
    pub memory_shape: Shape,
    /// Exit round trips: the shape, the number of port writes per run, and counted runs
    /// (more and shorter than elsewhere: a run lasts under a second, and the rate of a
    /// loaded host drifts over seconds, so many short alternations average it out).
    pub exits_shape: Shape,
    pub exits_count: u64,
    pub exits_runs: usize,
    /// Start rate: the shape, concurrency levels and VMs per batch.
    pub rate_shape: Shape,
    pub rate_concurrency: Vec<usize>,
    pub rate_vms: usize,
    /// Scaling: vCPU counts (at `scale_base.mem_mib`) and memory sizes (at one vCPU).
    pub scale_vcpus: Vec<u32>,
    pub scale_mem_mib: Vec<u64>,
    pub scale_base: Shape,
    pub scale_exits_count: u64,
    pub scale_rate_concurrency: usize,
    pub scale_rate_vms: usize,
    /// virtio-blk: requests per phase (vblk.rs).
    pub vblk_ops: u64,
    /// virtio-net: frames per run (vnet.rs).
    pub vnet_frames: u64,
    /// virtio-balloon: MiB given back (vballoon.rs).
    pub vballoon_mib: u64,
    /// Snapshot and restore: the counting guest's shapes (snapmig.rs).
    pub snapshot_shapes: Vec<Shape>,
    /// Live migration: the shape, the guest's dirty= and dirty-mib=, the downtime limit.
    pub migrate_shape: Shape,
    pub migrate_dirty: u32,
    pub migrate_dirty_mib: u32,
    pub migrate_downtime_ms: u64,
    /// Reports of every vCPU (one per 20 rounds) the source prints before it migrates.
    pub migrate_settle_reports: usize,
    /// A run longer than this is killed and the benchmark fails.
    pub timeout: Duration,
    /// The Firecracker binary benchmark 11 measures beside rvmm and QEMU, if given.
    pub firecracker: Option<PathBuf>,
}

const MIB_128: u64 = 128;
const GIB: u64 = 1024;

impl Plan {
    /// The plan behind docs/benchmarks.md: `runs` counted runs after a warm-up.
    pub fn full(runs: usize) -> Plan {
        let vcpus = [1, 2, 8, 32];
        let mems = [MIB_128, GIB, 8 * GIB];
        let start_hello = mems
            .iter()
            .flat_map(|&m| vcpus.iter().map(move |&v| Shape::new(v, m)))
            .collect();
        // The dump's time is the guest's (every CPUID leaf of every vCPU is a trapped and,
        // on kvm-pvm, emulated instruction), so it is measured along each axis only.
        let mut start_dump: Vec<Shape> = vcpus.iter().map(|&v| Shape::new(v, MIB_128)).collect();
        start_dump.extend([Shape::new(1, GIB), Shape::new(1, 8 * GIB)]);
        Plan {
            runs,
            warmup: true,
            start_hello,
            start_dump,
            memory_shape: Shape::new(1, 512),
            exits_shape: Shape::new(1, MIB_128),
            exits_count: 30_000,
            exits_runs: 3 * runs,
            rate_shape: Shape::new(1, MIB_128),
            rate_concurrency: vec![1, 2, 4, 8],
            rate_vms: 24,
            scale_vcpus: vec![1, 2, 4, 8, 16, 32, 64],
            scale_mem_mib: vec![128, 256, 512, GIB, 2 * GIB, 4 * GIB, 8 * GIB],
            scale_base: Shape::new(1, MIB_128),
            scale_exits_count: 30_000,
            scale_rate_concurrency: 4,
            scale_rate_vms: 16,
            vblk_ops: crate::vblk::FULL_OPS,
            vnet_frames: crate::vnet::FULL_FRAMES,
            vballoon_mib: crate::vballoon::FULL_MIB,
            snapshot_shapes: vec![Shape::new(2, 512), Shape::new(2, 2 * GIB)],
            migrate_shape: Shape::new(2, 512),
            migrate_dirty: 2000,
            migrate_dirty_mib: 16,
            migrate_downtime_ms: 300,
            migrate_settle_reports: 10,
            timeout: Duration::from_secs(300),
            firecracker: None,
        }
    }

    /// Each benchmark once, tiny: for the test suite (a few seconds, no timing checked).
    pub fn smoke() -> Plan {
        Plan {
            runs: 1,
            warmup: false,
            start_hello: vec![Shape::new(1, MIB_128)],
            start_dump: vec![Shape::new(1, MIB_128)],
            memory_shape: Shape::new(1, MIB_128),
            exits_shape: Shape::new(1, MIB_128),
            // Enough writes (~0.2 s) that PROBE-END and PROBE-PIO never arrive in one read of a
            // loaded host, which would leave no time to divide by.
            exits_count: 20_000,
            exits_runs: 1,
            rate_shape: Shape::new(1, MIB_128),
            rate_concurrency: vec![2],
            rate_vms: 2,
            scale_vcpus: vec![1, 2],
            scale_mem_mib: vec![128, 256],
            scale_base: Shape::new(1, MIB_128),
            // As exits_count (a CI run saw 500 writes' lines arrive in one read: 0 ms).
            scale_exits_count: 20_000,
            scale_rate_concurrency: 2,
            scale_rate_vms: 2,
            vblk_ops: crate::vblk::SMOKE_OPS,
            vnet_frames: crate::vnet::SMOKE_FRAMES,
            vballoon_mib: crate::vballoon::SMOKE_MIB,
            snapshot_shapes: vec![Shape::new(2, MIB_128)],
            migrate_shape: Shape::new(2, MIB_128),
            migrate_dirty: 200,
            migrate_dirty_mib: 4,
            migrate_downtime_ms: 300,
            migrate_settle_reports: 2,
            timeout: Duration::from_secs(60),
            firecracker: None,
        }
    }

    /// The order of the VMMs in round `round` (warm-up is round 0): rvmm first in even
    /// rounds, QEMU first in odd ones, so neither always runs right after the other.
    pub fn order(round: usize) -> [Vmm; 2] {
        if round % 2 == 0 {
            [Vmm::Rvmm, Vmm::Qemu]
        } else {
            [Vmm::Qemu, Vmm::Rvmm]
        }
    }

    /// Rounds to run: the warm-up (if any) then the counted ones; `counted(round)` says
    /// which is which.
    pub fn rounds(&self) -> std::ops::Range<usize> {
        self.rounds_of(self.runs)
    }

    /// [`Plan::rounds`] for `runs` counted runs.
    pub fn rounds_of(&self, runs: usize) -> std::ops::Range<usize> {
        0..runs + usize::from(self.warmup)
    }

    pub fn counted(&self, round: usize) -> bool {
        !(self.warmup && round == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_plan_shapes() {
        let p = Plan::full(5);
        assert_eq!(p.start_hello.len(), 12);
        assert_eq!(p.start_hello[0], Shape::new(1, 128));
        assert_eq!(p.start_hello[11], Shape::new(32, 8192));
        assert_eq!(
            p.start_dump,
            vec![
                Shape::new(1, 128),
                Shape::new(2, 128),
                Shape::new(8, 128),
                Shape::new(32, 128),
                Shape::new(1, 1024),
                Shape::new(1, 8192)
            ]
        );
        assert_eq!(p.rounds(), 0..6);
        assert!(!p.counted(0));
        assert!(p.counted(1));
    }

    #[test]
    fn alternation() {
        assert_eq!(Plan::order(0), [Vmm::Rvmm, Vmm::Qemu]);
        assert_eq!(Plan::order(1), [Vmm::Qemu, Vmm::Rvmm]);
        let s = Plan::smoke();
        assert_eq!(s.rounds(), 0..1);
        assert!(s.counted(0));
    }
}
