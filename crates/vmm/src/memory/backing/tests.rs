//! `plan` against fake hosts: pools (global and per node), KSM and THP states, mounts.

use super::*;
use crate::config::memory::parse_memory;
use crate::config::numa::NumaConfig;
use crate::config::SmpConfig;
use crate::host::memory::{HostMemory, HugePool, HugePools, Ksm, Thp};
use crate::host::numa::{HostNode, HostNuma};
use crate::host::HostFs;

const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;

fn pool(page_size: u64, total: u64, free: u64) -> HugePool {
    HugePool {
        page_size,
        total,
        free,
        reserved: 0,
        surplus: 0,
    }
}

/// The host facts `plan` reads, as plain fields the tests change.
struct FakeHost {
    features: HostMemory,
    numa: HostNuma,
}

impl FakeHost {
    /// A snapshot holding these facts (nothing is read from the running host).
    fn snapshot(&self) -> Host {
        Host::new(HostFs::at("/nonexistent-root"))
            .with_memory(self.features.clone())
            .with_numa(self.numa.clone())
    }
}

/// THP whose `enabled` selects `mode` (`None`: no THP in the kernel).
fn thp(mode: Option<&str>) -> Thp {
    Thp {
        enabled: mode.map(String::from),
        ..Default::default()
    }
}

/// KSM whose `run` is `run` (`None`: no KSM in the kernel).
fn ksm(run: Option<u64>) -> Ksm {
    Ksm { run }
}

/// A host with `nodes` NUMA nodes, each with `per_node` free 2M pages (of `per_node`), no 1G
/// pages, KSM running and THP in madvise mode.
fn host(nodes: u32, per_node: u64) -> FakeHost {
    FakeHost {
        features: HostMemory {
            huge_page_size: Some(M2),
            huge_pages: HugePools {
                pools: vec![
                    pool(M2, per_node * u64::from(nodes), per_node * u64::from(nodes)),
                    pool(G1, 0, 0),
                ],
            },
            ksm: ksm(Some(1)),
            thp: thp(Some("madvise")),
            ..Default::default()
        },
        numa: HostNuma {
            nodes: (0..nodes)
                .map(|id| HostNode {
                    id,
                    huge_pages: HugePools {
                        pools: vec![pool(M2, per_node, per_node), pool(G1, 0, 0)],
                    },
                    ..Default::default()
                })
                .collect(),
        },
    }
}

fn plan_for(
    m: &str,
    numa: &[&str],
    host: &FakeHost,
) -> Result<(BackingPlan, Vec<String>), BackingError> {
    let mem = parse_memory(m).unwrap();
    let numa = NumaConfig::parse(numa)
        .unwrap()
        .resolve(&SmpConfig::parse("2").unwrap(), mem.size)
        .unwrap();
    plan(mem.size, &mem.backing, &numa, &host.snapshot(), None)
}

fn err(m: &str, numa: &[&str], host: &FakeHost) -> String {
    plan_for(m, numa, host).unwrap_err().to_string()
}

#[test]
fn defaults_are_anonymous_with_ksm_and_thp() {
    let (p, w) = plan_for("1G", &[], &host(1, 0)).unwrap();
    assert_eq!(
        p,
        BackingPlan {
            size: G1,
            source: Source::Anonymous,
            shared: false,
            page_size: 4096,
            merge: true,
            thp: Some(true),
            prealloc: false,
            policies: vec![],
        }
    );
    assert!(w.is_empty());
    let (p, _) = plan_for("1G,merge=off,thp=off,prealloc=on", &[], &host(1, 0)).unwrap();
    assert_eq!((p.merge, p.thp, p.prealloc), (false, Some(false), true));
    let (p, _) = plan_for("1G,shared=on", &[], &host(1, 0)).unwrap();
    assert_eq!(
        (p.source, p.shared),
        (Source::Memfd { huge_page: None }, true)
    );
}

