//! What a benchmark run produced, as plain serialisable data: docs/bench/results.json holds
//! it, and the report and the plots are rendered from it alone.

use serde::{Deserialize, Serialize};

use crate::stats::Pair;
use crate::vmms::{Guest, Shape};

/// Start → first serial line and → exit, for one guest and shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartRow {
    pub guest: Guest,
    pub shape: Shape,
    /// Process start → the guest's first serial line, ms.
    pub first_line_ms: Pair,
    /// Process start → process exit after the guest powered off, ms.
    pub exit_ms: Pair,
}

/// Memory at exit for one guest and shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryRow {
    pub guest: Guest,
    pub shape: Shape,
    /// Peak RSS minus the guest RAM resident at exit, MiB.
    pub overhead_mib: Pair,
    /// Peak RSS (VmHWM), MiB.
    pub hwm_mib: Pair,
    /// Peak RSS as `wait4` reports it for the VMM process (ru_maxrss), MiB.
    #[serde(default)]
    pub maxrss_mib: Pair,
    /// Guest RAM resident at exit (touched by the guest or by the VMM loading it), MiB.
    pub guest_rss_mib: Pair,
    /// RSS at exit: anonymous and file-backed parts, MiB.
    pub anon_mib: Pair,
    pub file_mib: Pair,
}

/// Port-I/O exit round trips per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitsResult {
    pub shape: Shape,
    /// Port writes per run.
    pub count: u64,
    pub per_sec: Pair,
    /// The bare KVM_RUN loop (no VMM), same count, real-mode guest.
    pub bare_per_sec: Vec<f64>,
    /// The same loop with the guest in 64-bit long mode, as the probe's loop runs.
    #[serde(default)]
    pub bare_long_per_sec: Vec<f64>,
}

/// VMs started, printing and exiting per second with `concurrency` in flight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateRow {
    pub shape: Shape,
    pub concurrency: usize,
    /// VMs per batch; one sample is one batch.
    pub vms: usize,
    pub per_sec: Pair,
}

/// Every metric at one point of a scaling curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalePoint {
    pub shape: Shape,
    pub first_line_ms: Pair,
    pub exit_ms: Pair,
    pub overhead_mib: Pair,
    pub exits_per_sec: Pair,
    pub rate_per_sec: Pair,
}

/// The scaling curves: against vCPUs and against guest memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub vcpus: Vec<ScalePoint>,
    pub memory: Vec<ScalePoint>,
    pub exits_count: u64,
    pub rate_concurrency: usize,
    pub rate_vms: usize,
}

/// vCPU hotplug latencies: `cycles` slots plugged, then unplugged, per VM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HotplugResult {
    pub smp: String,
    pub cycles: usize,
    /// QMP `device_add`'s reply → the new vCPU's first line of guest output, ms.
    pub add_to_running_ms: Pair,
    /// QMP `device_del`'s reply → the `DEVICE_DELETED` event, ms.
    pub del_to_deleted_ms: Pair,
}

/// The cost of watching: the pio guest's exits per second unwatched and sampled once a
/// second (benchmark 7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitoringResult {
    /// Port writes per run.
    pub count: u64,
    pub shape: Shape,
    /// Exits per second, one per counted run.
    pub unwatched: Vec<f64>,
    /// With `rvmm qmp SOCKET __org.rvmm_stats` once a second.
    pub qmp: Vec<f64>,
    /// With `GET /metrics` once a second.
    pub metrics: Vec<f64>,
    /// Samples answered during each counted run.
    pub qmp_answers: Vec<usize>,
    pub metrics_answers: Vec<usize>,
    /// With one `rvmm top SOCKET --batch --delay 1` running through the whole run (empty
    /// in results from before this configuration existed).
    #[serde(default)]
    pub top: Vec<f64>,
    /// Refreshes `rvmm top` printed during each counted run.
    #[serde(default)]
    pub top_answers: Vec<usize>,
}

/// The machine and software the numbers come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub cpu_model: String,
    pub host_cpus: usize,
    pub host_mem_mib: u64,
    pub kernel: String,
    /// Which KVM module is loaded (kvm_intel, kvm_amd, kvm_pvm).
    pub kvm_module: String,
    pub rvmm_version: String,
    pub qemu_version: String,
    pub git_commit: String,
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// The load average when the run started, for the reader's judgment of noise.
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub runs: usize,
    pub warmup: bool,
    /// Wall time of the whole run, s.
    pub duration_s: f64,
    /// Benchmarks re-run since (`rvmm-bench NAME --update`): which, when, at which commit.
    #[serde(default)]
    pub updates: Vec<String>,
}

/// Benchmark 8: virtio-blk from the probe guest (vblk.rs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VblkResult {
    /// Requests per phase.
    pub ops: u64,
    /// The sequential phases' transfer size in bytes.
    pub seq_size: u64,
    pub image_mib: u64,
    pub randread_iops: Pair,
    pub seqread_mib_s: Pair,
    pub seqwrite_mib_s: Pair,
}

