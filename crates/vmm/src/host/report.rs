//! `rvmm host`: everything about this host that decides whether and how it runs VMs, taken
//! from the one [`Host`] snapshot (the same the VM build checks against) plus the KVM
//! facts, into one `HostReport`, and its text form. The facts come from their own modules
//! (virt, cpus, cpuinfo, numa, memory, cgroups, iov); this module adds the CPU features
//! users look for (on the host CPU and through KVM) and the closest named CPU model, lays
//! the facts out in the report's sections (the `--json` shape) and renders the whole.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use thiserror::Error;

use super::cgroups::{CgroupMode, CgroupMount};
use super::cpuinfo::{CpuPlace, TopologyCounts};
use super::cpus::{irqbalance_pids, isolation_params};
use super::iov::HostIov;
use super::kvm::KvmHost;
use super::memory::{
    pool_dir_name, read_hugetlbfs_mounts, read_ksm_counters, HugetlbfsMount, Ksm, Thp,
};
use super::numa::HostNuma;
use super::virt::HostVirt;
use super::{Host, HostError};
use crate::cpu::availability::closest_model;
use crate::util::cpulist::cpulist;

/// Why the report could not be made.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The features users look for: (Linux's /proc/cpuinfo name, QEMU's name).
pub const WATCHED_FEATURES: &[(&str, &str)] = &[
    ("avx", "avx"),
    ("avx2", "avx2"),
    ("avx512f", "avx512f"),
    ("avx512dq", "avx512dq"),
    ("avx512cd", "avx512cd"),
    ("avx512bw", "avx512bw"),
    ("avx512vl", "avx512vl"),
    ("avx512ifma", "avx512ifma"),
    ("avx512vbmi", "avx512vbmi"),
    ("avx512_vbmi2", "avx512vbmi2"),
    ("avx512_vnni", "avx512vnni"),
    ("avx512_bitalg", "avx512bitalg"),
    ("avx512_vpopcntdq", "avx512-vpopcntdq"),
    ("avx512_bf16", "avx512-bf16"),
    ("avx512_fp16", "avx512-fp16"),
    ("avx512_vp2intersect", "avx512-vp2intersect"),
    ("avx512pf", "avx512pf"),
    ("avx512er", "avx512er"),
    ("avx512_4vnniw", "avx512-4vnniw"),
    ("avx512_4fmaps", "avx512-4fmaps"),
    ("xsave", "xsave"),
    ("xsaveopt", "xsaveopt"),
    ("aes", "aes"),
    ("sha_ni", "sha-ni"),
    ("rdrand", "rdrand"),
    ("pcid", "pcid"),
    ("invpcid", "invpcid"),
    ("x2apic", "x2apic"),
    ("tsc_deadline_timer", "tsc-deadline"),
];

/// One watched feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureRow {
    /// Linux's name.
    pub name: &'static str,
    /// QEMU's name.
    pub qemu: &'static str,
    /// The host CPU has it (/proc/cpuinfo).
    pub host: bool,
    /// KVM can give it to a guest (KVM_GET_SUPPORTED_CPUID with QEMU's fixups); `None`
    /// without KVM.
    pub guest: Option<bool>,
}

/// The CPU section: what the CPUs are, and which are online and present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuSection {
    pub vendor_id: String,
    pub model_name: String,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    /// /sys/devices/system/cpu/online.
    pub online: Vec<u32>,
    /// /sys/devices/system/cpu/present.
    pub present: Vec<u32>,
    pub places: Vec<CpuPlace>,
    pub counts: TopologyCounts,
    /// The first CPU's flags (Linux's names).
    pub flags: BTreeSet<String>,
}

/// One huge page size's pool as the memory section shows it (sizes in KiB, as the kernel
/// names the pools).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRow {
    pub size_kib: u64,
    pub total: u64,
    pub free: u64,
    pub reserved: u64,
    pub surplus: u64,
    /// Per node that has this pool: (node, total, free).
    pub nodes: Vec<(u32, u64, u64)>,
}

/// KSM: `run` and every counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KsmRow {
    pub run: Option<u64>,
    pub counters: BTreeMap<String, u64>,
}

impl KsmRow {
    /// `run` in words.
    pub fn state(&self) -> &'static str {
        Ksm { run: self.run }.state()
    }
}

