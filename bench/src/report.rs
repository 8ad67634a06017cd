//! docs/benchmarks.md and its plots, rendered from a `Results` alone (plus the hand-written
//! analysis in bench/analysis.md), so `rvmm-bench report` can redo them without measuring.

use std::fmt::Write;
use std::path::Path;

use crate::results::{Results, ScalePoint};
use crate::stats::{Pair, Summary};
use crate::svg::{Plot, Point, Series};
use crate::targets::{self, Check};
use crate::vmms::{Guest, Shape, Tools, Vmm, MACHINE_OPTIONS};

const RVMM_COLOR: &str = "#1f77b4";
const QEMU_COLOR: &str = "#d62728";

/// min / median / max with `digits` decimals, or `-`.
fn mmm(v: &[f64], digits: usize) -> String {
    Summary::of(v).map_or_else(
        || "-".into(),
        |s| {
            format!(
                "{:.d$} / **{:.d$}** / {:.d$}",
                s.min,
                s.median,
                s.max,
                d = digits
            )
        },
    )
}

fn ratio_text(p: &Pair) -> String {
    p.ratio().map_or_else(|| "-".into(), |r| format!("{r:.3}"))
}

/// A side-by-side row: label cells, then rvmm, QEMU and the ratio.
fn pair_cells(p: &Pair, digits: usize) -> String {
    format!(
        "{} | {} | {}",
        mmm(&p.rvmm, digits),
        mmm(&p.qemu, digits),
        ratio_text(p)
    )
}

/// The commands as the tools would run them, with bare program names.
fn generic_tools() -> Tools {
    Tools {
        rvmm: "rvmm".into(),
        qemu: "qemu-system-x86_64".into(),
        probe_elf: "probe.elf".into(),
    }
}

fn met_text(c: &Check) -> &'static str {
    match c.met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// One axis of the scaling curves.
struct Axis<'a> {
    /// In file names: `vcpus`, `memory`.
    key: &'static str,
    /// In titles.
    title: &'static str,
    x_label: &'static str,
    points: &'a [ScalePoint],
    x_of: fn(&Shape) -> f64,
}

/// Which of a point's pairs a series shows.
type Metric = fn(&ScalePoint) -> &Pair;

impl Axis<'_> {
    /// One VMM's medians (times `scale`) of `metric` along this axis.
    fn series(&self, vmm: Vmm, what: &str, dashed: bool, metric: Metric, scale: f64) -> Series {
        let color = match vmm {
            Vmm::Rvmm => RVMM_COLOR,
            Vmm::Qemu => QEMU_COLOR,
        };
        let points = self
            .points
            .iter()
            .filter_map(|p| {
                let pair = metric(p);
                let v = if vmm == Vmm::Rvmm {
                    &pair.rvmm
                } else {
                    &pair.qemu
                };
                let s = Summary::of(v)?;
                Some(Point {
                    x: (self.x_of)(&p.shape),
                    median: s.median * scale,
                    min: s.min * scale,
                    max: s.max * scale,
                })
            })
            .collect();
        Series {
            name: format!("{} {what}", vmm.name()).trim().to_string(),
            color,
            dashed,
            points,
        }
    }

    fn both(&self, what: &str, metric: Metric, scale: f64) -> Vec<Series> {
        Vmm::BOTH
            .iter()
            .map(|&v| self.series(v, what, false, metric, scale))
            .collect()
    }

    fn plot(&self, title: String, y_label: &str, series: Vec<Series>) -> Plot {
        Plot {
            title,
            x_label: self.x_label.into(),
            y_label: y_label.into(),
            x_ticks: self
                .points
                .iter()
                .map(|p| {
                    let x = (self.x_of)(&p.shape);
                    (x, format!("{x}"))
                })
                .collect(),
            series,
        }
    }
}

/// The plots of the scaling curves: (file name, plot).
pub fn plots(r: &Results) -> Vec<(String, Plot)> {
    let Some(sc) = &r.scaling else {
        return Vec::new();
    };
    let axes = [
        Axis {
            key: "vcpus",
            title: "vCPUs",
            x_label: "vCPUs (128 MiB of guest memory)",
            points: &sc.vcpus,
            x_of: |s| f64::from(s.vcpus),
        },
        Axis {
            key: "memory",
            title: "guest memory",
            x_label: "guest memory, MiB (1 vCPU)",
            points: &sc.memory,
            x_of: |s| s.mem_mib as f64,
        },
    ];
    let mut out = Vec::new();
    for a in &axes {
        let mut start = a.both("first line", |p| &p.first_line_ms, 1.0);
        for vmm in Vmm::BOTH {
            start.push(a.series(vmm, "exit", true, |p| &p.exit_ms, 1.0));
        }
        let t = a.title;
        let plots = [
            (
                "start",
                a.plot(format!("Start time vs {t} (minimal guest)"), "ms", start),
            ),
            (
                "memory",
                a.plot(
                    format!("Memory overhead vs {t}"),
                    "peak RSS - guest RAM touched, MiB",
                    a.both("", |p| &p.overhead_mib, 1.0),
                ),
            ),
            (
                "exits",
                a.plot(
                    format!("Port-I/O exits vs {t}"),
                    "thousand exits / s",
                    a.both("", |p| &p.exits_per_sec, 1e-3),
                ),
            ),
            (
                "rate",
                a.plot(
                    format!("Start rate vs {t} ({} at a time)", sc.rate_concurrency),
                    "VMs / s",
                    a.both("", |p| &p.rate_per_sec, 1.0),
                ),
            ),
        ];
        for (metric, plot) in plots {
            out.push((format!("{metric}-{}.svg", a.key), plot));
        }
    }
    out
}

