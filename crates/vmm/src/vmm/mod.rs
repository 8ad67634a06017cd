//! The VMM: turns a VmConfig into a running KVM guest and runs it to the end.
//!
//! `Vmm::build` reads as the boot recipe — host capabilities → guest RAM → VM and in-kernel
//! irqchip/PIT → devices → ACPI tables → kernel → vCPUs — and creates nothing it cannot
//! clean up: an error at any step drops what was made before it. `Vmm::run` starts the vCPU
//! threads, runs the emulator loop (console, signals) and returns how the VM ended.

mod commands;
mod run;
pub mod term;

use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_fpu, kvm_msr_entry, kvm_pit_config, kvm_userspace_memory_region, Msrs,
    KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{VcpuFd, VmFd};
use thiserror::Error;
use vmm_sys_util::eventfd::EventFd;

use crate::boot::acpi::{self, qemu_memory_affinity, AcpiCpu, AcpiPlatform};
use crate::boot::image::ImageSource;
use crate::boot::{self, BootEntry, BootError, BootImage};
use crate::config::{BootSource, ConfigError, VmConfig};
use crate::cpu::builder::{BuilderError, CpuPlan};
use crate::cpu::msr;
use crate::devices::serial::{com1, SerialSink};
use crate::devices::Bus;
use crate::host::{cpus::CpusError, Host, KvmError, KvmHost};
use crate::memory::backing::{self, BackingError};
use crate::memory::layout::{ACPI_START, COM1_IRQ, MMIO_GAP_START, SCI_IRQ};
use crate::memory::prealloc::PreallocEvent;
use crate::memory::{GuestRam, MemoryError};
use crate::vcpu::VmOutcome;
use crate::{control, host::sched, vcpu::affinity};

pub use run::RunOptions;

/// Where KVM puts the TSS and identity map VMX needs for real mode (3 pages just below the
/// BIOS ROM area at the top of the 32-bit space, inside the MMIO gap).
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;