/// The memory section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemorySection {
    /// /proc/meminfo `MemTotal`, bytes.
    pub mem_total: u64,
    /// /proc/meminfo `MemAvailable`, bytes.
    pub mem_available: u64,
    /// /proc/meminfo `Hugepagesize`, KiB.
    pub default_size_kib: Option<u64>,
    /// In the order of their directory names (`hugepages-1048576kB` before
    /// `hugepages-2048kB`).
    pub pools: Vec<PoolRow>,
    pub mounts: Vec<HugetlbfsMount>,
    pub thp: Thp,
    pub ksm: KsmRow,
}

/// The scheduling section: CPU isolation, cgroups and this process's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchedSection {
    /// /sys/devices/system/cpu/isolated.
    pub isolated: Vec<u32>,
    /// /sys/devices/system/cpu/nohz_full; `None` when the kernel has no such file.
    pub nohz_full: Option<Vec<u32>>,
    /// `isolcpus=`, `nohz_full=`, `rcu_nocbs=` and `irqaffinity=` on the kernel command line.
    pub cmdline: Vec<String>,
    /// PIDs whose comm is `irqbalance`.
    pub irqbalance_pids: Vec<u32>,
    pub cgroup_mode: CgroupMode,
    pub cgroup_mounts: Vec<CgroupMount>,
    /// This process's cgroup path in the hierarchy that holds the cpuset controller.
    pub cpuset_cgroup: Option<String>,
    /// That cgroup's effective CPUs.
    pub cpuset_cpus: Option<Vec<u32>>,
    /// /proc/self/status `Cpus_allowed_list` (what sched_getaffinity and `nproc` see).
    pub allowed_cpus: Vec<u32>,
    /// /proc/self/status `Mems_allowed_list`.
    pub allowed_mems: Vec<u32>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub virt: HostVirt,
    pub cpus: CpuSection,
    /// The watched features: those avx512 ones neither the host nor KVM has are left out.
    pub features: Vec<FeatureRow>,
    /// The most capable named model this host's KVM runs unchanged, and its feature count.
    pub closest_model: Option<(String, usize)>,
    pub numa: HostNuma,
    pub pages: MemorySection,
    pub iov: HostIov,
    pub sched: SchedSection,
}

impl HostReport {
    /// Whether KVM's CPU support was read (the feature rows then carry a guest column).
    fn kvm_usable(&self) -> bool {
        self.features.iter().any(|r| r.guest.is_some())
    }
}

impl MemorySection {
    /// The memory section of `host`: its memory and global pools, with each pool's per-node
    /// figures from the NUMA nodes.
    pub fn read(host: &Host) -> MemorySection {
        let mem = host.memory();
        let numa = host.numa();
        let mut pools: Vec<PoolRow> = mem
            .huge_pages
            .pools
            .iter()
            .map(|pool| PoolRow {
                size_kib: pool.size_kib(),
                total: pool.total,
                free: pool.free,
                reserved: pool.reserved,
                surplus: pool.surplus,
                nodes: numa
                    .nodes
                    .iter()
                    .filter_map(|n| {
                        let p = n.huge_pages.get(pool.page_size)?;
                        Some((n.id, p.total, p.free))
                    })
                    .collect(),
            })
            .collect();
        pools.sort_by_key(|p| pool_dir_name(p.size_kib * 1024));
        MemorySection {
            mem_total: mem.total,
            mem_available: mem.available,
            default_size_kib: mem.huge_page_size.map(|b| b / 1024),
            pools,
            mounts: read_hugetlbfs_mounts(host.fs()),
            thp: mem.thp.clone(),
            ksm: KsmRow {
                run: mem.ksm.run,
                counters: read_ksm_counters(host.fs()),
            },
        }
    }
}

