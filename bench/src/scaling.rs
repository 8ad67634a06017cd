//! Benchmark 5: benchmarks 1-4 along the vCPU axis and the memory axis.
//!
//! Rounds are the outer loop: each round visits every point of an axis, both VMMs at each,
//! ascending in even rounds and descending in odd ones. A load change on this shared host
//! then shifts every point of a curve alike instead of bending it, which matters because the
//! growth targets are slopes of rvmm's own medians, not ratios to QEMU.

use crate::benches::{brief, ms, Bench, BenchError, MIB};
use crate::measure;
use crate::plan::Plan;
use crate::results::{ScalePoint, Scaling};
use crate::stats::Pair;
use crate::vmms::{Guest, Shape, Vmm};

/// One sample of each metric at one point.
struct Sample {
    first_line_ms: f64,
    exit_ms: f64,
    overhead_mib: f64,
    exits_per_sec: f64,
    rate_per_sec: f64,
}

fn empty_point(shape: Shape) -> ScalePoint {
    ScalePoint {
        shape,
        first_line_ms: Pair::default(),
        exit_ms: Pair::default(),
        overhead_mib: Pair::default(),
        exits_per_sec: Pair::default(),
        rate_per_sec: Pair::default(),
    }
}

fn push(point: &mut ScalePoint, vmm: Vmm, s: &Sample) {
    let pairs = [
        (&mut point.first_line_ms, s.first_line_ms),
        (&mut point.exit_ms, s.exit_ms),
        (&mut point.overhead_mib, s.overhead_mib),
        (&mut point.exits_per_sec, s.exits_per_sec),
        (&mut point.rate_per_sec, s.rate_per_sec),
    ];
    for (pair, v) in pairs {
        match vmm {
            Vmm::Rvmm => pair.rvmm.push(v),
            Vmm::Qemu => pair.qemu.push(v),
        }
    }
}

impl Bench<'_> {
    /// Benchmarks 1-4 once each for one VMM at one point.
    fn scale_sample(&self, vmm: Vmm, shape: Shape) -> Result<Sample, BenchError> {
        let start = self.boot(vmm, shape, Guest::Hello)?;
        let mut cmd = self.tools.command(vmm, shape, Guest::Hello);
        let memory = measure::memory_at_exit(
            &mut cmd,
            Guest::Hello.last_line(),
            shape.mem_bytes(),
            self.plan.timeout,
        )
        .map_err(Self::err(vmm, shape, Guest::Hello))?;
        let exits_per_sec = self.exit_rate(vmm, shape, self.plan.scale_exits_count)?;
        let rate_per_sec = self.rate_batch(
            vmm,
            shape,
            self.plan.scale_rate_concurrency,
            self.plan.scale_rate_vms,
        )?;
        Ok(Sample {
            first_line_ms: start.first_line().map_or(f64::NAN, ms),
            exit_ms: ms(start.exit),
            overhead_mib: memory.overhead_kib() as f64 / MIB,
            exits_per_sec,
            rate_per_sec,
        })
    }

    /// Every point of one axis, rounds outermost.
    fn axis(&self, name: &str, shapes: &[Shape]) -> Result<Vec<ScalePoint>, BenchError> {
        let mut points: Vec<ScalePoint> = shapes.iter().map(|&s| empty_point(s)).collect();
        for round in self.plan.rounds() {
            let counted = self.plan.counted(round);
            let order: Vec<usize> = if round % 2 == 0 {
                (0..points.len()).collect()
            } else {
                (0..points.len()).rev().collect()
            };
            for i in order {
                for vmm in Plan::order(round) {
                    let sample = self.scale_sample(vmm, points[i].shape)?;
                    if counted {
                        push(&mut points[i], vmm, &sample);
                    }
                }
            }
            (self.log)(&format!("scaling {name}: round {round} done"));
        }
        for p in &points {
            (self.log)(&format!(
                "scaling {}: first line ms rvmm {} qemu {}; exit ms rvmm {} qemu {}; overhead MiB rvmm {} qemu {}; exits/s rvmm {} qemu {}; VMs/s rvmm {} qemu {}",
                p.shape.label(),
                brief(&p.first_line_ms.rvmm),
                brief(&p.first_line_ms.qemu),
                brief(&p.exit_ms.rvmm),
                brief(&p.exit_ms.qemu),
                brief(&p.overhead_mib.rvmm),
                brief(&p.overhead_mib.qemu),
                brief(&p.exits_per_sec.rvmm),
                brief(&p.exits_per_sec.qemu),
                brief(&p.rate_per_sec.rvmm),
                brief(&p.rate_per_sec.qemu),
            ));
        }
        Ok(points)
    }

    /// Benchmark 5: both axes.
    pub fn scaling(&self) -> Result<Scaling, BenchError> {
        let base = self.plan.scale_base;
        let vcpu_shapes: Vec<Shape> = self
            .plan
            .scale_vcpus
            .iter()
            .map(|&v| Shape::new(v, base.mem_mib))
            .collect();
        let mem_shapes: Vec<Shape> = self
            .plan
            .scale_mem_mib
            .iter()
            .map(|&m| Shape::new(base.vcpus, m))
            .collect();
        Ok(Scaling {
            vcpus: self.axis("vCPUs", &vcpu_shapes)?,
            memory: self.axis("memory", &mem_shapes)?,
            exits_count: self.plan.scale_exits_count,
            rate_concurrency: self.plan.scale_rate_concurrency,
            rate_vms: self.plan.scale_rate_vms,
        })
    }
}
