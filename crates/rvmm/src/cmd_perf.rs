//! `rvmm stats VM --perf [--duration D] [--vcpu N] [--json]`: host PMU and software counters
//! of each vCPU thread (`vmm::host::perf`), counted over `--duration`. The vCPU threads come
//! from the VM's `__org.rvmm_stats`; every event is opened on every thread, and the report
//! has, per vCPU, each event's count and rate (and IPC when cycles and instructions both
//! counted), then one line per event that could not be counted and why (a host without a
//! hardware PMU counts the software events only). In JSON every event has exactly one of
//! `count` and `reason`.
//!
//! The guest's own PMU (what the guest sees through CPUID leaf 0xA) is `--cpu ...,pmu=` and
//! not this command's business.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use vmm::control::client::ClientError;
use vmm::control::commands::stats::StatsQuery;
use vmm::host::perf::{open_all, scaled_delta, PerfError, PerfEvent, Reading, ThreadCounter};
use vmm::monitor::sample::StatsReport;
use vmm::util::cpulist::cpulist;
use vmm::util::duration::parse_duration;

use crate::cli::StatsArgs;
use crate::cmd_qmp::connect;
use crate::output::{out, outln};

/// How often the count checks that the VM is still there.
const POLL: Duration = Duration::from_millis(100);

/// What `--perf` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PerfReport {
    /// The VM as named on the command line.
    pub vm: String,
    pub pid: i32,
    /// How long the counters counted, in seconds (as measured).
    pub duration_s: f64,
    pub vcpus: Vec<VcpuPerf>,
}

/// One vCPU thread's counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VcpuPerf {
    pub vcpu: u32,
    pub thread_id: i32,
    pub events: Vec<EventCount>,
    /// Instructions per cycle, when both were counted (and cycles is not 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<f64>,
}

/// One event on one thread: counted, or the reason it was not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventCount {
    pub event: PerfEvent,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged, rename_all = "kebab-case")]
pub enum Outcome {
    #[serde(rename_all = "kebab-case")]
    Counted {
        /// Events (nanoseconds for task-clock), scaled if multiplexed.
        count: u64,
        per_second: f64,
        /// The share of the interval the event was really on a counter.
        running_pct: f64,
    },
    Unavailable {
        reason: String,
    },
}

/// What `event` counted among `events`, if it was counted.
fn count_of(events: &[EventCount], event: PerfEvent) -> Option<u64> {
    events.iter().find_map(|e| match e.outcome {
        Outcome::Counted { count, .. } if e.event == event => Some(count),
        _ => None,
    })
}

/// Instructions per cycle from a vCPU's counts.
fn ipc(events: &[EventCount]) -> Option<f64> {
    let cycles = count_of(events, PerfEvent::Cycles).filter(|&c| c > 0)?;
    let instructions = count_of(events, PerfEvent::Instructions)?;
    Some(instructions as f64 / cycles as f64)
}

/// A thread's events, opened and read once: ready to be read again.
type Started = Vec<(PerfEvent, Result<(ThreadCounter, Reading), PerfError>)>;

fn start(tid: i32) -> Started {
    open_all(tid)
        .into_iter()
        .map(|(event, counter)| {
            let started = counter.and_then(|c| c.read().map(|r| (c, r)));
            (event, started)
        })
        .collect()
}

fn finish(started: Started, seconds: f64) -> Vec<EventCount> {
    started
        .into_iter()
        .map(|(event, s)| {
            let delta = s.and_then(|(c, before)| scaled_delta(before, c.read()?));
            let outcome = match delta {
                Ok(d) => Outcome::Counted {
                    count: d.count,
                    per_second: d.count as f64 / seconds,
                    running_pct: d.running_pct,
                },
                Err(e) => Outcome::Unavailable {
                    reason: e.to_string(),
                },
            };
            EventCount { event, outcome }
        })
        .collect()
}

