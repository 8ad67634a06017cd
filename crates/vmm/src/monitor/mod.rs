//! What a running VM's vCPUs cost the host, as `rvmm stats`, `rvmm top`, `rvmm advise` and
//! `--metrics` report it: one [`sample::StatsReport`] per look (KVM's binary statistics of
//! the VM and every vCPU, and each thread's scheduler figures from /proc), and the rates
//! between two looks ([`rates`]: busy, guest, VMM and steal time as a share of wall time,
//! exits per second by reason).
//!
//! Samples are plain data read on the VMM thread and sent as JSON in the
//! `__org.rvmm_stats` reply; everything computed from them is pure and lives here, so the
//! clients (the `rvmm` binary, the metrics server) only render.

pub mod advise;
pub mod prometheus;
pub mod rates;
pub mod render;
pub mod sample;
pub mod top;

use thiserror::Error;

/// Why two samples cannot be compared.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MonitorError {
    /// The samples come from different processes (the VM ended and another started).
    #[error("the VM changed between samples (process {before} became {after})")]
    ProcessChanged { before: i32, after: i32 },
    /// The second sample is not later than the first.
    #[error("samples {before_ns} ns and {after_ns} ns are not in time order")]
    NotLater { before_ns: u64, after_ns: u64 },
}
