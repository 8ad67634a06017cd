//! The command line: `rvmm run`, `rvmm probe`, ... as clap derive structs. Values keep
//! QEMU's grammar (`--smp 4`, `-m 1G`); parsing them into VmConfig happens in commands.rs.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::output::errln;
use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Run(Box<RunArgs>),
    /// Write the probe guest's ELF, or decode a probe dump captured from any VMM.
    Probe(ProbeArgs),
    /// Can this host run VMs, and how: KVM, CPU, NUMA, huge pages, KSM, IOMMU, SR-IOV, scheduling.
    Host(crate::cmd_host::HostArgs),
    /// Like `qemu-system-x86_64 -cpu help`: every CPU model, whether it runs on this host and
    /// what it lacks, then the recognized feature flags.
    CpuModels(crate::cmd_cpu::CpuModelsArgs),
    /// The most capable CPU model (plus common features) every given host can run.
    CpuBaseline(crate::cmd_cpu::CpuBaselineArgs),
    /// Compare a CPU model with a host: identical, superset or incompatible.
    CpuCompare(crate::cmd_cpu::CpuCompareArgs),
    /// Per vCPU of a running VM: host CPU, state, CPU time, affinity, thread (virsh vcpuinfo).
    Vcpuinfo(VcpuinfoArgs),
    /// Show or set a running VM's vCPU affinity (virsh vcpupin).
    Vcpupin(VcpupinArgs),
    /// Show or set the affinity of a running VM's non-vCPU threads (virsh emulatorpin).
    Emulatorpin(EmulatorpinArgs),
    /// Plug or unplug vCPUs of a running VM until COUNT are present (virsh setvcpus).
    Setvcpus(SetvcpusArgs),
    /// A running VM's maximum and current vCPU counts (virsh vcpucount).
    Vcpucount(VcpucountArgs),
    /// Ask a running VM's balloon for the guest to have SIZE of memory (virsh setmem).
    Setmem(SetmemArgs),
    /// A running VM's balloon size and RSS in KiB (virsh dommemstat).
    Dommemstat(DommemstatArgs),
    /// Send one raw QMP command to a running VM and print the reply.
    Qmp(QmpArgs),
    /// A running VM's KVM statistics and vCPU thread figures (virsh domstats --vcpu).
    Stats(StatsArgs),
    /// A live per-vCPU view of a running VM, refreshed every second (top -H / virt-top).
    Top(TopArgs),
    /// Measure a running VM's vCPU use over a window and recommend a vCPU count.
    Advise(AdviseArgs),
    /// Show or set a running VM's cgroup shares and CPU quotas (virsh schedinfo).
    Schedinfo(SchedinfoArgs),
    /// Save a running VM's snapshot into a new or empty directory (pauses it, then resumes
    /// it unless --stop); `rvmm run --restore DIR` runs it again (docs/snapshot.md).
    Snapshot(SnapshotArgs),
    /// Live-migrate a running VM to an `rvmm run --incoming URI` started with the same
    /// flags (QMP `migrate`; docs/migration.md): waits, then prints the total time, the
    /// downtime and what was sent.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// Where the destination listens: tcp:HOST:PORT or unix:PATH.
    #[arg(value_name = "URI")]
    pub uri: String,
    /// The longest pause of the VM to aim for, in ms [default: 300].
    #[arg(long = "downtime-limit", value_name = "MS")]
    pub downtime_limit: Option<u64>,
    /// The most bytes per second the migration may send [default: no limit].
    #[arg(long = "max-bandwidth", value_name = "BYTES")]
    pub max_bandwidth: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// The directory to write state.json and memory.bin into (new, or empty).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Leave the VM paused after the snapshot (QMP `cont` resumes it).
    #[arg(long)]
    pub stop: bool,
}

#[derive(Debug, Args)]
pub struct SchedinfoArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// Change one parameter (virsh's names: cpu_shares, vcpu_period, vcpu_quota,
    /// emulator_period, emulator_quota, global_period, global_quota; quotas -1 for no
    /// limit). May repeat; all are checked before any is applied.
    #[arg(long = "set", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    pub set: Vec<String>,
    /// Print the reply as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only this vCPU.
    #[arg(long, value_name = "N")]
    pub vcpu: Option<u32>,
    /// Also count host PMU events per vCPU thread with perf_event_open, over --duration.
    #[arg(long)]
    pub perf: bool,
    /// How long --perf counts (e.g. 1s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", requires = "perf")]
    pub duration: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// Plain text for scripts: no terminal control, one block per refresh.
    #[arg(long, short = 'b')]
    pub batch: bool,
    /// Stop after this many refreshes.
    #[arg(long, short = 'n', value_name = "N")]
    pub iterations: Option<u64>,
    /// Time between refreshes: seconds (1, 0.5) or a duration (500ms, 2s).
    #[arg(long, short = 'd', value_name = "SECONDS", default_value = "1")]
    pub delay: String,
    /// The column to sort vCPUs by (vcpu, busy, guest, vmm, steal, exits, cpu); keys
    /// change it in interactive mode.
    #[arg(long, value_name = "COLUMN", default_value = "vcpu")]
    pub sort: String,
}

