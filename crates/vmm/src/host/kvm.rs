//! /dev/kvm: opening it with errors that say how to fix it, the capabilities rvmm requires
//! and which of them KVM has (`KvmProbe`, what `rvmm host` shows), and what KVM can give a
//! guest (`KvmHost`: supported CPUID, MSR list, vCPU limits), the one reader of these KVM
//! facts for both `rvmm host` and the VM build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kvm_bindings::{
    kvm_device_attr, kvm_msr_entry, Msrs, KVM_MAX_CPUID_ENTRIES, KVM_X86_XCOMP_GUEST_SUPP,
};
use kvm_ioctls::{Cap, Kvm};
use serde::Serialize;
use thiserror::Error;

use crate::cpu::cpuid::CpuidEntry;
use crate::cpu::filter::{tsx_broken, HostCpuSupport};
use crate::cpu::models::expand::HostIdentity;

/// The KVM device, overridable for tests of the "no /dev/kvm" path.
pub const KVM_PATH_ENV: &str = "RVMM_KVM_DEVICE";
/// The default KVM device node.
pub const DEFAULT_KVM_PATH: &str = "/dev/kvm";

/// The stable KVM API version every KVM since 2.6.22 reports.
const KVM_API_VERSION: i32 = 12;

/// Capabilities rvmm cannot run without, and why it needs each.
pub const REQUIRED_CAPS: &[(Cap, &str, &str)] = &[
    (
        Cap::Irqchip,
        "KVM_CAP_IRQCHIP",
        "in-kernel interrupt controllers",
    ),
    (Cap::Pit2, "KVM_CAP_PIT2", "in-kernel timer"),
    (Cap::Irqfd, "KVM_CAP_IRQFD", "device interrupts"),
    (
        Cap::ExtCpuid,
        "KVM_CAP_EXT_CPUID",
        "setting the guest's CPUID",
    ),
    (Cap::UserMemory, "KVM_CAP_USER_MEMORY", "guest RAM"),
    (
        Cap::SetTssAddr,
        "KVM_CAP_SET_TSS_ADDR",
        "VMX real-mode support",
    ),
    (
        Cap::ImmediateExit,
        "KVM_CAP_IMMEDIATE_EXIT",
        "stopping vCPUs promptly",
    ),
];

/// Why KVM cannot be used.
#[derive(Debug, Error)]
pub enum KvmError {
    #[error("{path} does not exist: this host has no KVM. Load the module (modprobe kvm_intel or modprobe kvm_amd), enable virtualization (VT-x/AMD-V) in the firmware, or run on a host that has it")]
    Missing { path: PathBuf },
    #[error("{path}: permission denied. Add your user to the group that owns it (usermod -aG kvm $USER, then log in again) or run as root")]
    Denied { path: PathBuf },
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: KVM API version {got}, rvmm needs {KVM_API_VERSION}")]
    ApiVersion { path: PathBuf, got: i32 },
    #[error("KVM lacks {name} ({why}); this kernel's KVM is too old or restricted for rvmm")]
    MissingCap {
        name: &'static str,
        why: &'static str,
    },
    #[error("KVM_GET_SUPPORTED_CPUID failed: {0}")]
    SupportedCpuid(kvm_ioctls::Error),
    #[error("KVM_GET_MSR_INDEX_LIST failed: {0}")]
    MsrIndexList(kvm_ioctls::Error),
    #[error("the host CPU reports no CPUID leaf 0 or 1")]
    HostCpuid,
}

/// One KVM capability rvmm needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapCheck {
    pub name: &'static str,
    pub why: &'static str,
    pub present: bool,
}

/// What the open KVM device reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmProbe {
    pub api_version: i32,
    pub caps: Vec<CapCheck>,
    /// KVM_CAP_NR_VCPUS.
    pub nr_vcpus: u32,
    /// KVM_CAP_MAX_VCPUS.
    pub max_vcpus: u32,
    /// KVM_CAP_MAX_VCPU_ID (0 when the kernel does not report it).
    pub max_vcpu_id: u32,
}

impl KvmProbe {
    /// The names of the required capabilities KVM lacks.
    pub fn missing(&self) -> Vec<&'static str> {
        self.caps
            .iter()
            .filter(|c| !c.present)
            .map(|c| c.name)
            .collect()
    }
}