fn section_targets(s: &mut String, r: &Results) {
    let _ = writeln!(s, "## The figures to beat\n");
    let _ = writeln!(s, "| target | rvmm measured | |\n|---|---|---|");
    for c in targets::evaluate(r) {
        let _ = writeln!(s, "| {} | {} | {} |", c.target, c.measured, met_text(&c));
    }
    let qemu_first = r
        .start
        .iter()
        .find(|x| x.guest == Guest::Hello && x.shape == targets::START_SHAPE)
        .and_then(|x| x.first_line_ms.qemu());
    let qemu_rss = r
        .memory
        .iter()
        .find(|m| m.guest == Guest::Hello)
        .and_then(|m| m.hwm_mib.qemu());
    if let (Some(f), Some(m)) = (qemu_first, qemu_rss) {
        let _ = writeln!(
            s,
            "\nQEMU's own figures in this run: {:.1} ms from start to the first line (minimal guest, {}), {:.1} MiB peak RSS (1 vCPU, 512 MiB).",
            f.median,
            targets::START_SHAPE.label(),
            m.median
        );
    }
    let _ = writeln!(s);
}

fn section_machine(s: &mut String, r: &Results) {
    let m = &r.meta;
    let _ = writeln!(s, "## Machine and versions\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    for (k, v) in [
        (
            "CPU",
            format!("{} ({} CPUs visible)", m.cpu_model, m.host_cpus),
        ),
        ("memory", format!("{} MiB", m.host_mem_mib)),
        ("kernel", m.kernel.clone()),
        ("KVM", m.kvm_module.clone()),
        ("rvmm", format!("{} (git {})", m.rvmm_version, m.git_commit)),
        ("QEMU", m.qemu_version.clone()),
        ("date", m.date.clone()),
        (
            "load average",
            format!(
                "{} at the start, {} at the end",
                m.loadavg_start, m.loadavg_end
            ),
        ),
        (
            "runs",
            format!(
                "{} counted per VMM and configuration{}",
                m.runs,
                if m.warmup {
                    ", after one warm-up each"
                } else {
                    ""
                }
            ),
        ),
        ("wall time", format!("{:.0} s", m.duration_s)),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    for u in &m.updates {
        let _ = writeln!(s, "| re-run since | {u} |");
    }
    let _ = writeln!(s);
}

fn section_method(s: &mut String) {
    let t = generic_tools();
    let shape = Shape::new(1, 128);
    let _ = writeln!(
        s,
        "## How it is measured

Everything here is produced by one command, `bench/run.sh` (which builds and runs
`rvmm-bench all`); `rvmm-bench report` re-renders this page and its plots from
`docs/bench/results.json`. Both VMMs boot the very same PVH ELF, written by `rvmm probe --elf probe.elf`,
with the same vCPU count, memory and guest command line:

```
{}
{}
```

(`--smp`/`-smp`, `-m` and the guest's `mode=` vary per benchmark; `mode=hello` prints `PROBE-HELLO` and powers off,
the default mode dumps every vCPU's CPUID and the ACPI tables, `mode=pio count=N` does the dump, then N one-byte
`out` to port 0x80, then prints `PROBE-PIO count=N`.) The runs alternate: per configuration one warm-up run of each VMM,
then counted rounds of one run each, rvmm first in even rounds and QEMU first in odd ones. Tables give
min / **median** / max over the counted runs and the ratio rvmm median / QEMU median. This is a shared, noisy
2-CPU machine with software-nested KVM (kvm-pvm, see DESIGN.md): absolute numbers drift with the load; the
ratios of alternating runs are what count.

- **Start**: the clock starts just before `fork`/`exec` of the VMM; a reader thread stamps each line of its stdout
  as `read` returns it; the exit time is when `waitid` reports the process gone.
- **Memory overhead**: the VMM runs under `ptrace` (main thread only, `PTRACE_O_TRACEEXIT`); at its exit stop, when
  the guest has done all it will do and the address space is still whole, `/proc/PID/status` gives the peak RSS
  (`VmHWM`) and `/proc/PID/smaps` the resident part of the guest RAM mappings (the anonymous read-write mappings of
  at least 96 MiB, which must add up to the guest's memory). Overhead = peak RSS - guest RAM resident, i.e. the
  VMM's own code, heap, stacks and libraries, counting shared library pages in full, as RSS does. The peak RSS
  `wait4` reports for the process (`ru_maxrss`) is given beside `VmHWM`; the traced VMM is forked, not vforked,
  so it is the VMM's own peak, not the benchmark's.
- **Machine options**: both VMMs run without an in-kernel PIT (rvmm `--machine {MACHINE_OPTIONS}`, QEMU
  `-M microvm,...,{MACHINE_OPTIONS}`): the probe times with the TSC, and the PIT only adds its teardown to every exit.
- **Exit round trip**: the guest's loop of `out` to port 0x80 (no device claims it, so each write is a
  KVM_EXIT_IO handled in the VMM's user space), timed between the arrival of its `PROBE-END` line (the loop starts
  right after) and its `PROBE-PIO` line, so neither start nor dump time counts. The bare loop is `rvmm-bench`'s own
  KVM_RUN loop (bench/src/kvm_loop.rs: one vCPU, real-mode `out dx, al; jmp` back, nothing else), timed in process.
- **Start rate**: batches of minimal VMs (1 vCPU, 128 MiB unless the axis says otherwise), N running at a time,
  each started as soon as one ends; rate = VMs per batch / batch wall time, one sample per batch.",
        t.command_text(Vmm::Rvmm, shape, Guest::Hello),
        t.command_text(Vmm::Qemu, shape, Guest::Hello),
    );
    let _ = writeln!(s);
}

fn section_start(s: &mut String, r: &Results) {
    if r.start.is_empty() {
        return;
    }
    let _ = writeln!(s, "## 1. Start time\n");
    let _ = writeln!(
        s,
        "Process start → the guest's first serial line, and → process exit after the guest powered off, ms.\n"
    );
    let _ = writeln!(
        s,
        "| guest | shape | first line: rvmm | QEMU | rvmm/QEMU | exit: rvmm | QEMU | rvmm/QEMU |\n|---|---|---|---|---|---|---|---|"
    );
    for row in &r.start {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            row.guest.name(),
            row.shape.label(),
            pair_cells(&row.first_line_ms, 1),
            pair_cells(&row.exit_ms, 1)
        );
    }
    let _ = writeln!(s);
}

