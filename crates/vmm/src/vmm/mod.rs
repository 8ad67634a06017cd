//! The VMM: turns a VmConfig into a running KVM guest and runs it to the end.
//!
//! `Vmm::build` is the boot recipe, one named step per line: host limits → guest memory →
//! VM (memory slots, in-kernel irqchip and PIT) → devices → firmware tables and kernel →
//! vCPUs, with the VM's cgroup made and joined before guest memory (a memory limit charges
//! only pages touched after the process joined). Each step's mechanics live where they belong (`limits` here, `memory`,
//! `machine`, `devices`, `boot`), and nothing is made that cannot be cleaned up: an error at
//! any step drops what was made before it. `Vmm::run` (`run`, `event_loop`) starts the
//! vCPU threads, runs the emulator thread's event loop and returns how the VM ended.
//! The QMP commands executed on the emulator thread are `commands`.

mod commands;
mod event_loop;
pub mod limits;
mod migrate;
mod run;
mod snapshot;
pub mod term;

use std::sync::Arc;

use kvm_ioctls::VcpuFd;
use thiserror::Error;
use vmm_sys_util::eventfd::EventFd;

use crate::boot::acpi::{self, qemu_memory_affinity, AcpiCpu, AcpiPlatform, AcpiVirtioMmio};
use crate::boot::image::ImageSource;
use crate::boot::{self, BootEntry, BootError, BootImage};
use crate::config::cputune::{first_tuning_option, CgroupSwitch};
use crate::config::machine::Switch;
use crate::config::{BootSource, ConfigError, GuestNuma, VmConfig};
use crate::control;
use crate::control::commands::cpu_slot::CpuSlots;
use crate::cpu::builder::{BuilderError, VmCpuTables};
use crate::cpu::msr;
use crate::devices::bus::VirtioMmio;
use crate::devices::cpu_hotplug::CpuHotplug;
use crate::devices::serial::{com1, SerialOutput};
use crate::devices::virtio::balloon::{Balloon, BalloonShared, GiveBack};
use crate::devices::virtio::blk::{Block, DiskError};
use crate::devices::virtio::mmio::{reg, MmioTransport};
use crate::devices::virtio::net::{FrameIo, Net};
use crate::devices::virtio::worker::Worker;
use crate::devices::virtio::{self, VirtioDevice, VirtioHandle};
use crate::devices::Bus;
use crate::host::tap::Tap;
use crate::host::thread::ThreadError;
use crate::host::vmcgroup::{self, CgroupError, CgroupSpec, VmCgroup};
use crate::host::{Host, HostFs, KvmError, KvmHost};
use crate::machine::vcpu::{self, VcpuSetup};
use crate::machine::{IrqLine, MachineError, MachineOptions, RamSlot, Vm};
use crate::memory::backing::{self, BackingError, BackingPlan};
use crate::memory::layout::{ACPI_START, MMIO_GAP_START};
use crate::memory::prealloc::PreallocEvent;
use crate::memory::{GuestRam, MemoryError};
use crate::vcpu::VmOutcome;

pub use event_loop::{Console, SerialWatch};
pub use limits::LimitError;
pub use migrate::IncomingReport;
pub use run::RunOptions;
pub use snapshot::RestoreReport;

