//! The VM's own cgroup as the kernel shows it (issue 14): a running VM has
//! `<parent>/rvmm-<name>.scope` with `vcpuN` and `emulator` children in every cgroup
//! hierarchy that holds cpu, cpuacct or cpuset (v1; the unified one on a v2 host), each
//! vCPU thread in its `vcpuN` and the main thread in `emulator`; a hot-plugged vCPU gets its
//! group; SIGTERM ends the VM and removes every group; a group left behind by a killed rvmm
//! is removed with a warning at the next start with that name; a VM of the same name that
//! is running keeps its group (the default `--cgroup auto` warns and runs without). These
//! run on the default (`auto`) mode, which makes the group as root; without root they are
//! recorded as skipped.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::vm::BackgroundVm;
use common::{kvm_available, run_with_timeout, rvmm};

/// The default parent (`config::cputune::DEFAULT_PARENT`).
const PARENT: &str = "rvmm.slice";

/// The hierarchies the VM's groups go in, with the file thread ids are listed in: the v1
/// mounts holding cpu, cpuacct or cpuset, else the cgroup v2 mount.
fn hierarchies() -> Vec<(PathBuf, &'static str)> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        match f[2] {
            "cgroup"
                if f[3]
                    .split(',')
                    .any(|o| matches!(o, "cpu" | "cpuacct" | "cpuset")) =>
            {
                v1.push((PathBuf::from(f[1]), "tasks"));
            }
            "cgroup2" => v2 = Some(PathBuf::from(f[1])),
            _ => {}
        }
    }
    if v1.is_empty() {
        v2.map(|p| vec![(p, "cgroup.threads")]).unwrap_or_default()
    } else {
        v1
    }
}

/// True when these tests can see anything: KVM (a failure without it, unless
/// RVMM_SKIP_KVM=1), root and a cgroup cpu hierarchy (else skipped with the reason).
fn usable(test: &str) -> bool {
    if !kvm_available(test) {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip(test, "making cgroups needs root");
        return false;
    }
    if hierarchies().is_empty() {
        common::skip(test, "no cgroup cpu hierarchy mounted");
        return false;
    }
    true
}

fn scope_dirs(scope: &str) -> Vec<(PathBuf, &'static str)> {
    hierarchies()
        .into_iter()
        .map(|(m, f)| (m.join(PARENT).join(scope), f))
        .collect()
}

fn tids_in(dir: &std::path::Path, file: &str) -> Vec<i32> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect()
}

/// Every vCPU thread in its `vcpuN`, the main thread in `emulator`, in every hierarchy.
fn assert_layout(scope: &str, pid: i32, vcpus: &[i32]) {
    for (dir, file) in scope_dirs(scope) {
        for (i, tid) in vcpus.iter().enumerate() {
            let group = dir.join(format!("vcpu{i}"));
            assert!(
                tids_in(&group, file).contains(tid),
                "vCPU {i} (thread {tid}) is not in {}",
                group.display()
            );
        }
        let emulator = dir.join("emulator");
        let in_emulator = tids_in(&emulator, file);
        assert!(
            in_emulator.contains(&pid),
            "the main thread {pid} is not in {}: {in_emulator:?}",
            emulator.display()
        );
        assert!(
            vcpus.iter().all(|t| !in_emulator.contains(t)),
            "a vCPU thread in {}",
            emulator.display()
        );
    }
}

/// SIGTERM, then the VM's output once it has ended.
fn terminate(vm: BackgroundVm) -> Output {
    // SAFETY: kill with a valid signal on our own child.
    unsafe { libc::kill(vm.pid(), libc::SIGTERM) };
    vm.wait(Duration::from_secs(20))
}

fn assert_gone(scope: &str) {
    for (dir, _) in scope_dirs(scope) {
        assert!(!dir.exists(), "{} is still there", dir.display());
    }
}

#[test]
fn a_named_vm_has_its_groups_and_sigterm_removes_them() {
    if !usable("a_named_vm_has_its_groups_and_sigterm_removes_them") {
        return;
    }
    let name = format!("cgl-{}", std::process::id());
    let scope = format!("rvmm-{name}.scope");
    let vm = BackgroundVm::start(
        "cgroup-named",
        &["--name", &name, "--smp", "2", "--append", "mode=halt"],
    );
    vm.wait_halted();
    let vcpus = vm.vcpu_tids();
    assert_eq!(vcpus.len(), 2);
    assert_layout(&scope, vm.pid(), &vcpus);
    let out = terminate(vm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("terminating on signal 15"), "{stderr}");
    // Warnings about groups other VMs left behind (tests running beside this one) aside,
    // nothing about cgroups.
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("cgroup"))
            .all(|l| l.contains("which has ended")),
        "{stderr}"
    );
    assert_gone(&scope);
}

