//! Can this host run KVM guests, and how: the CPU's virtualization flags (vmx/svm, the
//! `hypervisor` flag of a nested host), the KVM modules loaded and their parameters
//! (nested, EPT, VPID, NPT), the /dev/kvm node and whether we may open it, the KVM API
//! version, each capability rvmm needs, and the vCPU limits. Read from /proc, /sys and KVM
//! ioctls; opening /dev/kvm and what it reports (`KvmProbe`, the `KvmHost` used to run VMs)
//! are `host::kvm`'s.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[cfg(test)]
use super::kvm::CapCheck;
use super::kvm::{open_device, KvmError, KvmProbe};
use super::sysfs::{parse_bool_param, HostFs};

/// The KVM device node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmDevice {
    pub path: PathBuf,
    pub exists: bool,
    /// Permission bits.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The group's name from /etc/group.
    pub group: Option<String>,
    /// Opening it read/write failed: why, and how to fix it.
    pub error: Option<String>,
}

/// Loaded KVM modules and their parameters (`None`: the module or parameter is absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmModules {
    pub kvm: bool,
    pub kvm_intel: bool,
    pub kvm_amd: bool,
    /// kvm-pvm: KVM on PVM, software nested virtualization without VMX/SVM.
    pub kvm_pvm: bool,
    /// kvm_intel or kvm_amd `nested`.
    pub nested: Option<bool>,
    /// kvm_intel `ept`.
    pub ept: Option<bool>,
    /// kvm_intel `vpid`.
    pub vpid: Option<bool>,
    /// kvm_intel `unrestricted_guest`.
    pub unrestricted_guest: Option<bool>,
    /// kvm_amd `npt`.
    pub npt: Option<bool>,
}

/// The virtualization facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostVirt {
    /// `vmx` in /proc/cpuinfo flags (Intel VT-x).
    pub vmx: bool,
    /// `svm` (AMD-V).
    pub svm: bool,
    /// `hypervisor`: this host is itself a guest.
    pub hypervisor: bool,
    pub modules: KvmModules,
    pub device: KvmDevice,
    /// `None` when the device could not be opened.
    pub kvm: Option<KvmProbe>,
}

/// How KVM works here, in one sentence for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KvmVerdict {
    /// /dev/kvm works with hardware VMX/SVM visible.
    Hardware,
    /// /dev/kvm works through kvm-pvm, without VMX/SVM.
    Pvm,
    /// /dev/kvm works although no VMX/SVM is visible and no kvm-pvm module is loaded.
    NoFlagsButWorks,
    /// /dev/kvm works but lacks capabilities rvmm needs.
    MissingCaps,
    /// /dev/kvm cannot be used.
    Unusable,
}

/// Reads a module's boolean parameter.
fn param(fs: &HostFs, module: &str, name: &str) -> Option<bool> {
    fs.read(&format!("/sys/module/{module}/parameters/{name}"))
        .and_then(|t| parse_bool_param(&t))
}

/// The group name of `gid` in an /etc/group text.
pub fn group_name(etc_group: &str, gid: u32) -> Option<String> {
    etc_group.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[2].parse() == Ok(gid)).then(|| f[0].to_string())
    })
}

impl KvmModules {
    pub fn read(fs: &HostFs) -> KvmModules {
        let loaded = |m: &str| fs.exists(&format!("/sys/module/{m}"));
        KvmModules {
            kvm: loaded("kvm"),
            kvm_intel: loaded("kvm_intel"),
            kvm_amd: loaded("kvm_amd"),
            kvm_pvm: loaded("kvm_pvm"),
            nested: param(fs, "kvm_intel", "nested").or_else(|| param(fs, "kvm_amd", "nested")),
            ept: param(fs, "kvm_intel", "ept"),
            vpid: param(fs, "kvm_intel", "vpid"),
            unrestricted_guest: param(fs, "kvm_intel", "unrestricted_guest"),
            npt: param(fs, "kvm_amd", "npt"),
        }
    }
}

/// Opens `path` and asks KVM for its version, the capabilities rvmm needs and the vCPU
/// limits. The error text says how to fix a missing or forbidden device.
pub fn probe_kvm(path: &Path) -> Result<KvmProbe, KvmError> {
    Ok(KvmProbe::read(&open_device(path)?))
}