fn section_memory(s: &mut String, r: &Results) {
    if r.memory.is_empty() {
        return;
    }
    let _ = writeln!(s, "## 2. Memory overhead\n");
    let _ = writeln!(s, "MiB, read at the VMM's exit stop.\n");
    let _ = writeln!(
        s,
        "| guest | shape | quantity | rvmm | QEMU | rvmm/QEMU |\n|---|---|---|---|---|---|"
    );
    for row in &r.memory {
        for (what, p) in [
            (
                "**overhead** (peak RSS - guest RAM resident)",
                &row.overhead_mib,
            ),
            ("peak RSS (VmHWM)", &row.hwm_mib),
            ("peak RSS (wait4 ru_maxrss)", &row.maxrss_mib),
            ("guest RAM resident", &row.guest_rss_mib),
            ("RSS at exit: anonymous", &row.anon_mib),
            ("RSS at exit: file-backed", &row.file_mib),
        ] {
            let _ = writeln!(
                s,
                "| {} | {} | {what} | {} |",
                row.guest.name(),
                row.shape.label(),
                pair_cells(p, 2)
            );
        }
    }
    let _ = writeln!(s);
}

fn section_exits(s: &mut String, r: &Results) {
    let Some(e) = &r.exits else {
        return;
    };
    let _ = writeln!(s, "## 3. Exit round trip\n");
    let _ = writeln!(
        s,
        "Port writes (KVM_EXIT_IO to user space) per second, {} per run, {}, {} counted runs of each \
         (short runs, many of them, in rotating order: rvmm, QEMU and the two bare loops).\n",
        e.count,
        e.shape.label(),
        e.per_sec.rvmm.len()
    );
    let _ = writeln!(
        s,
        "| | exits / s (min / median / max) | rvmm / this |\n|---|---|---|"
    );
    let rv = &e.per_sec.rvmm;
    for (name, v) in [
        ("rvmm", rv),
        ("QEMU", &e.per_sec.qemu),
        ("bare KVM_RUN loop, real mode", &e.bare_per_sec),
        ("bare KVM_RUN loop, long mode", &e.bare_long_per_sec),
    ] {
        let rel = crate::stats::ratio(rv, v).map_or_else(|| "-".into(), |x| format!("{x:.3}"));
        let _ = writeln!(s, "| {name} | {} | {rel} |", mmm(v, 0));
    }
    let per_exit = |v: &[f64]| Summary::of(v).map_or(f64::NAN, |x| 1e6 / x.median);
    let _ = writeln!(
        s,
        "\nPer exit: rvmm {:.2} µs, QEMU {:.2} µs, bare loop {:.2} µs in real mode, {:.2} µs in long mode (medians).\n",
        per_exit(rv),
        per_exit(&e.per_sec.qemu),
        per_exit(&e.bare_per_sec),
        per_exit(&e.bare_long_per_sec)
    );
}

fn section_rate(s: &mut String, r: &Results) {
    if r.rate.is_empty() {
        return;
    }
    let _ = writeln!(s, "## 4. Start rate\n");
    let _ = writeln!(
        s,
        "Minimal VMs ({}) started, printing `PROBE-HELLO` and exiting per second, N at a time.\n",
        r.rate[0].shape.label()
    );
    let _ = writeln!(s, "| N at a time | VMs per batch | rvmm VMs/s | QEMU VMs/s | rvmm/QEMU |\n|---|---|---|---|---|");
    for row in &r.rate {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            row.concurrency,
            row.vms,
            pair_cells(&row.per_sec, 1)
        );
    }
    let _ = writeln!(s);
}