#[derive(Debug, Args)]
pub struct AdviseArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// How long to watch (e.g. 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub window: String,
    /// Time between samples; the window must hold at least two.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub interval: String,
    /// Print the figures and the advice as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `VM`: a QMP socket path (anything with a '/') or a --name, resolved under the runtime
/// directory ($XDG_RUNTIME_DIR/rvmm, /run/rvmm as root, else /tmp/rvmm-UID).
const VM_HELP: &str = "The VM: its QMP socket path (anything containing '/') or its --name";

#[derive(Debug, Args)]
pub struct VcpuinfoArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// Print the QMP reply as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VcpupinArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// The vCPU to show or pin (all vCPUs when absent).
    #[arg(value_name = "VCPU")]
    pub vcpu: Option<u32>,
    /// Host CPUs in the kernel's list syntax (0-3,8,^2); shows the affinity when absent.
    #[arg(value_name = "CPULIST", allow_hyphen_values = true)]
    pub cpulist: Option<String>,
}

#[derive(Debug, Args)]
pub struct EmulatorpinArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// Host CPUs in the kernel's list syntax; shows the affinity when absent.
    #[arg(value_name = "CPULIST", allow_hyphen_values = true)]
    pub cpulist: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetvcpusArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// vCPUs the VM should have (1 to its maxcpus): plugs the lowest free slots, or unplugs
    /// the highest present vCPUs (never vCPU 0) and waits for the guest to eject them.
    #[arg(value_name = "COUNT")]
    pub count: u32,
    /// How long to wait for the guest to eject unplugged vCPUs (and for plugged ones to
    /// appear) before giving up with an error naming them.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = crate::cmd_vcpus::DEFAULT_TIMEOUT,
        value_parser = clap::value_parser!(u64).range(1..=86400)
    )]
    pub timeout: u64,
    /// Change the running VM (virsh's flag; the only state an rvmm VM has).
    #[arg(long, conflicts_with = "current")]
    pub live: bool,
    /// Same as --live for a running VM (virsh's flag).
    #[arg(long)]
    pub current: bool,
}

#[derive(Debug, Args)]
pub struct SetmemArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// The guest memory wanted: a number with an optional unit (B, K/KiB, M/MiB, G/GiB,
    /// T/TiB; KB, MB, GB, TB are decimal); a bare number is KiB, as virsh's.
    #[arg(value_name = "SIZE", allow_hyphen_values = true)]
    pub size: String,
}

#[derive(Debug, Args)]
pub struct DommemstatArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
}

#[derive(Debug, Args)]
pub struct VcpucountArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// Print only the maximum (the VM's maxcpus).
    #[arg(long, conflicts_with = "active")]
    pub maximum: bool,
    /// Print only the number of vCPUs present now.
    #[arg(long)]
    pub active: bool,
    /// The running VM's counts (virsh's flag; the only state an rvmm VM has).
    #[arg(long, conflicts_with = "current")]
    pub live: bool,
    /// Same as --live for a running VM (virsh's flag).
    #[arg(long)]
    pub current: bool,
}

