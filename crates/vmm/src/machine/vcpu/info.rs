//! Where every vCPU runs, as `rvmm vcpuinfo` shows it: per vCPU its thread, state, the host
//! CPU it last ran on, its CPU time and its affinity, all read from the kernel
//! (`/proc/PID/task/TID/stat`, `sched_getaffinity`) so they agree with `ps` and `taskset`.
//! Also the text layouts of `virsh vcpuinfo`, `virsh vcpupin` and `virsh emulatorpin`.
//! When the VM has a cgroup of its own, each present vCPU also carries its group's CFS
//! quota and throttling (`cpu.stat`), which `vcpuinfo` shows as `CPU quota:` and
//! `Throttled:` lines.
//!
//! The record travels as JSON in rvmm's QMP `__org.rvmm_vcpuinfo` reply; rendering is pure.

use serde::{Deserialize, Serialize};

use crate::host::sysfs::parse_mask;
use crate::host::thread::{self as host_thread, ThreadError};
use crate::host::vmcgroup::CgroupCpuStat;
use crate::util::cpulist::cpulist;

/// A vCPU's state as `vcpuinfo` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VcpuState {
    /// The thread is runnable: executing guest code or emulating an exit.
    Running,
    /// The thread sleeps inside KVM_RUN: the guest halted the vCPU (HLT, or an AP waiting
    /// for its start-up IPI) and KVM blocks it until an interrupt.
    Halted,
    /// Parked by a VM-wide `stop`.
    Paused,
    /// A vCPU slot with no vCPU (maxcpus above the present count).
    Offline,
}

impl VcpuState {
    pub fn as_str(self) -> &'static str {
        match self {
            VcpuState::Running => "running",
            VcpuState::Halted => "halted",
            VcpuState::Paused => "paused",
            VcpuState::Offline => "offline",
        }
    }
}

/// The state of a present vCPU from its pause state and its thread's `stat` state letter.
pub fn classify(paused: bool, stat_state: char) -> VcpuState {
    match (paused, stat_state) {
        (true, _) => VcpuState::Paused,
        (false, 'R') => VcpuState::Running,
        (false, _) => VcpuState::Halted,
    }
}

/// Clock ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64, ticks_per_second: u64) -> u64 {
    (ticks as u128 * 1_000_000_000 / ticks_per_second.max(1) as u128) as u64
}

/// One vCPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VcpuInfo {
    pub vcpu: u32,
    /// The vCPU thread's TID; absent for offline slots.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thread_id: Option<i32>,
    pub state: VcpuState,
    /// Field 39 of the thread's stat: the host CPU it last ran on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu: Option<u32>,
    /// utime + stime, in nanoseconds.
    pub cpu_time_ns: u64,
    /// Fields 14 and 15 of the thread's stat, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// The thread's affinity as a kernel CPU list (`0-3,8`).
    pub affinity: String,
    /// The vCPU's cgroup (`vcpuN`): quota and throttling; absent without a VM cgroup and
    /// for offline slots.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cgroup: Option<CgroupCpuStat>,
}

/// Every vCPU slot and how many host CPUs an affinity map spans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VcpuInfoReport {
    /// Possible host CPUs (the width of `yyyy----`).
    pub host_cpus: u32,
    pub vcpus: Vec<VcpuInfo>,
}

/// Reads one present vCPU's record from the kernel.
pub fn read_vcpu(vcpu: u32, tid: i32, paused: bool) -> Result<VcpuInfo, ThreadError> {
    let stat = host_thread::task_stat(std::process::id() as i32, tid)?;
    let affinity = host_thread::get_affinity(tid)?;
    let hz = host_thread::clock_ticks_per_second();
    Ok(VcpuInfo {
        vcpu,
        thread_id: Some(tid),
        state: classify(paused, stat.state),
        cpu: Some(stat.processor),
        cpu_time_ns: ticks_to_ns(stat.utime + stat.stime, hz),
        utime: stat.utime,
        stime: stat.stime,
        affinity: cpulist(&affinity),
        cgroup: None,
    })
}

