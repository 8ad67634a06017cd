//! The host's memory features under /sys/kernel/mm and /proc: hugetlb page pools (global and
//! per NUMA node), KSM and transparent huge pages, and the sysctl paths that change them.
//!
//! Parsers take the text of one sysfs/procfs file and are pure; `read` functions gather a
//! snapshot from a sysfs root so tests can point them at a fake tree. Deciding whether a
//! guest fits is `memory::backing`'s job.

use std::path::{Path, PathBuf};

use super::meminfo::parse_meminfo;

/// Where the kernel lists hugetlb pools, one `hugepages-<size>kB` directory per page size.
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

/// The memory features of the running host that guest RAM backing depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMemFeatures {
    /// `Hugepagesize` from /proc/meminfo: the default hugetlb page size (0 without hugetlb).
    pub default_huge_page: u64,
    pub huge_pages: HugePools,
    pub ksm: KsmState,
    pub thp: ThpMode,
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

/// The selected value of a sysfs choice file (`always [madvise] never` → `madvise`).
pub fn parse_bracketed_choice(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
}

/// THP's mode from the text of `transparent_hugepage/enabled`.
pub fn parse_thp_enabled(text: &str) -> ThpMode {
    match parse_bracketed_choice(text) {
        Some("always") => ThpMode::Always,
        Some("madvise") => ThpMode::Madvise,
        _ => ThpMode::Never,
    }
}

/// KSM's state from the text of `ksm/run`.
pub fn parse_ksm_run(text: &str) -> KsmState {
    match text.trim() {
        "1" => KsmState::Running,
        "2" => KsmState::Unmerging,
        _ => KsmState::Stopped,
    }
}

fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads the pools under `dir` (a `.../hugepages` directory: the global one or a node's).
pub fn read_pools(dir: &Path) -> HugePools {
    let mut pools = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HugePools::default();
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(page_size) = name.to_str().and_then(parse_pool_dir_name) else {
            continue;
        };
        let p = entry.path();
        pools.push(HugePool {
            page_size,
            total: read_u64(&p.join("nr_hugepages")),
            free: read_u64(&p.join("free_hugepages")),
            reserved: read_u64(&p.join("resv_hugepages")),
            surplus: read_u64(&p.join("surplus_hugepages")),
        });
    }
    pools.sort_by_key(|p| p.page_size);
    HugePools { pools }
}

impl HostMemFeatures {
    /// Reads the running host's state.
    pub fn read() -> Self {
        Self::read_from(Path::new("/"))
    }

    /// Reads the state from a file system root (`/`, or a fake tree in tests).
    pub fn read_from(root: &Path) -> Self {
        let meminfo = std::fs::read_to_string(root.join("proc/meminfo")).unwrap_or_default();
        let default_huge_page = parse_meminfo(&meminfo)
            .get("Hugepagesize")
            .copied()
            .unwrap_or(0);
        let ksm_dir = root.join(KSM_DIR);
        let ksm = if ksm_dir.is_dir() {
            parse_ksm_run(&std::fs::read_to_string(ksm_dir.join("run")).unwrap_or_default())
        } else {
            KsmState::Absent
        };
        let thp_dir = root.join(THP_DIR);
        let thp = if thp_dir.is_dir() {
            parse_thp_enabled(&std::fs::read_to_string(thp_dir.join("enabled")).unwrap_or_default())
        } else {
            ThpMode::Absent
        };
        HostMemFeatures {
            default_huge_page,
            huge_pages: read_pools(&root.join(HUGEPAGES_DIR)),
            ksm,
            thp,
        }
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
    fn names_and_choices() {
        assert_eq!(parse_pool_dir_name("hugepages-2048kB"), Some(2 << 20));
        assert_eq!(parse_pool_dir_name("hugepages-1048576kB"), Some(1 << 30));
        assert_eq!(parse_pool_dir_name("hugepages-2048"), None);
        assert_eq!(parse_pool_dir_name("nr_hugepages"), None);
        assert_eq!(pool_dir_name(2 << 20), "hugepages-2048kB");
        assert_eq!(
            parse_bracketed_choice("always [madvise] never\n"),
            Some("madvise")
        );
        assert_eq!(parse_thp_enabled("[always] madvise never"), ThpMode::Always);
        assert_eq!(parse_thp_enabled("always madvise [never]"), ThpMode::Never);
        assert_eq!(parse_ksm_run("1\n"), KsmState::Running);
        assert_eq!(parse_ksm_run("0\n"), KsmState::Stopped);
        assert_eq!(parse_ksm_run("2"), KsmState::Unmerging);
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
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/meminfo"),
            "MemTotal: 100 kB\nHugepagesize:       2048 kB\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join(THP_DIR)).unwrap();
        std::fs::write(
            root.join(THP_DIR).join("enabled"),
            "always [madvise] never\n",
        )
        .unwrap();
        let f = HostMemFeatures::read_from(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(f.default_huge_page, 2 << 20);
        assert_eq!(f.ksm, KsmState::Absent);
        assert_eq!(f.thp, ThpMode::Madvise);
        assert_eq!(f.huge_pages.sizes(), vec![2 << 20, 1 << 30]);
        let p = f.huge_pages.get(2 << 20).unwrap();
        assert_eq!(
            (p.total, p.free, p.reserved, p.available()),
            (512, 500, 20, 480)
        );
        assert_eq!(f.huge_pages.get(1 << 30).unwrap().total, 0);
    }
}
