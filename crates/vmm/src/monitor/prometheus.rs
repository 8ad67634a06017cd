//! A [`StatsReport`] in Prometheus's text exposition format (version 0.0.4), for the
//! `--metrics` endpoint. Pure: report in, text out.
//!
//! Naming follows Prometheus's rules: `rvmm_` prefix, snake_case, base units (seconds,
//! bytes), `_total` on counters, one `# HELP` and one `# TYPE` line per family, every
//! sample of a family together. Labels: `vm` (the VM's `--name`, or its process id when
//! it has none) and, per vCPU, `vcpu` (the slot index).
//!
//! - Per vCPU thread (schedstat, stat, status): `rvmm_vcpu_run_seconds_total`,
//!   `rvmm_vcpu_steal_seconds_total` (run delay: runnable, waiting for a host CPU),
//!   `rvmm_vcpu_user_seconds_total`, `rvmm_vcpu_system_seconds_total`,
//!   `rvmm_vcpu_guest_seconds_total`, `rvmm_vcpu_timeslices_total`,
//!   `rvmm_vcpu_context_switches_total{kind="voluntary|involuntary"}`,
//!   `rvmm_vcpu_migrations_total` (where the kernel has it), `rvmm_vcpu_host_cpu` (gauge:
//!   the host CPU it last ran on), `rvmm_vcpu_halted` (gauge, 1 when halted).
//! - Per vCPU cgroup (`vcpuN`, when the VM has a cgroup of its own; `cpu.stat` and the CFS
//!   bandwidth): `rvmm_vcpu_cgroup_throttled_seconds_total` (time held back by the quota),
//!   `rvmm_vcpu_cgroup_throttled_periods_total` (periods in which it used up its quota),
//!   `rvmm_vcpu_cgroup_quota_ratio` (gauge: quota / period, the host CPUs' worth the vCPU
//!   may use; absent when unlimited).
//! - Per VM: `rvmm_vm_vcpus`, `rvmm_vm_host_cpus`, `rvmm_vm_emulator_threads`,
//!   `rvmm_vm_emulator_run_seconds_total` (the non-vCPU threads alive now; a QMP client's
//!   thread ending lowers it, which `rate()` takes as a counter reset).
//! - Every KVM statistic, generically from its descriptor: `rvmm_vcpu_kvm_<name>` and
//!   `rvmm_vm_kvm_<name>`. Cumulative → counter (`_total`); instant and peak → gauge; a
//!   time in seconds × 10^exponent is converted to seconds and its name's unit suffix
//!   (`_ns`, `_us`, `_ms`) replaced by `_seconds` (`halt_wait_ns` →
//!   `rvmm_vcpu_kvm_halt_wait_seconds_total`); bytes get `_bytes`, cycles `_cycles`.
//!   Histograms become histogram families (`halt_wait_hist` →
//!   `rvmm_vcpu_kvm_halt_wait_hist_seconds`; keeping `_hist` keeps the family apart from
//!   the `halt_wait_ns` counter, which OpenMetrics parsers name without `_total`):
//!   cumulative `_bucket{le=...}` and `_count`. KVM's log2 bucket N (N ≥ 1) holds the integer values
//!   in [2^(N-1), 2^N), so its upper bound is `le` = (2^N − 1) in the stat's unit (bucket
//!   0 holds 0); a linear bucket N holds [N·w, (N+1)·w), `le` = (N+1)·w − 1. The last
//!   bucket of either kind also takes every larger value, so it is `le="+Inf"`. These
//!   bounds are exact. KVM keeps no sum of the values, so there is no `_sum` series
//!   (Prometheus's text format does not require one; `histogram_quantile` works without).
//!
//! A family whose name, or one of whose series names, another family already took (two
//! KVM names that sanitize alike; a counter `x_total` and a histogram `x`) is left out
//! rather than emitted twice.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::sample::{StatsReport, ThreadSample};
use crate::host::vmcgroup::CgroupCpuStat;
use crate::machine::stats::{KvmStat, StatType, StatUnit, StatValue};
use crate::vcpu::info::VcpuState;

