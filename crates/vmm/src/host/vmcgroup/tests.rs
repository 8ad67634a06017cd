//! The v2 layout against a fixture tree, and the real groups of this host (cgroup v1 or v2,
//! as root; skipped with a message otherwise).

use super::*;
use crate::config::cputune::CpuTune;

fn fixture(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvmm-vmcgroup-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn put(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn text(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn tune() -> CpuTune {
    CpuTune {
        shares: Some(2048),
        global: Bandwidth {
            period_us: Some(100_000),
            quota_us: Some(150_000),
        },
        vcpu: Bandwidth {
            period_us: Some(50_000),
            quota_us: Some(25_000),
        },
        emulator: Bandwidth {
            period_us: Some(100_000),
            quota_us: Some(-1),
        },
    }
}

/// cgroup v2: threaded children, the controllers enabled down the parent chain, cpu.max and
/// cpu.weight, memory.max at the scope.
#[test]
fn v2_layout_in_a_fixture_tree() {
    let root = fixture("v2");
    put(
        &root,
        "proc/mounts",
        "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n",
    );
    put(&root, "proc/self/cgroup", "0::/user.slice\n");
    put(
        &root,
        "sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory pids\n",
    );
    let fs = HostFs::at(&root);
    let spec = CgroupSpec {
        name: Some("web"),
        cputune: tune(),
        memory_limit: Some(1 << 30),
        mems: Some(vec![0]),
        ..Default::default()
    };
    let (cg, warnings) = VmCgroup::create(&fs, &spec).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(cg.is_v2());
    assert_eq!(cg.path(), "/rvmm.slice/rvmm-web.scope");
    let s = "sys/fs/cgroup/rvmm.slice/rvmm-web.scope";
    assert_eq!(
        text(&root, "sys/fs/cgroup/cgroup.subtree_control"),
        "+cpu +cpuset +memory"
    );
    assert_eq!(
        text(&root, "sys/fs/cgroup/rvmm.slice/cgroup.subtree_control"),
        "+cpu +cpuset +memory"
    );
    assert_eq!(
        text(&root, &format!("{s}/cgroup.subtree_control")),
        "+cpu +cpuset"
    );
    assert_eq!(
        text(&root, &format!("{s}/emulator/cgroup.type")),
        "threaded"
    );
    assert_eq!(text(&root, &format!("{s}/cpu.weight")), "200");
    assert_eq!(text(&root, &format!("{s}/cpu.max")), "150000 100000");
    assert_eq!(text(&root, &format!("{s}/emulator/cpu.max")), "max 100000");
    assert_eq!(text(&root, &format!("{s}/memory.max")), "1073741824");
    assert_eq!(text(&root, &format!("{s}/cpuset.mems")), "0");

    cg.prepare_vcpu(1, Some(&[2, 3])).unwrap();
    assert_eq!(text(&root, &format!("{s}/vcpu1/cgroup.type")), "threaded");
    assert_eq!(text(&root, &format!("{s}/vcpu1/cpuset.cpus")), "2-3");
    assert_eq!(text(&root, &format!("{s}/vcpu1/cpu.max")), "25000 50000");
    assert_eq!(cg.vcpu_indexes(), [1]);

    // Run time: a quota without a period keeps the group's period.
    cg.set(&[SchedParam::VcpuQuota(10_000), SchedParam::CpuShares(512)])
        .unwrap();
    assert_eq!(text(&root, &format!("{s}/vcpu1/cpu.max")), "10000 50000");
    assert_eq!(text(&root, &format!("{s}/cpu.weight")), "50");
    let info = cg.schedinfo().unwrap();
    assert_eq!(
        (
            info.cpu_shares,
            info.vcpu_quota,
            info.vcpu_period,
            info.emulator_quota,
            info.global_quota
        ),
        (512, 10_000, 50_000, -1, 150_000)
    );
    put(
        &root,
        &format!("{s}/vcpu1/cpu.stat"),
        "usage_usec 10\nnr_periods 4\nnr_throttled 2\nthrottled_usec 7\n",
    );
    let stat = cg.cpu_stat(Group::Vcpu(1)).unwrap();
    assert_eq!(
        (
            stat.quota_us,
            stat.period_us,
            stat.nr_throttled,
            stat.throttled_ns,
            stat.usage_ns
        ),
        (10_000, 50_000, 2, 7_000, Some(10_000))
    );
    // A fixture's directories hold plain files, which rmdir cannot remove.
    cg.removed.store(true, Ordering::SeqCst);
    drop(cg);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_given_parent_must_exist_and_no_cpu_controller_is_an_error() {
    let root = fixture("parent");
    put(&root, "proc/mounts", "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n");
    put(&root, "proc/self/cgroup", "1:cpu:/\n0::/\n");
    put(&root, "sys/fs/cgroup/unified/cgroup.controllers", "\n");
    put(&root, "sys/fs/cgroup/cpu/cpu.shares", "1024\n");
    let fs = HostFs::at(&root);
    let spec = CgroupSpec {
        parent: Some("/machine.slice"),
        ..Default::default()
    };
    let e = VmCgroup::create(&fs, &spec).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--cgroup-parent /machine.slice: ")
            && e.to_string().ends_with(
                "/sys/fs/cgroup/cpu/machine.slice does not exist (a given parent group must exist)"
            ),
        "{e}"
    );
    put(
        &root,
        "proc/mounts",
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
    );
    let e = VmCgroup::create(&fs, &CgroupSpec::default()).unwrap_err();
    assert!(matches!(e, CgroupError::NoCpuController), "{e}");
    assert!(!host_allows(&fs, None));
    std::fs::remove_dir_all(&root).unwrap();
}

/// The tests on real groups take turns: removing a group moves the whole process (every
/// thread, another test's included) back to the cgroup it started in.
static REAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The real host as root: groups made, a thread placed, tuned, read back, removed. Holds
/// [`REAL`] while the test runs; `None` (skipped) without root or a writable cpu controller.
fn real_host() -> Option<std::sync::MutexGuard<'static, ()>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: making cgroups needs root");
        return None;
    }
    if !host_allows(&HostFs::real(), None) {
        eprintln!("skipped: no writable cgroup cpu controller");
        return None;
    }
    Some(REAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Runs `f` on a new thread (so that moving it does not move the test's own thread) with
/// its thread id.
fn on_thread<T: Send>(f: impl FnOnce(i32) -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: gettid has no preconditions.
            f(unsafe { libc::gettid() })
        })
        .join()
        .unwrap()
    })
}