impl KvmProbe {
    /// Asks an open KVM for its version, each required capability and the vCPU limits.
    pub fn read(kvm: &Kvm) -> KvmProbe {
        KvmProbe {
            api_version: kvm.get_api_version(),
            caps: REQUIRED_CAPS
                .iter()
                .map(|&(cap, name, why)| CapCheck {
                    name,
                    why,
                    present: kvm.check_extension(cap),
                })
                .collect(),
            nr_vcpus: kvm.get_nr_vcpus() as u32,
            max_vcpus: kvm.get_max_vcpus() as u32,
            max_vcpu_id: kvm.check_extension_int(Cap::MaxVcpuId).max(0) as u32,
        }
    }
}

/// An open /dev/kvm and what it offers.
pub struct KvmHost {
    pub kvm: Kvm,
    pub path: PathBuf,
    pub api_version: i32,
    /// KVM_CAP_NR_VCPUS: the recommended maximum (the host's CPU count).
    pub nr_vcpus: u32,
    /// KVM_CAP_MAX_VCPUS: the hard maximum.
    pub max_vcpus: u32,
    /// KVM_CAP_MAX_VCPU_ID: APIC IDs must stay below this.
    pub max_vcpu_id: u32,
    /// KVM_GET_SUPPORTED_CPUID.
    pub supported_cpuid: Vec<CpuidEntry>,
    /// KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves/restores and accepts from userspace.
    pub msr_index_list: Vec<u32>,
    /// What KVM can give a guest CPU, as the CPU-model filter needs it.
    pub cpu_support: HostCpuSupport,
    /// The host CPU's own vendor, family/model/stepping and brand (for `--cpu host`).
    pub identity: HostIdentity,
}

impl std::fmt::Debug for KvmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvmHost")
            .field("path", &self.path)
            .field("nr_vcpus", &self.nr_vcpus)
            .field("max_vcpus", &self.max_vcpus)
            .finish_non_exhaustive()
    }
}

/// The KVM device path: `$RVMM_KVM_DEVICE` or /dev/kvm.
pub fn kvm_path() -> PathBuf {
    std::env::var_os(KVM_PATH_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KVM_PATH))
}

/// Opens the KVM device at `path` read/write; the error says how to fix a missing or
/// forbidden device.
pub fn open_device(path: &Path) -> Result<Kvm, KvmError> {
    // Open with std first: its error kinds tell missing from denied.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the fd was just opened by us and is a valid open file; ownership moves to
    // `Kvm`, which closes it.
    Ok(unsafe { Kvm::from_raw_fd(file.into_raw_fd()) })
}