#[test]
fn missing_ksm_and_thp() {
    let mut h = host(1, 0);
    h.features.ksm = ksm(None);
    h.features.thp = thp(None);
    // Defaults are skipped quietly.
    let (p, w) = plan_for("1G", &[], &h).unwrap();
    assert_eq!((p.merge, p.thp, w.len()), (false, None, 0));
    // Asked for: said clearly.
    let (p, w) = plan_for("1G,merge=on,thp=on", &[], &h).unwrap();
    assert_eq!((p.merge, p.thp), (false, None));
    assert_eq!(
        w,
        vec![
            "-m merge=on: this host kernel has no KSM (/sys/kernel/mm/ksm is missing: CONFIG_KSM \
             is off); guest memory will not be merged",
            "-m thp=on: this host kernel has no transparent huge pages \
             (/sys/kernel/mm/transparent_hugepage is missing: CONFIG_TRANSPARENT_HUGEPAGE is off)"
        ]
    );
    // thp=off without THP in the kernel: nothing to advise (MADV_NOHUGEPAGE would fail).
    assert_eq!(plan_for("1G,thp=off", &[], &h).unwrap().0.thp, None);
    h.features.thp = thp(Some("always"));
    assert_eq!(plan_for("1G,thp=off", &[], &h).unwrap().0.thp, Some(false));
    h.features.ksm = ksm(Some(0));
    h.features.thp = thp(Some("never"));
    let (p, w) = plan_for("1G,merge=on,thp=on", &[], &h).unwrap();
    assert_eq!((p.merge, p.thp), (true, Some(true)));
    assert_eq!(
        w,
        vec![
            "-m merge=on: KSM is not running on this host, so nothing is merged yet; start it \
             with: echo 1 > /sys/kernel/mm/ksm/run",
            "-m thp=on: transparent huge pages are disabled on this host (enabled is never); \
             enable them with: echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"
        ]
    );
}

#[test]
fn huge_pages_from_memfd_or_map_hugetlb() {
    let h = host(1, 1024);
    let (p, w) = plan_for("2G,hugepages=on", &[], &h).unwrap();
    assert_eq!(p.source, Source::AnonHugeTlb { page_size: M2 });
    assert_eq!(
        (p.page_size, p.merge, p.thp, p.huge_page()),
        (M2, false, None, Some(M2))
    );
    assert!(w.is_empty());
    let (p, _) = plan_for("2G,hugepages=on,shared=on,hugepage-size=2M", &[], &h).unwrap();
    assert_eq!(
        p.source,
        Source::Memfd {
            huge_page: Some(M2)
        }
    );
}

#[test]
fn pool_too_small() {
    assert_eq!(
        err("2G,hugepages=on", &[], &host(1, 0)),
        "-m: 2G of guest memory in 2M huge pages needs 1024 pages, but the host's 2M pool has 0 \
         free (of 0); reserve them with: echo 1024 > /proc/sys/vm/nr_hugepages"
    );
    let mut h = host(1, 600);
    h.features.huge_pages.pools[0].reserved = 100;
    assert_eq!(
        err("2G,hugepages=on", &[], &h),
        "-m: 2G of guest memory in 2M huge pages needs 1024 pages, but the host's 2M pool has 500 \
         free (of 600); reserve them with: echo 1124 > /proc/sys/vm/nr_hugepages"
    );
    assert_eq!(
        err("2G,hugepages=on,hugepage-size=1G", &[], &host(1, 0)),
        "-m: 2G of guest memory in 1G huge pages needs 2 pages, but the host's 1G pool has 0 free \
         (of 0); reserve them with: echo 2 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"
    );
    let mut h = host(1, 0);
    h.features.huge_pages.pools.truncate(1);
    assert_eq!(
        err("2G,hugepages=on,hugepage-size=1G", &[], &h),
        "-m: hugepage-size=1G: this host has no 1G huge page pool (it has 2M)"
    );
    h.features.huge_pages.pools.clear();
    assert_eq!(
        err("2G,hugepages=on", &[], &h),
        "-m: hugepages=on: this host kernel has no huge page pools (/sys/kernel/mm/hugepages is empty)"
    );
}

