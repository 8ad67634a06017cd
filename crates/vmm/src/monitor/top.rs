//! `rvmm top`'s screen as lines of text, from the rates between two samples: a title and a
//! VM line (mean busy, host CPU used, steal, exits/s, emulator threads), a help line in
//! interactive mode, then one row per vCPU, sorted by a column, each line cut to the
//! terminal's width. Pure: the terminal handling is the `rvmm` binary's.
//!
//! %GUEST and %VMM show `-` where the kernel does not account guest time (kvm-pvm hosts):
//! busy time cannot be split there.

use thiserror::Error;

use super::rates::{VcpuRates, VmRates};

/// A `--sort` value that names no column.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopError {
    #[error("--sort: \"{value}\" is not a column: use one of {}", column_names())]
    UnknownColumn { value: String },
}

/// The columns vCPU rows can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Vcpu,
    Busy,
    Guest,
    Vmm,
    Steal,
    Exits,
    Cpu,
}

impl Column {
    /// In screen order (what `<` and `>` step through).
    pub const ALL: [Column; 7] = [
        Column::Vcpu,
        Column::Busy,
        Column::Guest,
        Column::Vmm,
        Column::Steal,
        Column::Exits,
        Column::Cpu,
    ];

    /// The `--sort` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Column::Vcpu => "vcpu",
            Column::Busy => "busy",
            Column::Guest => "guest",
            Column::Vmm => "vmm",
            Column::Steal => "steal",
            Column::Exits => "exits",
            Column::Cpu => "cpu",
        }
    }

    /// The column's heading on screen.
    pub fn heading(self) -> &'static str {
        match self {
            Column::Vcpu => "VCPU",
            Column::Busy => "%BUSY",
            Column::Guest => "%GUEST",
            Column::Vmm => "%VMM",
            Column::Steal => "%STEAL",
            Column::Exits => "EXITS/s",
            Column::Cpu => "CPU",
        }
    }

    /// The key that sorts by it in interactive mode.
    pub fn key(self) -> char {
        match self {
            Column::Vcpu => 'v',
            Column::Busy => 'b',
            Column::Guest => 'g',
            Column::Vmm => 'm',
            Column::Steal => 's',
            Column::Exits => 'e',
            Column::Cpu => 'c',
        }
    }

    /// Parses a `--sort` value (case-insensitive).
    pub fn parse(text: &str) -> Result<Column, TopError> {
        Column::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| TopError::UnknownColumn {
                value: text.to_string(),
            })
    }

    /// The column a key sorts by.
    pub fn from_key(key: char) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.key() == key)
    }

    fn position(self) -> usize {
        Column::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }

    /// The next column to the right (`>`), wrapping.
    pub fn next(self) -> Column {
        Column::ALL[(self.position() + 1) % Column::ALL.len()]
    }

    /// The next column to the left (`<`), wrapping.
    pub fn prev(self) -> Column {
        Column::ALL[(self.position() + Column::ALL.len() - 1) % Column::ALL.len()]
    }

    /// The row's figure to sort by; vCPU and CPU sort lowest first, the rest highest first.
    fn figure(self, v: &VcpuRates) -> f64 {
        match self {
            Column::Vcpu => -f64::from(v.vcpu),
            Column::Cpu => -f64::from(v.cpu),
            Column::Busy => v.busy_pct,
            Column::Guest => v.guest_pct.unwrap_or(-1.0),
            Column::Vmm => v.vmm_pct.unwrap_or(-1.0),
            Column::Steal => v.steal_pct,
            Column::Exits => v.exits_per_s,
        }
    }
}

fn column_names() -> String {
    Column::ALL.map(Column::name).join(", ")
}

/// The vCPU rows in `sort`'s order (ties by vCPU index).
pub fn sorted(rates: &VmRates, sort: Column) -> Vec<&VcpuRates> {
    let mut rows: Vec<&VcpuRates> = rates.vcpus.iter().collect();
    rows.sort_by(|a, b| {
        sort.figure(b)
            .total_cmp(&sort.figure(a))
            .then(a.vcpu.cmp(&b.vcpu))
    });
    rows
}

/// A rate in at most 6 characters: 950, 12345, 123.4k, 12.3M.
pub fn compact_rate(per_s: f64) -> String {
    if per_s < 99_999.5 {
        format!("{per_s:.0}")
    } else if per_s < 999_950.0 {
        format!("{:.1}k", per_s / 1e3)
    } else {
        format!("{:.1}M", per_s / 1e6)
    }
}

/// How many exit reasons a row shows.
pub const TOP_REASONS: usize = 3;

