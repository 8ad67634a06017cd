//! The host's cgroup file systems as they decide where rvmm's threads may run: which
//! hierarchies are mounted (/proc/mounts: v1, v2 or both) and this process's cpuset
//! (/proc/self/cgroup, then the cgroup's effective CPU file). The CPU sets built on the
//! cpuset are `host::cpus`'s; creating cgroups for a VM is not done here.

use serde::Serialize;

use super::sysfs::{parse_mask, HostFs};

/// Which cgroup hierarchies are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum CgroupMode {
    /// Only cgroup v2 (the unified hierarchy).
    V2,
    /// Only cgroup v1 controllers.
    V1,
    /// v1 controllers with a v2 hierarchy beside them (systemd's "hybrid").
    Hybrid,
    /// No cgroup file system mounted.
    #[default]
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

/// The mounted cgroup hierarchies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCgroups {
    pub mode: CgroupMode,
    pub mounts: Vec<CgroupMount>,
}

/// This process's cpuset cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpuset {
    /// The cgroup's path in the hierarchy that holds the cpuset controller.
    pub cgroup: String,
    /// The host path of the file its CPUs were read from.
    pub file: Option<String>,
    /// The cgroup's effective CPUs; `None` when no cpuset file could be read.
    pub cpus: Option<Vec<u32>>,
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

/// The cgroup path of the cpuset hierarchy in a /proc/PID/cgroup text (lines are
/// `hierarchy-ID:controller-list:cgroup-path`, cgroups(7)): the v1 line naming `cpuset`,
/// else the v2 line (`0::/path`).
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

/// The files that hold a cpuset cgroup's effective CPUs, most precise first: v1's
/// `cpuset.effective_cpus` then `cpuset.cpus` under the mount holding the cpuset controller,
/// v2's `cpuset.cpus.effective` under the unified mount. Empty when the hierarchy is not
/// mounted.
pub fn cpuset_files(version: u8, cgroup: &str, mounts: &[CgroupMount]) -> Vec<String> {
    let dir = |m: &CgroupMount| format!("{}{}", m.path, cgroup.trim_end_matches('/'));
    if version == 1 {
        mounts
            .iter()
            .find(|m| m.version == 1 && m.controllers.iter().any(|c| c == "cpuset"))
            .map(|m| {
                vec![
                    format!("{}/cpuset.effective_cpus", dir(m)),
                    format!("{}/cpuset.cpus", dir(m)),
                ]
            })
            .unwrap_or_default()
    } else {
        mounts
            .iter()
            .find(|m| m.version == 2)
            .map(|m| vec![format!("{}/cpuset.cpus.effective", dir(m))])
            .unwrap_or_default()
    }
}

impl HostCgroups {
    /// Reads /proc/mounts.
    pub fn read(fs: &HostFs) -> HostCgroups {
        let mounts = parse_cgroup_mounts(&fs.read("/proc/mounts").unwrap_or_default());
        HostCgroups {
            mode: cgroup_mode(&mounts),
            mounts,
        }
    }

    /// This process's cpuset (/proc/self/cgroup), with the CPUs of the first of its
    /// [`cpuset_files`] that reads as a CPU list. `None` when the process is in no cgroup.
    pub fn cpuset(&self, fs: &HostFs) -> Option<Cpuset> {
        let (version, cgroup) = cpuset_cgroup_path(&fs.read("/proc/self/cgroup")?)?;
        let found = cpuset_files(version, &cgroup, &self.mounts)
            .into_iter()
            .find_map(|file| {
                let cpus = parse_mask(&fs.read(&file)?).ok()?;
                Some((file, cpus))
            });
        let (file, cpus) = found.unzip();
        Some(Cpuset { cgroup, file, cpus })
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

    /// The cpuset file for v1 and v2 hierarchies (was checked against
    /// /proc/self/mountinfo by the second cpuset reader; the one reader uses /proc/mounts).
    #[test]
    fn cpuset_file_v1_and_v2() {
        let mounts = parse_cgroup_mounts(
            "tmpfs /sys/fs/cgroup tmpfs rw,mode=755 0 0\n\
             cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0\n\
             cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n",
        );
        let first = |cgroup: &str, mounts: &[CgroupMount]| {
            let (v, path) = cpuset_cgroup_path(cgroup)?;
            cpuset_files(v, &path, mounts).into_iter().next()
        };
        let cgroup_v1 = "9:name=systemd:/\n4:memory:/x\n3:cpuset:/vms/a\n0::/\n";
        assert_eq!(
            first(cgroup_v1, &mounts).as_deref(),
            Some("/sys/fs/cgroup/cpuset/vms/a/cpuset.effective_cpus")
        );
        assert_eq!(
            first("3:cpuset:/\n0::/\n", &mounts).as_deref(),
            Some("/sys/fs/cgroup/cpuset/cpuset.effective_cpus")
        );
        let v2_mounts =
            parse_cgroup_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nsdelegate 0 0\n");
        assert_eq!(
            first("0::/user.slice/session-1.scope\n", &v2_mounts).as_deref(),
            Some("/sys/fs/cgroup/user.slice/session-1.scope/cpuset.cpus.effective")
        );
        assert_eq!(first("", &v2_mounts), None);
    }

    #[test]
    fn reads_the_cpuset_from_a_fixture_tree() {
        let dir = std::env::temp_dir().join(format!("rvmm-cgroups-{}", std::process::id()));
        let w = |p: &str, v: &str| {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        };
        w("proc/mounts", MOUNTS);
        w("proc/self/cgroup", "3:cpuset:/vms/a\n0::/\n");
        // No effective_cpus file: v1's cpuset.cpus is read instead.
        w("sys/fs/cgroup/cpuset/vms/a/cpuset.cpus", "2-3\n");
        let fs = HostFs::at(&dir);
        let cgroups = HostCgroups::read(&fs);
        let cpuset = cgroups.cpuset(&fs);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cgroups.mode, CgroupMode::Hybrid);
        assert_eq!(
            cpuset,
            Some(Cpuset {
                cgroup: "/vms/a".into(),
                file: Some("/sys/fs/cgroup/cpuset/vms/a/cpuset.cpus".into()),
                cpus: Some(vec![2, 3]),
            })
        );
    }
}