fn section_hotplug(s: &mut String, r: &Results) {
    let Some(h) = &r.hotplug else {
        return;
    };
    let _ = writeln!(
        s,
        "## 6. vCPU hotplug
"
    );
    let _ = writeln!(
        s,
        "The probe guest in `mode=hotplug` with `-smp {}` (rvmm; QEMU as `-M pc`, which has the same ACPI CPU hotplug interface), {} free slots plugged one after the other, then unplugged, per VM; ms. \
         **add**: QMP `device_add`'s reply → the new vCPU's first line of guest output (the guest notices the GPE, starts the vCPU with INIT/SIPI). \
         **remove**: QMP `device_del`'s reply → the `DEVICE_DELETED` event (the guest notices the GPE, ejects the vCPU through `_EJ0`'s register).\n",
        h.smp, h.cycles
    );
    let _ = writeln!(
        s,
        "| | rvmm | QEMU | rvmm/QEMU |\n|---|---|---|---|\n| add → vCPU running | {} |\n| remove → DEVICE_DELETED | {} |\n",
        pair_cells(&h.add_to_running_ms, 2),
        pair_cells(&h.del_to_deleted_ms, 2)
    );
}

fn section_monitoring(s: &mut String, r: &Results) {
    let Some(m) = &r.monitoring else {
        return;
    };
    let _ = writeln!(s, "## 7. The cost of watching\n");
    let _ = writeln!(
        s,
        "The pio guest ({}, {} port writes per run) under rvmm with its QMP socket and `--metrics` endpoint open, \
         unwatched and sampled once a second, the configurations rotating each round: \
         **qmp**: `rvmm qmp SOCKET '{{\"execute\":\"__org.rvmm_stats\"}}'`, a new process per sample, as a script running `rvmm stats` each second would (the cost includes starting that process on the host's CPUs, which the vCPU thread shares); \
         **top**: one `rvmm top SOCKET --batch --delay 1` for the whole run, as a user watching the VM runs it: started as soon as the QMP socket exists, \
         one connection sending `__org.rvmm_stats` each second, its output read as it comes (each refresh printed counts as a sample answered) and the process killed when the VM has ended; \
         **metrics**: `GET /metrics` on the endpoint, as Prometheus scrapes. The goal (issue 13): the exit rate with `top` running within 2 % of unwatched.\n",
        m.shape.label(),
        m.count
    );
    let _ = writeln!(
        s,
        "| | exits / s (min / median / max) | change of the median | change, paired by round (median) | samples answered per run |\n|---|---|---|---|---|"
    );
    let cells = |v: &[f64]| {
        crate::stats::Summary::of(v).map_or_else(
            || "-".to_string(),
            |x| format!("{:.0} / **{:.0}** / {:.0}", x.min, x.median, x.max),
        )
    };
    let answered = |v: &[usize]| match (v.iter().min(), v.iter().max()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "-".into(),
    };
    let _ = writeln!(s, "| unwatched | {} | | | |", cells(&m.unwatched));
    for (name, v, answers) in [
        ("qmp 1/s", &m.qmp, &m.qmp_answers),
        ("top --delay 1", &m.top, &m.top_answers),
        ("metrics 1/s", &m.metrics, &m.metrics_answers),
    ] {
        // Results from before the top configuration existed have no top runs.
        if v.is_empty() {
            continue;
        }
        let change = crate::monitoring::change_pct(&m.unwatched, v)
            .map_or_else(|| "-".to_string(), |c| format!("{c:+.2} %"));
        let paired = crate::monitoring::paired_change_pct(&m.unwatched, v)
            .map_or_else(|| "-".to_string(), |c| format!("{c:+.2} %"));
        let _ = writeln!(
            s,
            "| {name} | {} | {change} | {paired} | {} |",
            cells(v),
            answered(answers)
        );
    }
    if let Some(u) = crate::stats::Summary::of(&m.unwatched) {
        let _ = writeln!(
            s,
            "\nThe unwatched runs alone spread by {:.1} % (min → max); a change of the median smaller than that is \
             the host's noise, not the monitor's cost.",
            (u.max / u.min - 1.0) * 100.0
        );
    }
    let _ = writeln!(s);
}