/// The vCPUs' figures, with `--vcpu N` naming the option when the VM has no vCPU N.
fn look(vm: &str, vcpu: Option<u32>) -> Result<StatsReport> {
    match connect(vm)?.request(&StatsQuery { vcpu }) {
        Ok(r) => Ok(r),
        Err(e @ ClientError::Qmp { .. }) if vcpu.is_some() => {
            Err(anyhow::Error::new(e).context(format!("--vcpu {}", vcpu.unwrap_or_default())))
        }
        Err(e) => Err(anyhow::Error::new(e).context("stats --perf")),
    }
}

/// Sleeps until `deadline`, or until the first counted vCPU thread is gone (the VM ended:
/// the check after the count says so at once rather than after the whole duration).
fn wait_counting(report: &StatsReport, deadline: Instant) {
    let thread = report
        .vcpus
        .first()
        .map(|v| format!("/proc/{}/task/{}", report.pid, v.thread.thread_id));
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep((deadline - now).min(POLL));
        if thread.as_ref().is_some_and(|t| !Path::new(t).exists()) {
            return;
        }
    }
}

pub fn perf(args: &StatsArgs) -> Result<ExitCode> {
    let duration = parse_duration("--duration", &args.duration)?;
    let before = look(&args.vm, args.vcpu)?;
    if before.vcpus.is_empty() {
        bail!(
            "stats --perf {}: the VM has no running vCPU to count",
            args.vm
        );
    }
    let began = Instant::now();
    let started: Vec<(u32, i32, Started)> = before
        .vcpus
        .iter()
        .map(|v| (v.vcpu, v.thread.thread_id, start(v.thread.thread_id)))
        .collect();
    wait_counting(&before, began + duration);
    let seconds = began.elapsed().as_secs_f64();
    let vcpus: Vec<VcpuPerf> = started
        .into_iter()
        .map(|(vcpu, thread_id, s)| {
            let events = finish(s, seconds);
            VcpuPerf {
                vcpu,
                thread_id,
                ipc: ipc(&events),
                events,
            }
        })
        .collect();
    // Counts of a VM that ended meanwhile would be of threads that no longer exist.
    let after = look(&args.vm, args.vcpu).with_context(|| {
        format!(
            "the VM {} ended while its vCPUs were being counted",
            args.vm
        )
    })?;
    if after.pid != before.pid {
        bail!(
            "the VM {} was restarted while its vCPUs were being counted (pid {} then {})",
            args.vm,
            before.pid,
            after.pid
        );
    }
    let report = PerfReport {
        vm: args.vm.clone(),
        pid: before.pid,
        duration_s: seconds,
        vcpus,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", render(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as text: a table per vCPU, then the events not counted and why.
pub fn render(report: &PerfReport) -> String {
    let mut s = format!(
        "{} (pid {}): host counters per vCPU thread over {:.2} s\n",
        report.vm, report.pid, report.duration_s
    );
    for v in &report.vcpus {
        s += &format!("\nvCPU {} (thread {})\n", v.vcpu, v.thread_id);
        s += &format!("  {:<18} {:>16}  {:>14}\n", "EVENT", "COUNT", "PER SECOND");
        for e in &v.events {
            let Outcome::Counted {
                count,
                per_second,
                running_pct,
            } = e.outcome
            else {
                continue;
            };
            let (count, rate) = match e.event {
                PerfEvent::TaskClock => (
                    format!("{count} ns"),
                    format!("{:.3} CPUs", per_second / 1e9),
                ),
                _ => (count.to_string(), format!("{per_second:.1}")),
            };
            let note = if running_pct < 100.0 {
                format!("  (on a counter {running_pct:.1}% of the time, scaled)")
            } else {
                String::new()
            };
            s += &format!("  {:<18} {count:>16}  {rate:>14}{note}\n", e.event.name());
        }
        if let Some(ipc) = v.ipc {
            s += &format!("  {:<18} {:>16.2}\n", "IPC", ipc);
        }
    }
    // One line per event and reason, naming the vCPUs it applies to.
    let mut missing: Vec<(PerfEvent, &str, Vec<u32>)> = Vec::new();
    for event in PerfEvent::ALL {
        for v in &report.vcpus {
            for e in v.events.iter().filter(|e| e.event == event) {
                if let Outcome::Unavailable { reason } = &e.outcome {
                    match missing
                        .iter_mut()
                        .find(|(ev, r, _)| *ev == event && r == reason)
                    {
                        Some((_, _, vcpus)) => vcpus.push(v.vcpu),
                        None => missing.push((event, reason, vec![v.vcpu])),
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        s += "\nNot counted:\n";
        for (event, reason, vcpus) in missing {
            let plural = if vcpus.len() > 1 { "s" } else { "" };
            s += &format!(
                "  {} (vCPU{plural} {}): {reason}\n",
                event.name(),
                cpulist(&vcpus)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(event: PerfEvent, count: u64, running_pct: f64) -> EventCount {
        EventCount {
            event,
            outcome: Outcome::Counted {
                count,
                per_second: count as f64 * 2.0,
                running_pct,
            },
        }
    }

    fn missing(event: PerfEvent, reason: &str) -> EventCount {
        EventCount {
            event,
            outcome: Outcome::Unavailable {
                reason: reason.into(),
            },
        }
    }

    #[test]
    fn report_as_text_and_json() {
        let no_pmu = "not supported by this host's PMU (ENOENT 2: No such file or directory)";
        let vcpu0 = vec![
            missing(PerfEvent::Cycles, no_pmu),
            counted(PerfEvent::TaskClock, 500_000_000, 100.0),
            counted(PerfEvent::ContextSwitches, 7, 100.0),
        ];
        let vcpu1 = vec![
            counted(PerfEvent::Cycles, 1000, 50.0),
            counted(PerfEvent::Instructions, 1500, 50.0),
            counted(PerfEvent::TaskClock, 400_000_000, 100.0),
            missing(
                PerfEvent::ContextSwitches,
                "thread 11 does not exist (it ended)",
            ),
        ];
        assert_eq!(ipc(&vcpu0), None);
        assert_eq!(ipc(&vcpu1), Some(1.5));
        let report = PerfReport {
            vm: "web1".into(),
            pid: 42,
            duration_s: 0.5,
            vcpus: vec![
                VcpuPerf {
                    vcpu: 0,
                    thread_id: 10,
                    ipc: ipc(&vcpu0),
                    events: vcpu0,
                },
                VcpuPerf {
                    vcpu: 1,
                    thread_id: 11,
                    ipc: ipc(&vcpu1),
                    events: vcpu1,
                },
            ],
        };
        let text = render(&report);
        assert!(text.starts_with("web1 (pid 42): host counters per vCPU thread over 0.50 s\n"));
        assert!(text.contains("\nvCPU 1 (thread 11)\n"), "{text}");
        assert!(
            text.contains("  task-clock             500000000 ns      1.000 CPUs\n"),
            "{text}"
        );
        assert!(
            text.contains("(on a counter 50.0% of the time, scaled)"),
            "{text}"
        );
        assert!(
            text.contains("  IPC                            1.50\n"),
            "{text}"
        );
        assert!(text.ends_with(
            "\nNot counted:\n  cycles (vCPU 0): not supported by this host's PMU (ENOENT 2: No such file or directory)\n  \
             context-switches (vCPU 1): thread 11 does not exist (it ended)\n"
        ), "{text}");
        // JSON: every event has exactly one of count and reason.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["duration-s"], 0.5);
        assert_eq!(json["vcpus"][1]["ipc"], 1.5);
        assert!(json["vcpus"][0].get("ipc").is_none());
        assert_eq!(
            json["vcpus"][0]["events"][0],
            serde_json::json!({"event": "cycles", "reason": no_pmu})
        );
        assert_eq!(
            json["vcpus"][0]["events"][2],
            serde_json::json!({"event": "context-switches", "count": 7, "per-second": 14.0, "running-pct": 100.0})
        );
    }
}
