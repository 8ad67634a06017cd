//! The host's memory as guest RAM depends on it: /proc/meminfo's figures and the overcommit
//! policy, the hugetlb pools per page size (/sys/kernel/mm/hugepages; each NUMA node's are
//! `host::numa`'s), transparent huge pages (/sys/kernel/mm/transparent_hugepage), KSM
//! (/sys/kernel/mm/ksm) and the hugetlbfs mounts; and the sysctl paths that resize a pool.
//!
//! Parsers take the text of one file and are pure; readers take a [`HostFs`] so tests point
//! them at a fixture tree. Page sizes are in bytes everywhere. Deciding whether a guest fits
//! is `memory::backing`'s job.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::sysfs::{bracketed_choice, HostFs};

/// Where the kernel lists hugetlb pools, one `hugepages-<size>kB` directory per page size
/// (relative to the root, as messages print it after a `/`).
pub const HUGEPAGES_DIR: &str = "sys/kernel/mm/hugepages";
/// KSM's control directory (absent when the kernel has no CONFIG_KSM).
pub const KSM_DIR: &str = "sys/kernel/mm/ksm";
/// THP's control directory (absent without CONFIG_TRANSPARENT_HUGEPAGE).
pub const THP_DIR: &str = "sys/kernel/mm/transparent_hugepage";
/// The default-size pool's size sysctl.
pub const NR_HUGEPAGES_SYSCTL: &str = "/proc/sys/vm/nr_hugepages";

/// One hugetlb pool (one page size, globally or on one node), in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HugePool {
    /// Page size in bytes.
    pub page_size: u64,
    /// `nr_hugepages`: pages in the pool.
    pub total: u64,
    /// `free_hugepages`: pages not faulted in (reserved ones included).
    pub free: u64,
    /// `resv_hugepages`: free pages promised to existing mappings (global pools only).
    pub reserved: u64,
    /// `surplus_hugepages`.
    pub surplus: u64,
}

impl HugePool {
    /// Pages a new mapping can still get: free minus reserved.
    pub fn available(&self) -> u64 {
        self.free.saturating_sub(self.reserved)
    }

    /// The page size in KiB, as the kernel names the pool and `rvmm host` prints it.
    pub fn size_kib(&self) -> u64 {
        self.page_size / 1024
    }
}

/// The hugetlb pools of the host (or of one node).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HugePools {
    /// The pools by page size, ascending.
    pub pools: Vec<HugePool>,
}

impl HugePools {
    /// The pool of `page_size` bytes, if the kernel has one.
    pub fn get(&self, page_size: u64) -> Option<&HugePool> {
        self.pools.iter().find(|p| p.page_size == page_size)
    }

    /// The page sizes the kernel has pools for, ascending.
    pub fn sizes(&self) -> Vec<u64> {
        self.pools.iter().map(|p| p.page_size).collect()
    }

    /// Reads the pools under `dir` (a `.../hugepages` directory: the global one or a
    /// node's); files missing in a pool read as 0.
    pub fn read(fs: &HostFs, dir: &str) -> HugePools {
        let mut pools: Vec<HugePool> = fs
            .list(dir)
            .into_iter()
            .filter_map(|name| {
                let page_size = parse_pool_dir_name(&name)?;
                let get = |f: &str| fs.read_u64(&format!("{dir}/{name}/{f}")).unwrap_or(0);
                Some(HugePool {
                    page_size,
                    total: get("nr_hugepages"),
                    free: get("free_hugepages"),
                    reserved: get("resv_hugepages"),
                    surplus: get("surplus_hugepages"),
                })
            })
            .collect();
        pools.sort_by_key(|p| p.page_size);
        HugePools { pools }
    }
}

/// KSM's state (`/sys/kernel/mm/ksm/run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KsmState {
    /// The kernel has no KSM.
    Absent,
    /// `run` is 0: ksmd is stopped (merged pages stay merged).
    Stopped,
    /// `run` is 1: ksmd scans and merges.
    Running,
    /// `run` is 2: ksmd unmerges everything and stops.
    Unmerging,
}

impl KsmState {
    /// The state for a `run` value (`None`: no KSM in the kernel).
    pub fn from_run(run: Option<u64>) -> KsmState {
        match run {
            None => KsmState::Absent,
            Some(1) => KsmState::Running,
            Some(2) => KsmState::Unmerging,
            Some(_) => KsmState::Stopped,
        }
    }
}

/// THP's mode (`/sys/kernel/mm/transparent_hugepage/enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThpMode {
    /// The kernel has no THP.
    Absent,
    Always,
    /// Only in regions advised with MADV_HUGEPAGE.
    Madvise,
    Never,
}

impl ThpMode {
    /// The mode for the selected word of `enabled` (`None`: no THP in the kernel).
    pub fn from_choice(choice: Option<&str>) -> ThpMode {
        match choice {
            None => ThpMode::Absent,
            Some("always") => ThpMode::Always,
            Some("madvise") => ThpMode::Madvise,
            Some(_) => ThpMode::Never,
        }
    }
}