fn open_error(path: &Path, e: std::io::Error) -> KvmError {
    match e.kind() {
        std::io::ErrorKind::NotFound => KvmError::Missing {
            path: path.to_path_buf(),
        },
        std::io::ErrorKind::PermissionDenied => KvmError::Denied {
            path: path.to_path_buf(),
        },
        _ => KvmError::Open {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

impl KvmHost {
    /// Opens the KVM device (see [`kvm_path`]) and probes it.
    pub fn open() -> Result<Self, KvmError> {
        Self::open_path(&kvm_path())
    }

    /// Opens the KVM device at `path` and probes it.
    pub fn open_path(path: &Path) -> Result<Self, KvmError> {
        let kvm = open_device(path)?;
        let probe = KvmProbe::read(&kvm);
        if probe.api_version != KVM_API_VERSION {
            return Err(KvmError::ApiVersion {
                path: path.to_path_buf(),
                got: probe.api_version,
            });
        }
        if let Some(c) = probe.caps.iter().find(|c| !c.present) {
            return Err(KvmError::MissingCap {
                name: c.name,
                why: c.why,
            });
        }
        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::SupportedCpuid)?;
        let msrs = kvm.get_msr_index_list().map_err(KvmError::MsrIndexList)?;
        // Kernels that do not report KVM_CAP_MAX_VCPU_ID take IDs below the vCPU maximum.
        let max_vcpu_id = match probe.max_vcpu_id {
            0 => probe.max_vcpus,
            n => n,
        };
        let supported_cpuid = from_kvm(&supported);
        let msr_index_list = msrs.as_slice().to_vec();
        let identity = HostIdentity::from_cpuid(&host_cpuid()).ok_or(KvmError::HostCpuid)?;
        let cpu_support = HostCpuSupport {
            cpuid: supported_cpuid.clone(),
            msr_features: msr_features(&kvm),
            irqchip_in_kernel: true,
            irqchip_split: false,
            tsc_deadline_timer: kvm.check_extension(Cap::TscDeadlineTimer),
            has_msr_arch_capabilities: msr_index_list.contains(&MSR_IA32_ARCH_CAPABILITIES),
            xcomp_guest_supp: xcomp_guest_supp(&kvm),
            tsx_broken: tsx_broken(
                identity.vendor.is_intel(),
                identity.family,
                identity.model,
                identity.stepping,
            ),
        };
        Ok(KvmHost {
            path: path.to_path_buf(),
            api_version: probe.api_version,
            nr_vcpus: probe.nr_vcpus,
            max_vcpus: probe.max_vcpus,
            max_vcpu_id,
            supported_cpuid,
            msr_index_list,
            cpu_support,
            identity,
            kvm,
        })
    }
}

/// IA32_ARCH_CAPABILITIES (SDM Vol. 4, Table 2-2).
const MSR_IA32_ARCH_CAPABILITIES: u32 = 0x10a;

/// The host CPU's leaves 0, 1 and the brand string, read with the CPUID instruction.
pub fn host_cpuid() -> Vec<CpuidEntry> {
    [0u32, 1, 0x8000_0000, 0x8000_0002, 0x8000_0003, 0x8000_0004]
        .iter()
        .map(|&leaf| {
            let r = std::arch::x86_64::__cpuid_count(leaf, 0);
            CpuidEntry {
                function: leaf,
                index: 0,
                flags: 0,
                eax: r.eax,
                ebx: r.ebx,
                ecx: r.ecx,
                edx: r.edx,
            }
        })
        .collect()
}

/// The feature MSRs KVM lists (KVM_GET_MSR_FEATURE_INDEX_LIST) and their values, read on
/// the system fd; MSRs KVM will not read are left out (they support nothing).
fn msr_features(kvm: &Kvm) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    let Ok(list) = kvm.get_msr_feature_index_list() else {
        return out;
    };
    for &index in list.as_slice() {
        let Ok(mut msrs) = Msrs::from_entries(&[kvm_msr_entry {
            index,
            ..Default::default()
        }]) else {
            continue;
        };
        if kvm.get_msrs(&mut msrs) == Ok(1) {
            out.insert(index, msrs.as_slice()[0].data);
        }
    }
    out
}

vmm_sys_util::ioctl_iow_nr!(KVM_GET_DEVICE_ATTR, 0xAE, 0xe2, kvm_device_attr);

/// KVM_GET_DEVICE_ATTR(KVM_X86_XCOMP_GUEST_SUPP) on the system fd: the XSAVE components a
/// guest may use; `None` on kernels without it.
fn xcomp_guest_supp(kvm: &Kvm) -> Option<u64> {
    let mut supp = 0u64;
    let attr = kvm_device_attr {
        group: 0,
        attr: u64::from(KVM_X86_XCOMP_GUEST_SUPP),
        addr: &mut supp as *mut u64 as u64,
        flags: 0,
    };
    // SAFETY: KVM_GET_DEVICE_ATTR on the /dev/kvm fd reads `attr` and writes 8 bytes to
    // `supp`, which outlives the call; the return value is checked.
    let rc = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(kvm, KVM_GET_DEVICE_ATTR(), &attr) };
    (rc == 0).then_some(supp)
}

/// KVM_GET_SUPPORTED_CPUID's table as the `cpu` crate's plain entries.
pub(crate) fn from_kvm(cpuid: &kvm_bindings::CpuId) -> Vec<crate::cpu::cpuid::CpuidEntry> {
    cpuid
        .as_slice()
        .iter()
        .map(|e| crate::cpu::cpuid::CpuidEntry {
            function: e.function,
            index: e.index,
            flags: e.flags,
            eax: e.eax,
            ebx: e.ebx,
            ecx: e.ecx,
            edx: e.edx,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_say_how_to_fix() {
        let p = Path::new("/dev/kvm");
        let denied = open_error(
            p,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(
            denied.to_string(),
            "/dev/kvm: permission denied. Add your user to the group that owns it (usermod -aG kvm $USER, then log in again) or run as root"
        );
        let missing = open_error(p, std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(missing.to_string().starts_with("/dev/kvm does not exist: this host has no KVM. Load the module (modprobe kvm_intel or modprobe kvm_amd)"));
    }

    #[test]
    fn a_missing_device_is_reported_not_panicked() {
        let err = KvmHost::open_path(Path::new("/nonexistent/kvm")).unwrap_err();
        assert!(matches!(err, KvmError::Missing { .. }), "{err}");
    }
}