#[test]
fn per_node_pools_on_a_two_node_host() {
    // 600 free 2M pages on each of 2 nodes: 1200 in all, enough for 2G globally.
    let h = host(2, 600);
    let two = [
        "node,cpus=0,mem=1G,host-nodes=0",
        "node,cpus=1,mem=1G,host-nodes=1",
    ];
    assert!(plan_for("2G,hugepages=on", &two, &h).is_ok());
    // Both guest nodes on host node 1: 1024 pages needed there, 600 free.
    assert_eq!(
        err("2G,hugepages=on", &["node,cpus=0,mem=1G,host-nodes=1", "node,cpus=1,mem=1G,host-nodes=1"], &h),
        "--numa guest nodes 0-1 together: 1024 huge pages of 2M are needed on host node 1, which has 600 \
         free; reserve them with: echo 1024 > \
         /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages"
    );
    // Interleaved over both nodes: counted against their sum.
    assert!(plan_for(
        "2G,hugepages=on",
        &["node,cpus=0-1,mem=2G,host-nodes=0-1,policy=interleave"],
        &h
    )
    .is_ok());
    let small = host(2, 300);
    let mut small = small;
    small.features.huge_pages.pools[0].free = 2000;
    assert_eq!(
        err(
            "2G,hugepages=on",
            &["node,cpus=0-1,mem=2G,host-nodes=0-1,policy=interleave"],
            &small
        ),
        "--numa node,nodeid=0: 1024 huge pages of 2M are needed on host nodes 0-1, which have 600 \
         free; reserve them with: echo 724 > \
         /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
    );
    // Preferred falls back to other nodes: only the global pool counts.
    assert!(plan_for(
        "2G,hugepages=on",
        &["node,cpus=0-1,mem=2G,host-nodes=1,policy=preferred"],
        &small
    )
    .is_ok());
    // Node memory must divide into huge pages.
    assert_eq!(
        err(
            "2G,hugepages=on",
            &["node,cpus=0,mem=1025M", "node,cpus=1,mem=1023M"],
            &h
        ),
        "--numa node,nodeid=0: mem=1025M is not a multiple of the 2M huge page size"
    );
}

#[test]
fn host_nodes_must_exist() {
    assert_eq!(
        err("1G", &["node,cpus=0-1,mem=1G,host-nodes=1"], &host(1, 0)),
        "--numa node,nodeid=0: host-nodes=1: host node 1 does not exist (this host has node 0)"
    );
    let (p, _) = plan_for(
        "1G",
        &[
            "node,cpus=0,mem=512M,host-nodes=0",
            "node,cpus=1,mem=512M,host-nodes=1,policy=interleave",
        ],
        &host(2, 0),
    )
    .unwrap();
    assert_eq!(p.policies.len(), 2);
    assert_eq!(
        (p.policies[1].offset, p.policies[1].len),
        (512 << 20, 512 << 20)
    );
}