/// Why a VM could not be built or run.
#[derive(Debug, Error)]
pub enum VmmError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kvm(#[from] KvmError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Cpu(#[from] BuilderError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Backing(#[from] BackingError),
    #[error(transparent)]
    Numa(#[from] crate::config::numa::NumaError),
    #[error(transparent)]
    Boot(#[from] BootError),
    /// (Its text starts with "ACPI:" already.)
    #[error(transparent)]
    Acpi(#[from] acpi::AcpiError),
    #[error(transparent)]
    Machine(#[from] MachineError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// A snapshot could not be restored (`rvmm run --restore`).
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Tap(#[from] crate::host::tap::TapError),
    /// A live migration could not be received (`rvmm run --incoming`).
    #[error("{0}")]
    Migration(String),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// (vmm-sys-util's signal error implements Display but not `std::error::Error`, so it
    /// is kept as a field, not a source.)
    #[error("blocking signals: {0}")]
    BlockSignals(vmm_sys_util::signal::Error),
    #[error("spawning a vCPU thread: {0}")]
    Spawn(#[source] vcpu::SpawnError),
    #[error(transparent)]
    Sched(#[from] ThreadError),
    #[error(transparent)]
    Qmp(#[from] control::ServerError),
    #[error(transparent)]
    Metrics(#[from] control::MetricsError),
    #[error(transparent)]
    Monitor(#[from] control::HmpError),
    /// The VM's cgroup (`--cgroup on` or a tuning option) could not be made or joined.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The same, named after the option that needs the cgroup.
    #[error("{option} needs a cgroup of the VM's own: {source}")]
    CgroupFor {
        option: &'static str,
        source: CgroupError,
    },
}

/// How to build: where the guest's serial output goes, and whether the VM is a migration's
/// destination (`--incoming`: its disks are opened without their locks, which the source
/// still holds; they are taken when the migration completes).
pub struct BuildOptions {
    pub serial: SerialOutput,
    pub incoming: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            serial: SerialOutput::Stdout,
            incoming: false,
        }
    }
}

/// A built VM, ready to run.
pub struct Vmm {
    pub config: VmConfig,
    pub host: KvmHost,
    /// Warnings for the user (overcommit, ...), printed by the front end.
    pub warnings: Vec<String>,
    /// The VM and its RAM, held for the VM's lifetime (vCPU fds and memory slots need them);
    /// the VM is declared first so that it is dropped first. Every vCPU thread holds the
    /// RAM too (`vcpu::thread::VcpuShared`), so it stays mapped until the last of them ends.
    /// The emulator thread creates hot-plugged vCPUs on it.
    vm: Vm,
    ram: Arc<GuestRam>,
    bus: Arc<Bus>,
    vcpus: Vec<VcpuFd>,
    /// The hot-added vCPUs a restore created, with their slots: `run` starts them beside
    /// the boot vCPUs (`vcpus`, whose slot is their position).
    restored_vcpus: Vec<(u32, VcpuFd)>,
    /// The vCPU slots a restore gave back (ids and QOM paths as saved), which the running
    /// VM starts from; a boot vCPU not among them (ejected when saved) parks at once.
    restored_slots: Option<CpuSlots>,
    /// The boot MSRs, which a hot-plugged vCPU gets too.
    boot_msrs: Arc<[(u32, u64)]>,
    /// Raises the ACPI SCI (IRQ 9): the power button of `system_powerdown`.
    sci: EventFd,
    pub boot_entry: BootEntry,
    /// The CPU model as expanded and filtered for this host (`plan`), the topology and the
    /// boot vCPUs' CPUID tables; a hot-plugged vCPU's table is made from them when it is
    /// plugged (`VmCpuTables::slot_table`), the same a boot vCPU in its slot gets.
    pub cpu_tables: VmCpuTables,
    /// The guest NUMA layout (empty without `--numa`) with each node's host binding.
    pub numa: GuestNuma,
    /// The VM's own cgroup (`host::vmcgroup`), `None` with `--cgroup off` or when `auto`
    /// found none to make. Removed when the Vmm is dropped (also if a vCPU thread that
    /// would not stop still holds it).
    cgroup: Option<Arc<VmCgroup>>,
    /// The migration parameters and capabilities the VM starts with: QEMU's defaults, or
    /// what `migrate-set-parameters` / `migrate-set-capabilities` set while an
    /// `--incoming` VM waited (the announce parameters apply to its own arrival).
    pub(crate) migration_settings: (
        crate::migration::MigrationParameters,
        crate::migration::MigrationCapabilities,
    ),
    /// The NICs' self-announcement still running (after a migration, announce-self).
    pub(crate) announcer: crate::devices::virtio::announce::Announcer,
    /// The virtio transports in slot order (disks first).
    pub virtio: Vec<VirtioHandle>,
    /// The balloon's state shared with its device (target, actual), when it has one.
    pub balloon: Option<Arc<BalloonShared>>,
    /// The virtio devices' I/O threads (stopped and joined when dropped).
    _virtio_workers: Vec<Worker>,
    /// `--incoming`: the socket the migration source connects to; `run` receives the VM
    /// through it before any vCPU runs.
    incoming: Option<crate::migration::Listener>,
}

impl Drop for Vmm {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.remove() {
                eprintln!("rvmm: warning: {e}");
            }
        }
    }
}

/// The built-in probe guest's image.
const PROBE_NAME: &str = "probe.elf (built in)";

impl Vmm {
    /// Builds the VM described by `config`.
    pub fn build(config: VmConfig, options: BuildOptions) -> Result<Vmm, VmmError> {
        config.validate()?;
        let host = KvmHost::open()?;
        // The host's CPUs, NUMA nodes and memory, each read once when first checked below.
        let host_facts = Host::real();
        let mut warnings = Vec::new();

        // Host limits, and what the host gives the guest's CPUs and memory.
        warnings.extend(limits::vcpus(&config.smp, host.max_vcpus, host.nr_vcpus)?);
        warnings.extend(limits::pinning(&config.pinning, &host_facts)?);
        let cpu_tables = cpu_tables(&config, &host, &mut warnings)?;
        let (numa, backing_plan) = memory_plan(&config, &host_facts, &mut warnings)?;
        warnings.extend(limits::guest_memory(
            config.memory,
            &backing_plan,
            host_facts.memory(),
        )?);

        // The VM's cgroup, joined before guest memory is touched; an error from here on
        // drops it, which removes it.
        let cgroup = vm_cgroup(&config, &numa, &mut warnings)?;

        // The virtio devices (disks opened and locked) before anything big is made.
        let (devices, balloon) =
            virtio_devices(&config, &backing_plan, options.incoming, &mut warnings)?;

        // Guest memory, then the VM with it.
        let (ram, map_warnings) = GuestRam::with_backing(&backing_plan, &mut prealloc_progress)?;
        warnings.extend(map_warnings);
        let ram = Arc::new(ram);
        let vm = create_vm(&host, &ram, &config)?;

        let debug_exit = config.machine.debug_exit_for(&config.boot) == Switch::On;
        let hotplug = CpuHotplug::new(cpu_tables.topology.apic_ids(), config.smp.cpus);
        let virtio_slots = devices.len() as u32;
        let Devices {
            bus,
            sci,
            virtio,
            workers: virtio_workers,
        } = create_devices(&vm, &ram, options.serial, debug_exit, hotplug, devices)?;
        let boot_entry = load_firmware_and_kernel(&config, &cpu_tables, &numa, &ram, virtio_slots)?;
        let boot_msrs = msr::boot_msrs(&host.msr_index_list);
        let vcpus = create_vcpus(&vm, &cpu_tables, &boot_msrs, &boot_entry)?;

        Ok(Vmm {
            config,
            host,
            warnings,
            vm,
            ram,
            bus,
            vcpus,
            restored_vcpus: Vec::new(),
            restored_slots: None,
            boot_msrs: Arc::from(boot_msrs),
            sci,
            boot_entry,
            cpu_tables,
            numa,
            cgroup,
            migration_settings: Default::default(),
            announcer: Default::default(),
            virtio,
            balloon,
            _virtio_workers: virtio_workers,
            incoming: None,
        })
    }

    /// Makes `run` wait for an incoming migration on `listener` (bound before the build)
    /// and take the VM over from it before anything runs (docs/migration.md).
    pub fn set_incoming(&mut self, listener: crate::migration::Listener) {
        self.incoming = Some(listener);
    }

    /// The NICs as announce-self names them (`netN` in `--net` order, and the tap a
    /// `tap=NAME` gave), with their transports.
    pub(crate) fn announce_targets(&self) -> Vec<crate::devices::virtio::announce::AnnounceTarget> {
        let nics = self
            .virtio
            .iter()
            .filter(|h| h.device_id == virtio_bindings::virtio_ids::VIRTIO_ID_NET);
        nics.zip(&self.config.nets)
            .enumerate()
            .map(
                |(i, (h, net))| crate::devices::virtio::announce::AnnounceTarget {
                    name: format!("net{i}"),
                    tap: net.tap.clone(),
                    transport: h.transport.clone(),
                },
            )
            .collect()
    }

    /// The VM's cgroup, when it has one.
    pub fn cgroup(&self) -> Option<&Arc<VmCgroup>> {
        self.cgroup.as_ref()
    }

    /// Runs the VM until it ends; see [`RunOptions`].
    pub fn run(&mut self, options: RunOptions) -> Result<VmOutcome, VmmError> {
        run::run(self, options)
    }
}

/// Every boot vCPU's CPUID table (the same tables `rvmm run --dry-run --show-cpuid`
/// prints), and the CPU model's warnings.
fn cpu_tables(
    config: &VmConfig,
    host: &KvmHost,
    warnings: &mut Vec<String>,
) -> Result<VmCpuTables, VmmError> {
    let tables = crate::vcpu::cpuid::tables_for(config, &host.cpu_support, &host.identity)?;
    warnings.extend(tables.plan.warnings.iter().cloned());
    Ok(tables)
}

/// The VM's cgroup per `--cgroup`: made and joined (`host::vmcgroup`) unless `off`; under
/// `auto` without a tuning option only where the host lets rvmm (root, a writable cpu
/// controller), and a failure is a warning (the VM runs in the cgroup it started in);
/// otherwise a failure is an error. cpuset.mems are the host nodes guest NUMA nodes are
/// bound to (`--numa ... host-nodes`), else the parent's.
fn vm_cgroup(
    config: &VmConfig,
    numa: &GuestNuma,
    warnings: &mut Vec<String>,
) -> Result<Option<Arc<VmCgroup>>, VmmError> {
    let cg = &config.cgroup;
    if cg.switch == CgroupSwitch::Off {
        return Ok(None);
    }
    let required = cg.switch == CgroupSwitch::On
        || cg.parent.is_some()
        || config.cputune.is_set()
        || config.memtune.hard_limit.is_some();
    let fs = HostFs::real();
    if !required && !vmcgroup::host_allows(&fs, cg.parent.as_deref()) {
        return Ok(None);
    }
    let mut mems: Vec<u32> = numa
        .nodes
        .iter()
        .filter_map(|n| n.host.as_ref())
        .flat_map(|h| h.nodes.iter().copied())
        .collect();
    mems.sort_unstable();
    mems.dedup();
    let spec = CgroupSpec {
        name: config.name.as_deref(),
        parent: cg.parent.as_deref(),
        cputune: config.cputune.clone(),
        memory_limit: config.memtune.hard_limit,
        mems: (!mems.is_empty()).then_some(mems),
    };
    let made = VmCgroup::create(&fs, &spec).and_then(|(group, found)| {
        group.enter()?;
        Ok((group, found))
    });
    match made {
        Ok((group, found)) => {
            warnings.extend(found);
            Ok(Some(Arc::new(group)))
        }
        Err(e) if !required => {
            warnings.push(format!(
                "{e}; the VM runs without a cgroup of its own (--cgroup auto)"
            ));
            Ok(None)
        }
        Err(e @ CgroupError::ParentMissing { .. }) => Err(e.into()),
        Err(e) => Err(
            match first_tuning_option(&config.cputune, &config.memtune, cg) {
                Some((option, _)) => VmmError::CgroupFor { option, source: e },
                None => VmmError::Cgroup(e),
            },
        ),
    }
}

/// Guest NUMA and how the host backs guest RAM (pools, KSM, THP, host nodes).
fn memory_plan(
    config: &VmConfig,
    host: &Host,
    warnings: &mut Vec<String>,
) -> Result<(GuestNuma, BackingPlan), VmmError> {
    let numa = config.numa.resolve(&config.smp, config.memory)?;
    warnings.extend(numa.warnings.iter().cloned());
    let mem_path = match &config.memory_backing.mem_path {
        Some(dir) => Some(backing::probe_mem_path(dir)?),
        None => None,
    };
    let (plan, backing_warnings) = backing::plan(
        config.memory,
        &config.memory_backing,
        &numa,
        host,
        mem_path.as_ref(),
    )?;
    warnings.extend(backing_warnings);
    Ok((numa, plan))
}

/// The VM with guest RAM in its memory slots, the in-kernel irqchip and, per `--machine
/// pit=`, the PIT.
fn create_vm(host: &KvmHost, ram: &Arc<GuestRam>, config: &VmConfig) -> Result<Vm, VmmError> {
    let slots = ram.regions().map(|(range, host_addr)| RamSlot {
        guest_addr: range.base,
        size: range.size,
        host_addr,
    });
    let options = MachineOptions {
        pit: config.machine.pit_for(&config.boot),
    };
    // SAFETY: the slots are `ram`'s live mappings, which the Vmm keeps until after the VM
    // (it drops `_vm` before `ram`, and each vCPU thread holds `ram` until it ends).
    Ok(unsafe { Vm::new(&host.kvm, slots, options) }?)
}

/// The virtio devices in slot order: the disks (`--disk`, opened and locked), the NICs
/// (`--net`, their taps taken over, opened or created; a created tap's name is told in
/// `notes`), then the balloon (with its first target, and its state for the controller).
/// With `incoming` (a migration's destination) disks are opened unlocked and named taps
/// are only checked: the source holds both until the handover.
#[allow(clippy::type_complexity)]
fn virtio_devices(
    config: &VmConfig,
    backing: &BackingPlan,
    incoming: bool,
    notes: &mut Vec<String>,
) -> Result<(Vec<Box<dyn VirtioDevice>>, Option<Arc<BalloonShared>>), VmmError> {
    let mut devices: Vec<Box<dyn VirtioDevice>> = Vec::new();
    for disk in &config.disks {
        devices.push(Box::new(if incoming {
            Block::open_unlocked(disk)?
        } else {
            Block::open(disk)?
        }));
    }
    // Inherited taps (`fd=N`) are taken before rvmm opens any tap of its own, so a number
    // given by the user cannot name one of rvmm's.
    let mut inherited = config
        .nets
        .iter()
        .map(|net| net.fd.map(Tap::from_fd).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    for (i, net) in config.nets.iter().enumerate() {
        let tap = match (inherited[i].take(), &net.tap) {
            (Some(tap), _) => tap,
            // The source holds it until the handover (a tap takes one process).
            (None, Some(name)) if incoming => Tap::detached(name)?,
            (None, name) => Tap::open(name.as_deref())?,
        };
        if tap.created() {
            notes.push(format!(
                "--net tap: NIC {i} ({}) is on tap {}, created by rvmm and gone when it exits",
                net.mac,
                tap.name()
            ));
        }
        devices.push(Box::new(Net::new(Box::new(TapIo(tap)), net.mac.0)));
    }
    let mut balloon = None;
    if let Some(b) = &config.balloon {
        let shared = Arc::new(BalloonShared::default());
        if let Some(initial) = b.initial_memory {
            let pages = config.memory.saturating_sub(initial) >> 12;
            shared.set_target(u32::try_from(pages).unwrap_or(u32::MAX));
        }
        let give_back = GiveBack::new(backing.shared, backing.huge_page());
        devices.push(Box::new(Balloon::new(b, give_back, shared.clone())));
        balloon = Some(shared);
    }
    Ok((devices, balloon))
}

/// A tap as virtio-net's frame pipe.
struct TapIo(Tap);

impl FrameIo for TapIo {
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.recv(buf)
    }
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.0.send(frame)
    }
    fn fd(&self) -> std::os::unix::io::RawFd {
        std::os::unix::io::AsRawFd::as_raw_fd(&self.0)
    }
    fn offloads(&self) -> u32 {
        self.0.offloads()
    }
    fn set_offloads(&mut self, flags: u32) -> std::io::Result<()> {
        self.0.set_offloads(flags)
    }
    fn name(&self) -> String {
        self.0.name().to_string()
    }
    fn release_host(&mut self) {
        self.0.detach();
    }
    fn take_host(&mut self) -> Result<(), String> {
        self.0.attach().map_err(|e| e.to_string())
    }
}

/// What `create_devices` makes.
struct Devices {
    bus: Arc<Bus>,
    sci: EventFd,
    virtio: Vec<VirtioHandle>,
    workers: Vec<Worker>,
}

/// The device bus (COM1 on its irqfd, the PM registers, GPE0 and the CPU hotplug block,
/// isa-debug-exit if wanted, the virtio-mmio transports in slot order, each with its
/// ioeventfd, irqfd and I/O thread) and the SCI's irqfd.
fn create_devices(
    vm: &Vm,
    ram: &GuestRam,
    serial: SerialOutput,
    debug_exit: bool,
    cpu_hotplug: CpuHotplug,
    virtio_devices: Vec<Box<dyn VirtioDevice>>,
) -> Result<Devices, VmmError> {
    let serial_irq = vm.irqfd(IrqLine::Com1)?;
    let sci = vm.irqfd(IrqLine::Sci)?;
    let mut bus = Bus::new(com1(serial_irq, serial), debug_exit, cpu_hotplug);
    let mut workers = Vec::new();
    let mut handles = Vec::new();
    for (slot, device) in (0u32..).zip(virtio_devices) {
        let base = virtio::slot_base(slot);
        let device_id = device.device_id();
        let transport = Arc::new(std::sync::Mutex::new(MmioTransport::new(
            device,
            ram.memory().clone(),
        )));
        let notify = vm.ioeventfd_mmio(base + reg::QUEUE_NOTIFY)?;
        let irq = vm.irqfd_gsi(virtio::slot_irq(slot))?;
        let io = |source| VmmError::Io {
            what: "starting a virtio device thread",
            source,
        };
        let wake = notify.try_clone().map_err(io)?;
        handles.push(VirtioHandle {
            slot,
            device_id,
            transport: transport.clone(),
            irq: irq.try_clone().map_err(io)?,
            notify: notify.try_clone().map_err(io)?,
        });
        workers.push(
            Worker::spawn(format!("virtio-{slot}"), transport.clone(), notify, irq).map_err(io)?,
        );
        bus.add_virtio(VirtioMmio {
            base,
            transport,
            notify: wake,
        });
    }
    Ok(Devices {
        bus: Arc::new(bus),
        sci,
        virtio: handles,
        workers,
    })
}

/// The guest's command line: `--append`, and with `--machine virtio-cmdline=on` each virtio
/// device's `virtio_mmio.device=` in slot order (config::machine says why it is opt-in).
pub fn guest_cmdline(config: &VmConfig) -> String {
    let mut line = match &config.boot {
        BootSource::Probe { cmdline, .. } | BootSource::Kernel { cmdline, .. } => cmdline.clone(),
    };
    if config.machine.virtio_cmdline_on() {
        let count: usize = config.virtio_devices().iter().map(|(_, n)| n).sum();
        for slot in 0..count as u32 {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&virtio::cmdline_device(slot));
        }
    }
    line
}

/// The ACPI tables (MADT, SRAT, SLIT, DSDT, ...) and the kernel (or the probe) in guest RAM.
fn load_firmware_and_kernel(
    config: &VmConfig,
    cpu_tables: &VmCpuTables,
    numa: &GuestNuma,
    ram: &GuestRam,
    virtio_slots: u32,
) -> Result<BootEntry, VmmError> {
    let apic_ids = cpu_tables.topology.apic_ids();
    let platform = AcpiPlatform {
        cpus: apic_ids
            .iter()
            .enumerate()
            .map(|(i, &apic_id)| AcpiCpu {
                uid: i as u32,
                apic_id,
                enabled: (i as u32) < config.smp.cpus,
                node: numa.cpu_nodes.get(i).copied(),
            })
            .collect(),
        // QEMU's SRAT ranges for the nodes laid out back to back; no hotplug region.
        memory_affinity: qemu_memory_affinity(
            &numa.node_sizes(),
            config.memory.min(MMIO_GAP_START),
            None,
        )?,
        distances: numa.flat_distances(),
        oem_id: *b"RVMM  ",
        virtio_mmio: (0..virtio_slots)
            .map(|slot| AcpiVirtioMmio {
                slot,
                base: virtio::slot_base(slot) as u32,
                size: virtio::VIRTIO_MMIO_SIZE as u32,
                gsi: virtio::slot_irq(slot),
            })
            .collect(),
    };
    let tables = acpi::build(&platform, ACPI_START)?;
    ram.write(ACPI_START, &tables.bytes)?;
    let cmdline = &guest_cmdline(config);
    let boot_entry = match &config.boot {
        BootSource::Probe { initrd, .. } => boot::load(
            ram,
            &BootImage {
                kernel: ImageSource::Bytes {
                    bytes: crate::probe::image::PROBE_ELF,
                    name: PROBE_NAME,
                },
                initrd: initrd.as_deref(),
                cmdline,
            },
            tables.rsdp_address(),
        )?,
        BootSource::Kernel { kernel, initrd, .. } => boot::load(
            ram,
            &BootImage {
                kernel: ImageSource::open("--kernel", kernel).map_err(BootError::from)?,
                initrd: initrd.as_deref(),
                cmdline,
            },
            tables.rsdp_address(),
        )?,
    };
    Ok(boot_entry)
}

/// The vCPUs present at boot: KVM's vCPU id is the initial APIC ID; id 0 is the boot CPU.
fn create_vcpus(
    vm: &Vm,
    cpu_tables: &VmCpuTables,
    boot_msrs: &[(u32, u64)],
    boot_entry: &BootEntry,
) -> Result<Vec<VcpuFd>, VmmError> {
    let mut vcpus = Vec::with_capacity(cpu_tables.vcpus.len());
    for (index, table) in cpu_tables.vcpus.iter().enumerate() {
        let fd = vm.create_vcpu(table.apic_id)?;
        vcpu::configure(
            &fd,
            &VcpuSetup {
                index: index as u32,
                cpuid: &table.entries,
                msrs: boot_msrs,
                boot: (index == 0).then_some(boot_entry),
            },
        )?;
        vcpus.push(fd);
    }
    Ok(vcpus)
}

/// Guests at least this large get a preallocation progress line on stderr.
const PREALLOC_REPORT_MIN: u64 = 1 << 30;

/// Reports preallocation of large guests on stderr: a start line, a percentage that
/// updates in place on a terminal, and the time it took.
fn prealloc_progress(event: PreallocEvent) {
    use crate::config::size::format_size;
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr();
    let tty = err.is_terminal();
    match event {
        PreallocEvent::Start { total, threads } if total >= PREALLOC_REPORT_MIN => {
            let (size, s) = (format_size(total), if threads == 1 { "" } else { "s" });
            let _ = writeln!(
                err,
                "rvmm: preallocating {size} of guest memory on {threads} thread{s}"
            );
        }
        PreallocEvent::Progress { done, total } if total >= PREALLOC_REPORT_MIN && tty => {
            let _ = write!(err, "\rrvmm: preallocated {}%", done * 100 / total.max(1));
        }
        PreallocEvent::Done { total, elapsed, .. } if total >= PREALLOC_REPORT_MIN => {
            let clear = if tty { "\r" } else { "" };
            let (size, secs) = (format_size(total), elapsed.as_secs_f64());
            let _ = writeln!(err, "{clear}rvmm: preallocated {size} in {secs:.1} s");
        }
        _ => {}
    }
}
