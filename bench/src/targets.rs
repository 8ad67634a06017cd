//! The figures to beat, checked against a set of results (rvmm's medians).

use crate::results::{Results, ScalePoint};
use crate::stats::{ratio, Summary};
use crate::vmms::{Guest, Shape};

/// One target and how the results stand against it.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub target: &'static str,
    /// What was measured, in words and numbers.
    pub measured: String,
    /// None when the results lack what the target needs.
    pub met: Option<bool>,
}

/// Least-squares slope of y over x (None for fewer than two distinct x).
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

fn median(v: &[f64]) -> Option<f64> {
    Summary::of(v).map(|s| s.median)
}

/// The reference shape for start-time ratios.
pub const START_SHAPE: Shape = Shape {
    vcpus: 1,
    mem_mib: 128,
};

/// rvmm/QEMU for the minimal guest at [`START_SHAPE`]: first line, or exit.
fn start_ratio(r: &Results, exit: bool) -> Option<f64> {
    let row = r
        .start
        .iter()
        .find(|s| s.guest == Guest::Hello && s.shape == START_SHAPE)?;
    if exit {
        row.exit_ms.ratio()
    } else {
        row.first_line_ms.ratio()
    }
}

/// The worst (largest) rvmm/QEMU ratio over every start row, and its label.
fn worst_start_ratio(r: &Results, exit: bool) -> Option<(f64, String)> {
    r.start
        .iter()
        .filter_map(|s| {
            let p = if exit { &s.exit_ms } else { &s.first_line_ms };
            Some((
                p.ratio()?,
                format!("{}, {}", s.guest.name(), s.shape.label()),
            ))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Slope of rvmm's medians of `metric` over `x` along a scaling axis, ms per unit of x.
fn axis_slope(points: &[ScalePoint], x: impl Fn(&ScalePoint) -> f64, exit: bool) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| {
            let pair = if exit { &p.exit_ms } else { &p.first_line_ms };
            Some((x(p), median(&pair.rvmm)?))
        })
        .collect();
    slope(&pts)
}

fn growth_check(target: &'static str, unit: &str, first: Option<f64>, exit: Option<f64>) -> Check {
    match (first, exit) {
        (Some(f), Some(e)) => Check {
            target,
            measured: format!("first line {f:+.3} ms/{unit}, exit {e:+.3} ms/{unit} (least-squares slope of rvmm's medians)"),
            met: Some(f < 1.0 && e < 1.0),
        },
        _ => Check {
            target,
            measured: "not measured".into(),
            met: None,
        },
    }
}

/// Every target of the issue, in its order.
pub fn evaluate(r: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    for (exit, target, limit) in [
        (false, "start → first serial line ≤ 0.1× QEMU microvm", 0.1),
        (
            true,
            "start → exit after poweroff ≤ 0.15× QEMU microvm",
            0.15,
        ),
    ] {
        let here = start_ratio(r, exit);
        let worst = worst_start_ratio(r, exit);
        out.push(match here {
            Some(v) => Check {
                target,
                measured: format!(
                    "{v:.3}× at {} (minimal guest){}",
                    START_SHAPE.label(),
                    worst.map_or_else(String::new, |(w, label)| format!(
                        "; worst {w:.3}× ({label})"
                    ))
                ),
                met: Some(v <= limit),
            },
            None => Check {
                target,
                measured: "not measured".into(),
                met: None,
            },
        });
    }
    let hello_row = r.memory.iter().find(|m| m.guest == Guest::Hello);
    let overhead = hello_row.and_then(|m| median(&m.overhead_mib.rvmm));
    let overhead_dump = r
        .memory
        .iter()
        .find(|m| m.guest == Guest::Dump)
        .and_then(|m| median(&m.overhead_mib.rvmm));
    let at = hello_row.map_or_else(String::new, |m| format!(" at {}", m.shape.label()));
    out.push(Check {
        target: "memory overhead ≤ 4 MiB (1 vCPU, 512 MiB)",
        measured: match (overhead, overhead_dump) {
            (Some(h), Some(d)) => format!("{h:.2} MiB (minimal guest), {d:.2} MiB (dump){at}"),
            (Some(h), None) => format!("{h:.2} MiB (minimal guest){at}"),
            _ => "not measured".into(),
        },
        met: overhead.map(|h| h <= 4.0 && overhead_dump.is_none_or(|d| d <= 4.0)),
    });
    let exits = r.exits.as_ref();
    let vs_bare = exits.and_then(|e| ratio(&e.per_sec.rvmm, &e.bare_per_sec));
    let vs_long = exits.and_then(|e| ratio(&e.per_sec.rvmm, &e.bare_long_per_sec));
    out.push(Check {
        target: "exit round trips ≥ 0.9× a bare KVM_RUN loop (real-mode guest)",
        measured: match (vs_bare, vs_long) {
            (Some(r), Some(l)) => format!("{r:.3}× (and {l:.3}× the same loop in long mode)"),
            (Some(r), None) => format!("{r:.3}×"),
            _ => "not measured".into(),
        },
        met: vs_bare.map(|v| v >= 0.9),
    });
    let vs_qemu = exits.and_then(|e| e.per_sec.ratio());
    out.push(Check {
        target: "exit round trips ≥ QEMU's rate",
        measured: vs_qemu.map_or_else(|| "not measured".into(), |v| format!("{v:.3}×")),
        met: vs_qemu.map(|v| v >= 1.0),
    });
    let sc = r.scaling.as_ref();
    let vcpus = |p: &ScalePoint| f64::from(p.shape.vcpus);
    let gib = |p: &ScalePoint| p.shape.mem_mib as f64 / 1024.0;
    out.push(growth_check(
        "start time grows < 1 ms per added vCPU (1 → 64)",
        "vCPU",
        sc.and_then(|s| axis_slope(&s.vcpus, vcpus, false)),
        sc.and_then(|s| axis_slope(&s.vcpus, vcpus, true)),
    ));
    out.push(growth_check(
        "start time grows < 1 ms per added GiB of untouched memory (128 MiB → 8 GiB)",
        "GiB",
        sc.and_then(|s| axis_slope(&s.memory, gib, false)),
        sc.and_then(|s| axis_slope(&s.memory, gib, true)),
    ));
    let maxrss = hello_row.and_then(|m| median(&m.maxrss_mib.rvmm));
    out.push(Check {
        target: "peak RSS (wait4 ru_maxrss) ≤ Firecracker's 4.0 MiB (minimal guest, 1 vCPU)",
        measured: maxrss.map_or_else(
            || "not measured".into(),
            |v| format!("{v:.2} MiB (minimal guest){at}"),
        ),
        met: maxrss.map(|v| v <= FIRECRACKER_PEAK_RSS_MIB),
    });
    out
}

/// Firecracker's peak RSS on the minimal guest (1 vCPU, 128 MiB), as issue 10 measured it.
const FIRECRACKER_PEAK_RSS_MIB: f64 = 4.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ExitsResult, MemoryRow, StartRow};
    use crate::stats::Pair;

    fn pair(r: &[f64], q: &[f64]) -> Pair {
        Pair {
            rvmm: r.to_vec(),
            qemu: q.to_vec(),
        }
    }

    #[test]
    fn slopes() {
        assert_eq!(slope(&[(1.0, 2.0), (3.0, 6.0)]), Some(2.0));
        assert_eq!(slope(&[(1.0, 1.0), (2.0, 2.0), (3.0, 1.0)]), Some(0.0));
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 3.0)]), None);
    }

    #[test]
    fn checks_against_targets() {
        let r = Results {
            start: vec![StartRow {
                guest: Guest::Hello,
                shape: START_SHAPE,
                first_line_ms: pair(&[9.0], &[100.0]),
                exit_ms: pair(&[20.0], &[100.0]),
            }],
            memory: vec![MemoryRow {
                guest: Guest::Hello,
                shape: Shape::new(1, 512),
                overhead_mib: pair(&[3.5], &[37.0]),
                hwm_mib: Pair::default(),
                maxrss_mib: pair(&[5.5], &[39.0]),
                guest_rss_mib: Pair::default(),
                anon_mib: Pair::default(),
                file_mib: Pair::default(),
            }],
            exits: Some(ExitsResult {
                shape: START_SHAPE,
                count: 10,
                per_sec: pair(&[95.0], &[60.0]),
                bare_per_sec: vec![100.0],
                bare_long_per_sec: Vec::new(),
            }),
            ..Results::default()
        };
        let c = evaluate(&r);
        assert_eq!(c.len(), 8);
        assert_eq!(c[0].met, Some(true));
        assert_eq!(c[0].measured, "0.090× at 1 vCPU, 128 MiB (minimal guest); worst 0.090× (minimal (mode=hello), 1 vCPU, 128 MiB)");
        assert_eq!(c[1].met, Some(false));
        assert_eq!(c[2].measured, "3.50 MiB (minimal guest) at 1 vCPU, 512 MiB");
        assert_eq!(c[2].met, Some(true));
        assert_eq!(c[3].measured, "0.950×");
        assert_eq!(c[3].met, Some(true));
        assert_eq!(c[4].met, Some(true));
        assert_eq!(c[5].met, None);
        assert_eq!(c[6].measured, "not measured");
        assert_eq!(c[7].measured, "5.50 MiB (minimal guest) at 1 vCPU, 512 MiB");
        assert_eq!(c[7].met, Some(false));
    }
}