#[test]
fn real_groups_place_tune_read_back_remove() {
    let Some(_alone) = real_host() else {
        return;
    };
    let name = format!("unit-{}", std::process::id());
    let spec = CgroupSpec {
        name: Some(&name),
        cputune: CpuTune {
            shares: Some(512),
            global: Bandwidth {
                period_us: Some(100_000),
                quota_us: Some(200_000),
            },
            vcpu: Bandwidth {
                period_us: Some(100_000),
                quota_us: Some(50_000),
            },
            emulator: Bandwidth::default(),
        },
        ..Default::default()
    };
    let (cg, warnings) = VmCgroup::create(&HostFs::real(), &spec).unwrap();
    assert!(warnings.iter().all(|w| !w.contains(&name)), "{warnings:?}");
    let scope_dirs = cg.dirs(Group::Scope);
    assert!(
        scope_dirs.iter().all(|d| d.join("emulator").is_dir()),
        "{scope_dirs:?}"
    );
    on_thread(|tid| {
        cg.add_vcpu(0, tid, None).unwrap();
        for d in cg.dirs(Group::Vcpu(0)) {
            let file = if cg.is_v2() {
                "cgroup.threads"
            } else {
                "tasks"
            };
            let tasks = std::fs::read_to_string(d.join(file)).unwrap();
            assert!(
                tasks.split_whitespace().any(|t| t == tid.to_string()),
                "{d:?}: {tasks}"
            );
        }
        let info = cg.schedinfo().unwrap();
        assert_eq!(
            (
                info.cpu_shares,
                info.vcpu_quota,
                info.vcpu_period,
                info.global_quota
            ),
            (512, 50_000, 100_000, 200_000)
        );
        // Lowering the VM's quota below its vCPU's is refused by v1 alone; together with
        // the vCPU's it goes through in the right order.
        cg.set(&[
            SchedParam::GlobalQuota(30_000),
            SchedParam::VcpuQuota(20_000),
        ])
        .unwrap();
        let info = cg.schedinfo().unwrap();
        assert_eq!((info.vcpu_quota, info.global_quota), (20_000, 30_000));
        if !cg.is_v2() {
            let e = cg.set(&[SchedParam::VcpuQuota(90_000)]).unwrap_err();
            assert!(
                e.to_string().contains("vcpu_quota: writing \"90000\" to "),
                "{e}"
            );
            assert!(
                e.to_string().contains("may not exceed the whole VM's"),
                "{e}"
            );
        }
        cg.set(&[SchedParam::VcpuQuota(-1), SchedParam::GlobalQuota(-1)])
            .unwrap();
        let stat = cg.cpu_stat(Group::Vcpu(0)).unwrap();
        assert_eq!((stat.quota_us, stat.period_us), (-1, 100_000));
        assert!(stat.usage_ns.is_some());
        if let Ok(cpus) = host_thread::get_affinity(0) {
            cg.set_vcpu_cpus(0, &cpus[..1]).unwrap();
            assert_eq!(host_thread::get_affinity(0).unwrap(), cpus[..1]);
            cg.set_vcpu_cpus(0, &cpus).unwrap();
        }
    });
    cg.remove().unwrap();
    for d in scope_dirs {
        assert!(!d.exists(), "{d:?} still there");
    }
}

