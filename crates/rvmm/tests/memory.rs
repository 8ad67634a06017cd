//! Guest memory backing on the real host: hugetlb pages (and the error for a pool that is
//! too small), preallocation, THP and KSM, checked from the host side (/proc/meminfo,
//! /proc/PID/smaps, status, ksm_merging_pages) while a probe guest sits halted.
//!
//! Tests that change host settings take a file lock and restore every value they touch,
//! even when they fail.

mod common;
mod host_memory;

use std::path::Path;
use std::time::{Duration, Instant};

use common::kvm_available;
use host_memory::*;

const KSM: &str = "/sys/kernel/mm/ksm";
const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
const GIB_KB: u64 = 1 << 20;

#[test]
fn bad_memory_options_get_one_clear_message() {
    // Refused before any host access, so no /dev/kvm needed.
    let cases: [(&[&str], &str); 6] = [
        (
            &["-m", "2G,hugepage=on"],
            "rvmm: -m: unknown option 'hugepage' (expected size, hugepages, hugepage-size, \
             prealloc, merge, thp, shared, mem-path)\n",
        ),
        (
            &["-m", "2G,hugepages=on,hugepage-size=4M"],
            "rvmm: -m: hugepage-size=4M is not a huge page size of x86-64 (2M or 1G)\n",
        ),
        (
            &["-m", "2G,hugepages=on,thp=on"],
            "rvmm: -m: thp=on does not apply with hugepages=on (hugetlbfs pages are huge already)\n",
        ),
        (
            &["-m", "1025M,hugepages=on,hugepage-size=2M"],
            "rvmm: -m: the guest memory (1025M) is not a multiple of the 2M huge page size\n",
        ),
        (&["-m", "2G,prealloc=maybe"], "rvmm: -m: prealloc='maybe' is not on or off\n"),
        (
            &["-m", "2G,hugepage-size=1G"],
            "rvmm: -m: hugepage-size=1G needs hugepages=on\n",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(refused(args), want, "{args:?}");
    }
}

/// Hugetlb memory of one smaps mapping (the kernel counts a page as shared or private by
/// a mapcount estimate, so both are summed).
fn hugetlb_kb(mapping: &str) -> u64 {
    field(mapping, "Private_Hugetlb") + field(mapping, "Shared_Hugetlb")
}

/// Free pages of the 2 MiB pool and the sysctl that sizes it.
fn pool_2m() -> (u64, u64, &'static str) {
    let dir = "/sys/kernel/mm/hugepages/hugepages-2048kB";
    let read = |f: &str| -> u64 {
        std::fs::read_to_string(format!("{dir}/{f}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let sysctl = if meminfo("Hugepagesize") == 2048 {
        NR_HUGEPAGES
    } else {
        "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
    };
    (
        read("nr_hugepages"),
        read("free_hugepages") - read("resv_hugepages"),
        sysctl,
    )
}

#[test]
fn hugepages_back_the_guest_and_a_small_pool_is_refused() {
    if !kvm_available("hugepages_back_the_guest") {
        return;
    }
    let _lock = HostLock::acquire();
    let (total, avail, sysctl) = pool_2m();
    // The pool is left as it is for the refusal: a guest larger than what is free (2G unless
    // the host already has that much free) needs no page reserved.
    let size_g = avail / 512 + 1;
    let err = refused(&["-m", &format!("{size_g}G,hugepages=on,hugepage-size=2M")]);
    let pages = size_g * 512;
    assert_eq!(
        err,
        format!(
            "rvmm: -m: {size_g}G of guest memory in 2M huge pages needs {pages} pages, but the \
             host's 2M pool has {avail} free (of {total}); reserve them with: echo {} > {sysctl}\n",
            total + pages - avail
        )
    );

    // Large enough: the guest's RAM comes from the pool, all of it up front with prealloc.
    // 1 GiB (512 pages: the smallest guest whose preallocation is reported) is enough to
    // see it, and half what this test asked of the host before.
    let _pool = match reserve_hugepages(2048, 512) {
        Ok(pool) => pool,
        Err(why) => return common::skip("hugepages_back_the_guest", &why),
    };
    let free_before = meminfo("HugePages_Free");
    let vm = HaltedVm::start(
        &["-m", "1G,hugepages=on,prealloc=on"],
        Duration::from_secs(120),
    );
    let free_during = meminfo("HugePages_Free");
    assert_eq!(
        free_before - free_during,
        512,
        "HugePages_Free must drop by the guest's 512 pages"
    );
    let smaps = vm.proc("smaps");
    let mapping = smaps_mappings(&smaps)
        .into_iter()
        .find(|m| hugetlb_kb(m) == GIB_KB)
        .unwrap_or_else(|| panic!("no 1 GiB hugetlb mapping in smaps:\n{smaps}"));
    assert_eq!(field(&mapping, "KernelPageSize"), 2048);
    let stderr = vm.stderr();
    assert!(
        stderr.contains("rvmm: preallocating 1G of guest memory on "),
        "{stderr}"
    );
    assert!(stderr.contains("rvmm: preallocated 1G in "), "{stderr}");
    vm.stop();
    assert_eq!(
        meminfo("HugePages_Free"),
        free_before,
        "the pages go back to the pool"
    );
}

#[test]
fn prealloc_commits_guest_memory_before_the_guest_runs() {
    if !kvm_available("prealloc_commits_guest_memory") {
        return;
    }
    let vm = HaltedVm::start(&["-m", "1G,prealloc=on,thp=off"], Duration::from_secs(60));
    let rss = field(&vm.proc("status"), "VmRSS");
    assert!(rss >= GIB_KB, "VmRSS {rss} kB must cover the 1 GiB guest");
    vm.stop();
    let vm = HaltedVm::start(&["-m", "1G,thp=off"], Duration::from_secs(60));
    let rss = field(&vm.proc("status"), "VmRSS");
    assert!(
        rss < GIB_KB / 8,
        "without prealloc only touched pages count: VmRSS {rss} kB"
    );
}

#[test]
fn thp_backs_guest_memory_with_huge_pages() {
    if !kvm_available("thp_backs_guest_memory") {
        return;
    }
    let mode = std::fs::read_to_string(THP_ENABLED).unwrap_or_default();
    if mode.is_empty() || mode.contains("[never]") {
        common::skip(
            "thp_backs_guest_memory",
            &format!("transparent huge pages are off on this host ({mode:?})"),
        );
        return;
    }
    let vm = HaltedVm::start(&["-m", "512M,thp=on,prealloc=on"], Duration::from_secs(60));
    let huge = field(&vm.proc("smaps_rollup"), "AnonHugePages");
    assert!(huge > 0, "thp=on,prealloc=on: AnonHugePages is 0");
    eprintln!("thp=on: AnonHugePages {huge} kB of 512 MiB");
    vm.stop();
    let vm = HaltedVm::start(&["-m", "512M,thp=off,prealloc=on"], Duration::from_secs(60));
    assert_eq!(
        field(&vm.proc("smaps_rollup"), "AnonHugePages"),
        0,
        "thp=off"
    );
}

fn ksm_value(name: &str) -> u64 {
    let path = format!("{KSM}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{path}: {text:?}"))
}

fn ksm_merging_pages(vm: &HaltedVm) -> u64 {
    vm.proc("ksm_merging_pages").trim().parse().unwrap()
}

#[test]
fn ksm_merges_identical_guest_memory_only_with_merge_on() {
    if !kvm_available("ksm_merges_identical_guest_memory") {
        return;
    }
    if !Path::new(KSM).is_dir() {
        common::skip(
            "ksm_merges_identical_guest_memory",
            "this host kernel has no KSM",
        );
        return;
    }
    // 64 MiB of random bytes: only the copies in the two merge=on guests can merge.
    let initrd = std::env::temp_dir().join(format!("rvmm-ksm-{}.img", std::process::id()));
    let mut bytes = vec![0u8; 64 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&initrd, &bytes).unwrap();
    let _remove = RemoveOnDrop(initrd.clone());
    let initrd_arg = initrd.to_str().unwrap().to_string();
    let initrd_pages = (bytes.len() / 4096) as u64;
    drop(bytes);

    let _lock = HostLock::acquire();
    let _scan = Sysctl::set(&format!("{KSM}/pages_to_scan"), "5000");
    let _sleep = Sysctl::set(&format!("{KSM}/sleep_millisecs"), "10");
    let run = Sysctl::set(&format!("{KSM}/run"), "1");
    // KSM's counters are only updated while it runs: let it finish a pass first.
    let scans = ksm_value("full_scans");
    let start = Instant::now();
    while ksm_value("full_scans") < scans + 2 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let sharing_before = ksm_value("pages_sharing");
    // The guests boot with KSM paused and halt; then it scans them.
    run.write("0");
    let vm = |merge: &str| {
        let m = format!("256M,merge={merge},thp=off");
        HaltedVm::start(
            &["-m", &m, "--initrd", &initrd_arg],
            Duration::from_secs(120),
        )
    };
    let on = [vm("on"), vm("on")];
    let off = [vm("off"), vm("off")];
    run.write("1");
    let start = Instant::now();
    while on.iter().any(|v| ksm_merging_pages(v) < initrd_pages)
        && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let merged: Vec<u64> = on.iter().map(ksm_merging_pages).collect();
    let unmerged: Vec<u64> = off.iter().map(ksm_merging_pages).collect();
    let sharing = ksm_value("pages_sharing");
    eprintln!("ksm: merge=on guests {merged:?} pages merged, merge=off guests {unmerged:?}; pages_sharing {sharing_before} -> {sharing}");
    for m in &merged {
        assert!(
            *m >= initrd_pages,
            "merge=on: only {m} of the initrd's {initrd_pages} pages merged"
        );
    }
    assert_eq!(unmerged, [0, 0], "merge=off guests must not be merged");
    assert!(
        sharing >= sharing_before + initrd_pages,
        "pages_sharing rose only from {sharing_before} to {sharing}"
    );
}

/// Deletes a temporary file when the test ends, failed or not.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn one_gib_pages_back_the_guest_when_the_kernel_has_them() {
    if !kvm_available("one_gib_pages_back_the_guest") {
        return;
    }
    let _lock = HostLock::acquire();
    let path = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";
    if !Path::new(path).exists() {
        common::skip("one_gib_pages", "this host has no 1 GiB huge page pool");
        return;
    }
    // One 1 GiB page for a 1 GiB guest: runtime 1 GiB allocations need contiguous free
    // memory the host may not have, even after compaction.
    let pool = match reserve_hugepages(GIB_KB, 1) {
        Ok(pool) => pool,
        Err(why) => return common::skip("one_gib_pages", &why),
    };
    let vm = HaltedVm::start(
        &["-m", "1G,hugepages=on,hugepage-size=1G,prealloc=on"],
        Duration::from_secs(120),
    );
    let smaps = vm.proc("smaps");
    let mapping = smaps_mappings(&smaps)
        .into_iter()
        .find(|m| hugetlb_kb(m) == GIB_KB)
        .unwrap_or_else(|| panic!("no 1 GiB hugetlb mapping in smaps:\n{smaps}"));
    assert_eq!(field(&mapping, "KernelPageSize"), GIB_KB);
    vm.stop();
    drop(pool);
}

/// A hugetlbfs mount on a temporary directory, unmounted on drop.
struct HugetlbfsMount(std::path::PathBuf);

impl Drop for HugetlbfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn mem_path_on_a_hugetlbfs_mount_as_qemu() {
    if !kvm_available("mem_path_on_a_hugetlbfs_mount") {
        return;
    }
    let _lock = HostLock::acquire();
    let dir = std::env::temp_dir().join(format!("rvmm-hugetlbfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mount = HugetlbfsMount(dir.clone());
    let ok = std::process::Command::new("mount")
        .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "none"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::skip(
            "mem_path_on_a_hugetlbfs_mount",
            "cannot mount hugetlbfs (not root?)",
        );
        return;
    }
    let _pool = match reserve_hugepages(2048, 128) {
        Ok(pool) => pool,
        Err(why) => return common::skip("mem_path_on_a_hugetlbfs_mount", &why),
    };
    let m = format!("256M,mem-path={},prealloc=on", dir.display());
    let vm = HaltedVm::start(&["-m", &m], Duration::from_secs(120));
    let smaps = vm.proc("smaps");
    let mapping = smaps_mappings(&smaps)
        .into_iter()
        .find(|m| m.contains(&format!("{}/rvmm-guest-ram.", dir.display())))
        .unwrap_or_else(|| {
            panic!(
                "no mapping of a file in {} in smaps:\n{smaps}",
                dir.display()
            )
        });
    assert!(
        mapping.contains("(deleted)"),
        "the backing file is unlinked: {mapping}"
    );
    assert_eq!(field(&mapping, "KernelPageSize"), 2048);
    assert_eq!(hugetlb_kb(&mapping), 256 << 10);
    vm.stop();
    drop(mount);
}