/// Why a VM could not be built or run.
#[derive(Debug, Error)]
pub enum VmmError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kvm(#[from] KvmError),
    #[error(transparent)]
    Smp(#[from] crate::config::smp::SmpError),
    #[error("-m: {requested} MiB of guest memory exceeds this host's RAM and swap ({host} MiB) and vm.overcommit_memory is {policy}; use less memory, or set vm.overcommit_memory=1 to allow overcommit")]
    MemoryExceedsHost {
        requested: u64,
        host: u64,
        policy: u32,
    },
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
    #[error("ACPI tables: {0}")]
    Acpi(#[from] acpi::AcpiError),
    #[error("{what}: {source}")]
    KvmCall {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("vCPU {vcpu}: KVM accepted {set} of {total} boot MSRs (first refused: {refused:#x})")]
    Msrs {
        vcpu: u32,
        set: usize,
        total: usize,
        refused: u32,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sched(#[from] sched::SchedError),
    #[error(transparent)]
    HostCpus(#[from] CpusError),
    #[error(transparent)]
    Affinity(#[from] affinity::AffinityError),
    #[error(transparent)]
    Qmp(#[from] control::ServerError),
}

fn kvm_call<T>(what: &'static str, r: Result<T, kvm_ioctls::Error>) -> Result<T, VmmError> {
    r.map_err(|source| VmmError::KvmCall { what, source })
}

/// A built VM, ready to run.
pub struct Vmm {
    pub config: VmConfig,
    pub host: KvmHost,
    /// Warnings for the user (overcommit, ...), printed by the front end.
    pub warnings: Vec<String>,
    /// The VM and its RAM, held for the VM's lifetime (vCPU fds and memory slots need them).
    _vm: VmFd,
    _ram: Arc<GuestRam>,
    bus: Arc<Bus>,
    vcpus: Vec<VcpuFd>,
    serial_capture: Option<Arc<Mutex<Vec<u8>>>>,
    serial_marker: Arc<EventFd>,
    /// Raises the ACPI SCI (IRQ 9): the power button of `system_powerdown`.
    sci: EventFd,
    pub boot_entry: BootEntry,
    /// The CPU model as expanded and filtered for this host.
    pub cpu_plan: CpuPlan,
}

/// The built-in probe guest's image.
const PROBE_NAME: &str = "probe.elf (built in)";

impl Vmm {
    /// Builds the VM described by `config`. `capture_serial` sends COM1 output to a buffer
    /// (for the probe) instead of stdout; `echo` also copies it to stdout.
    pub fn build(config: VmConfig, capture_serial: bool, echo: bool) -> Result<Vmm, VmmError> {
        config.validate()?;
        let host = KvmHost::open()?;
        // The host's CPUs, NUMA nodes and memory, each read once when first checked below.
        let host_facts = Host::real();
        let mut warnings = Vec::new();

        // Host limits.
        // QEMU's own limit warnings, with the overcommit ratio added to the first.
        for (i, mut w) in config
            .smp
            .validate_limits(host.max_vcpus, host.nr_vcpus)?
            .into_iter()
            .enumerate()
        {
            if i == 0 && config.smp.cpus > host.nr_vcpus {
                w.push_str(&format!(
                    ": {} vCPUs on {} host CPUs overcommits them {:.1}:1",
                    config.smp.cpus,
                    host.nr_vcpus,
                    config.smp.cpus as f64 / host.nr_vcpus as f64
                ));
            }
            warnings.push(w);
        }
        // Pinning: every host CPU asked for exists, is online and is in our cpuset.
        if config.pinning != crate::config::PinningConfig::default() {
            warnings.extend(affinity::check_plan(&config.pinning, host_facts.cpus()?)?);
        }
        // Every boot vCPU's CPUID table (the same tables `rvmm run --dry-run --show-cpuid` prints).
        let cpu_tables =
            crate::vcpu::cpuid::tables_for(&config, &host.cpu_support, &host.identity)?;
        let cpu_plan = cpu_tables.plan.clone();
        warnings.extend(cpu_plan.warnings.iter().cloned());
        // Guest NUMA and how the host backs guest RAM (pools, KSM, THP, host nodes).
        let numa = config.numa.resolve(&config.smp, config.memory)?;
        warnings.extend(numa.warnings.iter().cloned());
        let mem_path = match &config.memory_backing.mem_path {
            Some(dir) => Some(backing::probe_mem_path(dir)?),
            None => None,
        };
        let (backing_plan, backing_warnings) = backing::plan(
            config.memory,
            &config.memory_backing,
            &numa,
            &host_facts,
            mem_path.as_ref(),
        )?;
        warnings.extend(backing_warnings);
        let hostmem = host_facts.memory();
        let ceiling = hostmem.total + hostmem.swap_total;
        // Huge pages come from their pool, which was checked above.
        if backing_plan.huge_page().is_none() && ceiling > 0 && config.memory > ceiling {
            if hostmem.overcommit_policy != 1 {
                return Err(VmmError::MemoryExceedsHost {
                    requested: config.memory >> 20,
                    host: ceiling >> 20,
                    policy: hostmem.overcommit_policy,
                });
            }
            warnings.push(format!(
                "-m: {} MiB of guest memory overcommits this host ({} MiB of RAM and swap); the guest may be killed if it touches it all",
                config.memory >> 20,
                ceiling >> 20
            ));
        }

        // The VM, guest RAM, then the in-kernel interrupt controllers and timer.
        let vm = kvm_call("KVM_CREATE_VM", host.kvm.create_vm())?;
        kvm_call("KVM_SET_TSS_ADDR", vm.set_tss_address(KVM_TSS_ADDRESS))?;
        kvm_call(
            "KVM_SET_IDENTITY_MAP_ADDR",
            vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDRESS),
        )?;
        let (ram, map_warnings) = GuestRam::with_backing(&backing_plan, &mut prealloc_progress)?;
        warnings.extend(map_warnings);
        let ram = Arc::new(ram);
        for (slot, (range, host_addr)) in ram.regions().enumerate() {
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: range.base,
                memory_size: range.size,
                userspace_addr: host_addr as u64,
            };
            // SAFETY: the region is our live mapping of exactly this size, kept alive by
            // `ram` for as long as the VM exists (Vmm owns both, and drops vm first).
            kvm_call("KVM_SET_USER_MEMORY_REGION", unsafe {
                vm.set_user_memory_region(region)
            })?;
        }
        // The irqchip and PIT come after the memory slots: registering a slot once they exist
        // waits for an RCU grace period in the kernel (~6 ms per start, measured in bench/).
        kvm_call("KVM_CREATE_IRQCHIP", vm.create_irq_chip())?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        kvm_call("KVM_CREATE_PIT2", vm.create_pit2(pit))?;

        // Devices.
        let serial_irq = EventFd::new(libc::EFD_NONBLOCK).map_err(|source| VmmError::Io {
            what: "serial eventfd",
            source,
        })?;
        kvm_call("KVM_IRQFD (COM1)", vm.register_irqfd(&serial_irq, COM1_IRQ))?;
        let sci = EventFd::new(libc::EFD_NONBLOCK).map_err(|source| VmmError::Io {
            what: "SCI eventfd",
            source,
        })?;
        kvm_call("KVM_IRQFD (SCI)", vm.register_irqfd(&sci, SCI_IRQ))?;
        let serial_marker =
            Arc::new(
                EventFd::new(libc::EFD_NONBLOCK).map_err(|source| VmmError::Io {
                    what: "serial eventfd",
                    source,
                })?,
            );
        let (sink, serial_capture) = if capture_serial {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            (
                SerialSink::Capture {
                    buffer: buffer.clone(),
                    marker: serial_marker.clone(),
                    echo,
                },
                Some(buffer),
            )
        } else {
            (SerialSink::Stdout, None)
        };
        let bus = Arc::new(Bus::new(com1(serial_irq, sink)));

        // Firmware tables and the kernel.
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
        };
        let tables = acpi::build(&platform, ACPI_START)?;
        ram.write(ACPI_START, &tables.bytes)?;
        let boot_entry = match &config.boot {
            BootSource::Probe { cmdline, initrd } => boot::load(
                &ram,
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
            BootSource::Kernel {
                kernel,
                initrd,
                cmdline,
            } => boot::load(
                &ram,
                &BootImage {
                    kernel: ImageSource::open("--kernel", kernel).map_err(BootError::from)?,
                    initrd: initrd.as_deref(),
                    cmdline,
                },
                tables.rsdp_address(),
            )?,
        };

        // vCPUs present at boot: KVM's vCPU id is the initial APIC ID; id 0 is the boot CPU.
        let boot_msrs = msr::boot_msrs(&host.msr_index_list);
        let mut vcpus = Vec::with_capacity(config.smp.cpus as usize);
        for (index, vcpu_table) in cpu_tables.vcpus.iter().enumerate() {
            let vcpu = kvm_call("KVM_CREATE_VCPU", vm.create_vcpu(vcpu_table.apic_id as u64))?;
            let table =
                crate::vcpu::cpuid::to_kvm(&vcpu_table.entries).map_err(|e| VmmError::Io {
                    what: "CPUID table",
                    source: std::io::Error::other(e.to_string()),
                })?;
            kvm_call("KVM_SET_CPUID2", vcpu.set_cpuid2(&table))?;
            set_msrs(&vcpu, index as u32, &boot_msrs)?;
            if index == 0 {
                setup_boot_vcpu(&vcpu, &boot_entry)?;
            }
            vcpus.push(vcpu);
        }

        Ok(Vmm {
            config,
            host,
            warnings,
            _vm: vm,
            _ram: ram,
            bus,
            vcpus,
            serial_capture,
            serial_marker,
            sci,
            boot_entry,
            cpu_plan,
        })
    }

    /// The serial output captured so far (when built with `capture_serial`).
    pub fn serial_output(&self) -> Option<Vec<u8>> {
        self.serial_capture
            .as_ref()
            .map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Runs the VM until it ends; see [`RunOptions`].
    pub fn run(&mut self, options: RunOptions) -> Result<VmOutcome, VmmError> {
        run::run(self, options)
    }
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

fn set_msrs(vcpu: &VcpuFd, index: u32, msrs: &[(u32, u64)]) -> Result<(), VmmError> {
    let entries: Vec<kvm_msr_entry> = msrs
        .iter()
        .map(|&(i, data)| kvm_msr_entry {
            index: i,
            data,
            ..Default::default()
        })
        .collect();
    let list = Msrs::from_entries(&entries).map_err(|_| VmmError::Io {
        what: "MSR list",
        source: std::io::Error::other("too many MSRs"),
    })?;
    let set = kvm_call("KVM_SET_MSRS", vcpu.set_msrs(&list))?;
    if set != entries.len() {
        return Err(VmmError::Msrs {
            vcpu: index,
            set,
            total: entries.len(),
            refused: entries[set].index,
        });
    }
    Ok(())
}

fn setup_boot_vcpu(vcpu: &VcpuFd, entry: &BootEntry) -> Result<(), VmmError> {
    let mut sregs = kvm_call("KVM_GET_SREGS", vcpu.get_sregs())?;
    boot::regs::setup_sregs(&mut sregs, entry.mode);
    kvm_call("KVM_SET_SREGS", vcpu.set_sregs(&sregs))?;
    kvm_call(
        "KVM_SET_REGS",
        vcpu.set_regs(&boot::regs::boot_regs(entry.mode, entry.entry)),
    )?;
    // x87 and SSE control words at their power-on values (SDM Vol. 1, 8.1.5 and 10.2.3).
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    kvm_call("KVM_SET_FPU", vcpu.set_fpu(&fpu))?;
    Ok(())
}