fn section_vblk(s: &mut String, r: &Results) {
    let Some(v) = &r.vblk else {
        return;
    };
    let _ = writeln!(s, "## 8. virtio-blk\n");
    let _ = writeln!(
        s,
        "The probe guest's `virtio=bench` on one virtio-blk disk, a {} MiB raw image in the host's page cache \
         (rvmm `--disk path=IMG`, QEMU `-drive if=none,format=raw,cache=writeback,file=IMG -device virtio-blk-device`), \
         1 vCPU, queue depth one, the guest polling the used ring: {} requests per phase, 4 KiB reads at random \
         4 KiB-aligned offsets, then sequential {} KiB reads and writes. Each phase is timed on the host from the \
         arrival of its `PROBE-VBENCH ... phase=begin` line to its `phase=end` line.\n",
        v.image_mib,
        v.ops,
        v.seq_size / 1024
    );
    let _ = writeln!(
        s,
        "| | rvmm | QEMU | rvmm/QEMU |\n|---|---|---|---|\n| 4 KiB random read, IOPS | {} |\n| sequential read, MiB/s | {} |\n| sequential write, MiB/s | {} |\n",
        pair_cells(&v.randread_iops, 0),
        pair_cells(&v.seqread_mib_s, 1),
        pair_cells(&v.seqwrite_mib_s, 1)
    );
}

fn section_vnet(s: &mut String, r: &Results) {
    let Some(v) = &r.vnet else {
        return;
    };
    let _ = writeln!(s, "## 9. virtio-net\n");
    let _ = writeln!(
        s,
        "The probe guest's `net.bench=N` on one virtio-net device whose backend is a tap in a network namespace \
         the bench makes (rvmm `--net tap=T`, QEMU `-netdev tap,ifname=T,script=no,downscript=no -device virtio-net-device`), \
         1 vCPU: {} broadcast Ethernet frames per run, sent one at a time (the guest polls the used ring for each), \
         one run per frame size. Frames per second are the frames the tap received (its rx_packets counter, which \
         must have grown by at least as many) over the time between the arrivals of the guest's `PROBE-NBENCH ... \
         phase=begin` and `phase=end` lines.\n",
        v.frames
    );
    let _ = writeln!(
        s,
        "| | rvmm | QEMU | rvmm/QEMU |\n|---|---|---|---|\n| 64-byte frames/s | {} |\n| 1500-byte frames/s | {} |\n",
        pair_cells(&v.small_fps, 0),
        pair_cells(&v.large_fps, 0)
    );
}

fn section_vballoon(s: &mut String, r: &Results) {
    let Some(v) = &r.vballoon else {
        return;
    };
    let _ = writeln!(s, "## 10. virtio-balloon\n");
    let _ = writeln!(
        s,
        "Giving back {} MiB: the probe guest (`balloon.mib={}`, {} MiB of RAM, 1 vCPU; rvmm `--balloon on`, \
         QEMU `-device virtio-balloon-device`) writes every page of {} MiB of its RAM, then the bench sends QMP \
         `balloon` with the RAM less that, and times from sending the command to the arrival of the guest's \
         `balloon inflated=` line (printed once the device has returned every PFN array). The VMM's VmRSS is read \
         at the guest's `touched=` line and at `inflated=`.\n",
        v.mib,
        v.mib,
        v.mib + 512,
        v.mib
    );
    let _ = writeln!(
        s,
        "| | rvmm | QEMU | rvmm/QEMU |\n|---|---|---|---|\n| inflate, ms | {} |\n| VmRSS before, MiB | {} |\n| VmRSS after, MiB | {} |\n",
        pair_cells(&v.inflate_ms, 1),
        pair_cells(&v.rss_before_mib, 1),
        pair_cells(&v.rss_after_mib, 1)
    );
}