impl HostReport {
    /// Reports `host`, with KVM at `kvm_path` (its CPU support from `kvm`, when it could be
    /// opened).
    pub fn read(
        host: &Host,
        kvm_path: &Path,
        kvm: Option<&KvmHost>,
    ) -> Result<HostReport, ReportError> {
        let fs = host.fs();
        let cpus = host.cpus().map_err(HostError::from)?;
        let info = host.cpu_info()?;
        let virt = HostVirt::read(fs, &info.flags, kvm_path);
        let supported = kvm.map(|k| k.cpu_support.supported_set());
        let features = WATCHED_FEATURES
            .iter()
            .map(|&(name, qemu)| FeatureRow {
                name,
                qemu,
                host: info.has(name),
                guest: supported.as_ref().and_then(|s| s.has_named(qemu)),
            })
            .filter(|r| !r.name.starts_with("avx512") || r.host || r.guest == Some(true))
            .collect();
        let closest_model = kvm
            .and_then(|k| closest_model(&k.cpu_support, &k.identity))
            .map(|c| (c.name, c.features));
        let cgroups = host.cgroups();
        let cmdline = fs.read("/proc/cmdline").unwrap_or_default();
        Ok(HostReport {
            virt,
            cpus: CpuSection {
                vendor_id: info.vendor_id.clone(),
                model_name: info.model_name.clone(),
                family: info.family,
                model: info.model,
                stepping: info.stepping,
                online: cpus.online.clone(),
                present: cpus.present.clone(),
                places: info.places.clone(),
                counts: info.counts,
                flags: info.flags.clone(),
            },
            features,
            closest_model,
            numa: host.numa().clone(),
            pages: MemorySection::read(host),
            iov: host.iov().clone(),
            sched: SchedSection {
                isolated: cpus.isolated.clone(),
                nohz_full: cpus.nohz_full.clone(),
                cmdline: isolation_params(&cmdline),
                irqbalance_pids: irqbalance_pids(fs),
                cgroup_mode: cgroups.mode,
                cgroup_mounts: cgroups.mounts.clone(),
                cpuset_cgroup: cpus.cpuset.as_ref().map(|c| c.cgroup.clone()),
                cpuset_cpus: cpus.cpuset.as_ref().and_then(|c| c.cpus.clone()),
                allowed_cpus: cpus.process_cpus.clone(),
                allowed_mems: cpus.process_mems.clone(),
            },
        })
    }