impl HostVirt {
    /// Reads everything; `flags` are the host CPU's /proc/cpuinfo flags.
    pub fn read(
        fs: &HostFs,
        flags: &std::collections::BTreeSet<String>,
        kvm_path: &Path,
    ) -> HostVirt {
        let meta = std::fs::metadata(kvm_path).ok();
        let gid = meta.as_ref().map(|m| m.gid());
        let (kvm, error) = match probe_kvm(kvm_path) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.to_string())),
        };
        HostVirt {
            vmx: flags.contains("vmx"),
            svm: flags.contains("svm"),
            hypervisor: flags.contains("hypervisor"),
            modules: KvmModules::read(fs),
            device: KvmDevice {
                path: kvm_path.to_path_buf(),
                exists: meta.is_some(),
                mode: meta.as_ref().map(|m| m.mode() & 0o7777),
                uid: meta.as_ref().map(|m| m.uid()),
                gid,
                group: gid.and_then(|g| group_name(&fs.read("/etc/group").unwrap_or_default(), g)),
                error,
            },
            kvm,
        }
    }

    /// How KVM works here.
    pub fn verdict(&self) -> KvmVerdict {
        match &self.kvm {
            None => KvmVerdict::Unusable,
            Some(p) if !p.missing().is_empty() => KvmVerdict::MissingCaps,
            Some(_) if self.vmx || self.svm => KvmVerdict::Hardware,
            Some(_) if self.modules.kvm_pvm => KvmVerdict::Pvm,
            Some(_) => KvmVerdict::NoFlagsButWorks,
        }
    }

    /// The verdict in words.
    pub fn verdict_text(&self) -> String {
        match self.verdict() {
            KvmVerdict::Hardware => format!(
                "usable: hardware virtualization ({}){}",
                if self.vmx { "Intel VT-x" } else { "AMD-V" },
                if self.hypervisor {
                    ", nested inside another hypervisor"
                } else {
                    ""
                }
            ),
            KvmVerdict::Pvm => "usable, but without hardware virtualization: /dev/kvm works while \
/proc/cpuinfo shows no vmx/svm, because this is kvm-pvm (/sys/module/kvm_pvm exists): software \
nested virtualization that runs small guests well but emulates an unmodified Linux kernel \
instruction by instruction"
                .to_string(),
            KvmVerdict::NoFlagsButWorks => "usable, although /proc/cpuinfo shows no vmx/svm (KVM \
runs on a paravirtual or software backend)"
                .to_string(),
            KvmVerdict::MissingCaps => format!(
                "not usable by rvmm: KVM lacks {}",
                self.kvm
                    .as_ref()
                    .map(|k| k.missing().join(", "))
                    .unwrap_or_default()
            ),
            KvmVerdict::Unusable => format!(
                "not usable: {}",
                self.device.error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn virt(vmx: bool, pvm: bool, kvm: Option<KvmProbe>) -> HostVirt {
        HostVirt {
            vmx,
            svm: false,
            hypervisor: true,
            modules: KvmModules {
                kvm: true,
                kvm_intel: vmx,
                kvm_amd: false,
                kvm_pvm: pvm,
                nested: None,
                ept: None,
                vpid: None,
                unrestricted_guest: None,
                npt: None,
            },
            device: KvmDevice {
                path: "/dev/kvm".into(),
                exists: kvm.is_some(),
                mode: None,
                uid: None,
                gid: None,
                group: None,
                error: kvm.is_none().then(|| "/dev/kvm does not exist".to_string()),
            },
            kvm,
        }
    }

    fn probe(all_caps: bool) -> KvmProbe {
        KvmProbe {
            api_version: 12,
            caps: vec![
                CapCheck {
                    name: "KVM_CAP_IRQCHIP",
                    why: "x",
                    present: true,
                },
                CapCheck {
                    name: "KVM_CAP_PIT2",
                    why: "y",
                    present: all_caps,
                },
            ],
            nr_vcpus: 2,
            max_vcpus: 1024,
            max_vcpu_id: 4096,
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            virt(true, false, Some(probe(true))).verdict(),
            KvmVerdict::Hardware
        );
        assert_eq!(
            virt(false, true, Some(probe(true))).verdict(),
            KvmVerdict::Pvm
        );
        assert_eq!(
            virt(false, false, Some(probe(true))).verdict(),
            KvmVerdict::NoFlagsButWorks
        );
        assert_eq!(
            virt(true, false, Some(probe(false))).verdict(),
            KvmVerdict::MissingCaps
        );
        assert_eq!(
            virt(true, false, Some(probe(false))).verdict_text(),
            "not usable by rvmm: KVM lacks KVM_CAP_PIT2"
        );
        assert_eq!(virt(true, false, None).verdict(), KvmVerdict::Unusable);
        assert_eq!(
            virt(true, false, Some(probe(true))).verdict_text(),
            "usable: hardware virtualization (Intel VT-x), nested inside another hypervisor"
        );
    }

    #[test]
    fn group_names() {
        let g = "root:x:0:\nkvm:x:104:alice,bob\n";
        assert_eq!(group_name(g, 104).as_deref(), Some("kvm"));
        assert_eq!(group_name(g, 5), None);
    }

    #[test]
    fn missing_device_error_says_how_to_fix_it() {
        let e = probe_kvm(Path::new("/nonexistent/kvm")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/nonexistent/kvm does not exist: this host has no KVM. Load the module"));
    }
}