fn section_snapshot(s: &mut String, r: &Results) {
    let Some(v) = &r.snapshot else {
        return;
    };
    let _ = writeln!(s, "## 11. Snapshot and restore\n");
    let _ = writeln!(
        s,
        "The probe's counting guest (`mode=counter`: every vCPU counts and checks a page of its own) runs until \
         both vCPUs have reported, then is saved and run again. rvmm: `rvmm snapshot SOCKET DIR --stop` (pause, \
         save state.json and a sparse memory.bin), timed from spawning the command to its exit, beside the time \
         it prints; restore `rvmm run --restore DIR`. QEMU (microvm, same ELF): QMP `stop`, `migrate-set-parameters \
         max-bandwidth` raised to {} GiB/s (its default cap would set the pace), `migrate {{\"uri\": \"exec:cat > FILE\"}}` \
         polled with `query-migrate` every 1 ms until `completed`, beside its `total-time`; restore `-incoming \
         \"exec:cat FILE\"`, then `cont` once it is loaded (QEMU keeps a VM saved while stopped paused, as \
         rvmm's `--stop` does not). A restore is timed from spawning the VMM until QMP `query-status` answers `running`, \
         and the restored guest must then print a `PROBE-COUNTER ... sum=ok` line. On disk is what `du` counts \
         (allocated blocks).\n",
        crate::snapmig::MAX_BANDWIDTH >> 30
    );
    let with_fc = v.rows.iter().any(|r| !r.firecracker.restore_ms.is_empty());
    if let Some(version) = v.firecracker.as_deref().filter(|_| with_fc) {
        let _ = writeln!(
            s,
            "Firecracker ({version}, built by hand from a fetched copy of its source, as the reading \"Snapshot, restore and live migration\" above says): \
             the same ELF booted through its PVH note with the command line `mode=counter`, driven over its API \
             socket: `PUT /boot-source`, `/machine-config`, `/actions InstanceStart`; once both vCPUs reported, \
             `PATCH /vm {{\"state\": \"Paused\"}}`, then `PUT /snapshot/create {{\"snapshot_type\": \"Full\"}}` timed \
             from sending the request to its response (its column's save rows are both that figure). The restore \
             is a new process, timed from spawning it to the response of `PUT /snapshot/load` with \
             `mem_backend {{\"backend_type\": \"File\"}}` and `resume_vm: true` (the guest runs when it answers; \
             memory is mapped from the file, not read), and the restored guest must print `sum=ok` from every vCPU. \
             On disk: its state file and memory file.\n"
        );
    }
    if let Some(note) = &v.firecracker_note {
        let _ = writeln!(s, "**{note}**.\n");
    }
    if with_fc {
        let _ = writeln!(
            s,
            "| guest | | rvmm | QEMU | Firecracker | rvmm/QEMU | rvmm/Firecracker |\n|---|---|---|---|---|---|---|"
        );
    } else {
        let _ = writeln!(
            s,
            "| guest | | rvmm | QEMU | rvmm/QEMU |\n|---|---|---|---|---|"
        );
    }
    for row in &v.rows {
        let l = row.shape.label();
        let f = &row.firecracker;
        for (name, pair, fc, digits) in [
            ("save, ms (wall)", &row.save_ms, &f.save_ms, 1),
            (
                "save, ms (the VMM's own figure)",
                &row.save_vmm_ms,
                &f.save_ms,
                1,
            ),
            ("restore → running, ms", &row.restore_ms, &f.restore_ms, 1),
            ("on disk, KiB", &row.size_kib, &f.size_kib, 0),
        ] {
            if with_fc {
                // Three decimals would print rvmm's sparse 176 KiB against a full RAM file as 0.000.
                let fc_ratio = crate::stats::ratio(&pair.rvmm, fc).map_or_else(
                    || "-".into(),
                    |r| {
                        if r < 0.01 {
                            format!("{r:.1e}")
                        } else {
                            format!("{r:.3}")
                        }
                    },
                );
                let _ = writeln!(
                    s,
                    "| {l} | {name} | {} | {} | {} | {} | {fc_ratio} |",
                    mmm(&pair.rvmm, digits),
                    mmm(&pair.qemu, digits),
                    mmm(fc, digits),
                    ratio_text(pair)
                );
            } else {
                let _ = writeln!(s, "| {l} | {name} | {} |", pair_cells(pair, digits));
            }
        }
    }
    let _ = writeln!(s);
}

fn section_migrate(s: &mut String, r: &Results) {
    let Some(v) = &r.migrate else {
        return;
    };
    let _ = writeln!(s, "## 12. Live migration\n");
    let _ = writeln!(
        s,
        "The probe's counting guest dirtying memory (`mode=counter dirty={} dirty-mib={}`: each vCPU rewrites {} \
         pages a second of its own {} MiB buffer, one word per 64 bytes, checking each page's previous pattern), {}, \
         migrates over loopback TCP to a second VMM of the same kind started with `--incoming tcp:127.0.0.1:PORT` \
         (rvmm) / `-incoming tcp:127.0.0.1:PORT` (QEMU microvm), once every vCPU has reported {} times (one report per 20 rounds). Both get a \
         downtime limit of {} ms and a bandwidth cap of {} GiB/s; rvmm `rvmm migrate SOCKET URI --downtime-limit MS \
         --max-bandwidth B`, QEMU `migrate-set-parameters` then QMP `migrate`. Total time, downtime and bytes sent \
         are the source's `query-migrate`; wall is from starting the migration to `completed`. The destination's \
         guest must go on with `sum=ok`; its largest `gap_ms` (the longest time between two of its 10 ms rounds, \
         TSC time) is the pause the guest itself saw.\n",
        v.dirty_pages_per_s,
        v.dirty_mib,
        v.dirty_pages_per_s,
        v.dirty_mib,
        v.shape.label(),
        v.settle_reports,
        v.downtime_limit_ms,
        v.max_bandwidth >> 30
    );
    if let Some(note) = &v.rvmm_note {
        let _ = writeln!(s, "**{note}**: only QEMU's half ran.\n");
    }
    let _ = writeln!(
        s,
        "| | rvmm | QEMU | rvmm/QEMU |\n|---|---|---|---|\n| wall, ms | {} |\n| total-time, ms | {} |\n| downtime, ms | {} |\n| sent, MiB | {} |\n| largest gap the guest saw after, ms | {} |\n| largest gap before (normal running), ms | {} |\n| pages the guest rewrote per s per vCPU | {} |\n| dirty-pages-rate at the end, pages/s | {} |\n",
        pair_cells(&v.wall_ms, 1),
        pair_cells(&v.total_ms, 1),
        pair_cells(&v.downtime_ms, 1),
        pair_cells(&v.transferred_mib, 1),
        pair_cells(&v.guest_gap_ms, 0),
        pair_cells(&v.guest_gap_before_ms, 0),
        pair_cells(&v.guest_dirty_rate, 0),
        pair_cells(&v.dirty_pages_rate, 0)
    );
}

