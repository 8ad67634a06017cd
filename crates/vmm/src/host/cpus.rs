//! The host's CPUs as sets of CPU numbers: which exist (`possible`), are present and online,
//! are isolated (`isolated`, `nohz_full`), and may be used by this process (its cgroup
//! cpuset, else the `Cpus_allowed_list` of /proc/self/status). Also the CPU isolation
//! settings around them: the boot parameters and whether irqbalance runs.
//!
//! Both `rvmm host` and the pinning checks read [`HostCpus`]; what a CPU is (vendor, model,
//! flags, topology) is `host::cpuinfo`'s, a thread's placement `host::thread`'s, and whether
//! a pinning request is acceptable `vcpu::affinity`'s.

use std::path::PathBuf;

use thiserror::Error;

use super::cgroups::{Cpuset, HostCgroups};
use super::sysfs::{parse_mask, HostFs};

/// sysfs directory with the CPU masks (Documentation/ABI/stable/sysfs-devices-system-cpu).
const SYS_CPU: &str = "/sys/devices/system/cpu";
/// This process's status (proc(5)).
const SELF_STATUS: &str = "/proc/self/status";

/// A CPU fact the kernel always provides could not be read.
#[derive(Debug, Error)]
pub enum CpusError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: cannot parse {what}: {detail}")]
    Parse {
        path: String,
        what: &'static str,
        detail: String,
    },
}

/// Where the CPUs this process may use come from (named in error messages).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CpusetSource {
    /// A cgroup's effective cpuset file.
    Cgroup(PathBuf),
    /// `/proc/self/status` `Cpus_allowed_list` (no cpuset controller found).
    #[default]
    Status,
}

impl std::fmt::Display for CpusetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CpusetSource::Cgroup(p) => write!(f, "cgroup cpuset {}", p.display()),
            CpusetSource::Status => f.write_str("Cpus_allowed_list in /proc/self/status"),
        }
    }
}

/// The host's CPUs as sets of CPU numbers, each sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCpus {
    /// CPUs the kernel can ever bring up (`possible`).
    pub possible: Vec<u32>,
    /// CPUs present (`present`; empty when the file is missing).
    pub present: Vec<u32>,
    /// CPUs online now.
    pub online: Vec<u32>,
    /// CPUs removed from the scheduler's balancing (`isolcpus=`, `isolated`).
    pub isolated: Vec<u32>,
    /// Tickless CPUs (`nohz_full`); `None` when the kernel has no such file
    /// (CONFIG_NO_HZ_FULL off).
    pub nohz_full: Option<Vec<u32>>,
    /// /proc/self/status `Cpus_allowed_list` (what sched_getaffinity and `nproc` see).
    pub process_cpus: Vec<u32>,
    /// /proc/self/status `Mems_allowed_list`: the memory nodes this process may use.
    pub process_mems: Vec<u32>,
    /// This process's cpuset cgroup, if it is in one.
    pub cpuset: Option<Cpuset>,
    /// CPUs this process may be pinned to: the cpuset's when it names any, else
    /// `process_cpus`.
    pub allowed: Vec<u32>,
    pub allowed_source: CpusetSource,
}

/// A `Key:\tvalue` field of /proc/PID/status.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

/// A CPU or node list field of /proc/PID/status (`Cpus_allowed_list`).
pub fn status_list(status: &str, key: &str) -> Option<Vec<u32>> {
    parse_mask(status_field(status, key)?).ok()
}

/// The kernel command line's CPU isolation parameters.
pub fn isolation_params(cmdline: &str) -> Vec<String> {
    const KEYS: [&str; 4] = ["isolcpus=", "nohz_full=", "rcu_nocbs=", "irqaffinity="];
    cmdline
        .split_whitespace()
        .take_while(|t| *t != "--")
        .filter(|t| KEYS.iter().any(|k| t.starts_with(k)))
        .map(String::from)
        .collect()
}