/// A row's busiest exit reasons: `io 1000, halt 20` (KVM's names without `_exits`;
/// reasons with no exits in the interval left out).
pub fn top_reasons(v: &VcpuRates) -> String {
    v.exit_reasons
        .iter()
        .filter(|(_, r)| *r > 0.0)
        .take(TOP_REASONS)
        .map(|(name, r)| {
            let short = name.strip_suffix("_exits").unwrap_or(name);
            format!("{short} {}", compact_rate(*r))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn optional_pct(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_string(), |p| format!("{p:.1}"))
}

/// The help line of interactive mode.
pub fn help_line() -> String {
    let keys: Vec<String> = Column::ALL
        .iter()
        .map(|c| format!("{} {}", c.key(), c.heading()))
        .collect();
    format!("q quit  < > sort column  sort by: {}", keys.join("  "))
}

/// What a screen shows besides the rates.
#[derive(Debug, Clone, Copy)]
pub struct Screen<'a> {
    /// The VM's name (or the socket path it was reached by).
    pub name: &'a str,
    pub sort: Column,
    /// Characters per line; `None` for no limit (batch mode).
    pub width: Option<usize>,
    /// Whether to show the keys (interactive mode).
    pub help: bool,
}

/// The screen's lines.
pub fn render_top(rates: &VmRates, screen: &Screen) -> Vec<String> {
    let n = rates.vcpus.len();
    let mut lines = vec![
        format!(
            "rvmm top - {}  {n} vCPU{}  interval {:.2}s  sorted by {}",
            screen.name,
            if n == 1 { "" } else { "s" },
            rates.interval_s,
            screen.sort.heading()
        ),
        format!(
            "VM: busy {:.1}% avg  host CPU {:.1}%  steal {:.1}%  exits {}/s  emulator {:.1}%",
            rates.busy_pct,
            rates.host_cpu_pct,
            rates.steal_pct,
            compact_rate(rates.exits_per_s),
            rates.emulator_pct
        ),
    ];
    if screen.help {
        lines.push(help_line());
    }
    lines.push(String::new());
    let aff_width = rates
        .vcpus
        .iter()
        .map(|v| v.affinity.len())
        .max()
        .unwrap_or(0)
        .max("AFFINITY".len());
    lines.push(format!(
        "{:>4} {:>7} {:<7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>4} {:<aff_width$} TOP EXITS/s",
        "VCPU", "TID", "STATE", "%BUSY", "%GUEST", "%VMM", "%STEAL", "EXITS/s", "CPU", "AFFINITY"
    ));
    for v in sorted(rates, screen.sort) {
        lines.push(format!(
            "{:>4} {:>7} {:<7} {:>6.1} {:>6} {:>6} {:>6.1} {:>8} {:>4} {:<aff_width$} {}",
            v.vcpu,
            v.thread_id,
            v.state.as_str(),
            v.busy_pct,
            optional_pct(v.guest_pct),
            optional_pct(v.vmm_pct),
            v.steal_pct,
            compact_rate(v.exits_per_s),
            v.cpu,
            v.affinity,
            top_reasons(v)
        ));
    }
    if let Some(width) = screen.width {
        for line in &mut lines {
            *line = truncate(line, width);
        }
    }
    for line in &mut lines {
        let kept = line.trim_end().len();
        line.truncate(kept);
    }
    lines
}

/// `line` cut to `width` characters.
pub fn truncate(line: &str, width: usize) -> String {
    line.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcpu::info::VcpuState;

    fn row(vcpu: u32, busy: f64, steal: f64, exits: f64, cpu: u32) -> VcpuRates {
        VcpuRates {
            vcpu,
            state: VcpuState::Running,
            thread_id: 1000 + vcpu as i32,
            cpu,
            affinity: "0-1".into(),
            busy_pct: busy,
            guest_pct: None,
            vmm_pct: None,
            steal_pct: steal,
            halt_poll_pct: 0.0,
            exits_per_s: exits,
            exit_reasons: vec![
                ("io_exits".into(), exits * 0.75),
                ("halt_exits".into(), exits * 0.25),
                ("mmio_exits".into(), 0.0),
            ],
            involuntary_per_s: 0.0,
            migrations_per_s: None,
            host_node: None,
            guest_node: None,
            memory_host_nodes: Vec::new(),
        }
    }

    fn rates() -> VmRates {
        VmRates {
            interval_s: 1.0,
            vcpus: vec![
                row(0, 20.0, 5.0, 4000.0, 1),
                row(1, 99.0, 0.5, 12.0, 0),
                row(2, 50.0, 9.0, 250_000.0, 1),
            ],
            busy_pct: 56.3,
            host_cpu_pct: 169.0,
            steal_pct: 4.8,
            exits_per_s: 254_012.0,
            emulator_pct: 0.4,
        }
    }

    fn screen(sort: Column, width: Option<usize>) -> Screen<'static> {
        Screen {
            name: "web",
            sort,
            width,
            help: false,
        }
    }

    fn order(lines: &[String]) -> Vec<u32> {
        let header = lines.iter().position(|l| l.contains("TOP EXITS")).unwrap();
        lines[header + 1..]
            .iter()
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn the_vm_line_then_one_row_per_vcpu() {
        let lines = render_top(&rates(), &screen(Column::Vcpu, None));
        assert_eq!(
            lines[0],
            "rvmm top - web  3 vCPUs  interval 1.00s  sorted by VCPU"
        );
        assert_eq!(
            lines[1],
            "VM: busy 56.3% avg  host CPU 169.0%  steal 4.8%  exits 254.0k/s  emulator 0.4%"
        );
        assert_eq!(lines[2], "");
        assert_eq!(
            lines[3],
            "VCPU     TID STATE    %BUSY %GUEST   %VMM %STEAL  EXITS/s  CPU AFFINITY TOP EXITS/s"
        );
        assert_eq!(
            lines[4],
            "   0    1000 running   20.0      -      -    5.0     4000    1 0-1      io 3000, halt 1000"
        );
        assert_eq!(lines.len(), 7);
        assert_eq!(order(&lines), [0, 1, 2]);
        assert!(lines[6].contains(" 250.0k "), "{}", lines[6]);
    }

    #[test]
    fn sorts_by_each_column() {
        let r = rates();
        let by = |c| order(&render_top(&r, &screen(c, None)));
        assert_eq!(by(Column::Busy), [1, 2, 0]);
        assert_eq!(by(Column::Steal), [2, 0, 1]);
        assert_eq!(by(Column::Exits), [2, 0, 1]);
        assert_eq!(by(Column::Cpu), [1, 0, 2], "lowest CPU first, ties by vCPU");
        assert_eq!(by(Column::Guest), [0, 1, 2], "all unaccounted: vCPU order");
    }

    #[test]
    fn guest_and_vmm_show_when_accounted() {
        let mut r = rates();
        r.vcpus[1].guest_pct = Some(80.0);
        r.vcpus[1].vmm_pct = Some(19.0);
        let lines = render_top(&r, &screen(Column::Guest, None));
        assert_eq!(order(&lines), [1, 0, 2]);
        assert!(lines[4].contains("  80.0   19.0 "), "{}", lines[4]);
    }

    #[test]
    fn lines_are_cut_to_the_width() {
        for width in [0, 1, 10, 40, 200] {
            let lines = render_top(&rates(), &screen(Column::Busy, Some(width)));
            assert!(lines.iter().all(|l| l.chars().count() <= width), "{width}");
            assert_eq!(lines.len(), 7, "every row is there at width {width}");
        }
        let named = Screen {
            name: "ünïcödé-vm",
            ..screen(Column::Vcpu, Some(16))
        };
        assert_eq!(render_top(&rates(), &named)[0], "rvmm top - ünïcö");
    }

    #[test]
    fn columns_parse_step_and_have_keys() {
        assert_eq!(Column::parse("busy"), Ok(Column::Busy));
        assert_eq!(Column::parse("EXITS"), Ok(Column::Exits));
        assert_eq!(
            Column::parse("cpu%").unwrap_err().to_string(),
            "--sort: \"cpu%\" is not a column: use one of vcpu, busy, guest, vmm, steal, exits, cpu"
        );
        assert_eq!(Column::Vcpu.next(), Column::Busy);
        assert_eq!(Column::Vcpu.prev(), Column::Cpu);
        assert_eq!(Column::Cpu.next(), Column::Vcpu);
        for c in Column::ALL {
            assert_eq!(Column::from_key(c.key()), Some(c));
            assert_eq!(Column::parse(c.name()), Ok(c));
        }
        assert_eq!(Column::from_key('q'), None);
        let help = help_line();
        assert!(help.starts_with("q quit  < > sort column"), "{help}");
        assert!(help.contains("b %BUSY"), "{help}");
    }

    #[test]
    fn rates_are_compact() {
        assert_eq!(compact_rate(0.0), "0");
        assert_eq!(compact_rate(99_999.0), "99999");
        assert_eq!(compact_rate(123_456.0), "123.5k");
        assert_eq!(compact_rate(12_345_678.0), "12.3M");
        let mut v = row(0, 0.0, 0.0, 0.0, 0);
        assert_eq!(top_reasons(&v), "", "no exits: no reasons");
        v.exit_reasons = (0..5).map(|i| (format!("r{i}_exits"), 10.0)).collect();
        assert_eq!(top_reasons(&v), "r0 10, r1 10, r2 10");
    }
}