/// virsh's affinity map: one `y` or `-` per host CPU.
pub fn affinity_map(cpus: &[u32], width: u32) -> String {
    (0..width)
        .map(|c| if cpus.contains(&c) { 'y' } else { '-' })
        .collect()
}

/// A cgroup's quota as `vcpuinfo` shows it: `25000/100000 us (25%)`, or `unlimited`.
pub fn quota_text(c: &CgroupCpuStat) -> String {
    if c.quota_us < 0 || c.period_us == 0 {
        return "unlimited".to_string();
    }
    let percent = c.quota_us as f64 * 100.0 / c.period_us as f64;
    format!("{}/{} us ({percent:.0}%)", c.quota_us, c.period_us)
}

/// How much a cgroup was throttled: `2.2s in 30 of 40 periods`.
pub fn throttled_text(c: &CgroupCpuStat) -> String {
    format!(
        "{:.1}s in {} of {} periods",
        c.throttled_ns as f64 / 1e9,
        c.nr_throttled,
        c.nr_periods
    )
}

/// `virsh vcpuinfo`'s layout (labels padded to 15 columns, a blank line between vCPUs,
/// CPU time only when non-zero), with rvmm's `Thread ID:` line added, then, for a vCPU
/// with a cgroup of its own, `CPU quota:` and `Throttled:`.
pub fn render_vcpuinfo(report: &VcpuInfoReport) -> String {
    let mut out = String::new();
    for (i, v) in report.vcpus.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = |out: &mut String, label: &str, value: &str| {
            out.push_str(&format!("{label:<15} {value}\n"))
        };
        line(&mut out, "VCPU:", &v.vcpu.to_string());
        line(
            &mut out,
            "CPU:",
            &v.cpu.map_or("N/A".to_string(), |c| c.to_string()),
        );
        line(&mut out, "State:", v.state.as_str());
        if v.cpu_time_ns != 0 {
            line(
                &mut out,
                "CPU time:",
                &format!("{:.1}s", v.cpu_time_ns as f64 / 1e9),
            );
        }
        let cpus = parse_mask(&v.affinity).unwrap_or_default();
        line(
            &mut out,
            "CPU Affinity:",
            &affinity_map(&cpus, report.host_cpus),
        );
        line(
            &mut out,
            "Thread ID:",
            &v.thread_id.map_or("N/A".to_string(), |t| t.to_string()),
        );
        if let Some(c) = &v.cgroup {
            line(&mut out, "CPU quota:", &quota_text(c));
            line(&mut out, "Throttled:", &throttled_text(c));
        }
    }
    out
}

/// virsh's table layout (vsh-table): each cell preceded by a space, columns padded to their
/// widest cell plus two spaces, a rule of (width + 3) dashes per column under the header.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let print_row = |out: &mut String, cells: &[String]| {
        for (i, cell) in cells.iter().enumerate() {
            out.push(' ');
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    let mut out = String::new();
    print_row(
        &mut out,
        &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    );
    out.push_str(&"-".repeat(widths.iter().map(|w| w + 3).sum()));
    out.push('\n');
    for row in rows {
        print_row(&mut out, row);
    }
    out
}

