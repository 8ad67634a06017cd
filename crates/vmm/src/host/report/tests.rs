//! The report read from fixture trees: every section from one root.

use super::*;
use crate::host::HostFs;

#[test]
fn memory_section_from_a_fixture_tree() {
    let dir = std::env::temp_dir().join(format!("rvmm-pages-{}", std::process::id()));
    let w = |p: &str, v: &str| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, v).unwrap();
    };
    for (size, total, free) in [("2048", "64\n", "60\n"), ("1048576", "2\n", "1\n")] {
        let pool = format!("sys/kernel/mm/hugepages/hugepages-{size}kB");
        w(&format!("{pool}/nr_hugepages"), total);
        w(&format!("{pool}/free_hugepages"), free);
    }
    w("sys/devices/system/node/online", "0\n");
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
    w(
        "proc/mounts",
        "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n",
    );
    let p = MemorySection::read(&Host::new(HostFs::at(&dir)));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(p.default_size_kib, Some(2048));
    assert_eq!((p.mem_total, p.mem_available), (24684084 * 1024, 0));
    // Listed as the kernel's directory names sort, as `rvmm host` always showed them.
    let sizes: Vec<u64> = p.pools.iter().map(|p| p.size_kib).collect();
    assert_eq!(sizes, [1048576, 2048]);
    assert_eq!((p.pools[1].total, p.pools[1].free), (64, 60));
    assert_eq!(p.pools[1].nodes, [(0, 32, 30)]);
    assert_eq!(p.pools[0].nodes, []);
    assert_eq!(p.mounts[0].pagesize.as_deref(), Some("2M"));
    assert_eq!(p.thp.enabled.as_deref(), Some("madvise"));
    assert_eq!(p.thp.defrag, None);
    assert_eq!(p.ksm.state(), "running");
    assert_eq!(p.ksm.counters["pages_sharing"], 1234);
}

/// The whole report read from one fixture tree: every section comes from the same root.
#[test]
fn report_from_a_two_node_fixture_tree() {
    let dir = std::env::temp_dir().join(format!("rvmm-report-{}", std::process::id()));
    let w = |p: &str, v: &str| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, v).unwrap();
    };
    let mut cpuinfo = String::new();
    for cpu in 0..4 {
        cpuinfo.push_str(&format!(
            "processor\t: {cpu}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
             model name\t: Test CPU\nstepping\t: 7\nphysical id\t: {}\ncore id\t\t: 0\n\
             flags\t\t: fpu avx2 vmx\n\n",
            cpu / 2
        ));
    }
    w("proc/cpuinfo", &cpuinfo);
    for (f, v) in [
        ("possible", "0-7\n"),
        ("present", "0-3\n"),
        ("online", "0-3\n"),
        ("isolated", "2-3\n"),
    ] {
        w(&format!("sys/devices/system/cpu/{f}"), v);
    }
    w(
        "proc/self/status",
        "Cpus_allowed_list:\t0-3\nMems_allowed_list:\t0-1\n",
    );
    w("proc/cmdline", "ro isolcpus=2-3 intel_iommu=on\n");
    w(
        "proc/mounts",
        "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\nnone /dev/hugepages hugetlbfs rw 0 0\n",
    );
    w("proc/self/cgroup", "0::/vms\n");
    w("sys/fs/cgroup/vms/cpuset.cpus.effective", "0-3\n");
    w(
        "proc/meminfo",
        "MemTotal: 4194304 kB\nMemAvailable: 2097152 kB\n",
    );
    w("sys/devices/system/node/online", "0-1\n");
    for node in 0..2u32 {
        let d = format!("sys/devices/system/node/node{node}");
        w(
            &format!("{d}/cpulist"),
            &format!("{}-{}\n", node * 2, node * 2 + 1),
        );
        w(
            &format!("{d}/meminfo"),
            &format!("Node {node} MemTotal: 2097152 kB\nNode {node} MemFree: 1048576 kB\n"),
        );
        w(
            &format!("{d}/distance"),
            ["10 21\n", "21 10\n"][node as usize],
        );
        w(
            &format!("{d}/hugepages/hugepages-2048kB/nr_hugepages"),
            "8\n",
        );
        w(
            &format!("{d}/hugepages/hugepages-2048kB/free_hugepages"),
            "4\n",
        );
    }
    w(
        "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
        "16\n",
    );
    w(
        "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
        "8\n",
    );
    let host = Host::new(HostFs::at(&dir));
    let report = HostReport::read(&host, &dir.join("dev/kvm"), None).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = report.render();
    for line in [
        "  topology:            2 socket(s) x 1 core(s) x 2 thread(s)",
        "  CPUs:                4 online (0-3), 4 usable by this process (0-3)",
        "  available: 2 nodes (0-1)",
        "  node 1 cpus: 2 3",
        "  node 1 size: 2048 MB",
        "    1:  21  10 ",
        "  RAM:                 4096 MiB total, 2048 MiB available (/proc/meminfo)",
        "  huge pages     2048 kB: 16 total, 8 free, 0 reserved, 0 surplus (node 0: 8 total, 4 free; node 1: 8 total, 4 free)",
        "  hugetlbfs mounts:    /dev/hugepages",
        "  boot parameters:     intel_iommu=on",
        "  isolated CPUs:       2-3",
        "  boot parameters:     isolcpus=2-3",
        "  cgroups:             v2 (unified)",
        "  cpuset:              cgroup /vms, CPUs 0-3",
        "  this process:        CPUs 0-3, memory nodes 0-1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
    assert_eq!(report.cpus.flags.len(), 3);
    assert_eq!(
        host.cpus().unwrap().allowed_source.to_string(),
        "cgroup cpuset /sys/fs/cgroup/vms/cpuset.cpus.effective"
    );
}