/// The PIDs whose comm is `irqbalance` (it moves interrupts onto CPUs meant for vCPUs).
pub fn irqbalance_pids(fs: &HostFs) -> Vec<u32> {
    fs.list("/proc")
        .into_iter()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|pid| fs.read_trim(&format!("/proc/{pid}/comm")).as_deref() == Some("irqbalance"))
        .collect()
}

/// The text of `path`, or why it cannot be read.
fn read_text(fs: &HostFs, path: &str) -> Result<String, CpusError> {
    let real = fs.path(path);
    std::fs::read_to_string(&real).map_err(|error| CpusError::Read {
        path: real.display().to_string(),
        error,
    })
}

/// The CPU list in /sys/devices/system/cpu/`name`; `Ok(None)` when the file is missing
/// and that is allowed.
fn read_mask(fs: &HostFs, name: &str, missing: Missing) -> Result<Option<Vec<u32>>, CpusError> {
    let path = format!("{SYS_CPU}/{name}");
    let text = match read_text(fs, &path) {
        Ok(text) => text,
        Err(CpusError::Read { error, .. })
            if missing == Missing::Allowed && error.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    parse_mask(&text)
        .map(Some)
        .map_err(|detail| CpusError::Parse {
            path: fs.path(&path).display().to_string(),
            what: "a CPU list",
            detail,
        })
}

/// Whether a mask file may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    Allowed,
    Error,
}

impl HostCpus {
    /// Reads the CPU masks under /sys/devices/system/cpu, /proc/self/status and this
    /// process's cpuset (found through `cgroups`). `possible`, `online` and
    /// `Cpus_allowed_list` must be there; kernels without isolcpus or nohz_full support
    /// lack those files.
    pub fn read(fs: &HostFs, cgroups: &HostCgroups) -> Result<HostCpus, CpusError> {
        let possible = read_mask(fs, "possible", Missing::Error)?.unwrap_or_default();
        let online = read_mask(fs, "online", Missing::Error)?.unwrap_or_default();
        let present = read_mask(fs, "present", Missing::Allowed)
            .ok()
            .flatten()
            .unwrap_or_default();
        let isolated = read_mask(fs, "isolated", Missing::Allowed)?.unwrap_or_default();
        let nohz_full = read_mask(fs, "nohz_full", Missing::Allowed).ok().flatten();
        let status = read_text(fs, SELF_STATUS)?;
        let process_cpus =
            status_list(&status, "Cpus_allowed_list").ok_or_else(|| CpusError::Parse {
                path: fs.path(SELF_STATUS).display().to_string(),
                what: "Cpus_allowed_list",
                detail: "missing or malformed".into(),
            })?;
        let cpuset = cgroups.cpuset(fs);
        let (allowed, allowed_source) = match &cpuset {
            Some(Cpuset {
                file: Some(file),
                cpus: Some(cpus),
                ..
            }) if !cpus.is_empty() => (cpus.clone(), CpusetSource::Cgroup(PathBuf::from(file))),
            _ => (process_cpus.clone(), CpusetSource::Status),
        };
        Ok(HostCpus {
            possible,
            present,
            online,
            isolated,
            nohz_full,
            process_mems: status_list(&status, "Mems_allowed_list").unwrap_or_default(),
            process_cpus,
            cpuset,
            allowed,
            allowed_source,
        })
    }