/// `virsh vcpupin DOMAIN`: one row per vCPU with its affinity as a CPU list.
pub fn render_vcpupin(rows: &[(u32, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(v, cpus)| vec![v.to_string(), cpus.clone()])
        .collect();
    render_table(&["VCPU", "CPU Affinity"], &rows)
}

/// `virsh emulatorpin DOMAIN`.
pub fn render_emulatorpin(cpus: &str) -> String {
    format!("emulator: CPU Affinity\n----------------------------------\n       *: {cpus}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(vcpu: u32, state: VcpuState, cpu: Option<u32>, ns: u64, affinity: &str) -> VcpuInfo {
        VcpuInfo {
            vcpu,
            thread_id: cpu.map(|_| 1000 + vcpu as i32),
            state,
            cpu,
            cpu_time_ns: ns,
            utime: 0,
            stime: 0,
            affinity: affinity.into(),
            cgroup: None,
        }
    }

    #[test]
    fn states() {
        assert_eq!(classify(false, 'R'), VcpuState::Running);
        assert_eq!(classify(false, 'S'), VcpuState::Halted);
        assert_eq!(classify(true, 'R'), VcpuState::Paused);
        assert_eq!(classify(true, 'S'), VcpuState::Paused);
        assert_eq!(ticks_to_ns(250, 100), 2_500_000_000);
        assert_eq!(ticks_to_ns(3, 0), 3_000_000_000);
    }

    #[test]
    fn vcpuinfo_layout_matches_virsh() {
        let report = VcpuInfoReport {
            host_cpus: 8,
            vcpus: vec![
                info(0, VcpuState::Running, Some(1), 10_540_000_000, "0-1"),
                info(1, VcpuState::Halted, Some(6), 0, "6"),
                info(2, VcpuState::Offline, None, 0, "0-7"),
            ],
        };
        assert_eq!(
            render_vcpuinfo(&report),
            "VCPU:           0\n\
             CPU:            1\n\
             State:          running\n\
             CPU time:       10.5s\n\
             CPU Affinity:   yy------\n\
             Thread ID:      1000\n\
             \n\
             VCPU:           1\n\
             CPU:            6\n\
             State:          halted\n\
             CPU Affinity:   ------y-\n\
             Thread ID:      1001\n\
             \n\
             VCPU:           2\n\
             CPU:            N/A\n\
             State:          offline\n\
             CPU Affinity:   yyyyyyyy\n\
             Thread ID:      N/A\n"
        );
    }

    #[test]
    fn vcpuinfo_shows_the_quota_and_throttling() {
        let limited = CgroupCpuStat {
            period_us: 100_000,
            quota_us: 25_000,
            nr_periods: 40,
            nr_throttled: 30,
            throttled_ns: 2_250_000_000,
            usage_ns: None,
        };
        let mut v0 = info(0, VcpuState::Running, Some(1), 0, "0");
        v0.cgroup = Some(limited);
        let mut v1 = info(1, VcpuState::Halted, Some(0), 0, "0");
        v1.cgroup = Some(CgroupCpuStat {
            quota_us: -1,
            ..limited
        });
        let report = VcpuInfoReport {
            host_cpus: 2,
            vcpus: vec![v0, v1],
        };
        assert_eq!(
            render_vcpuinfo(&report),
            "VCPU:           0\n\
             CPU:            1\n\
             State:          running\n\
             CPU Affinity:   y-\n\
             Thread ID:      1000\n\
             CPU quota:      25000/100000 us (25%)\n\
             Throttled:      2.2s in 30 of 40 periods\n\
             \n\
             VCPU:           1\n\
             CPU:            0\n\
             State:          halted\n\
             CPU Affinity:   y-\n\
             Thread ID:      1001\n\
             CPU quota:      unlimited\n\
             Throttled:      2.2s in 30 of 40 periods\n"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["vcpus"][0]["cgroup"]["quota-us"], 25_000);
        assert_eq!(json["vcpus"][1]["cgroup"]["nr-throttled"], 30);
        assert_eq!(
            serde_json::from_value::<VcpuInfoReport>(json).unwrap(),
            report
        );
    }

    #[test]
    fn json_uses_qmp_member_names() {
        let report = VcpuInfoReport {
            host_cpus: 2,
            vcpus: vec![info(0, VcpuState::Paused, Some(1), 5, "1")],
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"host-cpus": 2, "vcpus": [{"vcpu": 0, "thread-id": 1000, "state": "paused",
                "cpu": 1, "cpu-time-ns": 5, "utime": 0, "stime": 0, "affinity": "1"}]})
        );
        assert_eq!(
            serde_json::from_value::<VcpuInfoReport>(json).unwrap(),
            report
        );
    }

    #[test]
    fn pin_tables_match_virsh() {
        assert_eq!(
            render_vcpupin(&[(0, "0".into()), (1, "0-1".into())]),
            " VCPU   CPU Affinity\n----------------------\n 0      0\n 1      0-1\n"
        );
        assert_eq!(
            render_emulatorpin("0-3"),
            "emulator: CPU Affinity\n----------------------------------\n       *: 0-3\n"
        );
    }
}
