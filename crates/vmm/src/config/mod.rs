//! VmConfig, the one internal description of a VM, and the front ends that build it
//! (size and key=value grammars, `--smp`, `--cpu`, `--numa`, memory options, libvirt XML).
//!
//! Front ends parse user text into VmConfig and reject bad input with an error naming the
//! option, the value and the rule; nothing here touches KVM or the host. Checks that need
//! the host (vCPU limits, free memory) happen when the VM is built.

pub mod cpu;
pub mod cpulist;
pub mod pinning;
pub mod size;
pub mod smp;

use std::path::PathBuf;

use thiserror::Error;

pub use cpu::CpuConfig;
pub use pinning::PinningConfig;
pub use smp::SmpConfig;

/// Smallest guest RAM we build a machine with: the boot structures, ACPI tables and a
/// kernel need room below 1 MiB and above it.
pub const MIN_MEMORY: u64 = 2 << 20;

/// What the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// The built-in probe guest; `cmdline` selects its mode (`mode=busy`, ...).
    Probe { cmdline: String },
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
}

/// Why a configuration is not acceptable on its own (host limits are checked later).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("-m: guest memory must be at least {min} MiB (got {got} bytes)", min = MIN_MEMORY >> 20)]
    MemoryTooSmall { got: u64 },
    #[error("-m: guest memory ({got} bytes) must be a multiple of 4 KiB")]
    MemoryUnaligned { got: u64 },
    #[error("--initrd: an initrd needs --kernel (the probe guest takes none)")]
    InitrdWithoutKernel,
    #[error(transparent)]
    Pinning(#[from] pinning::PinningError),
}

/// Default guest RAM, as QEMU's (128 MiB).
pub const DEFAULT_MEMORY: u64 = 128 << 20;

impl Default for VmConfig {
    /// The probe guest with QEMU's defaults: 1 vCPU, qemu64, 128 MiB.
    fn default() -> Self {
        VmConfig {
            name: None,
            boot: BootSource::Probe {
                cmdline: String::new(),
            },
            smp: SmpConfig::default(),
            cpu: CpuConfig::default(),
            memory: DEFAULT_MEMORY,
            pinning: PinningConfig::default(),
            qmp: None,
        }
    }
}

impl VmConfig {
    /// Checks the rules that need no host knowledge.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.memory < MIN_MEMORY {
            return Err(ConfigError::MemoryTooSmall { got: self.memory });
        }
        if self.memory % 4096 != 0 {
            return Err(ConfigError::MemoryUnaligned { got: self.memory });
        }
        self.pinning.validate(self.smp.maxcpus)?;
        Ok(())
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
    }
}