/// Transparent huge pages: the selected word of each setting (`None`: no such file).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Thp {
    pub enabled: Option<String>,
    pub defrag: Option<String>,
    pub shmem_enabled: Option<String>,
}

impl Thp {
    /// Reads the three settings.
    pub fn read(fs: &HostFs) -> Thp {
        let choice = |f: &str| {
            fs.read(&format!("/{THP_DIR}/{f}"))
                .and_then(|t| bracketed_choice(&t))
        };
        Thp {
            enabled: choice("enabled"),
            defrag: choice("defrag"),
            shmem_enabled: choice("shmem_enabled"),
        }
    }

    /// The mode `enabled` selects.
    pub fn mode(&self) -> ThpMode {
        ThpMode::from_choice(self.enabled.as_deref())
    }
}

/// KSM's `run` (0 stopped, 1 running, 2 unmerging; `None` without KSM in the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ksm {
    pub run: Option<u64>,
}

impl Ksm {
    /// What `run` means.
    pub fn run_state(&self) -> KsmState {
        KsmState::from_run(self.run)
    }

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

/// KSM's counters and tunables: every numeric file of /sys/kernel/mm/ksm but `run`.
pub fn read_ksm_counters(fs: &HostFs) -> BTreeMap<String, u64> {
    let dir = format!("/{KSM_DIR}");
    fs.list(&dir)
        .into_iter()
        .filter(|f| f != "run")
        .filter_map(|f| {
            let v = fs.read_u64(&format!("{dir}/{f}"))?;
            Some((f, v))
        })
        .collect()
}

/// A hugetlbfs mount (from /proc/mounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HugetlbfsMount {
    pub path: String,
    /// The `pagesize=` option, when given.
    pub pagesize: Option<String>,
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

/// The hugetlbfs mounts in /proc/mounts.
pub fn read_hugetlbfs_mounts(fs: &HostFs) -> Vec<HugetlbfsMount> {
    parse_hugetlbfs_mounts(&fs.read("/proc/mounts").unwrap_or_default())
}

/// The host's memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostMemory {
    /// /proc/meminfo `MemTotal`, bytes.
    pub total: u64,
    /// /proc/meminfo `MemAvailable`, bytes.
    pub available: u64,
    /// /proc/meminfo `SwapTotal`, bytes.
    pub swap_total: u64,
    /// vm.overcommit_memory: 0 heuristic, 1 always, 2 strict.
    pub overcommit_policy: u32,
    /// /proc/meminfo `Hugepagesize`: the default hugetlb page size, bytes (`None` without
    /// hugetlb).
    pub huge_page_size: Option<u64>,
    /// The global hugetlb pools.
    pub huge_pages: HugePools,
    pub thp: Thp,
    pub ksm: Ksm,
}

/// Parses /proc/meminfo text into key → bytes.
pub fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(Ok(n)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let mult = match parts.next() {
            Some("kB") => 1024,
            _ => 1,
        };
        out.insert(key.trim().to_string(), n * mult);
    }
    out
}

