//! `rvmm-bench`: run the benchmarks, print their tables, write docs/benchmarks.md.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rvmm_bench::plan::Plan;
use rvmm_bench::results::Results;
use rvmm_bench::vmms::{Tools, QEMU_PATH};
use rvmm_bench::{kvm_loop, repo_root, report, run, rvmm_beside, Selection, WorkDir};

/// rvmm and QEMU side by side on the probe guest.
#[derive(Debug, Parser)]
#[command(name = "rvmm-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Counted runs per VMM and configuration (after one warm-up each).
    #[arg(long, default_value_t = 5, global = true)]
    runs: usize,
    /// Each benchmark once, tiny (what the smoke test runs); `all --smoke` writes its page
    /// under $TMPDIR/rvmm-bench-smoke unless --doc/--plots say otherwise.
    #[arg(long, global = true)]
    smoke: bool,
    /// The rvmm binary (default: the one beside rvmm-bench in the cargo target directory).
    #[arg(long, value_name = "PATH", global = true)]
    rvmm: Option<PathBuf>,
    /// qemu-system-x86_64.
    #[arg(long, value_name = "PATH", default_value = QEMU_PATH, global = true)]
    qemu: PathBuf,
    /// Where `all` and `report` write the page.
    #[arg(long, value_name = "FILE", global = true)]
    doc: Option<PathBuf>,
    /// Where `all` and `report` write the plots and results.json.
    #[arg(long, value_name = "DIR", global = true)]
    plots: Option<PathBuf>,
    /// The Firecracker binary the snapshot benchmark (11) measures beside rvmm and QEMU
    /// (default: $RVMM_BENCH_FIRECRACKER; neither: Firecracker is not measured).
    #[arg(long, value_name = "PATH", global = true)]
    firecracker: Option<PathBuf>,
    /// For a single benchmark: put its figures into the plot directory's results.json
    /// (replacing that benchmark's) and re-render the page, instead of printing its table.
    #[arg(long, global = true)]
    update: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every benchmark; writes docs/benchmarks.md, its plots and results.json.
    All,
    /// 1. Start → first serial line and → exit.
    Start,
    /// 2. Peak RSS minus the guest RAM touched.
    Memory,
    /// 3. Port-I/O exits per second, against a bare KVM_RUN loop.
    Exits,
    /// 4. Minimal VMs started per second, several at a time.
    Rate,
    /// 5. 1-4 against vCPUs and guest memory.
    Scaling,
    /// 6. vCPU hotplug: device_add → the vCPU runs, device_del → DEVICE_DELETED.
    Hotplug,
    /// 7. The cost of watching: pio exits/s unwatched, and sampled 1/s (QMP, `rvmm top`, /metrics).
    Monitoring,
    /// 8. virtio-blk: 4 KiB random-read IOPS, sequential 64 KiB read and write MiB/s.
    VirtioBlk,
    /// 9. virtio-net: frames per second (64 and 1500 bytes) from the guest to a tap.
    VirtioNet,
    /// 10. virtio-balloon: the time to give back 1 GiB through the balloon, and the RSS.
    VirtioBalloon,
    /// 11. Snapshot and restore of the counting guest (2 vCPUs, 512 MiB and 2 GiB).
    Snapshot,
    /// 12. Live migration of the dirtying guest over loopback TCP.
    Migrate,
    /// Re-render the page and plots from the plot directory's results.json.
    Report,
    /// The bare KVM_RUN loop alone.
    KvmLoop {
        /// Port writes to time.
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Run the guest in 64-bit long mode (default: real mode).
        #[arg(long)]
        long_mode: bool,
    },
}