fn section_scaling(s: &mut String, r: &Results, plot_dir: &str) {
    let Some(sc) = &r.scaling else {
        return;
    };
    let _ = writeln!(s, "## 5. Scaling\n");
    let _ = writeln!(
        s,
        "Benchmarks 1-4 along two axes: vCPUs at 128 MiB, and guest memory at 1 vCPU (the memory is never touched
by the guest). Start and memory use the minimal guest; exits use {} port writes per run; the start rate runs {}
at a time, {} per batch. Rounds are the outer loop: each round visits every point of an axis (ascending, then
descending in the next round), both VMMs at each, so load changes on the host shift whole curves rather than
bend them. Lines join the medians; bars span min to max.\n",
        sc.exits_count, sc.rate_concurrency, sc.rate_vms
    );
    for (name, _) in plots(r) {
        let _ = writeln!(s, "![{}]({plot_dir}/{name})", name.trim_end_matches(".svg"));
    }
    for (axis, points) in [("vCPUs", &sc.vcpus), ("memory", &sc.memory)] {
        let _ = writeln!(
            s,
            "\nAgainst {axis} (medians; ratio rvmm/QEMU in brackets):\n"
        );
        let _ = writeln!(
            s,
            "| shape | first line ms | exit ms | overhead MiB | exits/s | VMs/s |\n|---|---|---|---|---|---|"
        );
        for p in points.iter() {
            let cell = |pair: &Pair, d: usize| match (pair.rvmm(), pair.qemu()) {
                (Some(a), Some(b)) => format!(
                    "{:.d$} vs {:.d$} ({})",
                    a.median,
                    b.median,
                    ratio_text(pair),
                    d = d
                ),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                p.shape.label(),
                cell(&p.first_line_ms, 1),
                cell(&p.exit_ms, 1),
                cell(&p.overhead_mib, 2),
                cell(&p.exits_per_sec, 0),
                cell(&p.rate_per_sec, 1)
            );
        }
    }
    let _ = writeln!(s);
}

/// The whole page. `plot_dir` is the plots' directory relative to the page.
pub fn markdown(r: &Results, analysis: Option<&str>, plot_dir: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Benchmarks: rvmm and QEMU {} microvm side by side\n",
        r.meta.qemu_version.split_whitespace().nth(3).unwrap_or("")
    );
    let _ = writeln!(
        s,
        "<!-- Generated by `bench/run.sh` (rvmm-bench); edit bench/analysis.md or bench/src/report.rs, not this file. -->\n"
    );
    section_targets(&mut s, r);
    if let Some(a) = analysis {
        let _ = writeln!(s, "{}\n", a.trim_end());
    }
    section_machine(&mut s, r);
    section_method(&mut s);
    section_start(&mut s, r);
    section_memory(&mut s, r);
    section_exits(&mut s, r);
    section_rate(&mut s, r);
    section_scaling(&mut s, r, plot_dir);
    section_hotplug(&mut s, r);
    section_monitoring(&mut s, r);
    section_vblk(&mut s, r);
    section_vnet(&mut s, r);
    section_vballoon(&mut s, r);
    section_snapshot(&mut s, r);
    section_migrate(&mut s, r);
    s
}

/// Only the benchmark tables (for a single benchmark run on the command line).
pub fn tables(r: &Results) -> String {
    let mut s = String::new();
    section_start(&mut s, r);
    section_memory(&mut s, r);
    section_exits(&mut s, r);
    section_rate(&mut s, r);
    section_scaling(&mut s, r, ".");
    section_hotplug(&mut s, r);
    section_monitoring(&mut s, r);
    section_vblk(&mut s, r);
    section_vnet(&mut s, r);
    section_vballoon(&mut s, r);
    section_snapshot(&mut s, r);
    section_migrate(&mut s, r);
    s
}

/// Writes `doc` and the plots into `plot_dir` (created if needed), and results.json there.
pub fn write(
    r: &Results,
    analysis: Option<&str>,
    doc: &Path,
    plot_dir: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(plot_dir)?;
    for (name, plot) in plots(r) {
        std::fs::write(plot_dir.join(name), plot.render())?;
    }
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(plot_dir.join("results.json"), json + "\n")?;
    let rel = relative_dir(doc, plot_dir);
    std::fs::write(doc, markdown(r, analysis, &rel))
}

