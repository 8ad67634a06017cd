//! Host scheduling facts that decide where vCPUs may run: isolated and tickless CPUs
//! (/sys/devices/system/cpu/isolated, nohz_full, and the `isolcpus=`/`nohz_full=` boot
//! parameters), whether irqbalance runs (/proc/PID/comm), the cgroup version (/proc/mounts)
//! and this process's cpuset (/proc/self/cgroup, the cgroup's cpuset files,
//! /proc/self/status `Cpus_allowed_list`).

use serde::Serialize;

use super::sysfs::HostFs;
use crate::util::cpulist::parse_cpulist;

/// Which cgroup hierarchies are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CgroupMode {
    /// Only cgroup v2 (the unified hierarchy).
    V2,
    /// Only cgroup v1 controllers.
    V1,
    /// v1 controllers with a v2 hierarchy beside them (systemd's "hybrid").
    Hybrid,
    /// No cgroup file system mounted.
    None,
}

/// A cgroup mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupMount {
    pub path: String,
    /// 1 or 2.
    pub version: u8,
    /// v1: the controllers in the mount options (`cpuset`, `cpu`, `name=systemd`, ...).
    pub controllers: Vec<String>,
}

/// The scheduling facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSched {
    /// /sys/devices/system/cpu/isolated.
    pub isolated: Vec<u32>,
    /// /sys/devices/system/cpu/nohz_full; `None` when the kernel has no such file
    /// (CONFIG_NO_HZ_FULL off).
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

/// The cgroup mounts of a /proc/mounts text.
pub fn parse_cgroup_mounts(mounts: &str) -> Vec<CgroupMount> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            let version = match f[2] {
                "cgroup2" => 2,
                "cgroup" => 1,
                _ => return None,
            };
            let controllers = if version == 1 {
                f[3].split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro" | "nosuid" | "nodev" | "noexec" | "relatime")
                            && !o.contains("xattr")
                    })
                    .map(String::from)
                    .collect()
            } else {
                Vec::new()
            };
            Some(CgroupMount {
                path: f[1].to_string(),
                version,
                controllers,
            })
        })
        .collect()
}

/// v1 only, v2 only, or both.
pub fn cgroup_mode(mounts: &[CgroupMount]) -> CgroupMode {
    let v1 = mounts.iter().any(|m| m.version == 1);
    let v2 = mounts.iter().any(|m| m.version == 2);
    match (v1, v2) {
        (true, true) => CgroupMode::Hybrid,
        (true, false) => CgroupMode::V1,
        (false, true) => CgroupMode::V2,
        (false, false) => CgroupMode::None,
    }
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

/// A `Key:\tvalue` field of /proc/PID/status.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

/// The cgroup path of the cpuset hierarchy in a /proc/PID/cgroup text: the v1 line naming
/// `cpuset`, else the v2 line (`0::/path`).
pub fn cpuset_cgroup_path(cgroup: &str) -> Option<(u8, String)> {
    let mut v2 = None;
    for line in cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrls.split(',').any(|c| c == "cpuset") {
            return Some((1, path.to_string()));
        }
        if id == "0" && ctrls.is_empty() {
            v2 = Some((2, path.to_string()));
        }
    }
    v2
}

fn list(text: Option<String>) -> Option<Vec<u32>> {
    let t = text?;
    if t.trim().is_empty() || t.trim() == "(null)" {
        return Some(Vec::new());
    }
    parse_cpulist(t.trim()).ok()
}

impl HostSched {
    pub fn read(fs: &HostFs) -> HostSched {
        let mounts = parse_cgroup_mounts(&fs.read("/proc/mounts").unwrap_or_default());
        let mode = cgroup_mode(&mounts);
        let status = fs.read("/proc/self/status").unwrap_or_default();
        let (cpuset_cgroup, cpuset_cpus) =
            match cpuset_cgroup_path(&fs.read("/proc/self/cgroup").unwrap_or_default()) {
                Some((1, path)) => {
                    let mount = mounts
                        .iter()
                        .find(|m| m.version == 1 && m.controllers.iter().any(|c| c == "cpuset"));
                    let cpus = mount.and_then(|m| {
                        let dir = format!("{}{}", m.path, path.trim_end_matches('/'));
                        list(fs.read(&format!("{dir}/cpuset.effective_cpus")))
                            .or_else(|| list(fs.read(&format!("{dir}/cpuset.cpus"))))
                    });
                    (Some(path), cpus)
                }
                Some((_, path)) => {
                    let mount = mounts.iter().find(|m| m.version == 2);
                    let cpus = mount.and_then(|m| {
                        let dir = format!("{}{}", m.path, path.trim_end_matches('/'));
                        list(fs.read(&format!("{dir}/cpuset.cpus.effective")))
                    });
                    (Some(path), cpus)
                }
                None => (None, None),
            };
        let irqbalance_pids = fs
            .list("/proc")
            .into_iter()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|pid| {
                fs.read_trim(&format!("/proc/{pid}/comm")).as_deref() == Some("irqbalance")
            })
            .collect();
        HostSched {
            isolated: list(fs.read("/sys/devices/system/cpu/isolated")).unwrap_or_default(),
            nohz_full: list(fs.read("/sys/devices/system/cpu/nohz_full")),
            cmdline: isolation_params(&fs.read("/proc/cmdline").unwrap_or_default()),
            irqbalance_pids,
            cgroup_mode: mode,
            cgroup_mounts: mounts,
            cpuset_cgroup,
            cpuset_cpus,
            allowed_cpus: status_field(&status, "Cpus_allowed_list")
                .and_then(|s| parse_cpulist(s).ok())
                .unwrap_or_default(),
            allowed_mems: status_field(&status, "Mems_allowed_list")
                .and_then(|s| parse_cpulist(s).ok())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0\n\
cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0\n\
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";

    #[test]
    fn cgroup_mounts_and_mode() {
        let m = parse_cgroup_mounts(MOUNTS);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].controllers, ["cpuset"]);
        assert_eq!(m[1].controllers, ["name=systemd"]);
        assert_eq!(m[2].version, 2);
        assert_eq!(cgroup_mode(&m), CgroupMode::Hybrid);
        assert_eq!(cgroup_mode(&m[2..]), CgroupMode::V2);
        assert_eq!(cgroup_mode(&m[..1]), CgroupMode::V1);
        assert_eq!(cgroup_mode(&[]), CgroupMode::None);
    }

    #[test]
    fn cpuset_path() {
        assert_eq!(
            cpuset_cgroup_path("4:memory:/a\n3:cpuset:/machine/vm1\n0::/\n"),
            Some((1, "/machine/vm1".to_string()))
        );
        assert_eq!(
            cpuset_cgroup_path("0::/user.slice/session-1.scope\n"),
            Some((2, "/user.slice/session-1.scope".to_string()))
        );
        assert_eq!(cpuset_cgroup_path(""), None);
    }

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
    fn empty_and_null_cpu_lists() {
        assert_eq!(list(Some("\n".into())), Some(vec![]));
        assert_eq!(list(Some("(null)\n".into())), Some(vec![]));
        assert_eq!(list(Some("2-3\n".into())), Some(vec![2, 3]));
        assert_eq!(list(None), None);
    }
}