fn analysis() -> Option<String> {
    std::fs::read_to_string(repo_root().join("bench/analysis.md")).ok()
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvmm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    // A smoke run never overwrites the real page unless told to.
    let out_root = if cli.smoke {
        std::env::temp_dir().join("rvmm-bench-smoke")
    } else {
        repo_root().join("docs")
    };
    let doc = cli
        .doc
        .clone()
        .unwrap_or_else(|| out_root.join("benchmarks.md"));
    let plot_dir = cli.plots.clone().unwrap_or_else(|| out_root.join("bench"));
    let which = match cli.command {
        Command::KvmLoop { count, long_mode } => {
            let mode = if long_mode {
                kvm_loop::Mode::Long
            } else {
                kvm_loop::Mode::Real
            };
            let r = kvm_loop::run_in(mode, count)?;
            println!(
                "{} exits in {:.3} s: {:.0} exits/s, {:.3} µs each",
                r.exits,
                r.elapsed.as_secs_f64(),
                r.rate(),
                1e6 / r.rate()
            );
            return Ok(());
        }
        Command::Report => {
            let path = plot_dir.join("results.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let results: Results = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            report::write(&results, analysis().as_deref(), &doc, &plot_dir)?;
            eprintln!(
                "rvmm-bench: wrote {} and {}",
                doc.display(),
                plot_dir.display()
            );
            return Ok(());
        }
        Command::All => Selection::ALL,
        Command::Start => only(|s| s.start = true),
        Command::Memory => only(|s| s.memory = true),
        Command::Exits => only(|s| s.exits = true),
        Command::Rate => only(|s| s.rate = true),
        Command::Scaling => only(|s| s.scaling = true),
        Command::Hotplug => only(|s| s.hotplug = true),
        Command::Monitoring => only(|s| s.monitoring = true),
        Command::VirtioBlk => only(|s| s.vblk = true),
        Command::VirtioNet => only(|s| s.vnet = true),
        Command::VirtioBalloon => only(|s| s.vballoon = true),
        Command::Snapshot => only(|s| s.snapshot = true),
        Command::Migrate => only(|s| s.migrate = true),
    };
    if cli.runs == 0 {
        bail!("--runs: 0 runs measure nothing; give at least 1");
    }
    let mut plan = if cli.smoke {
        Plan::smoke()
    } else {
        Plan::full(cli.runs)
    };
    plan.firecracker = rvmm_bench::firecracker::binary(cli.firecracker.clone());
    if let Some(fc) = &plan.firecracker {
        // A binary given but unusable is a mistake to say before anything runs.
        if let Err(why) = rvmm_bench::firecracker::version(fc) {
            bail!(
                "--firecracker (or ${}): {why}; give a Firecracker binary, or neither to leave it out",
                rvmm_bench::firecracker::ENV
            );
        }
    }
    let rvmm = match cli.rvmm {
        Some(p) => p,
        None => rvmm_beside(&std::env::current_exe().context("finding rvmm-bench's own path")?),
    };
    let work = WorkDir::new().context("creating a scratch directory")?;
    let tools = Tools::prepare(&rvmm, &cli.qemu, &work.0)?;
    let log = |line: &str| eprintln!("rvmm-bench: {line}");
    let results = run(&tools, &plan, which, &log)?;
    if which == Selection::ALL {
        report::write(&results, analysis().as_deref(), &doc, &plot_dir)?;
        eprintln!(
            "rvmm-bench: wrote {} and {}",
            doc.display(),
            plot_dir.display()
        );
    } else if cli.update {
        let path = plot_dir.join("results.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut all: Results =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        merge(&mut all, results, which);
        report::write(&all, analysis().as_deref(), &doc, &plot_dir)?;
        eprintln!(
            "rvmm-bench: updated {} and {}",
            doc.display(),
            plot_dir.display()
        );
    } else {
        print!("{}", report::tables(&results));
    }
    Ok(())
}

/// Replaces the selected benchmarks' figures in `all` with `new`'s; the metadata keeps the
/// full run's, with this run's date and commit noted beside it.
fn merge(all: &mut Results, new: Results, which: Selection) {
    if which.start {
        all.start = new.start;
    }
    if which.memory {
        all.memory = new.memory;
    }
    if which.exits {
        all.exits = new.exits;
    }
    if which.rate {
        all.rate = new.rate;
    }
    if which.scaling {
        all.scaling = new.scaling;
    }
    if which.hotplug {
        all.hotplug = new.hotplug;
    }
    if which.monitoring {
        all.monitoring = new.monitoring;
    }
    if which.vblk {
        all.vblk = new.vblk;
    }
    if which.vnet {
        all.vnet = new.vnet;
    }
    if which.vballoon {
        all.vballoon = new.vballoon;
    }
    if which.snapshot {
        all.snapshot = new.snapshot;
    }
    if which.migrate {
        all.migrate = new.migrate;
    }
    all.meta.updates.push(format!(
        "{} at {} ({})",
        selection_names(which),
        new.meta.date,
        new.meta.git_commit
    ));
}

fn selection_names(s: Selection) -> String {
    let names = [
        (s.start, "start"),
        (s.memory, "memory"),
        (s.exits, "exits"),
        (s.rate, "rate"),
        (s.scaling, "scaling"),
        (s.hotplug, "hotplug"),
        (s.monitoring, "monitoring"),
        (s.vblk, "virtio-blk"),
        (s.vnet, "virtio-net"),
        (s.vballoon, "virtio-balloon"),
        (s.snapshot, "snapshot"),
        (s.migrate, "migrate"),
    ];
    names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn only(set: impl FnOnce(&mut Selection)) -> Selection {
    let mut s = Selection::NONE;
    set(&mut s);
    s
}
