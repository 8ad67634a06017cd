//! rvmm-bench: rvmm and QEMU side by side on the same probe guest, alternating runs, and a
//! bare KVM_RUN loop as the limit for exit round trips. `rvmm-bench all` (bench/run.sh)
//! measures everything and writes docs/benchmarks.md with its plots; the smoke test in
//! tests/ runs every benchmark once, tiny.
//!
//! Modules: `vmms` (the command lines), `measure` (timing and memory of one process),
//! `smaps` (reading /proc), `plan` (what to run), `benches`, `scaling` and `hotplug` (the
//! benchmarks), `kvm_loop`
//! (the bare loop), `stats`, `results`, `targets`, `report` and `svg` (the output),
//! `machine` (what it ran on), `vblk` (virtio-blk), `vnet` (virtio-net),
//! `vballoon` (virtio-balloon), `snapmig` (snapshot/restore and live migration),
//! `firecracker` (Firecracker's API, for the snapshot benchmark).

pub mod benches;
pub mod firecracker;
pub mod hotplug;
pub mod kvm_loop;
pub mod machine;
pub mod measure;
pub mod monitoring;
pub mod plan;
pub mod report;
pub mod results;
pub mod scaling;
pub mod smaps;
pub mod snapmig;
pub mod stats;
pub mod svg;
pub mod targets;
pub mod vballoon;
pub mod vblk;
pub mod vmms;
pub mod vnet;

use std::path::{Path, PathBuf};
use std::time::Instant;

use benches::{Bench, BenchError};
use plan::Plan;
use results::Results;
use vmms::{ToolError, Tools};

/// The repository root (bench/..).
pub fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    p.canonicalize().unwrap_or(p)
}

/// The rvmm binary next to `exe` in the same cargo target directory: `exe` is
/// target/<profile>/rvmm-bench, or target/<profile>/deps/<test> for a test binary.
pub fn rvmm_beside(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    let dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    dir.join("rvmm")
}

/// A scratch directory for the probe ELF, removed on drop.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new() -> std::io::Result<WorkDir> {
        let p = std::env::temp_dir().join(format!("rvmm-bench-{}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(WorkDir(p))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Why a whole run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tools(#[from] ToolError),
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error(transparent)]
    Hotplug(#[from] hotplug::HotplugError),
}

/// Which benchmarks to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    pub start: bool,
    pub memory: bool,
    pub exits: bool,
    pub rate: bool,
    pub scaling: bool,
    pub hotplug: bool,
    pub monitoring: bool,
    pub vblk: bool,
    pub vnet: bool,
    pub vballoon: bool,
    pub snapshot: bool,
    pub migrate: bool,
}

impl Selection {
    pub const ALL: Selection = Selection {
        start: true,
        memory: true,
        exits: true,
        rate: true,
        scaling: true,
        hotplug: true,
        monitoring: true,
        vblk: true,
        vnet: true,
        vballoon: true,
        snapshot: true,
        migrate: true,
    };

    /// Nothing selected (a single benchmark starts from this).
    pub const NONE: Selection = Selection {
        start: false,
        memory: false,
        exits: false,
        rate: false,
        scaling: false,
        hotplug: false,
        monitoring: false,
        vblk: false,
        vnet: false,
        vballoon: false,
        snapshot: false,
        migrate: false,
    };
}

/// Runs the selected benchmarks with `plan` and returns the results with their metadata.
pub fn run(
    tools: &Tools,
    plan: &Plan,
    which: Selection,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Results, RunError> {
    let began = Instant::now();
    let mut meta = machine::describe(&repo_root());
    let (rv, qv) = tools.versions()?;
    meta.rvmm_version = rv;
    meta.qemu_version = qv;
    meta.runs = plan.runs;
    meta.warmup = plan.warmup;
    let b = Bench { tools, plan, log };
    let mut r = Results {
        meta,
        ..Results::default()
    };
    if which.start {
        r.start = b.start()?;
    }
    if which.memory {
        r.memory = b.memory()?;
    }
    if which.exits {
        r.exits = Some(b.exits()?);
    }
    if which.rate {
        r.rate = b.rate()?;
    }
    if which.scaling {
        r.scaling = Some(b.scaling()?);
    }
    if which.hotplug {
        let dir = tools.probe_elf.parent().unwrap_or(Path::new("."));
        r.hotplug = Some(b.hotplug(dir)?);
    }
    if which.monitoring {
        let dir = tools.probe_elf.parent().unwrap_or(Path::new("."));
        r.monitoring = Some(b.monitoring(dir)?);
    }
    if which.vblk {
        let dir = tools.probe_elf.parent().unwrap_or(Path::new("."));
        r.vblk = Some(b.vblk(dir)?);
    }
    if which.vnet {
        r.vnet = Some(b.vnet()?);
    }
    if which.vballoon {
        let dir = tools.probe_elf.parent().unwrap_or(Path::new("."));
        r.vballoon = Some(b.vballoon(dir)?);
    }
    if which.snapshot {
        let dir = tools.probe_elf.parent().unwrap_or(Path::new("."));
        r.snapshot = Some(b.snapshot(dir)?);
    }
    if which.migrate {
        let dir = tools.probe_elf.parent().unwrap_or(Path::new("."));
        r.migrate = Some(b.migrate(dir)?);
    }
    r.meta.loadavg_end = machine::loadavg();
    r.meta.duration_s = began.elapsed().as_secs_f64();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rvmm_beside_the_bench_binaries() {
        assert_eq!(
            rvmm_beside(Path::new("/t/release/rvmm-bench")),
            Path::new("/t/release/rvmm")
        );
        assert_eq!(
            rvmm_beside(Path::new("/t/debug/deps/smoke-123")),
            Path::new("/t/debug/rvmm")
        );
    }
}