#[derive(Debug, Args)]
pub struct QmpArgs {
    #[arg(value_name = "VM", help = VM_HELP)]
    pub vm: String,
    /// The request, e.g. '{"execute": "query-status"}'.
    #[arg(value_name = "JSON", allow_hyphen_values = true)]
    pub request: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A libvirt domain XML file: its name, vCPUs, CPU model, topology, NUMA, pinning,
    /// memory backing and kernel instead of the flags (which then may not be given).
    #[arg(long, value_name = "FILE.xml")]
    pub domain: Option<PathBuf>,
    /// Linux kernel: a bzImage (Linux boot protocol) or an ELF vmlinux (PVH).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk (with the probe guest: loaded into guest RAM and otherwise unused).
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (for the probe guest: mode=dump|hello|busy|halt|pio|hotplug|...; see README).
    #[arg(long, value_name = "CMDLINE", allow_hyphen_values = true)]
    pub append: Option<String>,
    /// vCPUs: N[,maxcpus=M][,sockets=S][,dies=D][,cores=C][,threads=T], as QEMU's -smp
    /// [default: 1].
    #[arg(long, value_name = "SPEC")]
    pub smp: Option<String>,
    /// CPU model: MODEL[,+feat][,-feat][,feat=on|off][,pmu=on|off][,check|enforce], as
    /// QEMU's -cpu (`rvmm cpu-models` lists them) [default: qemu64].
    #[arg(long, value_name = "MODEL")]
    pub cpu: Option<String>,
    /// Guest RAM and its backing, as QEMU's -m: SIZE (K/M/G/T suffix, a bare number is MiB)
    /// then comma-separated options: hugepages=on, hugepage-size=2M|1G, prealloc=on,
    /// merge=on|off, thp=on|off, shared=on, mem-path=DIR [default: 128M].
    #[arg(short = 'm', long = "memory", value_name = "SIZE[,OPTS]")]
    pub memory: Option<String>,
    /// Machine properties, as QEMU's -machine: pit=on|off (KVM's in-kernel PIT) [default:
    /// off for the built-in probe, on with --kernel].
    #[arg(short = 'M', long, value_name = "OPTS")]
    pub machine: Option<String>,
    /// Guest NUMA, as QEMU's -numa (repeat it for each node and distance):
    /// node[,nodeid=N][,cpus=A-B]...,mem=SIZE with optional host-nodes=LIST and
    /// policy=bind|preferred|interleave, or dist,src=A,dst=B,val=D.
    #[arg(long, value_name = "SPEC")]
    pub numa: Vec<String>,
    /// The VM's name; also names its QMP socket (RUNTIME/NAME.qmp) unless --qmp is given.
    #[arg(long)]
    pub name: Option<String>,
    /// QMP control socket: unix:PATH (QEMU's ,server=on and ,wait=off are accepted).
    #[arg(long, value_name = "unix:PATH")]
    pub qmp: Option<String>,
    /// Human monitor (HMP) socket, as QEMU's -monitor: unix:PATH[,server=on][,wait=off];
    /// system_powerdown, quit, stop, cont, info status, info cpus.
    #[arg(long, value_name = "unix:PATH")]
    pub monitor: Option<String>,
    /// Prometheus metrics endpoint: tcp:HOST:PORT or unix:PATH; GET /metrics answers in
    /// the text exposition format (per-vCPU run/steal time, KVM statistics, ...).
    #[arg(long, value_name = "tcp:HOST:PORT|unix:PATH")]
    pub metrics: Option<String>,
    /// A virtio-blk disk on a raw image (repeatable): path=FILE[,readonly=on][,serial=ID].
    /// The image is locked against a second writer.
    #[arg(long, value_name = "path=FILE[,readonly=on][,serial=ID]")]
    pub disk: Vec<String>,
    /// A virtio-net NIC on a tap (repeatable): tap=NAME attaches to an existing tap (`ip
    /// tuntap add dev NAME mode tap`), a bare `tap` creates one, fd=N takes a tap descriptor
    /// the launcher left open (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR); mac= defaults to
    /// 52:54:00:12:34:56 plus the NIC's index.
    #[arg(long, value_name = "tap[=NAME]|fd=N[,mac=MAC]")]
    pub net: Vec<String>,
    /// The virtio-balloon (off unless given, as in QEMU; a --domain has one unless its
    /// <memballoon model='none'/>): [on|off][,deflate-on-oom=on|off][,free-page-reporting=on|off].
    #[arg(
        long,
        value_name = "[on|off][,deflate-on-oom=on|off][,free-page-reporting=on|off]",
        num_args = 0..=1,
        default_missing_value = "on"
    )]
    pub balloon: Option<String>,
    /// Pin one vCPU: VCPU=CPULIST (host CPUs in the kernel's list syntax); repeatable.
    #[arg(long = "vcpu-pin", value_name = "VCPU=CPULIST")]
    pub vcpu_pin: Vec<String>,
    /// Host CPUs for every thread of the VM (like taskset), unless a more specific pin applies.
    #[arg(long, value_name = "CPULIST")]
    pub cpuset: Option<String>,
    /// Host CPUs for every thread that is not a vCPU (main loop, QMP server).
    #[arg(long = "emulator-pin", value_name = "CPULIST")]
    pub emulator_pin: Option<String>,
    /// CPU weight against other VMs' (libvirt's <shares>): 2-262144, 1024 is the kernel's
    /// default; cgroup v1 cpu.shares, v2 cpu.weight = N×100/1024 (docs/cgroups.md).
    #[arg(long = "cpu-shares", value_name = "N", allow_hyphen_values = true)]
    pub cpu_shares: Option<String>,
    /// CFS bandwidth, KEY=MICROSECONDS[,...] (repeatable): period, quota (the whole VM, also
    /// global_period, global_quota), vcpu_period, vcpu_quota (each vCPU), emulator_period,
    /// emulator_quota (the other threads). Periods 1000-1000000; quota -1 (no limit) or
    /// 1000-17592186044415.
    #[arg(
        long = "cpu-quota",
        value_name = "KEY=US[,...]",
        allow_hyphen_values = true
    )]
    pub cpu_quota: Vec<String>,
    /// Hard memory limit for the whole VM process (libvirt's <memtune><hard_limit>), as -m's
    /// SIZE (a bare number is MiB): at least guest RAM plus 64M for rvmm itself.
    #[arg(long = "memory-limit", value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_limit: Option<String>,
    /// Put the VM in a cgroup of its own (PARENT/rvmm-NAME.scope with vcpuN and emulator
    /// children): on, off, or auto (when the host allows; any tuning option makes it
    /// mandatory) [default: auto].
    #[arg(long, value_name = "on|off|auto")]
    pub cgroup: Option<String>,
    /// The cgroup the VM's scope is created under, a path inside the hierarchy that must
    /// exist (e.g. /machine.slice) [default: /rvmm.slice, created when missing].
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Probe guest: also print its raw dump (serial output) as it arrives.
    #[arg(long)]
    pub raw: bool,
    /// Probe guest: print the decoded view as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run a snapshot taken by `rvmm snapshot` (docs/snapshot.md): the VM is rebuilt from
    /// the snapshot's configuration, so flags that shape the machine may not be given;
    /// --name, --qmp, --metrics, --sandbox, --cgroup and --cgroup-parent may.
    #[arg(long, value_name = "DIR")]
    pub restore: Option<PathBuf>,
    /// Wait for a live migration on URI (tcp:HOST:PORT or unix:PATH) and run the VM it
    /// brings (docs/migration.md); give the source's machine flags.
    #[arg(long, value_name = "URI")]
    pub incoming: Option<String>,
    /// Resolve and print the configuration (and the equivalent flags), create nothing and
    /// run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: also print each vCPU's CPUID table as handed to KVM_SET_CPUID2.
    #[arg(long, requires = "dry_run")]
    pub show_cpuid: bool,
    /// Seccomp filters per thread, as QEMU's -sandbox: on (a forbidden system call ends
    /// rvmm with a message naming it, exit status 159), off, or log (allowed, but logged by
    /// the kernel: dmesg) (docs/security.md).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Sandbox::On)]
    pub sandbox: Sandbox,
}