/// The exposition format's media type, for the HTTP `Content-Type` header.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counter, gauge or histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family being written.
struct Family {
    name: String,
    /// What the family was made from (its name, or the KVM statistic's prefixed name).
    source: String,
    help: String,
    kind: Kind,
    /// (label text without braces, suffix, value text)
    samples: Vec<(String, &'static str, String)>,
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text: backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A metric name made of `[a-zA-Z0-9_]` (anything else becomes `_`; a leading digit gets
/// a `_` before it).
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A float as Prometheus reads it (`+Inf`, `NaN`, else Rust's shortest round-trip form).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn seconds(ns: u64) -> String {
    float(ns as f64 / 1e9)
}

/// How a KVM statistic is named and scaled.
struct KvmShape {
    /// The name after the prefix, with its unit suffix, before `_total`.
    base: String,
    /// Value × base^exponent is in the base unit.
    scale: Scale,
    kind: Kind,
    unit_word: &'static str,
}

fn kvm_shape(stat: &KvmStat) -> KvmShape {
    let d = &stat.desc;
    let mut name = sanitize_name(&d.name);
    let kind = match d.kind {
        StatType::Cumulative => Kind::Counter,
        StatType::Instant | StatType::Peak => Kind::Gauge,
        StatType::LinearHistogram | StatType::Log2Histogram => Kind::Histogram,
    };
    let scale = Scale {
        base: d.base,
        exponent: d.exponent,
    };
    let (suffix, unit_word) = match d.unit {
        StatUnit::Seconds => {
            for s in ["_ns", "_us", "_ms", "_secs", "_sec", "_seconds"] {
                if let Some(n) = name.strip_suffix(s) {
                    name = n.to_string();
                    break;
                }
            }
            ("_seconds", "seconds")
        }
        StatUnit::Bytes => ("_bytes", "bytes"),
        StatUnit::Cycles => ("_cycles", "cycles"),
        StatUnit::None | StatUnit::Boolean => ("", ""),
    };
    if !suffix.is_empty() && !name.ends_with(suffix) {
        name.push_str(suffix);
    }
    if kind == Kind::Counter {
        if let Some(n) = name.strip_suffix("_total") {
            name = n.to_string();
        }
    }
    KvmShape {
        base: name,
        scale,
        kind,
        unit_word,
    }
}

/// A statistic's scale: its value × base^exponent is in the base unit.
#[derive(Debug, Clone, Copy)]
struct Scale {
    base: u8,
    exponent: i16,
}

impl Scale {
    /// `v` in the base unit. A negative exponent divides by an exact power (10^9 is exact
    /// in f64, 10^-9 is not), so 1000 ns is exactly 0.000001 s.
    fn apply(self, v: f64) -> f64 {
        let power = (self.base as f64).powi(self.exponent.unsigned_abs() as i32);
        if self.exponent < 0 {
            v / power
        } else {
            v * power
        }
    }
}

/// A scalar in the base unit; integers stay exact when no scaling applies.
fn scaled(v: u64, scale: Scale) -> String {
    if scale.exponent == 0 {
        v.to_string()
    } else {
        float(scale.apply(v as f64))
    }
}

/// The upper bounds (in the stat's raw unit) of a histogram's buckets but the last
/// (which is +Inf).
fn bucket_bound(kind: StatType, bucket_size: u32, index: usize) -> f64 {
    match kind {
        // Bucket N holds [2^(N-1), 2^N): at most 2^N − 1 for integer values.
        StatType::Log2Histogram => 2f64.powi(index as i32) - 1.0,
        // Bucket N holds [N·w, (N+1)·w).
        _ => (index as f64 + 1.0) * bucket_size as f64 - 1.0,
    }
}

/// The families of one KVM statistic for one owner (`labels` without braces).
fn add_kvm(families: &mut Families, prefix: &str, owner: &str, stat: &KvmStat, labels: &str) {
    let shape = kvm_shape(stat);
    let d = &stat.desc;
    let source = format!("{prefix}{}", d.name);
    let kind_text = match d.kind {
        StatType::Cumulative => "cumulative",
        StatType::Instant => "instant",
        StatType::Peak => "peak",
        StatType::LinearHistogram => "linear histogram",
        StatType::Log2Histogram => "log2 histogram",
    };
    let unit = if shape.unit_word.is_empty() {
        String::new()
    } else {
        format!(", in {}", shape.unit_word)
    };
    let help = format!(
        "KVM {owner} statistic {} ({kind_text}{unit}), from the kernel's binary statistics",
        d.name
    );
    match (&stat.value, shape.kind) {
        (StatValue::Scalar(v), Kind::Counter) => families.sample_from(
            &format!("{prefix}{}_total", shape.base),
            &source,
            &help,
            Kind::Counter,
            labels,
            "",
            scaled(*v, shape.scale),
        ),
        (StatValue::Scalar(v), _) => families.sample_from(
            &format!("{prefix}{}", shape.base),
            &source,
            &help,
            Kind::Gauge,
            labels,
            "",
            scaled(*v, shape.scale),
        ),
        (StatValue::Histogram(buckets), _) => {
            let name = format!("{prefix}{}", shape.base);
            let sep = if labels.is_empty() { "" } else { "," };
            let mut cumulative = 0u64;
            for (i, b) in buckets.iter().enumerate() {
                cumulative = cumulative.wrapping_add(*b);
                let le = if i + 1 == buckets.len() {
                    "+Inf".to_string()
                } else {
                    float(shape.scale.apply(bucket_bound(d.kind, d.bucket_size, i)))
                };
                families.sample_from(
                    &name,
                    &source,
                    &help,
                    Kind::Histogram,
                    &format!("{labels}{sep}le=\"{le}\""),
                    "_bucket",
                    cumulative.to_string(),
                );
            }
            if buckets.is_empty() {
                families.sample_from(
                    &name,
                    &source,
                    &help,
                    Kind::Histogram,
                    &format!("{labels}{sep}le=\"+Inf\""),
                    "_bucket",
                    "0".into(),
                );
            }
            families.sample_from(
                &name,
                &source,
                &help,
                Kind::Histogram,
                labels,
                "_count",
                cumulative.to_string(),
            );
        }
    }
}

/// Families in first-seen order, each with all its samples.
#[derive(Default)]
struct Families {
    list: Vec<Family>,
    /// Sources left out because their name clashed with a family already there.
    refused: BTreeSet<String>,
}

impl Families {
    /// A sample of a family that has one source (its own name).
    fn sample(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &str,
        suffix: &'static str,
        value: String,
    ) {
        self.sample_from(name, name, help, kind, labels, suffix, value)
    }

    /// A sample of family `name` made from `source` (a KVM statistic's own name): a family
    /// belongs to the first source that named it; another source mapping to the same name,
    /// or to a series name of another family, is left out.
    #[allow(clippy::too_many_arguments)]
    fn sample_from(
        &mut self,
        name: &str,
        source: &str,
        help: &str,
        kind: Kind,
        labels: &str,
        suffix: &'static str,
        value: String,
    ) {
        if self.refused.contains(source) {
            return;
        }
        if let Some(f) = self.list.iter_mut().find(|f| f.name == name) {
            if f.kind != kind || f.source != source {
                self.refused.insert(source.to_string());
                return;
            }
            f.samples.push((labels.to_string(), suffix, value));
            return;
        }
        // A new family must not produce a series name another family has.
        let clashes = |other: &Family| {
            let mine = series_names(name, kind);
            let theirs = series_names(&other.name, other.kind);
            mine.iter().any(|m| theirs.contains(m))
        };
        if self.list.iter().any(clashes) {
            self.refused.insert(source.to_string());
            return;
        }
        self.list.push(Family {
            name: name.to_string(),
            source: source.to_string(),
            help: help.to_string(),
            kind,
            samples: vec![(labels.to_string(), suffix, value)],
        });
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.list {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for (labels, suffix, value) in &f.samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{}{suffix} {value}", f.name);
                } else {
                    let _ = writeln!(out, "{}{suffix}{{{labels}}} {value}", f.name);
                }
            }
        }
        out
    }
}

/// The series names a family of `kind` writes, and for a counter its OpenMetrics family
/// name (without `_total`).
fn series_names(name: &str, kind: Kind) -> Vec<String> {
    match kind {
        Kind::Counter => vec![
            name.to_string(),
            name.strip_suffix("_total").unwrap_or(name).to_string(),
        ],
        Kind::Histogram => vec![
            name.to_string(),
            format!("{name}_bucket"),
            format!("{name}_count"),
            format!("{name}_sum"),
        ],
        _ => vec![name.to_string()],
    }
}

/// The `vm` label's value: the VM's name, else its process id.
pub fn vm_label(report: &StatsReport) -> String {
    report
        .name
        .clone()
        .unwrap_or_else(|| report.pid.to_string())
}

fn add_thread(families: &mut Families, t: &ThreadSample, labels: &str) {
    let sep = if labels.is_empty() { "" } else { "," };
    let counters: [(&str, &str, u64); 5] = [
        (
            "rvmm_vcpu_run_seconds_total",
            "Time the vCPU thread spent on a host CPU (schedstat), guest and VMM together",
            t.run_ns,
        ),
        (
            "rvmm_vcpu_steal_seconds_total",
            "Time the vCPU thread was runnable but waiting for a host CPU (schedstat run delay): the guest's steal",
            t.wait_ns,
        ),
        (
            "rvmm_vcpu_user_seconds_total",
            "User time of the vCPU thread (stat field 14; guest time is inside it or system time)",
            t.utime_ns,
        ),
        (
            "rvmm_vcpu_system_seconds_total",
            "System time of the vCPU thread (stat field 15)",
            t.stime_ns,
        ),
        (
            "rvmm_vcpu_guest_seconds_total",
            "Guest time of the vCPU thread (stat field 43; 0 where the kernel does not account it)",
            t.guest_ns,
        ),
    ];
    for (name, help, ns) in counters {
        families.sample(name, help, Kind::Counter, labels, "", seconds(ns));
    }
    families.sample(
        "rvmm_vcpu_timeslices_total",
        "Times the vCPU thread was scheduled onto a host CPU (schedstat)",
        Kind::Counter,
        labels,
        "",
        t.timeslices.to_string(),
    );
    for (kind, v) in [
        ("voluntary", t.voluntary_switches),
        ("involuntary", t.involuntary_switches),
    ] {
        families.sample(
            "rvmm_vcpu_context_switches_total",
            "Context switches of the vCPU thread: voluntary (it slept, e.g. a halted vCPU) or involuntary (preempted)",
            Kind::Counter,
            &format!("{labels}{sep}kind=\"{kind}\""),
            "",
            v.to_string(),
        );
    }
    if let Some(m) = t.migrations {
        families.sample(
            "rvmm_vcpu_migrations_total",
            "Moves of the vCPU thread between host CPUs",
            Kind::Counter,
            labels,
            "",
            m.to_string(),
        );
    }
    families.sample(
        "rvmm_vcpu_host_cpu",
        "The host CPU the vCPU thread last ran on",
        Kind::Gauge,
        labels,
        "",
        t.cpu.to_string(),
    );
}

fn add_cgroup(families: &mut Families, c: &CgroupCpuStat, labels: &str) {
    families.sample(
        "rvmm_vcpu_cgroup_throttled_seconds_total",
        "Time the vCPU's cgroup was held back by its CFS quota (cpu.stat throttled_time / throttled_usec)",
        Kind::Counter,
        labels,
        "",
        seconds(c.throttled_ns),
    );
    families.sample(
        "rvmm_vcpu_cgroup_throttled_periods_total",
        "CFS periods in which the vCPU's cgroup used up its quota (cpu.stat nr_throttled)",
        Kind::Counter,
        labels,
        "",
        c.nr_throttled.to_string(),
    );
    if c.quota_us >= 0 && c.period_us > 0 {
        families.sample(
            "rvmm_vcpu_cgroup_quota_ratio",
            "The vCPU cgroup's CFS quota over its period: how many host CPUs' worth of time it may use (absent when unlimited)",
            Kind::Gauge,
            labels,
            "",
            float(c.quota_us as f64 / c.period_us as f64),
        );
    }
}

/// The report as Prometheus text (exposition format 0.0.4).
pub fn render(report: &StatsReport) -> String {
    let mut families = Families::default();
    let vm = format!("vm=\"{}\"", escape_label(&vm_label(report)));
    families.sample(
        "rvmm_vm_vcpus",
        "vCPUs present",
        Kind::Gauge,
        &vm,
        "",
        report.vcpus.len().to_string(),
    );
    families.sample(
        "rvmm_vm_host_cpus",
        "The host's possible CPUs",
        Kind::Gauge,
        &vm,
        "",
        report.host_cpus.to_string(),
    );
    families.sample(
        "rvmm_vm_emulator_threads",
        "Threads of the VM that are not vCPUs (event loop, control and metrics servers)",
        Kind::Gauge,
        &vm,
        "",
        report.emulator.len().to_string(),
    );
    let emulator_ns = report
        .emulator
        .iter()
        .fold(0u64, |a, t| a.saturating_add(t.run_ns));
    families.sample(
        "rvmm_vm_emulator_run_seconds_total",
        "Time the VM's non-vCPU threads alive now spent on a host CPU (schedstat)",
        Kind::Counter,
        &vm,
        "",
        seconds(emulator_ns),
    );
    families.sample(
        "rvmm_vm_kvm_stats_available",
        "1 when the kernel publishes KVM binary statistics for this VM",
        Kind::Gauge,
        &vm,
        "",
        u8::from(report.kvm_error.is_none()).to_string(),
    );
    for v in &report.vcpus {
        let labels = format!("{vm},vcpu=\"{}\"", v.vcpu);
        add_thread(&mut families, &v.thread, &labels);
        families.sample(
            "rvmm_vcpu_halted",
            "1 when the vCPU is halted (sleeping in KVM_RUN until an interrupt), else 0",
            Kind::Gauge,
            &labels,
            "",
            u8::from(v.state == VcpuState::Halted).to_string(),
        );
        if let Some(c) = &v.cgroup {
            add_cgroup(&mut families, c, &labels);
        }
    }
    for v in &report.vcpus {
        let labels = format!("{vm},vcpu=\"{}\"", v.vcpu);
        for stat in &v.kvm {
            add_kvm(&mut families, "rvmm_vcpu_kvm_", "vCPU", stat, &labels);
        }
    }
    for stat in &report.vm {
        add_kvm(&mut families, "rvmm_vm_kvm_", "VM", stat, &vm);
    }
    families.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::stats::StatDesc;
    use crate::monitor::sample::{example_kvm_stats, VcpuSample};

    fn report() -> StatsReport {
        let thread = |tid: i32, run_ns: u64| ThreadSample {
            thread_id: tid,
            name: format!("CPU {tid}/KVM"),
            cpu: 3,
            affinity: "0-3".into(),
            utime_ns: 10_000_000,
            stime_ns: 2_500_000_000,
            guest_ns: 0,
            run_ns,
            wait_ns: 1_500,
            timeslices: 7,
            voluntary_switches: 5,
            involuntary_switches: 2,
            migrations: Some(4),
        };
        StatsReport {
            name: Some("web \"1\"\\x\n".into()),
            pid: 42,
            time_ns: 1,
            host_cpus: 4,
            vm: example_kvm_stats(9),
            kvm_error: None,
            vcpus: vec![
                VcpuSample {
                    vcpu: 0,
                    state: VcpuState::Running,
                    thread: thread(100, 3_000_000_000),
                    kvm: example_kvm_stats(1000),
                    guest_node: None,
                    memory_host_nodes: Vec::new(),
                    cgroup: Some(CgroupCpuStat {
                        period_us: 100_000,
                        quota_us: 25_000,
                        nr_periods: 50,
                        nr_throttled: 45,
                        throttled_ns: 3_750_000_000,
                        usage_ns: None,
                    }),
                },
                VcpuSample {
                    vcpu: 1,
                    state: VcpuState::Halted,
                    thread: thread(101, 1),
                    kvm: example_kvm_stats(10),
                    guest_node: None,
                    memory_host_nodes: Vec::new(),
                    cgroup: Some(CgroupCpuStat {
                        period_us: 100_000,
                        quota_us: -1,
                        ..CgroupCpuStat::default()
                    }),
                },
            ],
            emulator: vec![thread(99, 500_000_000), thread(98, 250_000_000)],
            host_nodes: Vec::new(),
        }
    }

    fn lines_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("{family}{{"))
                    || l.starts_with(&format!("{family} "))
                    || l.starts_with(&format!("{family}_bucket{{"))
                    || l.starts_with(&format!("{family}_count{{"))
            })
            .collect()
    }

    const VM: &str = r#"vm="web \"1\"\\x\n""#;

    #[test]
    fn thread_figures_in_seconds_with_labels() {
        let text = render(&report());
        assert_eq!(
            lines_of(&text, "rvmm_vcpu_run_seconds_total"),
            [
                format!("rvmm_vcpu_run_seconds_total{{{VM},vcpu=\"0\"}} 3"),
                format!("rvmm_vcpu_run_seconds_total{{{VM},vcpu=\"1\"}} 0.000000001"),
            ]
        );
        assert!(text.contains(&format!(
            "rvmm_vcpu_steal_seconds_total{{{VM},vcpu=\"0\"}} 0.0000015\n"
        )));
        assert!(text.contains(&format!(
            "rvmm_vcpu_context_switches_total{{{VM},vcpu=\"1\",kind=\"involuntary\"}} 2\n"
        )));
        assert!(text.contains(&format!("rvmm_vcpu_host_cpu{{{VM},vcpu=\"0\"}} 3\n")));
        assert!(text.contains(&format!("rvmm_vcpu_halted{{{VM},vcpu=\"1\"}} 1\n")));
        assert!(text.contains(&format!("rvmm_vm_vcpus{{{VM}}} 2\n")));
        assert!(text.contains(&format!(
            "rvmm_vm_emulator_run_seconds_total{{{VM}}} 0.75\n"
        )));
        assert!(text.contains("# TYPE rvmm_vcpu_host_cpu gauge\n"));
        assert!(text.contains("# TYPE rvmm_vcpu_migrations_total counter\n"));
    }

    #[test]
    fn cgroup_throttling_per_vcpu() {
        let text = render(&report());
        assert!(text.contains("# TYPE rvmm_vcpu_cgroup_throttled_seconds_total counter\n"));
        assert!(text.contains("# TYPE rvmm_vcpu_cgroup_throttled_periods_total counter\n"));
        assert!(text.contains("# TYPE rvmm_vcpu_cgroup_quota_ratio gauge\n"));
        assert!(text.contains("# HELP rvmm_vcpu_cgroup_quota_ratio "));
        assert_eq!(
            lines_of(&text, "rvmm_vcpu_cgroup_throttled_seconds_total"),
            [
                format!("rvmm_vcpu_cgroup_throttled_seconds_total{{{VM},vcpu=\"0\"}} 3.75"),
                format!("rvmm_vcpu_cgroup_throttled_seconds_total{{{VM},vcpu=\"1\"}} 0"),
            ]
        );
        assert_eq!(
            lines_of(&text, "rvmm_vcpu_cgroup_throttled_periods_total"),
            [
                format!("rvmm_vcpu_cgroup_throttled_periods_total{{{VM},vcpu=\"0\"}} 45"),
                format!("rvmm_vcpu_cgroup_throttled_periods_total{{{VM},vcpu=\"1\"}} 0"),
            ]
        );
        // vCPU 1 has no quota: no ratio.
        assert_eq!(
            lines_of(&text, "rvmm_vcpu_cgroup_quota_ratio"),
            [format!(
                "rvmm_vcpu_cgroup_quota_ratio{{{VM},vcpu=\"0\"}} 0.25"
            )]
        );
        // Without a cgroup, none of the families.
        let mut r = report();
        for v in &mut r.vcpus {
            v.cgroup = None;
        }
        assert!(!render(&r).contains("rvmm_vcpu_cgroup"));
    }

    #[test]
    fn kvm_statistics_by_type_and_unit() {
        let text = render(&report());
        // Counter without unit.
        assert!(text.contains("# TYPE rvmm_vcpu_kvm_exits_total counter\n"));
        assert!(text.contains(&format!(
            "rvmm_vcpu_kvm_exits_total{{{VM},vcpu=\"0\"}} 1000\n"
        )));
        assert!(text.contains(&format!(
            "rvmm_vcpu_kvm_io_exits_total{{{VM},vcpu=\"1\"}} 5\n"
        )));
        assert!(text.contains(&format!("rvmm_vm_kvm_exits_total{{{VM}}} 9\n")));
        // Nanoseconds → seconds, `_ns` → `_seconds`.
        assert!(text.contains("# TYPE rvmm_vcpu_kvm_halt_poll_success_seconds_total counter\n"));
        assert!(text.contains(&format!(
            "rvmm_vcpu_kvm_halt_poll_success_seconds_total{{{VM},vcpu=\"0\"}} 0.000001\n"
        )));
        // Instant boolean → gauge.
        assert!(text.contains("# TYPE rvmm_vcpu_kvm_guest_mode gauge\n"));
        // Log2 histogram [0, 1, 2] in ns: bucket 0 holds 0, bucket 1 holds 1, the last
        // holds everything from 2 up.
        assert!(text.contains("# TYPE rvmm_vcpu_kvm_halt_wait_hist_seconds histogram\n"));
        assert_eq!(
            lines_of(&text, "rvmm_vm_kvm_halt_wait_hist_seconds"),
            [
                format!("rvmm_vm_kvm_halt_wait_hist_seconds_bucket{{{VM},le=\"0\"}} 0"),
                format!("rvmm_vm_kvm_halt_wait_hist_seconds_bucket{{{VM},le=\"0.000000001\"}} 1"),
                format!("rvmm_vm_kvm_halt_wait_hist_seconds_bucket{{{VM},le=\"+Inf\"}} 3"),
                format!("rvmm_vm_kvm_halt_wait_hist_seconds_count{{{VM}}} 3"),
            ]
        );
    }

    #[test]
    fn one_help_and_type_per_family_and_samples_together() {
        let text = render(&report());
        let mut seen = BTreeSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(seen.insert(name.clone()), "TYPE twice: {name}");
                current = name;
            } else if !line.starts_with('#') {
                let series = line.split(['{', ' ']).next().unwrap();
                assert!(
                    series == current
                        || series == format!("{current}_bucket")
                        || series == format!("{current}_count"),
                    "{series} outside its family {current}"
                );
            }
        }
        assert_eq!(
            text.matches("# HELP ").count(),
            text.matches("# TYPE ").count()
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut parts = line.split(' ').skip(2);
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
    }

    fn stat(name: &str, kind: StatType, unit: StatUnit, exponent: i16, v: StatValue) -> KvmStat {
        KvmStat {
            desc: StatDesc {
                name: name.into(),
                kind,
                unit,
                base: 10,
                exponent,
                size: 1,
                offset: 0,
                bucket_size: 4,
            },
            value: v,
        }
    }

    #[test]
    fn linear_histograms_peaks_bytes_and_clashes() {
        let mut r = report();
        r.vcpus.clear();
        r.vm = vec![
            stat(
                "lin_hist",
                StatType::LinearHistogram,
                StatUnit::None,
                0,
                StatValue::Histogram(vec![1, 0, 2]),
            ),
            stat(
                "max_x",
                StatType::Peak,
                StatUnit::Bytes,
                0,
                StatValue::Scalar(7),
            ),
            stat(
                "wait_us",
                StatType::Instant,
                StatUnit::Seconds,
                -6,
                StatValue::Scalar(3),
            ),
            // Another statistic that sanitizes to the same family name: left out.
            stat(
                "max.x",
                StatType::Peak,
                StatUnit::Bytes,
                0,
                StatValue::Scalar(1),
            ),
            // A counter whose OpenMetrics family name is the histogram's.
            stat(
                "lin_hist",
                StatType::Cumulative,
                StatUnit::None,
                0,
                StatValue::Scalar(1),
            ),
            // Would write `rvmm_vm_kvm_lin_hist_count`, a series of the histogram.
            stat(
                "lin_hist_count",
                StatType::Instant,
                StatUnit::None,
                0,
                StatValue::Scalar(1),
            ),
        ];
        let text = render(&r);
        assert_eq!(
            lines_of(&text, "rvmm_vm_kvm_lin_hist"),
            [
                format!("rvmm_vm_kvm_lin_hist_bucket{{{VM},le=\"3\"}} 1"),
                format!("rvmm_vm_kvm_lin_hist_bucket{{{VM},le=\"7\"}} 1"),
                format!("rvmm_vm_kvm_lin_hist_bucket{{{VM},le=\"+Inf\"}} 3"),
                format!("rvmm_vm_kvm_lin_hist_count{{{VM}}} 3"),
            ]
        );
        assert!(text.contains(&format!("rvmm_vm_kvm_max_x_bytes{{{VM}}} 7\n")));
        assert!(text.contains(&format!("rvmm_vm_kvm_wait_seconds{{{VM}}} 0.000003\n")));
        assert_eq!(lines_of(&text, "rvmm_vm_kvm_max_x_bytes").len(), 1);
        assert_eq!(text.matches("# TYPE rvmm_vm_kvm_lin_hist_count").count(), 0);
        assert!(!text.contains("rvmm_vm_kvm_lin_hist_total"));
    }

    #[test]
    fn unnamed_vm_is_labelled_by_pid_and_names_are_sanitized() {
        let mut r = report();
        r.name = None;
        assert!(render(&r).contains("rvmm_vm_vcpus{vm=\"42\"} 2\n"));
        assert_eq!(sanitize_name("a-b.C9"), "a_b_c9");
        assert_eq!(sanitize_name("9x"), "_9x");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