    /// The report as text, one section per subject.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_virt(&mut out);
        self.render_cpu(&mut out);
        out.push_str("\nNUMA (as numactl --hardware)\n");
        for l in self.numa.render_numactl().lines() {
            let _ = writeln!(out, "  {l}");
        }
        self.render_memory(&mut out);
        self.render_iov(&mut out);
        self.render_sched(&mut out);
        out
    }

    fn render_virt(&self, out: &mut String) {
        let v = &self.virt;
        let yn = |b: bool| if b { "yes" } else { "no" };
        let opt = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        out.push_str("Virtualization\n");
        let _ = writeln!(out, "  KVM:                 {}", v.verdict_text());
        let flags = match (v.vmx, v.svm) {
            (true, _) => "vmx (Intel VT-x)",
            (_, true) => "svm (AMD-V)",
            _ => "none (no vmx or svm in /proc/cpuinfo)",
        };
        let _ = writeln!(out, "  CPU flags:           {flags}");
        let _ = writeln!(
            out,
            "  nested (hypervisor): {}",
            if v.hypervisor {
                "yes: this host is itself a guest (the hypervisor flag is set)"
            } else {
                "no: bare metal (no hypervisor flag)"
            }
        );
        let m = &v.modules;
        let loaded: Vec<&str> = [
            ("kvm", m.kvm),
            ("kvm_intel", m.kvm_intel),
            ("kvm_amd", m.kvm_amd),
            ("kvm_pvm", m.kvm_pvm),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
        let _ = writeln!(
            out,
            "  modules:             {}",
            if loaded.is_empty() {
                "none loaded".to_string()
            } else {
                loaded.join(", ")
            }
        );
        if m.kvm_intel {
            let _ = writeln!(
                out,
                "  kvm_intel:           nested {} ept {} vpid {} unrestricted_guest {}",
                opt(m.nested),
                opt(m.ept),
                opt(m.vpid),
                opt(m.unrestricted_guest)
            );
        }
        if m.kvm_amd {
            let _ = writeln!(
                out,
                "  kvm_amd:             nested {} npt {}",
                opt(m.nested),
                opt(m.npt)
            );
        }
        if !m.kvm_intel && !m.kvm_amd {
            let _ = writeln!(
                out,
                "  EPT/NPT, VPID:       not shown (neither kvm_intel nor kvm_amd is loaded)"
            );
        }
        let d = &v.device;
        let owner = match (d.mode, d.uid, d.gid) {
            (Some(mode), Some(uid), Some(gid)) => format!(
                "mode {mode:04o}, owner uid {uid}, group {}",
                d.group.clone().unwrap_or_else(|| gid.to_string())
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<20} {}{}",
            format!("{}:", d.path.display()),
            if d.exists { "present" } else { "missing" },
            if owner.is_empty() {
                String::new()
            } else {
                format!(", {owner}")
            }
        );
        let _ = writeln!(
            out,
            "  read/write access:   {}",
            match &d.error {
                None => "yes".to_string(),
                Some(e) => format!("no: {e}"),
            }
        );
        if let Some(k) = &v.kvm {
            let _ = writeln!(out, "  KVM API version:     {}", k.api_version);
            let missing = k.missing();
            let _ = writeln!(
                out,
                "  capabilities:        {} of {} that rvmm needs present{}",
                k.caps.len() - missing.len(),
                k.caps.len(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; missing: {}", missing.join(", "))
                }
            );
            for c in &k.caps {
                let _ = writeln!(out, "    {:<24} {:<4} {}", c.name, yn(c.present), c.why);
            }
            let _ = writeln!(
                out,
                "  vCPUs per VM:        {} recommended (KVM_CAP_NR_VCPUS), {} maximum (KVM_CAP_MAX_VCPUS), vCPU ids below {} (KVM_CAP_MAX_VCPU_ID)",
                k.nr_vcpus, k.max_vcpus, k.max_vcpu_id
            );
        }
    }

    fn render_cpu(&self, out: &mut String) {
        let c = &self.cpus;
        out.push_str("\nCPU\n");
        let _ = writeln!(out, "  vendor:              {}", c.vendor_id);
        let _ = writeln!(out, "  model name:          {}", c.model_name);
        let _ = writeln!(
            out,
            "  family/model/stepping: {}/{}/{} ({:#x}/{:#x}/{:#x})",
            c.family, c.model, c.stepping, c.family, c.model, c.stepping
        );
        let k = &c.counts;
        let _ = writeln!(
            out,
            "  topology:            {} socket(s) x {} core(s) x {} thread(s)",
            k.sockets, k.cores_per_socket, k.threads_per_core
        );
        let _ = writeln!(
            out,
            "  CPUs:                {} online ({}), {} usable by this process ({})",
            c.online.len(),
            cpulist(&c.online),
            self.sched.allowed_cpus.len(),
            cpulist(&self.sched.allowed_cpus)
        );
        out.push_str("  features:            host CPU / a KVM guest\n");
        for r in &self.features {
            let guest = match r.guest {
                Some(true) => "yes",
                Some(false) => "no",
                None => "?",
            };
            let _ = writeln!(
                out,
                "    {:<22} {:<4} {}",
                r.name,
                if r.host { "yes" } else { "no" },
                guest
            );
        }
        let _ = writeln!(
            out,
            "  closest CPU model:   {}",
            match &self.closest_model {
                Some((name, n)) => format!(
                    "{name} (the most capable named model this host's KVM runs without dropping a feature; {n} features)"
                ),
                None if self.kvm_usable() => {
                    "none (every named model loses a feature on this host's KVM; use -cpu host or a model with -features)".to_string()
                }
                None => "unknown (KVM unavailable)".to_string(),
            }
        );
    }

    fn render_memory(&self, out: &mut String) {
        let p = &self.pages;
        out.push_str("\nMemory\n");
        let _ = writeln!(
            out,
            "  RAM:                 {} MiB total, {} MiB available (/proc/meminfo)",
            p.mem_total >> 20,
            p.mem_available >> 20
        );
        if let Some(d) = p.default_size_kib {
            let _ = writeln!(out, "  default huge page:   {d} kB");
        }
        if p.pools.is_empty() {
            out.push_str("  huge page pools:     none (no /sys/kernel/mm/hugepages)\n");
        }
        for pool in &p.pools {
            let nodes: Vec<String> = pool
                .nodes
                .iter()
                .map(|(n, t, f)| format!("node {n}: {t} total, {f} free"))
                .collect();
            let _ = writeln!(
                out,
                "  huge pages {:>8} kB: {} total, {} free, {} reserved, {} surplus{}",
                pool.size_kib,
                pool.total,
                pool.free,
                pool.reserved,
                pool.surplus,
                if nodes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", nodes.join("; "))
                }
            );
        }
        let mounts: Vec<String> = p
            .mounts
            .iter()
            .map(|m| match &m.pagesize {
                Some(s) => format!("{} (pagesize={s})", m.path),
                None => m.path.clone(),
            })
            .collect();
        let _ = writeln!(
            out,
            "  hugetlbfs mounts:    {}",
            if mounts.is_empty() {
                "none".to_string()
            } else {
                mounts.join(", ")
            }
        );
        let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_string());
        let _ = writeln!(
            out,
            "  THP:                 enabled [{}], defrag [{}], shmem_enabled [{}]",
            show(&p.thp.enabled),
            show(&p.thp.defrag),
            show(&p.thp.shmem_enabled)
        );
        let _ = writeln!(out, "  KSM:                 {}", p.ksm.state());
        for (k, v) in &p.ksm.counters {
            let _ = writeln!(out, "    {k:<36} {v}");
        }
    }

    fn render_iov(&self, out: &mut String) {
        let i = &self.iov;
        out.push_str("\nI/O virtualization\n");
        let _ = writeln!(
            out,
            "  IOMMU:               {}",
            if i.iommus.is_empty() {
                "none active (no /sys/class/iommu entries; enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on or amd_iommu=on)".to_string()
            } else {
                i.iommus.join(", ")
            }
        );
        if !i.cmdline.is_empty() {
            let _ = writeln!(out, "  boot parameters:     {}", i.cmdline.join(" "));
        }
        let _ = writeln!(out, "  IOMMU groups:        {}", i.groups.len());
        for g in &i.groups {
            let _ = writeln!(out, "    group {:<4} {}", g.id, g.devices.join(" "));
        }
        if i.sriov.is_empty() {
            out.push_str("  SR-IOV NICs:         none\n");
        }
        for n in &i.sriov {
            let _ = writeln!(
                out,
                "  SR-IOV NIC {}:{} {} of {} VFs enabled",
                n.interface,
                n.pci
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
                n.enabled_vfs,
                n.total_vfs
            );
        }
    }

    fn render_sched(&self, out: &mut String) {
        let s = &self.sched;
        out.push_str("\nScheduling\n");
        let none_or = |v: &[u32]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                cpulist(v)
            }
        };
        let _ = writeln!(out, "  isolated CPUs:       {}", none_or(&s.isolated));
        let _ = writeln!(
            out,
            "  nohz_full CPUs:      {}",
            match &s.nohz_full {
                Some(v) => none_or(v),
                None => "not supported by this kernel (no /sys/devices/system/cpu/nohz_full)"
                    .to_string(),
            }
        );
        if !s.cmdline.is_empty() {
            let _ = writeln!(out, "  boot parameters:     {}", s.cmdline.join(" "));
        }
        let _ = writeln!(
            out,
            "  irqbalance:          {}",
            if s.irqbalance_pids.is_empty() {
                "not running".to_string()
            } else {
                format!(
                    "running (pid {})",
                    s.irqbalance_pids
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        let mode = match s.cgroup_mode {
            CgroupMode::V2 => "v2 (unified)",
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid (v1 controllers, v2 beside them)",
            CgroupMode::None => "none mounted",
        };
        let _ = writeln!(out, "  cgroups:             {mode}");
        for m in &s.cgroup_mounts {
            let _ = writeln!(
                out,
                "    v{} {}{}",
                m.version,
                m.path,
                if m.controllers.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", m.controllers.join(","))
                }
            );
        }
        let _ = writeln!(
            out,
            "  cpuset:              cgroup {}, CPUs {}",
            s.cpuset_cgroup.as_deref().unwrap_or("-"),
            s.cpuset_cpus
                .as_deref()
                .map(none_or)
                .unwrap_or_else(|| "-".to_string())
        );
        let _ = writeln!(
            out,
            "  this process:        CPUs {}, memory nodes {}",
            none_or(&s.allowed_cpus),
            none_or(&s.allowed_mems)
        );
    }
}

#[cfg(test)]
mod tests;
