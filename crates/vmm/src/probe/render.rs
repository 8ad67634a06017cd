//! The human report of a `GuestView`: a compact page a user checks against `--smp`, `--cpu`
//! and `--numa` at a glance (label column, one vCPU table, NUMA nodes and distances).

use std::fmt::Write;

use super::view::{GuestView, NumaView};
use crate::util::cpulist::cpulist;

/// Width of the label column ("model name " and the like).
const LABEL: usize = 11;
/// Wrap the flags line before this column.
const WRAP: usize = 100;
const MIB: u64 = 1 << 20;

/// `n thing` / `n things`.
fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("{n} {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// Bytes in MiB, with up to three decimals when not whole ("1023.625 MiB").
fn mib(bytes: u64) -> String {
    let whole = bytes / MIB;
    let frac = bytes % MIB;
    if frac == 0 {
        return format!("{whole} MiB");
    }
    let thousandths = (frac * 1000).div_ceil(MIB).min(999);
    let digits = format!("{thousandths:03}");
    format!("{whole}.{} MiB", digits.trim_end_matches('0'))
}

/// Appends `label value` lines, the label padded to the label column.
fn line(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "{label:<LABEL$}{value}");
}

/// Words joined by spaces, wrapped under the label column.
fn wrapped(words: &[&str]) -> String {
    let mut lines = vec![String::new()];
    for w in words {
        let cur = lines.last_mut().expect("never empty");
        if !cur.is_empty() && LABEL + cur.len() + 1 + w.len() > WRAP {
            lines.push((*w).to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    lines.join(&format!("\n{:LABEL$}", ""))
}

/// A left-aligned table, each column two spaces wider than its widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut text = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}", w = widths[c] + 2);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

impl GuestView {
    /// The report, one item per line (see the module documentation).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let madt = match &self.madt {
            Some(m) => format!("MADT: {} enabled of {}", m.enabled, plural(m.slots, "slot")),
            None => "no MADT".to_string(),
        };
        line(
            &mut out,
            "vCPUs",
            &format!("{} online ({madt})", self.vcpus),
        );
        line(&mut out, "vendor", &self.vendor);
        let brand = if self.brand.is_empty() {
            "(none)"
        } else {
            &self.brand
        };
        line(&mut out, "model name", brand);
        line(
            &mut out,
            "family",
            &format!(
                "{}  model {}  stepping {}   (cpuid level {:#x}, xlevel {:#x})",
                self.family, self.model, self.stepping, self.cpuid_level, self.xlevel
            ),
        );
        let c = &self.topology.counts;
        let product = c.sockets * c.dies_per_socket * c.cores_per_die * c.threads_per_core;
        let uneven = if product == self.vcpus {
            String::new()
        } else {
            format!("; uneven: {} online, not {product}", self.vcpus)
        };
        line(
            &mut out,
            "topology",
            &format!(
                "{} x {} x {} x {}   ({} per socket; {}{uneven})",
                plural(c.sockets, "socket"),
                plural(c.dies_per_socket, "die"),
                plural(c.cores_per_die, "core"),
                plural(c.threads_per_core, "thread"),
                plural(c.cores_per_socket, "core"),
                self.topology.method.describe()
            ),
        );
        let hv = match (&self.hypervisor, self.hypervisor_level) {
            (Some(sig), Some(level)) => format!("{sig} (max leaf {level:#x})"),
            (Some(sig), None) => sig.clone(),
            (None, _) => "none".to_string(),
        };
        line(&mut out, "hypervisor", &hv);
        line(&mut out, "flags", &wrapped(&self.flags));

        let mut rows = vec![["CPU", "APIC", "SOCKET", "DIE", "CORE", "THREAD", "NODE"]
            .map(String::from)
            .to_vec()];
        for v in &self.cpus {
            rows.push(vec![
                v.cpu.to_string(),
                v.apic_id.to_string(),
                v.package.to_string(),
                v.die.to_string(),
                v.core.to_string(),
                v.thread.to_string(),
                v.node.map_or("-".to_string(), |n| n.to_string()),
            ]);
        }
        out.push_str(&table(&rows));

        if let Some(numa) = &self.numa {
            render_numa(&mut out, numa);
        }
        for w in &self.warnings {
            line(&mut out, "warning", w);
        }
        out
    }
}

fn render_numa(out: &mut String, numa: &NumaView) {
    if numa.nodes.is_empty() {
        line(out, "NUMA", "SRAT places no CPU or memory");
    }
    for (i, n) in numa.nodes.iter().enumerate() {
        let mut text = format!("node {}", n.node);
        if n.proximity_domain != n.node {
            let _ = write!(text, " (proximity domain {})", n.proximity_domain);
        }
        let cpus = if n.cpus.is_empty() {
            "none".to_string()
        } else {
            cpulist(&n.cpus)
        };
        let _ = write!(text, ": cpus {cpus}, {}", mib(n.memory_bytes));
        if n.hotpluggable_bytes > 0 {
            let _ = write!(text, " + {} hotpluggable", mib(n.hotpluggable_bytes));
        }
        if n.apic_ids.len() != n.cpus.len() {
            let _ = write!(
                text,
                " (SRAT APIC IDs {}: {} slots)",
                cpulist(&n.apic_ids),
                n.apic_ids.len()
            );
        }
        line(out, if i == 0 { "NUMA" } else { "" }, &text);
    }
    if numa.nodes.len() > 1 || numa.slit.is_some() {
        let mut rows = vec![std::iter::once("node".to_string())
            .chain(numa.nodes.iter().map(|n| n.node.to_string()))
            .collect::<Vec<_>>()];
        for n in &numa.nodes {
            rows.push(
                std::iter::once(n.node.to_string())
                    .chain(n.distances.iter().map(u8::to_string))
                    .collect(),
            );
        }
        for (i, row) in table(&rows).lines().enumerate() {
            line(out, if i == 0 { "distances" } else { "" }, row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(plural(1, "socket"), "1 socket");
        assert_eq!(plural(2, "socket"), "2 sockets");
        assert_eq!(mib(1 << 30), "1024 MiB");
        assert_eq!(mib((1 << 30) - (384 << 10)), "1023.625 MiB");
        assert_eq!(mib(1), "0.001 MiB");
        assert_eq!(mib(0), "0 MiB");
        assert_eq!(
            table(&[
                vec!["A".into(), "BB".into()],
                vec!["ccc".into(), "d".into()]
            ]),
            "A    BB\nccc  d\n"
        );
        let many: Vec<&str> = std::iter::repeat_n("abcdefgh", 20).collect();
        let w = wrapped(&many);
        assert_eq!(w.lines().count(), 2);
        assert!(w.lines().all(|l| LABEL + l.trim_start().len() <= WRAP));
        assert!(w.lines().nth(1).unwrap().starts_with(&" ".repeat(LABEL)));
    }
}
