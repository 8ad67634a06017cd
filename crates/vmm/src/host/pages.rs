//! Host memory features a VM's backing depends on: the huge page pools per page size and per
//! NUMA node (/sys/kernel/mm/hugepages, /sys/devices/system/node/nodeN/hugepages), the
//! hugetlbfs mounts, transparent huge pages (/sys/kernel/mm/transparent_hugepage) and KSM
//! (/sys/kernel/mm/ksm). Read as the kernel reports them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sysfs::{bracketed_choice, HostFs};

/// One huge page size's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HugePool {
    /// Page size in KiB (from the `hugepages-<N>kB` directory name).
    pub size_kib: u64,
    pub total: u64,
    pub free: u64,
    pub reserved: u64,
    pub surplus: u64,
    /// Per node: (node, total, free).
    pub nodes: Vec<(u32, u64, u64)>,
}

/// A hugetlbfs mount (from /proc/mounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HugetlbfsMount {
    pub path: String,
    /// The `pagesize=` option, when given.
    pub pagesize: Option<String>,
}

/// Transparent huge pages: the selected mode of each setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thp {
    pub enabled: Option<String>,
    pub defrag: Option<String>,
    pub shmem_enabled: Option<String>,
}

/// KSM: `run` and every numeric counter the kernel exposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ksm {
    /// 0 stopped, 1 running, 2 unmerging; `None` without KSM in the kernel.
    pub run: Option<u64>,
    pub counters: BTreeMap<String, u64>,
}

impl Ksm {
    /// `run` in words.
    pub fn state(&self) -> &'static str {
        match self.run {
            None => "not available (kernel without CONFIG_KSM)",
            Some(0) => "stopped",
            Some(1) => "running",
            Some(2) => "unmerging",
            Some(_) => "unknown",
        }
    }
}

/// Everything above.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPages {
    /// /proc/meminfo `MemTotal`, bytes.
    pub mem_total: u64,
    /// /proc/meminfo `MemAvailable`, bytes.
    pub mem_available: u64,
    /// /proc/meminfo `Hugepagesize`, KiB.
    pub default_size_kib: Option<u64>,
    pub pools: Vec<HugePool>,
    pub mounts: Vec<HugetlbfsMount>,
    pub thp: Thp,
    pub ksm: Ksm,
}

/// `hugepages-2048kB` → 2048.
pub fn parse_pool_dir(name: &str) -> Option<u64> {
    name.strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()
}

/// The hugetlbfs mounts of a /proc/mounts text.
pub fn parse_hugetlbfs_mounts(mounts: &str) -> Vec<HugetlbfsMount> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 || f[2] != "hugetlbfs" {
                return None;
            }
            let pagesize = f[3]
                .split(',')
                .find_map(|o| o.strip_prefix("pagesize="))
                .map(String::from);
            Some(HugetlbfsMount {
                path: f[1].to_string(),
                pagesize,
            })
        })
        .collect()
}

impl HostPages {
    pub fn read(fs: &HostFs, nodes: &[u32]) -> HostPages {
        let meminfo = super::meminfo::parse_meminfo(&fs.read("/proc/meminfo").unwrap_or_default());
        let mut pools = Vec::new();
        for dir in fs.list("/sys/kernel/mm/hugepages") {
            let Some(size_kib) = parse_pool_dir(&dir) else {
                continue;
            };
            let base = format!("/sys/kernel/mm/hugepages/{dir}");
            let get = |f: &str| fs.read_u64(&format!("{base}/{f}")).unwrap_or(0);
            let per_node = nodes
                .iter()
                .filter_map(|&n| {
                    let nb = format!("/sys/devices/system/node/node{n}/hugepages/{dir}");
                    Some((
                        n,
                        fs.read_u64(&format!("{nb}/nr_hugepages"))?,
                        fs.read_u64(&format!("{nb}/free_hugepages"))?,
                    ))
                })
                .collect();
            pools.push(HugePool {
                size_kib,
                total: get("nr_hugepages"),
                free: get("free_hugepages"),
                reserved: get("resv_hugepages"),
                surplus: get("surplus_hugepages"),
                nodes: per_node,
            });
        }
        let thp_dir = "/sys/kernel/mm/transparent_hugepage";
        let choice = |f: &str| {
            fs.read(&format!("{thp_dir}/{f}"))
                .and_then(|t| bracketed_choice(&t))
        };
        let ksm_dir = "/sys/kernel/mm/ksm";
        let counters = fs
            .list(ksm_dir)
            .into_iter()
            .filter(|f| f != "run")
            .filter_map(|f| {
                let v = fs.read_u64(&format!("{ksm_dir}/{f}"))?;
                Some((f, v))
            })
            .collect();
        HostPages {
            mem_total: meminfo.get("MemTotal").copied().unwrap_or(0),
            mem_available: meminfo.get("MemAvailable").copied().unwrap_or(0),
            default_size_kib: meminfo.get("Hugepagesize").map(|b| b / 1024),
            pools,
            mounts: parse_hugetlbfs_mounts(&fs.read("/proc/mounts").unwrap_or_default()),
            thp: Thp {
                enabled: choice("enabled"),
                defrag: choice("defrag"),
                shmem_enabled: choice("shmem_enabled"),
            },
            ksm: Ksm {
                run: fs.read_u64(&format!("{ksm_dir}/run")),
                counters,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_directory_names() {
        assert_eq!(parse_pool_dir("hugepages-2048kB"), Some(2048));
        assert_eq!(parse_pool_dir("hugepages-1048576kB"), Some(1048576));
        assert_eq!(parse_pool_dir("hugepages-2MB"), None);
        assert_eq!(parse_pool_dir("nr_hugepages"), None);
    }

    #[test]
    fn hugetlbfs_mounts() {
        let m = parse_hugetlbfs_mounts(
            "proc /proc proc rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n\
none /mnt/huge1g hugetlbfs rw 0 0\n",
        );
        assert_eq!(
            m,
            [
                HugetlbfsMount {
                    path: "/dev/hugepages".into(),
                    pagesize: Some("2M".into())
                },
                HugetlbfsMount {
                    path: "/mnt/huge1g".into(),
                    pagesize: None
                }
            ]
        );
    }

    #[test]
    fn reads_a_fixture_tree() {
        let dir = std::env::temp_dir().join(format!("rvmm-pages-{}", std::process::id()));
        let w = |p: &str, v: &str| {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        };
        w(
            "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
            "64\n",
        );
        w(
            "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "60\n",
        );
        w(
            "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
            "32\n",
        );
        w(
            "sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages",
            "30\n",
        );
        w(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        w("sys/kernel/mm/ksm/run", "1\n");
        w("sys/kernel/mm/ksm/pages_sharing", "1234\n");
        w(
            "proc/meminfo",
            "MemTotal:       24684084 kB\nHugepagesize:       2048 kB\n",
        );
        let p = HostPages::read(&HostFs::at(&dir), &[0]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(p.default_size_kib, Some(2048));
        assert_eq!((p.mem_total, p.mem_available), (24684084 * 1024, 0));
        assert_eq!(p.pools.len(), 1);
        assert_eq!((p.pools[0].total, p.pools[0].free), (64, 60));
        assert_eq!(p.pools[0].nodes, [(0, 32, 30)]);
        assert_eq!(p.thp.enabled.as_deref(), Some("madvise"));
        assert_eq!(p.thp.defrag, None);
        assert_eq!(p.ksm.state(), "running");
        assert_eq!(p.ksm.counters["pages_sharing"], 1234);
    }
}