/// `--sandbox` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sandbox {
    On,
    Off,
    Log,
}

impl From<Sandbox> for vmm::sandbox::SandboxMode {
    fn from(s: Sandbox) -> Self {
        match s {
            Sandbox::On => vmm::sandbox::SandboxMode::On,
            Sandbox::Off => vmm::sandbox::SandboxMode::Off,
            Sandbox::Log => vmm::sandbox::SandboxMode::Log,
        }
    }
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Write the probe guest's PVH ELF to FILE (boot it under QEMU with -kernel FILE).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "decode",
        required_unless_present = "decode"
    )]
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
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    if let Err(write) = e.print() {
                        errln!("rvmm: {:#}", crate::output::stdout_error(&write));
                        return Err(ExitCode::from(1));
                    }
                    Err(ExitCode::from(
                        if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                            2
                        } else {
                            0
                        },
                    ))
                }
                _ => {
                    // clap's message runs until the first blank line (then usage and tips):
                    // keep it, on one line.
                    let text = e.render().to_string();
                    let message: Vec<&str> = text
                        .lines()
                        .take_while(|l| !l.trim().is_empty())
                        .map(str::trim)
                        .collect();
                    let message = message.join(" ");
                    let message = message.strip_prefix("error: ").unwrap_or(&message);
                    errln!("rvmm: {message} (see rvmm --help)");
                    Err(ExitCode::from(2))
                }
            }
        }
    }
}