    /// How many affinity positions to show (`yyyy----`): one per possible CPU.
    pub fn width(&self) -> u32 {
        self.possible.last().map_or(0, |&c| c + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_and_status() {
        assert_eq!(
            isolation_params("quiet isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3 -- isolcpus=9"),
            ["isolcpus=2-3", "nohz_full=2-3", "rcu_nocbs=2-3"]
        );
        let status =
            "Name:\tcat\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n";
        assert_eq!(status_field(status, "Cpus_allowed_list"), Some("0-1"));
        assert_eq!(status_field(status, "Cpus"), None);
    }

    #[test]
    fn status_allowed_list() {
        let status = "Name:\trvmm\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\n";
        assert_eq!(status_list(status, "Cpus_allowed_list"), Some(vec![0, 1]));
        assert_eq!(status_list("Name:\tx\n", "Cpus_allowed_list"), None);
    }

    fn fixture(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rvmm-cpus-{name}-{}", std::process::id()));
        for (p, v) in files {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        }
        dir
    }

    #[test]
    fn reads_a_fixture_tree() {
        let dir = fixture(
            "tree",
            &[
                ("sys/devices/system/cpu/possible", "0-7\n"),
                ("sys/devices/system/cpu/present", "0-5\n"),
                ("sys/devices/system/cpu/online", "0-5\n"),
                ("sys/devices/system/cpu/isolated", "2-3\n"),
                ("sys/devices/system/cpu/nohz_full", "(null)\n"),
                (
                    "proc/self/status",
                    "Name:\trvmm\nCpus_allowed_list:\t0-5\nMems_allowed_list:\t0-1\n",
                ),
                (
                    "proc/mounts",
                    "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nsdelegate 0 0\n",
                ),
                ("proc/self/cgroup", "0::/vms\n"),
                ("sys/fs/cgroup/vms/cpuset.cpus.effective", "0-4\n"),
                ("proc/1/comm", "systemd\n"),
                ("proc/77/comm", "irqbalance\n"),
            ],
        );
        let fs = HostFs::at(&dir);
        let cpus = HostCpus::read(&fs, &HostCgroups::read(&fs)).unwrap();
        let irqbalance = irqbalance_pids(&fs);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cpus.possible, (0..8).collect::<Vec<_>>());
        assert_eq!(cpus.width(), 8);
        assert_eq!((cpus.present.len(), cpus.online.len()), (6, 6));
        assert_eq!(cpus.isolated, [2, 3]);
        assert_eq!(cpus.nohz_full, Some(vec![]));
        assert_eq!(cpus.process_cpus, (0..6).collect::<Vec<_>>());
        assert_eq!(cpus.process_mems, [0, 1]);
        assert_eq!(cpus.allowed, (0..5).collect::<Vec<_>>());
        assert_eq!(
            cpus.allowed_source.to_string(),
            "cgroup cpuset /sys/fs/cgroup/vms/cpuset.cpus.effective"
        );
        assert_eq!(irqbalance, [77]);
    }

    #[test]
    fn without_a_cpuset_the_status_list_is_allowed() {
        let dir = fixture(
            "status",
            &[
                ("sys/devices/system/cpu/possible", "0-3\n"),
                ("sys/devices/system/cpu/online", "0-3\n"),
                ("proc/self/status", "Cpus_allowed_list:\t1-2\n"),
            ],
        );
        let fs = HostFs::at(&dir);
        let cpus = HostCpus::read(&fs, &HostCgroups::read(&fs)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cpus.isolated, Vec::<u32>::new());
        assert_eq!(cpus.nohz_full, None);
        assert_eq!(cpus.allowed, [1, 2]);
        assert_eq!(cpus.allowed_source, CpusetSource::Status);
    }

    #[test]
    fn missing_and_malformed_masks_name_the_file() {
        let dir = fixture(
            "bad",
            &[
                ("sys/devices/system/cpu/possible", "0-x\n"),
                ("sys/devices/system/cpu/online", "0\n"),
            ],
        );
        let fs = HostFs::at(&dir);
        let bad = HostCpus::read(&fs, &HostCgroups::default())
            .unwrap_err()
            .to_string();
        std::fs::remove_file(dir.join("sys/devices/system/cpu/online")).unwrap();
        std::fs::write(dir.join("sys/devices/system/cpu/possible"), "0\n").unwrap();
        let missing = HostCpus::read(&fs, &HostCgroups::default())
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        let root = dir.display();
        assert!(
            bad.starts_with(&format!(
                "{root}/sys/devices/system/cpu/possible: cannot parse a CPU list: "
            )),
            "{bad}"
        );
        assert_eq!(
            missing,
            format!("{root}/sys/devices/system/cpu/online: No such file or directory (os error 2)")
        );
    }
}
