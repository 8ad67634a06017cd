//! VmConfig, the one internal description of a VM, and the front ends that build it
//! (size and key=value grammars, `--smp`, `--cpu`, `--numa`, memory options, libvirt XML).
//!
//! Front ends parse user text into VmConfig and reject bad input with an error naming the
//! option, the value and the rule; nothing here touches KVM or the host. Checks that need
//! the host (vCPU limits, free memory) happen when the VM is built.

pub mod announce;
pub mod balloon;
pub mod cpu;
pub mod cputune;
pub mod disk;
pub mod flags;
pub mod libvirt;
pub mod machine;
pub mod memory;
pub mod metrics;
pub mod name;
pub mod net;
pub mod numa;
pub mod pinning;
pub mod size;
pub mod smp;

use std::path::PathBuf;

use thiserror::Error;

pub use cpu::CpuConfig;
pub use machine::MachineConfig;
pub use memory::{MemoryBacking, MemoryConfig};
pub use numa::{GuestNuma, NumaConfig};
pub use pinning::PinningConfig;
pub use smp::SmpConfig;

/// Smallest guest RAM we build a machine with: the boot structures, ACPI tables and a
/// kernel need room below 1 MiB and above it.
pub const MIN_MEMORY: u64 = 2 << 20;

/// Largest guest RAM: 4 PiB less 1 GiB, so that RAM and the 1 GiB MMIO hole below 4 GiB
/// (RAM past 3 GiB is mapped from 4 GiB up) end within x86-64's largest physical address
/// width, 52 bits. Sizes near 2^64 would otherwise wrap the guest address arithmetic.
pub const MAX_MEMORY: u64 = (1 << 52) - (1 << 30);

/// How [`MAX_MEMORY`] is named in errors.
pub const MAX_MEMORY_RULE: &str = "the maximum of 4 PiB less 1 GiB (4503598553628672 bytes): \
     guest RAM and the 1 GiB MMIO hole below 4 GiB must fit in x86-64's 52-bit physical \
     addresses";

/// What the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// The built-in probe guest; `cmdline` selects its mode (`mode=busy`, ...). An
    /// `initrd` is loaded into guest RAM as a PVH module (the probe ignores it; tests use
    /// it to fill guest memory with known content).
    Probe {
        cmdline: String,
        initrd: Option<PathBuf>,
    },
    /// A Linux kernel: bzImage (Linux boot protocol) or ELF vmlinux (PVH).
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
}

/// Everything needed to build and run one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// The VM's name (`--name`), used for thread names and the control socket.
    pub name: Option<String>,
    pub boot: BootSource,
    /// vCPUs at boot, maxcpus and the sockets/dies/cores/threads layout (`--smp`).
    pub smp: SmpConfig,
    /// The CPU model and feature changes (`--cpu`).
    pub cpu: CpuConfig,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Where the VM's threads may run (`--vcpu-pin`, `--cpuset`, `--emulator-pin`).
    pub pinning: PinningConfig,
    /// The QMP control socket (`--qmp unix:PATH`, or `--name` under the runtime directory).
    pub qmp: Option<PathBuf>,
    /// Where the Prometheus endpoint listens (`--metrics tcp:HOST:PORT | unix:PATH`).
    pub metrics: Option<metrics::MetricsAddress>,
    /// How the host backs guest RAM (`-m SIZE,hugepages=on,...`).
    pub memory_backing: MemoryBacking,
    /// Guest NUMA nodes and distances (`--numa`), as given; empty for no NUMA.
    pub numa: NumaConfig,
    /// Machine properties (`--machine pit=on|off`).
    pub machine: MachineConfig,
    /// CPU shares and bandwidth for the VM's cgroups (`--cpu-shares`, `--cpu-quota`).
    pub cputune: cputune::CpuTune,
    /// The hard memory limit (`--memory-limit`).
    pub memtune: cputune::MemTune,
    /// Whether and where the VM gets a cgroup (`--cgroup`, `--cgroup-parent`).
    pub cgroup: cputune::CgroupConfig,
    /// virtio-blk disks (`--disk`), in virtio-mmio slot order.
    pub disks: Vec<disk::DiskConfig>,
    /// virtio-net NICs (`--net`), in virtio-mmio slot order after the disks.
    pub nets: Vec<net::NetConfig>,
    /// The virtio-balloon (`--balloon`; a libvirt domain's `<memballoon>`), after the other
    /// virtio devices.
    pub balloon: Option<balloon::BalloonConfig>,
}