#[test]
fn real_groups_left_behind_are_swept_or_refused() {
    let Some(_alone) = real_host() else {
        return;
    };
    let name = format!("stale-{}", std::process::id());
    let spec = CgroupSpec {
        name: Some(&name),
        ..Default::default()
    };
    // A group with a live thread in it: refused, naming this process.
    let (cg, _) = VmCgroup::create(&HostFs::real(), &spec).unwrap();
    on_thread(|tid| {
        cg.add_vcpu(0, tid, None).unwrap();
        let e = VmCgroup::create(&HostFs::real(), &spec).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("is in use by process {}", std::process::id())),
            "{e}"
        );
        cg.remove().unwrap();
    });
    // Empty groups left behind: removed with a warning.
    let dirs = cg.dirs(Group::Scope);
    for d in &dirs {
        std::fs::create_dir(d).unwrap();
        std::fs::create_dir(d.join("vcpu0")).unwrap();
    }
    let (cg2, warnings) = VmCgroup::create(&HostFs::real(), &spec).unwrap();
    let ours: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains(&format!("rvmm-{name}.scope")))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one warning for all hierarchies: {warnings:?}"
    );
    for d in &dirs {
        assert!(ours[0].contains(&d.display().to_string()), "{warnings:?}");
    }
    assert!(!dirs[0].join("vcpu0").exists());
    drop(cg2);
    assert!(dirs.iter().all(|d| !d.exists()));
}

#[test]
fn real_memory_limit_is_set_at_the_scope_only() {
    let Some(_alone) = real_host() else {
        return;
    };
    let name = format!("mem-{}", std::process::id());
    let spec = CgroupSpec {
        name: Some(&name),
        memory_limit: Some(512 << 20),
        ..Default::default()
    };
    let (cg, _) = VmCgroup::create(&HostFs::real(), &spec).unwrap();
    let h = cg
        .hierarchies
        .iter()
        .find(|h| h.memory)
        .expect("a memory hierarchy");
    let scope = cg.dir(h, Group::Scope);
    let file = if h.v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(
        std::fs::read_to_string(scope.join(file)).unwrap().trim(),
        (512u64 << 20).to_string()
    );
    if !h.threaded() {
        assert!(
            !scope.join("emulator").exists(),
            "children in the memory hierarchy"
        );
    }
    let dirs = cg.dirs(Group::Scope);
    drop(cg);
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
}