/// Benchmark 9: virtio-net from the probe guest to a tap (vnet.rs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VnetResult {
    /// Frames per run.
    pub frames: u64,
    /// 64-byte frames per second.
    pub small_fps: Pair,
    /// 1500-byte frames per second.
    pub large_fps: Pair,
}

/// Benchmark 10: giving memory back through virtio-balloon (vballoon.rs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VballoonResult {
    /// MiB the guest touched and the balloon took.
    pub mib: u64,
    /// From QMP `balloon` to the guest's `inflated=` line.
    pub inflate_ms: Pair,
    /// The VMM's VmRSS at `touched=` and at `inflated=`.
    pub rss_before_mib: Pair,
    pub rss_after_mib: Pair,
}

/// Benchmark 11, one guest size: saving the counting guest and running it again (snapmig.rs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRow {
    pub shape: Shape,
    /// rvmm: `rvmm snapshot --stop` from spawn to exit; QEMU: from QMP `migrate` to
    /// `query-migrate` saying completed (the VM stopped first).
    pub save_ms: Pair,
    /// What the VMM itself says: the ms `rvmm snapshot` prints, QEMU's `total-time`.
    pub save_vmm_ms: Pair,
    /// From spawning the restoring VMM to `query-status` answering `running`.
    pub restore_ms: Pair,
    /// The snapshot's allocated size on disk (`du`), KiB.
    pub size_kib: Pair,
    /// Firecracker's samples of the same, when it was measured (firecracker.rs).
    #[serde(default)]
    pub firecracker: FirecrackerSamples,
}

/// Firecracker's samples for one guest size: `PUT /snapshot/create` request to response,
/// spawning the restoring process to the response of `PUT /snapshot/load` (resumed), and the
/// state and memory files' allocated size (KiB).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FirecrackerSamples {
    pub save_ms: Vec<f64>,
    pub restore_ms: Vec<f64>,
    pub size_kib: Vec<f64>,
}

/// Benchmark 11: snapshot and restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotResult {
    pub rows: Vec<SnapshotRow>,
    /// The Firecracker measured (`firecracker --version`'s first line), if one was.
    #[serde(default)]
    pub firecracker: Option<String>,
    /// Why Firecracker has no (or not every) sample: no binary given, or what failed.
    #[serde(default)]
    pub firecracker_note: Option<String>,
}

/// Benchmark 12: live migration of the dirtying guest over loopback TCP (snapmig.rs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrateResult {
    pub shape: Shape,
    /// The guest's `dirty=` (pages per second per vCPU) and `dirty-mib=`.
    pub dirty_pages_per_s: u32,
    pub dirty_mib: u32,
    /// Both VMMs' downtime limit (ms) and bandwidth cap (bytes/s).
    pub downtime_limit_ms: u64,
    pub max_bandwidth: u64,
    /// Reports of every vCPU the source printed before it migrated.
    #[serde(default)]
    pub settle_reports: usize,
    /// Why rvmm has no samples (no live migration in that build), if so.
    pub rvmm_note: Option<String>,
    /// From starting the migration to the source's `query-migrate` saying completed.
    pub wall_ms: Pair,
    /// The source's `query-migrate`: `total-time`, `downtime`, `ram.transferred` (MiB).
    pub total_ms: Pair,
    pub downtime_ms: Pair,
    pub transferred_mib: Pair,
    /// The largest `gap_ms` the destination's guest printed after the migration.
    pub guest_gap_ms: Pair,
    /// The same on the source in the two reports before the migration (the normal gap).
    #[serde(default)]
    pub guest_gap_before_ms: Pair,
    /// Pages the guest really rewrote per second per vCPU before the migration (its rounds
    /// per second × dirty/100): below `dirty_pages_per_s` when a round takes longer than
    /// its 10 ms.
    #[serde(default)]
    pub guest_dirty_rate: Pair,
    /// The source's `ram.dirty-pages-rate` at the end (pages/s), when it gives one.
    #[serde(default)]
    pub dirty_pages_rate: Pair,
}

/// Everything one `rvmm-bench all` measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub meta: Meta,
    pub start: Vec<StartRow>,
    pub memory: Vec<MemoryRow>,
    pub exits: Option<ExitsResult>,
    pub rate: Vec<RateRow>,
    pub scaling: Option<Scaling>,
    #[serde(default)]
    pub hotplug: Option<HotplugResult>,
    #[serde(default)]
    pub monitoring: Option<MonitoringResult>,
    #[serde(default)]
    pub vblk: Option<VblkResult>,
    #[serde(default)]
    pub vnet: Option<VnetResult>,
    #[serde(default)]
    pub vballoon: Option<VballoonResult>,
    #[serde(default)]
    pub snapshot: Option<SnapshotResult>,
    #[serde(default)]
    pub migrate: Option<MigrateResult>,
}