/// The page size a pool directory name (`hugepages-2048kB`) stands for, in bytes.
pub fn parse_pool_dir_name(name: &str) -> Option<u64> {
    let kb: u64 = name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// The pool directory name for `page_size` bytes.
pub fn pool_dir_name(page_size: u64) -> String {
    format!("hugepages-{}kB", page_size / 1024)
}

impl HostMemory {
    /// Reads /proc/meminfo, the overcommit sysctl, the global pools, THP and KSM; missing
    /// files read as zeros or absent features.
    pub fn read(fs: &HostFs) -> HostMemory {
        let info = parse_meminfo(&fs.read("/proc/meminfo").unwrap_or_default());
        let get = |k: &str| info.get(k).copied().unwrap_or(0);
        HostMemory {
            total: get("MemTotal"),
            available: get("MemAvailable"),
            swap_total: get("SwapTotal"),
            overcommit_policy: fs
                .read_u64("/proc/sys/vm/overcommit_memory")
                .map_or(0, |v| v as u32),
            huge_page_size: info.get("Hugepagesize").copied(),
            huge_pages: HugePools::read(fs, &format!("/{HUGEPAGES_DIR}")),
            thp: Thp::read(fs),
            ksm: Ksm {
                run: fs.read_u64(&format!("/{KSM_DIR}/run")),
            },
        }
    }

    /// The default hugetlb page size in bytes, 0 without hugetlb.
    pub fn default_huge_page(&self) -> u64 {
        self.huge_page_size.unwrap_or(0)
    }
}

/// The file whose value sets the size of the `page_size` pool: the node's pool when `node`
/// is given, else /proc/sys/vm/nr_hugepages for the default size and the sysfs pool file
/// for other sizes.
pub fn nr_hugepages_path(page_size: u64, default_size: u64, node: Option<u32>) -> PathBuf {
    match node {
        Some(n) => PathBuf::from(format!(
            "/sys/devices/system/node/node{n}/hugepages/{}/nr_hugepages",
            pool_dir_name(page_size)
        )),
        None if page_size == default_size => PathBuf::from(NR_HUGEPAGES_SYSCTL),
        None => PathBuf::from(format!(
            "/{HUGEPAGES_DIR}/{}/nr_hugepages",
            pool_dir_name(page_size)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo_lines() {
        let m = parse_meminfo("MemTotal:       24576000 kB\nHugePages_Total:       4\nBad line\n");
        assert_eq!(m["MemTotal"], 24576000 * 1024);
        assert_eq!(m["HugePages_Total"], 4);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn names_and_choices() {
        assert_eq!(parse_pool_dir_name("hugepages-2048kB"), Some(2 << 20));
        assert_eq!(parse_pool_dir_name("hugepages-1048576kB"), Some(1 << 30));
        assert_eq!(parse_pool_dir_name("hugepages-2048"), None);
        assert_eq!(parse_pool_dir_name("nr_hugepages"), None);
        assert_eq!(pool_dir_name(2 << 20), "hugepages-2048kB");
        let mode = |t: &str| ThpMode::from_choice(bracketed_choice(t).as_deref());
        assert_eq!(mode("always [madvise] never\n"), ThpMode::Madvise);
        assert_eq!(mode("[always] madvise never"), ThpMode::Always);
        assert_eq!(mode("always madvise [never]"), ThpMode::Never);
        assert_eq!(KsmState::from_run(Some(1)), KsmState::Running);
        assert_eq!(KsmState::from_run(Some(0)), KsmState::Stopped);
        assert_eq!(KsmState::from_run(Some(2)), KsmState::Unmerging);
        assert_eq!(KsmState::from_run(None), KsmState::Absent);
    }

    #[test]
    fn pool_directory_names() {
        // The KiB view `rvmm host` prints, from the one byte-sized parser.
        let kib = |n: &str| {
            parse_pool_dir_name(n).map(|page_size| {
                HugePool {
                    page_size,
                    ..Default::default()
                }
                .size_kib()
            })
        };
        assert_eq!(kib("hugepages-2048kB"), Some(2048));
        assert_eq!(kib("hugepages-1048576kB"), Some(1048576));
        assert_eq!(kib("hugepages-2MB"), None);
        assert_eq!(kib("nr_hugepages"), None);
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
    fn sysctl_paths() {
        let two = 2 << 20;
        assert_eq!(
            nr_hugepages_path(two, two, None),
            PathBuf::from("/proc/sys/vm/nr_hugepages")
        );
        assert_eq!(
            nr_hugepages_path(1 << 30, two, None),
            PathBuf::from("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages")
        );
        assert_eq!(
            nr_hugepages_path(two, two, Some(1)),
            PathBuf::from("/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages")
        );
    }

    #[test]
    fn reads_a_fake_tree() {
        let root = std::env::temp_dir().join(format!("rvmm-hp-{}", std::process::id()));
        let pool = root.join(HUGEPAGES_DIR).join("hugepages-2048kB");
        std::fs::create_dir_all(&pool).unwrap();
        std::fs::create_dir_all(root.join(HUGEPAGES_DIR).join("hugepages-1048576kB")).unwrap();
        for (f, v) in [
            ("nr_hugepages", "512\n"),
            ("free_hugepages", "500\n"),
            ("resv_hugepages", "20\n"),
            ("surplus_hugepages", "0\n"),
        ] {
            std::fs::write(pool.join(f), v).unwrap();
        }
        std::fs::create_dir_all(root.join("proc/sys/vm")).unwrap();
        std::fs::write(
            root.join("proc/meminfo"),
            "MemTotal: 100 kB\nSwapTotal: 8 kB\nHugepagesize:       2048 kB\n",
        )
        .unwrap();
        std::fs::write(root.join("proc/sys/vm/overcommit_memory"), "2\n").unwrap();
        std::fs::create_dir_all(root.join(THP_DIR)).unwrap();
        std::fs::write(
            root.join(THP_DIR).join("enabled"),
            "always [madvise] never\n",
        )
        .unwrap();
        let f = HostMemory::read(&HostFs::at(&root));
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(f.default_huge_page(), 2 << 20);
        assert_eq!(
            (f.total, f.available, f.swap_total),
            (100 << 10, 0, 8 << 10)
        );
        assert_eq!(f.overcommit_policy, 2);
        assert_eq!(f.ksm.run_state(), KsmState::Absent);
        assert_eq!(f.thp.mode(), ThpMode::Madvise);
        assert_eq!(f.thp.defrag, None);
        assert_eq!(f.huge_pages.sizes(), vec![2 << 20, 1 << 30]);
        let p = f.huge_pages.get(2 << 20).unwrap();
        assert_eq!(
            (p.total, p.free, p.reserved, p.available()),
            (512, 500, 20, 480)
        );
        assert_eq!(f.huge_pages.get(1 << 30).unwrap().total, 0);
    }

    #[test]
    fn an_empty_host_has_no_features() {
        let f = HostMemory::read(&HostFs::at("/nonexistent-root"));
        assert_eq!(f, HostMemory::default());
        assert_eq!(f.default_huge_page(), 0);
        assert_eq!(f.thp.mode(), ThpMode::Absent);
        assert_eq!(f.ksm.state(), "not available (kernel without CONFIG_KSM)");
    }
}