/// `plot_dir` relative to `doc`'s directory when it lies under it, else as given.
fn relative_dir(doc: &Path, plot_dir: &Path) -> String {
    let base = doc.parent().unwrap_or(Path::new(""));
    plot_dir.strip_prefix(base).map_or_else(
        |_| plot_dir.display().to_string(),
        |p| p.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Scaling, StartRow};

    fn point(vcpus: u32, mem: u64, v: f64) -> ScalePoint {
        let p = Pair {
            rvmm: vec![v],
            qemu: vec![2.0 * v],
        };
        ScalePoint {
            shape: Shape::new(vcpus, mem),
            first_line_ms: p.clone(),
            exit_ms: p.clone(),
            overhead_mib: p.clone(),
            exits_per_sec: p.clone(),
            rate_per_sec: p,
        }
    }

    fn results() -> Results {
        Results {
            start: vec![StartRow {
                guest: Guest::Hello,
                shape: Shape::new(1, 128),
                first_line_ms: Pair {
                    rvmm: vec![3.0, 1.0, 2.0],
                    qemu: vec![10.0, 20.0, 30.0],
                },
                exit_ms: Pair::default(),
            }],
            scaling: Some(Scaling {
                vcpus: vec![point(1, 128, 1.0), point(2, 128, 2.0)],
                memory: vec![point(1, 128, 1.0), point(1, 256, 1.5)],
                exits_count: 10,
                rate_concurrency: 2,
                rate_vms: 2,
            }),
            ..Results::default()
        }
    }

    #[test]
    fn start_table_row() {
        let md = markdown(&results(), None, "bench");
        assert!(
            md.contains("| minimal (mode=hello) | 1 vCPU, 128 MiB | 1.0 / **2.0** / 3.0 | 10.0 / **20.0** / 30.0 | 0.100 | - | - | - |"),
            "{md}"
        );
        assert!(md.contains(
            "| start → first serial line ≤ 0.1× QEMU microvm | 0.100× at 1 vCPU, 128 MiB"
        ));
    }

    #[test]
    fn eight_plots_linked() {
        let r = results();
        let names: Vec<String> = plots(&r).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "start-vcpus.svg",
                "memory-vcpus.svg",
                "exits-vcpus.svg",
                "rate-vcpus.svg",
                "start-memory.svg",
                "memory-memory.svg",
                "exits-memory.svg",
                "rate-memory.svg"
            ]
        );
        let md = markdown(&r, Some("## Hot spots\n\ntext"), "bench");
        assert!(md.contains("![start-vcpus](bench/start-vcpus.svg)"));
        assert!(md.contains("## Hot spots\n\ntext\n"));
        let start = &plots(&r)[0].1;
        assert_eq!(start.series.len(), 4);
        assert_eq!(start.series[3].name, "QEMU exit");
        assert!(start.series[3].dashed);
        assert_eq!(start.series[1].points[1].median, 4.0);
    }

    fn snapshot_result(fc_restore: Vec<f64>) -> crate::results::SnapshotResult {
        let p = |r: f64, q: f64| Pair {
            rvmm: vec![r],
            qemu: vec![q],
        };
        crate::results::SnapshotResult {
            rows: vec![crate::results::SnapshotRow {
                shape: Shape::new(2, 512),
                save_ms: p(10.0, 20.0),
                save_vmm_ms: p(8.0, 19.0),
                restore_ms: p(30.0, 60.0),
                size_kib: p(100.0, 200.0),
                firecracker: crate::results::FirecrackerSamples {
                    save_ms: vec![40.0],
                    restore_ms: fc_restore,
                    size_kib: vec![400.0],
                },
            }],
            firecracker: Some("Firecracker v1.16.1".into()),
            firecracker_note: None,
        }
    }

    #[test]
    fn snapshot_table_with_firecracker() {
        let mut s = String::new();
        section_snapshot(
            &mut s,
            &Results {
                snapshot: Some(snapshot_result(vec![15.0])),
                ..Results::default()
            },
        );
        assert!(
            s.contains("Firecracker (Firecracker v1.16.1, built by hand"),
            "{s}"
        );
        assert!(
            s.contains("| guest | | rvmm | QEMU | Firecracker | rvmm/QEMU | rvmm/Firecracker |")
        );
        assert!(
            s.contains("| 2 vCPUs, 512 MiB | restore → running, ms | 30.0 / **30.0** / 30.0 | 60.0 / **60.0** / 60.0 | 15.0 / **15.0** / 15.0 | 0.500 | 2.000 |"),
            "{s}"
        );
        assert!(s.contains("| on disk, KiB | 100 / **100** / 100 | 200 / **200** / 200 | 400 / **400** / 400 | 0.500 | 0.250 |"));
        let mut tiny = snapshot_result(vec![15.0]);
        tiny.rows[0].firecracker.size_kib = vec![524_320.0];
        let mut s = String::new();
        section_snapshot(
            &mut s,
            &Results {
                snapshot: Some(tiny),
                ..Results::default()
            },
        );
        assert!(s.contains("| 0.500 | 1.9e-4 |"), "{s}");
    }

    #[test]
    fn snapshot_table_without_firecracker() {
        let mut r = snapshot_result(vec![]);
        r.rows[0].firecracker = Default::default();
        r.firecracker = None;
        r.firecracker_note = Some(crate::firecracker::NOT_GIVEN.into());
        let mut s = String::new();
        section_snapshot(
            &mut s,
            &Results {
                snapshot: Some(r),
                ..Results::default()
            },
        );
        assert!(
            s.contains("**Firecracker: not measured (no binary given)**."),
            "{s}"
        );
        assert!(s.contains("| guest | | rvmm | QEMU | rvmm/QEMU |\n"));
        assert!(!s.contains("| Firecracker |"));
    }

    #[test]
    fn plot_dir_relative_to_doc() {
        assert_eq!(
            relative_dir(Path::new("docs/benchmarks.md"), Path::new("docs/bench")),
            "bench"
        );
        assert_eq!(
            relative_dir(Path::new("/a/b.md"), Path::new("/c/d")),
            "/c/d"
        );
    }
}