/// Why a configuration is not acceptable on its own (host limits are checked later).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("-m: guest memory must be at least {min} MiB (got {got} bytes)", min = MIN_MEMORY >> 20)]
    MemoryTooSmall { got: u64 },
    #[error("-m: guest memory ({got} bytes) exceeds {MAX_MEMORY_RULE}")]
    MemoryTooLarge { got: u64 },
    #[error("-m: guest memory ({got} bytes) must be a multiple of 4 KiB")]
    MemoryUnaligned { got: u64 },
    #[error(transparent)]
    MemoryOption(#[from] memory::MemoryOptionError),
    #[error(transparent)]
    Numa(#[from] numa::NumaError),
    #[error(transparent)]
    Pinning(#[from] pinning::PinningError),
    #[error(transparent)]
    Cputune(#[from] cputune::CputuneError),
    #[error(transparent)]
    Balloon(#[from] balloon::BalloonOptionError),
    #[error("{count} virtio devices ({what}); at most {VIRTIO_SLOTS}, one virtio-mmio slot each")]
    TooManyVirtio { count: usize, what: String },
}

/// virtio-mmio transports a VM has (devices::virtio::VIRTIO_MMIO_SLOTS, QEMU microvm's 8).
pub const VIRTIO_SLOTS: usize = 8;

/// Default guest RAM, as QEMU's (128 MiB).
pub const DEFAULT_MEMORY: u64 = 128 << 20;

impl Default for VmConfig {
    /// The probe guest with QEMU's defaults: 1 vCPU, qemu64, 128 MiB.
    fn default() -> Self {
        VmConfig {
            name: None,
            boot: BootSource::Probe {
                cmdline: String::new(),
                initrd: None,
            },
            smp: SmpConfig::default(),
            cpu: CpuConfig::default(),
            memory: DEFAULT_MEMORY,
            memory_backing: MemoryBacking::default(),
            numa: NumaConfig::default(),
            pinning: PinningConfig::default(),
            qmp: None,
            metrics: None,
            machine: MachineConfig::default(),
            cputune: Default::default(),
            memtune: Default::default(),
            cgroup: Default::default(),
            disks: Vec::new(),
            nets: Vec::new(),
            balloon: None,
        }
    }
}

impl VmConfig {
    /// Checks the rules that need no host knowledge.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.memory < MIN_MEMORY {
            return Err(ConfigError::MemoryTooSmall { got: self.memory });
        }
        if self.memory > MAX_MEMORY {
            return Err(ConfigError::MemoryTooLarge { got: self.memory });
        }
        if self.memory % 4096 != 0 {
            return Err(ConfigError::MemoryUnaligned { got: self.memory });
        }
        self.pinning.validate(self.smp.maxcpus)?;
        MemoryConfig {
            size: self.memory,
            backing: self.memory_backing.clone(),
        }
        .validate()?;
        self.numa.resolve(&self.smp, self.memory)?;
        cputune::validate(&self.cputune, &self.memtune, &self.cgroup, self.memory)?;
        if let Some(b) = &self.balloon {
            b.validate(self.memory)?;
        }
        let virtio = self.virtio_devices();
        let count = virtio.iter().map(|(_, n)| n).sum::<usize>();
        if count > VIRTIO_SLOTS {
            let what = virtio
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ConfigError::TooManyVirtio { count, what });
        }
        Ok(())
    }

    /// The virtio devices by kind, in slot order (disks, then ...): what `validate` counts
    /// against the slots.
    pub fn virtio_devices(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("--disk", self.disks.len()),
            ("--net", self.nets.len()),
            ("--balloon", usize::from(self.balloon.is_some())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(memory: u64) -> VmConfig {
        VmConfig {
            memory,
            ..Default::default()
        }
    }

    #[test]
    fn validate_rules() {
        assert_eq!(probe(128 << 20).validate(), Ok(()));
        assert_eq!(
            probe(0).validate().unwrap_err().to_string(),
            "-m: guest memory must be at least 2 MiB (got 0 bytes)"
        );
        assert_eq!(
            probe((128 << 20) + 1).validate().unwrap_err(),
            ConfigError::MemoryUnaligned {
                got: (128 << 20) + 1
            }
        );
        assert_eq!(
            probe(u64::MAX).validate().unwrap_err().to_string(),
            "-m: guest memory (18446744073709551615 bytes) exceeds the maximum of 4 PiB less \
             1 GiB (4503598553628672 bytes): guest RAM and the 1 GiB MMIO hole below 4 GiB \
             must fit in x86-64's 52-bit physical addresses"
        );
        assert_eq!(probe(MAX_MEMORY).validate(), Ok(()));
        let mut c = probe(128 << 20);
        c.numa = NumaConfig::parse(&["node,mem=64M"]).unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "--numa: total memory for NUMA nodes (0x4000000) should equal RAM size -m (0x8000000)"
        );
        let mut c = probe(129 << 20);
        c.memory_backing = memory::parse_memory("2G,hugepages=on,hugepage-size=2M")
            .unwrap()
            .backing;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "-m: the guest memory (129M) is not a multiple of the 2M huge page size"
        );
    }
}
