//! The command line: `rvmm run`, `rvmm probe`, ... as clap derive structs. Values keep
//! QEMU's grammar (`--smp 4`, `-m 1G`); parsing them into VmConfig happens in commands.rs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// rvmm: a KVM virtual machine monitor for people who care where guest CPUs and memory land.
#[derive(Debug, Parser)]
#[command(name = "rvmm", version, about, disable_help_subcommand = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a VM in the foreground, serial console on stdio. With no --kernel, boots the
    /// built-in probe guest and prints what the guest sees.
    Run(RunArgs),
    /// Write the probe guest's ELF, or decode a probe dump captured from any VMM.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Linux kernel: a bzImage (Linux boot protocol) or an ELF vmlinux (PVH).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk (with the probe guest: loaded into guest RAM and otherwise unused).
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (for the probe guest: mode=dump|hello|busy|halt|pio).
    #[arg(long, value_name = "CMDLINE", allow_hyphen_values = true)]
    pub append: Option<String>,
    /// vCPUs: N[,maxcpus=M][,sockets=S][,dies=D][,cores=C][,threads=T], as QEMU's -smp.
    #[arg(long, value_name = "SPEC", default_value = "1")]
    pub smp: String,
    /// CPU model: MODEL[,+feat][,-feat][,feat=on|off][,pmu=on|off][,check|enforce], as
    /// QEMU's -cpu (default qemu64; `rvmm cpu-models` lists them).
    #[arg(long, value_name = "MODEL", default_value = "qemu64")]
    pub cpu: String,
    /// Guest RAM and its backing, as QEMU's -m: SIZE (K/M/G/T suffix, a bare number is MiB)
    /// then comma-separated options: hugepages=on, hugepage-size=2M|1G, prealloc=on,
    /// merge=on|off, thp=on|off, shared=on, mem-path=DIR.
    #[arg(short = 'm', long = "memory", value_name = "SIZE[,OPTS]", default_value = "128M")]
    pub memory: String,
    /// Guest NUMA, as QEMU's -numa (repeat it for each node and distance):
    /// node[,nodeid=N][,cpus=A-B]...,mem=SIZE with optional host-nodes=LIST and
    /// policy=bind|preferred|interleave, or dist,src=A,dst=B,val=D.
    #[arg(long, value_name = "SPEC")]
    pub numa: Vec<String>,
    /// The VM's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Probe guest: also print its raw dump (serial output) as it arrives.
    #[arg(long)]
    pub raw: bool,
    /// Probe guest: print the decoded view as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ProbeArgs {
    /// Write the probe guest's PVH ELF to FILE (boot it under QEMU with -kernel FILE).
    #[arg(long, value_name = "FILE")]
    pub elf: Option<PathBuf>,
    /// Decode a probe dump (serial log) from FILE, or - for stdin.
    #[arg(long, value_name = "LOG")]
    pub decode: Option<PathBuf>,
    /// With --decode: print JSON.
    #[arg(long, requires = "decode")]
    pub json: bool,
}

/// Parses argv; on error prints one line (help and version print normally).
pub fn parse() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(c) => Ok(c),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    Err(ExitCode::from(if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand { 2 } else { 0 }))
                }
                _ => {
                    let text = e.render().to_string();
                    let first = text.lines().next().unwrap_or("invalid arguments");
                    let first = first.strip_prefix("error: ").unwrap_or(first);
                    eprintln!("rvmm: {first} (see rvmm --help)");
                    Err(ExitCode::from(2))
                }
            }
        }
    }
}