#[test]
fn mem_path_mounts() {
    let h = host(1, 1024);
    let mem = parse_memory("2G,hugepages=on,mem-path=/dev/hugepages").unwrap();
    let numa = GuestNuma::default();
    let hugetlbfs_2m = MemPathInfo {
        hugetlb_page_size: Some(M2),
    };
    let tmpfs = MemPathInfo {
        hugetlb_page_size: None,
    };
    let (p, _) = plan(
        mem.size,
        &mem.backing,
        &numa,
        &h.snapshot(),
        Some(&hugetlbfs_2m),
    )
    .unwrap();
    assert_eq!(
        p.source,
        Source::File {
            dir: PathBuf::from("/dev/hugepages"),
            huge_page: Some(M2)
        }
    );
    assert_eq!(
        plan(mem.size, &mem.backing, &numa, &h.snapshot(), Some(&tmpfs))
            .unwrap_err()
            .to_string(),
        "-m: mem-path=/dev/hugepages is not a hugetlbfs mount; hugepages=on needs one (mount -t \
         hugetlbfs none /dev/hugepages) or no mem-path (rvmm then uses memfd huge pages)"
    );
    let mem = parse_memory("2G,hugepages=on,hugepage-size=1G,mem-path=/dev/hugepages").unwrap();
    assert_eq!(
        plan(
            mem.size,
            &mem.backing,
            &numa,
            &h.snapshot(),
            Some(&hugetlbfs_2m)
        )
        .unwrap_err()
        .to_string(),
        "-m: hugepage-size=1G, but mem-path=/dev/hugepages is a hugetlbfs mount of 2M pages"
    );
    // A hugetlbfs mem-path means huge pages even without hugepages=on; a tmpfs one is a file.
    let mem = parse_memory("2G,mem-path=/mnt/huge").unwrap();
    let (p, _) = plan(
        mem.size,
        &mem.backing,
        &numa,
        &h.snapshot(),
        Some(&hugetlbfs_2m),
    )
    .unwrap();
    assert_eq!((p.huge_page(), p.merge, p.thp), (Some(M2), false, None));
    let (p, _) = plan(mem.size, &mem.backing, &numa, &h.snapshot(), Some(&tmpfs)).unwrap();
    assert_eq!((p.huge_page(), p.page_size, p.merge), (None, 4096, true));
}

#[test]
fn maps_anonymous_and_memfd_memory() {
    let mut plan = BackingPlan::anonymous(8 << 20);
    plan.prealloc = true;
    plan.thp = Some(true);
    let (m, w) = map(&plan, &mut |_| {}).unwrap();
    assert!(w.is_empty());
    assert_eq!(m.as_ptr() as u64 % (2 << 20), 0);
    // SAFETY: reading the first byte of our preallocated mapping.
    assert_eq!(unsafe { *m.as_ptr() }, 0);
    let mut plan = BackingPlan::anonymous(4 << 20);
    plan.source = Source::Memfd { huge_page: None };
    plan.shared = true;
    let (m, _) = map(&plan, &mut |_| {}).unwrap();
    // SAFETY: writing and reading inside our own mapping.
    unsafe {
        *m.as_ptr().add(4095) = 7;
        assert_eq!(*m.as_ptr().add(4095), 7);
    }
    assert_eq!(m.size(), 4 << 20);
}

/// The VmFlags of the /proc/self/smaps entry that starts at `addr`.
fn vm_flags_at(addr: u64) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((start, _)) = range.split_once('-') {
                if let Ok(start) = u64::from_str_radix(start, 16) {
                    inside = start == addr;
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.split_whitespace().map(String::from).collect();
            }
        }
    }
    panic!("no smaps entry starts at {addr:#x}");
}

#[test]
fn thp_advice_leaves_the_first_two_mib_in_small_pages() {
    let mut plan = BackingPlan::anonymous(8 << 20);
    plan.thp = Some(true);
    let (m, w) = map(&plan, &mut |_| {}).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let base = m.as_ptr() as u64;
    // Two advice ranges make two VMAs: nohugepage below 2 MiB, hugepage above.
    assert!(vm_flags_at(base).contains(&"nh".to_string()));
    assert!(vm_flags_at(base + (2 << 20)).contains(&"hg".to_string()));
    let mut plan = BackingPlan::anonymous(8 << 20);
    plan.thp = Some(false);
    let (m, _) = map(&plan, &mut |_| {}).unwrap();
    let flags = vm_flags_at(m.as_ptr() as u64);
    assert!(flags.contains(&"nh".to_string()) && !flags.contains(&"hg".to_string()));
}