#[test]
fn an_unnamed_vm_gets_a_pid_scope_and_a_hot_plugged_vcpu_its_group() {
    if !usable("an_unnamed_vm_gets_a_pid_scope_and_a_hot_plugged_vcpu_its_group") {
        return;
    }
    let mut vm = BackgroundVm::start_probe_elf(
        "cgroup-pid",
        &["--smp", "1,maxcpus=3", "--append", "mode=hotplug"],
    );
    vm.wait_line("PROBE-HOTPLUG ready");
    let scope = format!("rvmm-pid{}.scope", vm.pid());
    assert_layout(&scope, vm.pid(), &vm.vcpu_tids());
    let sock = vm.socket.to_str().unwrap().to_string();
    let mut cmd = rvmm();
    cmd.args(["setvcpus", &sock, "2"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "setvcpus: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vcpus = vm.vcpu_tids();
    assert_eq!(vcpus.len(), 2);
    assert_layout(&scope, vm.pid(), &vcpus);
    terminate(vm);
    assert_gone(&scope);
}

#[test]
fn a_group_left_behind_is_removed_with_a_warning() {
    if !usable("a_group_left_behind_is_removed_with_a_warning") {
        return;
    }
    let name = format!("cgl-stale-{}", std::process::id());
    let scope = format!("rvmm-{name}.scope");
    // What a killed rvmm leaves: empty groups (the parent exists once any VM ran).
    for (dir, _) in scope_dirs(&scope) {
        std::fs::create_dir_all(dir.join("vcpu0")).unwrap();
        std::fs::create_dir_all(dir.join("emulator")).unwrap();
    }
    let vm = BackgroundVm::start("cgroup-stale", &["--name", &name, "--append", "mode=halt"]);
    vm.wait_halted();
    assert_layout(&scope, vm.pid(), &vm.vcpu_tids());
    let out = terminate(vm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One warning naming the scope's directory in every hierarchy.
    let dirs: Vec<String> = scope_dirs(&scope)
        .iter()
        .map(|(dir, _)| dir.display().to_string())
        .collect();
    let warning = format!(
        "rvmm: warning: cgroup: removed {}, left behind by an rvmm that did not end cleanly\n",
        dirs.join(", ")
    );
    assert!(stderr.contains(&warning), "no {warning:?} in:\n{stderr}");
    assert_eq!(stderr.matches("left behind").count(), 1, "{stderr}");
    assert_gone(&scope);
}

#[test]
fn a_second_vm_of_a_running_name_runs_without_a_group_and_says_why() {
    if !usable("a_second_vm_of_a_running_name_runs_without_a_group_and_says_why") {
        return;
    }
    let name = format!("cgl-twice-{}", std::process::id());
    let scope = format!("rvmm-{name}.scope");
    let first = BackgroundVm::start("cgroup-first", &["--name", &name, "--append", "mode=halt"]);
    first.wait_halted();
    let second = BackgroundVm::start("cgroup-second", &["--name", &name, "--append", "mode=halt"]);
    second.wait_halted();
    // The first VM's groups are untouched.
    assert_layout(&scope, first.pid(), &first.vcpu_tids());
    let second_pid = second.pid();
    let out = terminate(second);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (dir, _) = &scope_dirs(&scope)[0];
    let expected = format!(
        "rvmm: warning: cgroup: {} is in use by process {}: another VM with this name is running (give this one another --name); the VM runs without a cgroup of its own (--cgroup auto)",
        dir.display(),
        first.pid()
    );
    assert!(stderr.contains(&expected), "no {expected:?} in:\n{stderr}");
    assert_ne!(second_pid, first.pid());
    assert_layout(&scope, first.pid(), &first.vcpu_tids());
    terminate(first);
    assert_gone(&scope);
}

/// Groups of killed VMs without a name (`rvmm-pid<N>.scope`, N dead) go at the next start.
#[test]
fn empty_pid_scopes_of_dead_processes_are_swept() {
    if !usable("empty_pid_scopes_of_dead_processes_are_swept") {
        return;
    }
    // A pid that is not running: a child that has ended and been reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{dead}")).exists() {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    let stale = format!("rvmm-pid{dead}.scope");
    for (dir, _) in scope_dirs(&stale) {
        std::fs::create_dir_all(dir.join("emulator")).unwrap();
    }
    let vm = BackgroundVm::start("cgroup-sweep", &["--append", "mode=halt"]);
    vm.wait_halted();
    // Gone once a VM has started: this one's sweep, or that of a VM another test started
    // meanwhile (then the warning is in that one's output).
    assert_gone(&stale);
    let out = terminate(vm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("cgroup"))
            .all(|l| l.contains("which has ended")),
        "{stderr}"
    );
    assert_gone(&stale);
}

/// A build that fails after the group was made (the kernel is opened after it) leaves
/// nothing behind.
#[test]
fn a_failed_start_leaves_no_group() {
    if !usable("a_failed_start_leaves_no_group") {
        return;
    }
    let name = format!("cgl-fail-{}", std::process::id());
    let mut cmd = rvmm();
    cmd.args(["run", "--name", &name, "--kernel", "/nonexistent/bzImage"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let (code, stderr) = common::failed_cleanly(&out, "a missing --kernel");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--kernel: cannot open /nonexistent/bzImage"),
        "{stderr}"
    );
    assert_gone(&format!("rvmm-{name}.scope"));
}
