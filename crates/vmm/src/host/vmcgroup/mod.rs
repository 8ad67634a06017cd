//! The VM's own cgroup, laid out as libvirt lays out a domain's: a scope group per VM under
//! a parent (`/rvmm.slice/rvmm-NAME.scope`), with a child per vCPU thread (`vcpuN`) and one
//! for every other thread (`emulator`). cgroup v2 (threaded children) where the unified
//! hierarchy has the cpu controller, cgroup v1 (cpu, cpuacct, cpuset, memory hierarchies)
//! otherwise. The settings come from `config::cputune`.
//!
//! Layout and semantics (issue 14, decided): the scope `<parent>/rvmm-<name>.scope`
//! (`rvmm-pid<PID>.scope` for an unnamed VM) is made in every hierarchy that holds cpu,
//! cpuacct or cpuset (v1) or in the unified one (v2, children `cgroup.type threaded`); the
//! memory hierarchy gets the scope only, and only with a memory limit. The process joins
//! `emulator` (memory: the scope) before guest RAM is allocated; each vCPU thread joins its
//! `vcpuN` as it starts. v1 cpuset groups get `cpuset.cpus`/`cpuset.mems` before any task
//! joins. Moving a thread keeps its CPU affinity where the group's cpuset allows it (v1
//! cpuset resets it on attach). At the end every thread goes back to the cgroup the
//! process started in and the groups are removed, children first. A group of the same
//! name without tasks (left by a killed rvmm) is removed with a warning; one with tasks is
//! an error naming the process; empty `rvmm-pid<N>.scope` groups of dead processes go too.
//! The parent (default `/rvmm.slice`, created when missing) stays.
//!
//! cgroup v1 refuses (EINVAL) a child's bandwidth above its parent's (quota/period), in
//! either order of writing: [`VmCgroup::set`] writes what it can first and retries the
//! refused writes, and names the rule when the kernel still refuses.

mod files;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::cgroups::parse_cgroup_mounts;
use super::sysfs::HostFs;
use super::thread as host_thread;
use crate::config::cputune::{
    shares_to_weight, Bandwidth, CpuTune, SchedInfo, SchedParam, DEFAULT_PARENT, DEFAULT_PERIOD_US,
};
use crate::util::cpulist::cpulist;
pub use files::{
    format_cpu_max, lists_controller, parse_cpu_max, parse_cpu_stat, pid_scope, vcpu_child,
    weight_to_shares, Origins,
};

/// One group's CPU bandwidth and how often the kernel throttled it (`cpu.stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CgroupCpuStat {
    /// The CFS period and quota in microseconds; quota -1 is no limit.
    pub period_us: u64,
    pub quota_us: i64,
    /// Periods with runnable threads, and those in which the group hit its quota.
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Time the group's threads were held back by the quota, nanoseconds.
    pub throttled_ns: u64,
    /// The group's CPU time (v1 `cpuacct.usage`, v2 `usage_usec`), nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_ns: Option<u64>,
}

/// Why the VM's cgroup could not be made, tuned, read or removed. Every variant names the
/// file or directory, the value written and the kernel's errno where there is one.
#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("no cgroup cpu controller on this host: the cgroup v2 hierarchy does not list `cpu` in its cgroup.controllers and no cgroup v1 hierarchy holds `cpu` (/proc/mounts)")]
    NoCpuController,
    #[error("no cgroup memory controller on this host (needed for --memory-limit)")]
    NoMemoryController,
    #[error("--cgroup-parent {parent}: {dir} does not exist (a given parent group must exist)")]
    ParentMissing { parent: String, dir: String },
    #[error("cgroup: creating {dir}: {error}")]
    Mkdir { dir: String, error: io::Error },
    #[error("cgroup: removing {dir}: {error}")]
    Rmdir { dir: String, error: io::Error },
    #[error("cgroup: reading {file}: {error}")]
    Read { file: String, error: io::Error },
    #[error("cgroup: {file}: cannot parse \"{text}\"")]
    Parse { file: String, text: String },
    #[error("cgroup: writing \"{value}\" to {file}: {error}")]
    Write {
        file: String,
        value: String,
        error: io::Error,
    },
    #[error("cgroup: {dir} is in use by process {pid}: another VM with this name is running (give this one another --name)")]
    Busy { dir: String, pid: u32 },
    #[error("cgroup: {param}: writing \"{value}\" to {file}: {error}: with cgroup v1 the bandwidth (quota/period) of a vCPU or of the emulator may not exceed the whole VM's (global_quota/global_period); raise the VM's first or lower theirs (both may be set in one call)")]
    Bandwidth {
        param: &'static str,
        file: String,
        value: String,
        error: io::Error,
    },
    #[error("cgroup: no vCPU {index} group")]
    NoVcpu { index: u32 },
}

/// One of the VM's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The scope: the whole VM.
    Scope,
    Emulator,
    Vcpu(u32),
}

impl Group {
    fn child(self) -> Option<String> {
        match self {
            Group::Scope => None,
            Group::Emulator => Some("emulator".into()),
            Group::Vcpu(i) => Some(format!("vcpu{i}")),
        }
    }
}

/// What the VM's group should be.
#[derive(Debug, Clone, Default)]
pub struct CgroupSpec<'a> {
    /// The VM's `--name`; `None`: `rvmm-pid<PID>.scope`.
    pub name: Option<&'a str>,
    /// `--cgroup-parent`; `None`: [`DEFAULT_PARENT`], created when missing.
    pub parent: Option<&'a str>,
    pub cputune: CpuTune,
    /// `--memory-limit`, bytes.
    pub memory_limit: Option<u64>,
    /// cpuset.mems (the host nodes of `--numa host-nodes`); `None`: the parent's.
    pub mems: Option<Vec<u32>>,
}

/// One mounted hierarchy the VM has a group in.
#[derive(Debug, Clone)]
struct Hierarchy {
    /// The mount point (under the [`HostFs`] root).
    mount: PathBuf,
    v2: bool,
    cpu: bool,
    cpuacct: bool,
    cpuset: bool,
    memory: bool,
    /// The process's cgroup in this hierarchy when it started.
    origin: String,
}

impl Hierarchy {
    /// Whether the scope gets `vcpuN` and `emulator` children here (not memory-only).
    fn threaded(&self) -> bool {
        self.cpu || self.cpuacct || self.cpuset
    }

    fn dir(&self, rel: &str) -> PathBuf {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            self.mount.clone()
        } else {
            self.mount.join(rel)
        }
    }

    /// The file a thread id is written to (v1 `tasks`, v2 `cgroup.threads`).
    fn threads_file(&self) -> &'static str {
        if self.v2 {
            "cgroup.threads"
        } else {
            "tasks"
        }
    }
}

/// The VM's cgroup: the scope and its children in every hierarchy. Removed (threads moved
/// back first) by [`VmCgroup::remove`] or when dropped.
#[derive(Debug)]
pub struct VmCgroup {
    v2: bool,
    hierarchies: Vec<Hierarchy>,
    /// The scope's path inside each hierarchy (`/rvmm.slice/rvmm-web.scope`).
    scope: String,
    /// The bandwidth each `vcpuN` gets when it is made (and run-time changes since).
    vcpu_bandwidth: Mutex<Bandwidth>,
    removed: AtomicBool,
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|error| CgroupError::Read {
        file: display(path),
        error,
    })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|error| CgroupError::Write {
        file: display(path),
        value: value.to_string(),
        error,
    })
}

fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(value.as_bytes())
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(CgroupError::Mkdir {
            dir: display(dir),
            error,
        }),
    }
}

/// The sub-groups of `dir` (directories).
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// The processes in `dir` and every group below it (`cgroup.procs`).
fn procs_below(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for sub in subdirs(dir) {
        pids.extend(procs_below(&sub));
    }
    pids
}

/// Removes `dir` and its sub-groups, deepest first; a missing `dir` is fine.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    for sub in subdirs(dir) {
        remove_tree(&sub)?;
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(CgroupError::Rmdir {
            dir: display(dir),
            error,
        }),
    }
}

/// The scope's directory name for a VM name (characters a path cannot hold become `_`).
pub fn scope_name(name: Option<&str>, pid: u32) -> String {
    match name {
        Some(n) => {
            let clean: String = n
                .chars()
                .map(|c| if c == '/' || c.is_control() { '_' } else { c })
                .collect();
            format!("rvmm-{clean}.scope")
        }
        None => format!("rvmm-pid{pid}.scope"),
    }
}

/// Moves `tid` by writing it to `file`, keeping its affinity where the new group's cpuset
/// allows (v1 cpuset resets it on attach).
fn move_thread(file: &Path, tid: i32) -> Result<(), CgroupError> {
    let before = host_thread::get_affinity(tid).ok();
    write(file, &tid.to_string())?;
    restore_affinity(tid, before);
    Ok(())
}

fn restore_affinity(tid: i32, before: Option<Vec<u32>>) {
    if let Some(before) = before {
        if host_thread::get_affinity(tid).ok().as_ref() != Some(&before) {
            // Refused when the group's cpuset and the old affinity do not meet: the
            // group's CPUs stand.
            let _ = host_thread::set_affinity(tid, &before);
        }
    }
}

/// Which hierarchies the VM's group goes in: `(v2, hierarchies)`.
fn detect(fs: &HostFs, memory: bool) -> Result<(bool, Vec<Hierarchy>), CgroupError> {
    let mounts = parse_cgroup_mounts(&fs.read("/proc/mounts").unwrap_or_default());
    let origins = Origins::parse(&fs.read("/proc/self/cgroup").unwrap_or_default());
    if let Some(m) = mounts.iter().find(|m| m.version == 2) {
        let controllers = fs
            .read(&format!("{}/cgroup.controllers", m.path))
            .unwrap_or_default();
        if lists_controller(&controllers, "cpu") {
            let has_memory = lists_controller(&controllers, "memory");
            if memory && !has_memory {
                return Err(CgroupError::NoMemoryController);
            }
            return Ok((
                true,
                vec![Hierarchy {
                    mount: fs.path(&m.path),
                    v2: true,
                    cpu: true,
                    cpuacct: true,
                    cpuset: lists_controller(&controllers, "cpuset"),
                    memory: memory && has_memory,
                    origin: origins.v2.clone().unwrap_or_else(|| "/".into()),
                }],
            ));
        }
    }
    let mut hierarchies = Vec::new();
    for m in mounts.iter().filter(|m| m.version == 1) {
        let has = |c: &str| m.controllers.iter().any(|x| x == c);
        let h = Hierarchy {
            mount: fs.path(&m.path),
            v2: false,
            cpu: has("cpu"),
            cpuacct: has("cpuacct"),
            cpuset: has("cpuset"),
            memory: memory && has("memory"),
            origin: String::new(),
        };
        if !(h.threaded() || h.memory) {
            continue;
        }
        let first = ["cpu", "cpuacct", "cpuset", "memory"]
            .into_iter()
            .find(|c| has(c))
            .unwrap_or("cpu");
        hierarchies.push(Hierarchy {
            origin: origins.v1_path(first),
            ..h
        });
    }
    if !hierarchies.iter().any(|h| h.cpu) {
        return Err(CgroupError::NoCpuController);
    }
    if memory && !hierarchies.iter().any(|h| h.memory) {
        return Err(CgroupError::NoMemoryController);
    }
    Ok((false, hierarchies))
}

/// Whether this host lets rvmm make a group without being told to (`--cgroup auto`): a cpu
/// controller and a writable place for the parent.
pub fn host_allows(fs: &HostFs, parent: Option<&str>) -> bool {
    let Ok((_, hierarchies)) = detect(fs, false) else {
        return false;
    };
    let parent = parent.unwrap_or(DEFAULT_PARENT);
    hierarchies.iter().all(|h| {
        // The parent, or the closest group above it that exists.
        let mut dir = h.dir(parent);
        while !dir.exists() && dir != h.mount {
            match dir.parent() {
                Some(p) => dir = p.to_path_buf(),
                None => return false,
            }
        }
        writable(&dir)
    })
}

fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

impl VmCgroup {
    /// Makes the VM's groups (the scope and `emulator`; `vcpuN` come with
    /// [`add_vcpu`](Self::add_vcpu)) and tunes them per `spec`, after removing groups left
    /// behind by ended rvmm processes. Returns the warnings for what was removed. The
    /// process is not moved yet: [`enter`](Self::enter).
    pub fn create(fs: &HostFs, spec: &CgroupSpec) -> Result<(VmCgroup, Vec<String>), CgroupError> {
        let pid = std::process::id();
        let (v2, hierarchies) = detect(fs, spec.memory_limit.is_some())?;
        let parent = format!(
            "/{}",
            spec.parent.unwrap_or(DEFAULT_PARENT).trim_matches('/')
        );
        let mut warnings = Vec::new();
        for h in &hierarchies {
            prepare_parent(h, &parent, spec.parent.is_some())?;
        }
        let name = scope_name(spec.name, pid);
        let mut removed = Vec::new();
        for h in &hierarchies {
            sweep(fs, h, &parent, &name, pid, &mut removed)?;
        }
        warnings.extend(sweep_warnings(&removed));
        let cgroup = VmCgroup {
            v2,
            hierarchies,
            scope: format!("{}/{name}", parent.trim_end_matches('/')),
            vcpu_bandwidth: Mutex::new(spec.cputune.vcpu),
            removed: AtomicBool::new(false),
        };
        // From here an error drops `cgroup`, which removes what was made.
        cgroup.make_scope(spec.mems.as_deref())?;
        cgroup.tune(&spec.cputune, spec.memory_limit)?;
        Ok((cgroup, warnings))
    }

    /// The scope's path inside each hierarchy (`/rvmm.slice/rvmm-web.scope`).
    pub fn path(&self) -> &str {
        &self.scope
    }

    /// cgroup v2 (else v1).
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The directories of `group` in every hierarchy it exists in.
    pub fn dirs(&self, group: Group) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .filter(|h| group == Group::Scope || h.threaded())
            .map(|h| self.dir(h, group))
            .collect()
    }

    fn dir(&self, h: &Hierarchy, group: Group) -> PathBuf {
        let scope = h.dir(&self.scope);
        match group.child() {
            Some(c) => scope.join(c),
            None => scope,
        }
    }

    /// The hierarchy that holds `cpu` (always one).
    fn cpu(&self) -> &Hierarchy {
        self.hierarchies
            .iter()
            .find(|h| h.cpu)
            .unwrap_or(&self.hierarchies[0])
    }

    fn make_scope(&self, mems: Option<&[u32]>) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            let scope = self.dir(h, Group::Scope);
            mkdir(&scope)?;
            if h.cpuset && !h.v2 {
                let parent = scope.parent().unwrap_or(&h.mount);
                copy_cpuset(parent, &scope, mems)?;
            } else if h.cpuset {
                if let Some(m) = mems {
                    write(&scope.join("cpuset.mems"), &cpulist(m))?;
                }
            }
            if !h.threaded() {
                continue;
            }
            self.make_child(h, Group::Emulator, None)?;
            if h.v2 {
                let mut ctrl = String::from("+cpu");
                if h.cpuset {
                    ctrl.push_str(" +cpuset");
                }
                write(&scope.join("cgroup.subtree_control"), &ctrl)?;
            }
        }
        Ok(())
    }

    /// Makes a child group (when missing) with its cpuset.
    fn make_child(
        &self,
        h: &Hierarchy,
        group: Group,
        cpus: Option<&[u32]>,
    ) -> Result<(), CgroupError> {
        let dir = self.dir(h, group);
        let new = !dir.exists();
        mkdir(&dir)?;
        if h.v2 {
            if new {
                write(&dir.join("cgroup.type"), "threaded")?;
            }
            if let (true, Some(c)) = (h.cpuset, cpus) {
                write(&dir.join("cpuset.cpus"), &cpulist(c))?;
            }
        } else if h.cpuset {
            if new {
                copy_cpuset(&self.dir(h, Group::Scope), &dir, None)?;
            }
            if let Some(c) = cpus {
                write(&dir.join("cpuset.cpus"), &cpulist(c))?;
            }
        }
        Ok(())
    }

    /// Writes the tuning of `spec` into the scope and `emulator`.
    fn tune(&self, tune: &CpuTune, memory_limit: Option<u64>) -> Result<(), CgroupError> {
        let mut params = Vec::new();
        if let Some(s) = tune.shares {
            params.push(SchedParam::CpuShares(s));
        }
        bandwidth_params(
            &tune.global,
            SchedParam::GlobalPeriod,
            SchedParam::GlobalQuota,
            &mut params,
        );
        bandwidth_params(
            &tune.emulator,
            SchedParam::EmulatorPeriod,
            SchedParam::EmulatorQuota,
            &mut params,
        );
        self.set(&params)?;
        if let Some(limit) = memory_limit {
            for h in self.hierarchies.iter().filter(|h| h.memory) {
                let file = if h.v2 {
                    "memory.max"
                } else {
                    "memory.limit_in_bytes"
                };
                write(&self.dir(h, Group::Scope).join(file), &limit.to_string())?;
            }
        }
        Ok(())
    }

    /// Moves the whole process in: `emulator` (the scope in a memory-only hierarchy). Every
    /// thread keeps its affinity where the cpuset allows.
    pub fn enter(&self) -> Result<(), CgroupError> {
        let pid = std::process::id() as i32;
        let threads = host_thread::own_threads().unwrap_or_default();
        let before: Vec<(i32, Option<Vec<u32>>)> = threads
            .iter()
            .map(|&t| (t, host_thread::get_affinity(t).ok()))
            .collect();
        for h in &self.hierarchies {
            let scope = self.dir(h, Group::Scope);
            if h.v2 {
                write(&scope.join("cgroup.procs"), &pid.to_string())?;
                let emulator = self.dir(h, Group::Emulator);
                for &t in &threads {
                    match write(&emulator.join("cgroup.threads"), &t.to_string()) {
                        Ok(()) => {}
                        // Ended since listed.
                        Err(CgroupError::Write { ref error, .. })
                            if error.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => return Err(e),
                    }
                }
            } else {
                let target = if h.threaded() {
                    self.dir(h, Group::Emulator)
                } else {
                    scope
                };
                write(&target.join("cgroup.procs"), &pid.to_string())?;
            }
        }
        for (t, b) in before {
            restore_affinity(t, b);
        }
        Ok(())
    }

    /// Makes `vcpuN` (when missing: the vCPU bandwidth, cpuset.cpus = `cpus` or the
    /// scope's; when there: cpuset.cpus = `cpus` if given) and moves thread `tid` into it.
    pub fn add_vcpu(&self, index: u32, tid: i32, cpus: Option<&[u32]>) -> Result<(), CgroupError> {
        self.prepare_vcpu(index, cpus)?;
        self.place_vcpu(index, tid)
    }

    /// The group half of [`add_vcpu`](Self::add_vcpu): made before the thread exists.
    pub fn prepare_vcpu(&self, index: u32, cpus: Option<&[u32]>) -> Result<(), CgroupError> {
        let group = Group::Vcpu(index);
        let new = !self.dir(self.cpu(), group).exists();
        for h in self.hierarchies.iter().filter(|h| h.threaded()) {
            self.make_child(h, group, cpus)?;
        }
        if new {
            let bw = *self
                .vcpu_bandwidth
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut writes = Vec::new();
            self.bandwidth_writes(group, "vcpu", &bw, &mut writes)?;
            apply_writes(writes, self.v2)?;
        }
        Ok(())
    }

    /// The thread half of [`add_vcpu`](Self::add_vcpu) (a vCPU thread calls it for itself
    /// before it sets its pin).
    pub fn place_vcpu(&self, index: u32, tid: i32) -> Result<(), CgroupError> {
        for h in self.hierarchies.iter().filter(|h| h.threaded()) {
            let dir = self.dir(h, Group::Vcpu(index));
            if !dir.exists() {
                return Err(CgroupError::NoVcpu { index });
            }
            move_thread(&dir.join(h.threads_file()), tid)?;
        }
        Ok(())
    }

    /// The vCPU groups that exist, by index.
    pub fn vcpu_indexes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = subdirs(&self.dir(self.cpu(), Group::Scope))
            .iter()
            .filter_map(|d| vcpu_child(&d.file_name()?.to_string_lossy()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The CPUs the VM's groups may be given (the scope's effective cpuset, which is its
    /// parent's) with the file they were read from; `None` without a cpuset controller.
    pub fn scope_cpus(&self) -> Option<(PathBuf, Vec<u32>)> {
        let h = self.hierarchies.iter().find(|h| h.cpuset)?;
        let scope = self.dir(h, Group::Scope);
        let files: &[&str] = if h.v2 {
            &["cpuset.cpus.effective"]
        } else {
            &["cpuset.effective_cpus", "cpuset.cpus"]
        };
        files.iter().find_map(|f| {
            let file = scope.join(f);
            let cpus = super::sysfs::parse_mask(&std::fs::read_to_string(&file).ok()?).ok()?;
            (!cpus.is_empty()).then_some((file, cpus))
        })
    }

    /// Sets `vcpuN`'s cpuset.cpus (no-op without a cpuset controller).
    pub fn set_vcpu_cpus(&self, index: u32, cpus: &[u32]) -> Result<(), CgroupError> {
        self.set_cpus(Group::Vcpu(index), cpus)
    }

    /// Sets `emulator`'s cpuset.cpus (no-op without a cpuset controller).
    pub fn set_emulator_cpus(&self, cpus: &[u32]) -> Result<(), CgroupError> {
        self.set_cpus(Group::Emulator, cpus)
    }

    fn set_cpus(&self, group: Group, cpus: &[u32]) -> Result<(), CgroupError> {
        for h in self.hierarchies.iter().filter(|h| h.cpuset) {
            write(&self.dir(h, group).join("cpuset.cpus"), &cpulist(cpus))?;
        }
        Ok(())
    }

    /// Applies run-time changes (`schedinfo --set`): shares to the scope, `vcpu_*` to every
    /// `vcpuN` (and those made later), `emulator_*` to `emulator`, `global_*` to the scope.
    pub fn set(&self, changes: &[SchedParam]) -> Result<(), CgroupError> {
        let mut global = Bandwidth::default();
        let mut vcpu = Bandwidth::default();
        let mut emulator = Bandwidth::default();
        let mut writes = Vec::new();
        for c in changes {
            match *c {
                SchedParam::CpuShares(s) => {
                    let h = self.cpu();
                    let (file, value) = if h.v2 {
                        ("cpu.weight", shares_to_weight(s))
                    } else {
                        ("cpu.shares", s)
                    };
                    writes.push(PendingWrite {
                        param: "cpu_shares",
                        file: self.dir(h, Group::Scope).join(file),
                        value: value.to_string(),
                    });
                }
                SchedParam::GlobalPeriod(p) => global.period_us = Some(p),
                SchedParam::GlobalQuota(q) => global.quota_us = Some(q),
                SchedParam::VcpuPeriod(p) => vcpu.period_us = Some(p),
                SchedParam::VcpuQuota(q) => vcpu.quota_us = Some(q),
                SchedParam::EmulatorPeriod(p) => emulator.period_us = Some(p),
                SchedParam::EmulatorQuota(q) => emulator.quota_us = Some(q),
            }
        }
        // Parent first: the retry in apply_writes handles the order a lowering needs.
        self.bandwidth_writes(Group::Scope, "global", &global, &mut writes)?;
        for i in self.vcpu_indexes() {
            self.bandwidth_writes(Group::Vcpu(i), "vcpu", &vcpu, &mut writes)?;
        }
        self.bandwidth_writes(Group::Emulator, "emulator", &emulator, &mut writes)?;
        apply_writes(writes, self.v2)?;
        let mut stored = self
            .vcpu_bandwidth
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        stored.period_us = vcpu.period_us.or(stored.period_us);
        stored.quota_us = vcpu.quota_us.or(stored.quota_us);
        Ok(())
    }

    fn bandwidth_writes(
        &self,
        group: Group,
        prefix: &'static str,
        bw: &Bandwidth,
        writes: &mut Vec<PendingWrite>,
    ) -> Result<(), CgroupError> {
        if !bw.is_set() {
            return Ok(());
        }
        let h = self.cpu();
        let dir = self.dir(h, group);
        let (period_param, quota_param) = match prefix {
            "global" => ("global_period", "global_quota"),
            "vcpu" => ("vcpu_period", "vcpu_quota"),
            _ => ("emulator_period", "emulator_quota"),
        };
        if h.v2 {
            let (quota, period) = match (bw.quota_us, bw.period_us) {
                (Some(q), Some(p)) => (q, p),
                _ => {
                    let (q, p) = self.bandwidth(group)?;
                    (bw.quota_us.unwrap_or(q), bw.period_us.unwrap_or(p))
                }
            };
            writes.push(PendingWrite {
                param: if bw.quota_us.is_some() {
                    quota_param
                } else {
                    period_param
                },
                file: dir.join("cpu.max"),
                value: format_cpu_max(quota, period),
            });
        } else {
            if let Some(p) = bw.period_us {
                writes.push(PendingWrite {
                    param: period_param,
                    file: dir.join("cpu.cfs_period_us"),
                    value: p.to_string(),
                });
            }
            if let Some(q) = bw.quota_us {
                writes.push(PendingWrite {
                    param: quota_param,
                    file: dir.join("cpu.cfs_quota_us"),
                    value: if q < 0 { "-1".into() } else { q.to_string() },
                });
            }
        }
        Ok(())
    }

    /// A group's `(quota, period)`, quota -1 for no limit.
    pub fn bandwidth(&self, group: Group) -> Result<(i64, u64), CgroupError> {
        let h = self.cpu();
        let dir = self.dir(h, group);
        if h.v2 {
            let file = dir.join("cpu.max");
            let text = read(&file)?;
            parse_cpu_max(&text).ok_or(CgroupError::Parse {
                file: display(&file),
                text: text.trim().into(),
            })
        } else {
            let q = read_num::<i64>(&dir.join("cpu.cfs_quota_us"))?;
            let p = read_num::<u64>(&dir.join("cpu.cfs_period_us"))?;
            Ok((if q < 0 { -1 } else { q }, p))
        }
    }

    /// The scheduler parameters as virsh schedinfo lists them, read back from the groups
    /// (the vCPU's from the lowest `vcpuN`; before any exists, what they will get).
    pub fn schedinfo(&self) -> Result<SchedInfo, CgroupError> {
        let h = self.cpu();
        let scope = self.dir(h, Group::Scope);
        let cpu_shares = if h.v2 {
            weight_to_shares(read_num(&scope.join("cpu.weight"))?)
        } else {
            read_num(&scope.join("cpu.shares"))?
        };
        let (global_quota, global_period) = self.bandwidth(Group::Scope)?;
        let (emulator_quota, emulator_period) = self.bandwidth(Group::Emulator)?;
        let (vcpu_quota, vcpu_period) = match self.vcpu_indexes().first() {
            Some(&i) => self.bandwidth(Group::Vcpu(i))?,
            None => {
                let bw = *self
                    .vcpu_bandwidth
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                (
                    bw.quota_us.unwrap_or(-1),
                    bw.period_us.unwrap_or(DEFAULT_PERIOD_US),
                )
            }
        };
        Ok(SchedInfo {
            cpu_shares,
            vcpu_period,
            vcpu_quota,
            emulator_period,
            emulator_quota,
            global_period,
            global_quota,
        })
    }

    /// A group's bandwidth, throttling and CPU time.
    pub fn cpu_stat(&self, group: Group) -> Result<CgroupCpuStat, CgroupError> {
        let h = self.cpu();
        let (quota_us, period_us) = self.bandwidth(group)?;
        let mut stat = parse_cpu_stat(&read(&self.dir(h, group).join("cpu.stat"))?);
        stat.quota_us = quota_us;
        stat.period_us = period_us;
        if !h.v2 {
            if let Some(acct) = self.hierarchies.iter().find(|h| h.cpuacct) {
                stat.usage_ns = read_num(&self.dir(acct, group).join("cpuacct.usage")).ok();
            }
        }
        Ok(stat)
    }

    /// Moves every thread back to the cgroups the process started in and removes the
    /// groups, children first. Done once; later calls do nothing.
    pub fn remove(&self) -> Result<(), CgroupError> {
        if self.removed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let pid = std::process::id() as i32;
        let threads = host_thread::own_threads().unwrap_or_default();
        let before: Vec<(i32, Option<Vec<u32>>)> = threads
            .iter()
            .map(|&t| (t, host_thread::get_affinity(t).ok()))
            .collect();
        let mut first_error = None;
        for h in &self.hierarchies {
            let scope = self.dir(h, Group::Scope);
            if !scope.exists() {
                continue;
            }
            if procs_below(&scope).contains(&(pid as u32)) {
                if let Err(e) = write(&h.dir(&h.origin).join("cgroup.procs"), &pid.to_string()) {
                    first_error.get_or_insert(e);
                }
            }
            if let Err(e) = remove_tree(&scope) {
                first_error.get_or_insert(e);
            }
        }
        for (t, b) in before {
            restore_affinity(t, b);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for VmCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("rvmm: warning: {e}");
        }
    }
}

fn read_num<T: std::str::FromStr>(file: &Path) -> Result<T, CgroupError> {
    let text = read(file)?;
    text.trim().parse().map_err(|_| CgroupError::Parse {
        file: display(file),
        text: text.trim().into(),
    })
}

/// v1 cpuset: a new group has no CPUs or memory nodes until given some; copies the
/// parent's (`mems` instead of the parent's memory nodes when given).
fn copy_cpuset(parent: &Path, dir: &Path, mems: Option<&[u32]>) -> Result<(), CgroupError> {
    let cpus = read(&parent.join("cpuset.cpus"))?;
    let own = read(&dir.join("cpuset.cpus")).unwrap_or_default();
    if own.trim().is_empty() {
        write(&dir.join("cpuset.cpus"), cpus.trim())?;
    }
    match mems {
        Some(m) => write(&dir.join("cpuset.mems"), &cpulist(m))?,
        None => {
            let own = read(&dir.join("cpuset.mems")).unwrap_or_default();
            if own.trim().is_empty() {
                write(
                    &dir.join("cpuset.mems"),
                    read(&parent.join("cpuset.mems"))?.trim(),
                )?;
            }
        }
    }
    Ok(())
}

/// Makes the parent group when it is the default one (`mkdir -p`, each new v1 cpuset level
/// given its parent's CPUs and nodes, each v2 level the controllers enabled below it); a
/// given parent must exist.
fn prepare_parent(h: &Hierarchy, parent: &str, given: bool) -> Result<(), CgroupError> {
    let dir = h.dir(parent);
    if given && !dir.exists() {
        return Err(CgroupError::ParentMissing {
            parent: parent.to_string(),
            dir: display(&dir),
        });
    }
    let mut at = h.mount.clone();
    let mut controllers = String::from("+cpu");
    if h.cpuset {
        controllers.push_str(" +cpuset");
    }
    if h.memory {
        controllers.push_str(" +memory");
    }
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        if h.v2 {
            let file = at.join("cgroup.subtree_control");
            let now = std::fs::read_to_string(&file).unwrap_or_default();
            let missing = controllers
                .split_whitespace()
                .any(|c| !lists_controller(&now, &c[1..]));
            if missing {
                write(&file, &controllers)?;
            }
        }
        let next = at.join(part);
        if !next.exists() {
            mkdir(&next)?;
            if h.cpuset && !h.v2 {
                copy_cpuset(&at, &next, None)?;
            }
        }
        at = next;
    }
    if h.v2 {
        let file = at.join("cgroup.subtree_control");
        let now = std::fs::read_to_string(&file).unwrap_or_default();
        if controllers
            .split_whitespace()
            .any(|c| !lists_controller(&now, &c[1..]))
        {
            write(&file, &controllers)?;
        }
    }
    Ok(())
}

/// A group [`sweep`] removed: its scope name, its directory in one hierarchy, and the
/// process that left it when its name says (`rvmm-pid<N>.scope`).
struct Swept {
    scope: String,
    dir: String,
    dead: Option<u32>,
}

/// One warning per removed scope, naming its directories in every hierarchy.
fn sweep_warnings(removed: &[Swept]) -> Vec<String> {
    let mut scopes: Vec<&str> = Vec::new();
    for r in removed {
        if !scopes.contains(&r.scope.as_str()) {
            scopes.push(&r.scope);
        }
    }
    scopes
        .into_iter()
        .map(|scope| {
            let of: Vec<&Swept> = removed.iter().filter(|r| r.scope == scope).collect();
            let dirs: Vec<&str> = of.iter().map(|r| r.dir.as_str()).collect();
            let by = match of[0].dead {
                Some(dead) => format!("rvmm process {dead}, which has ended"),
                None => "an rvmm that did not end cleanly".to_string(),
            };
            format!("cgroup: removed {}, left behind by {by}", dirs.join(", "))
        })
        .collect()
}

/// Removes the groups left behind in `h`'s parent: this VM's name when it holds no process
/// (one that does is an error), and empty `rvmm-pid<N>.scope` groups of dead processes.
fn sweep(
    fs: &HostFs,
    h: &Hierarchy,
    parent: &str,
    name: &str,
    pid: u32,
    removed: &mut Vec<Swept>,
) -> Result<(), CgroupError> {
    let parent_dir = h.dir(parent);
    let ours = parent_dir.join(name);
    if ours.exists() {
        if let Some(&p) = procs_below(&ours).first() {
            return Err(CgroupError::Busy {
                dir: display(&ours),
                pid: p,
            });
        }
        remove_tree(&ours)?;
        removed.push(Swept {
            scope: name.to_string(),
            dir: display(&ours),
            dead: None,
        });
    }
    for dir in subdirs(&parent_dir) {
        let Some(dead) = dir
            .file_name()
            .and_then(|n| pid_scope(&n.to_string_lossy()))
        else {
            continue;
        };
        if dead == pid || fs.exists(&format!("/proc/{dead}")) || !procs_below(&dir).is_empty() {
            continue;
        }
        remove_tree(&dir)?;
        removed.push(Swept {
            scope: dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            dir: display(&dir),
            dead: Some(dead),
        });
    }
    Ok(())
}

fn bandwidth_params(
    bw: &Bandwidth,
    period: fn(u64) -> SchedParam,
    quota: fn(i64) -> SchedParam,
    out: &mut Vec<SchedParam>,
) {
    if let Some(p) = bw.period_us {
        out.push(period(p));
    }
    if let Some(q) = bw.quota_us {
        out.push(quota(q));
    }
}

/// A write [`VmCgroup::set`] still has to make.
#[derive(Debug)]
struct PendingWrite {
    param: &'static str,
    file: PathBuf,
    value: String,
}

/// Makes the writes in order; under v1 those the kernel refuses with EINVAL (a child's
/// bandwidth above its parent's, for now) are tried again after the others, as long as
/// each round gets one through.
fn apply_writes(writes: Vec<PendingWrite>, v2: bool) -> Result<(), CgroupError> {
    let mut pending = writes;
    loop {
        let count = pending.len();
        let mut refused = Vec::new();
        for w in pending {
            match write_raw(&w.file, &w.value) {
                Ok(()) => {}
                Err(e) if !v2 && e.raw_os_error() == Some(libc::EINVAL) => refused.push((w, e)),
                Err(error) => {
                    return Err(CgroupError::Write {
                        file: display(&w.file),
                        value: w.value,
                        error,
                    })
                }
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        if refused.len() == count {
            let (w, error) = refused.swap_remove(0);
            let bandwidth = w.param.ends_with("_quota") || w.param.ends_with("_period");
            return Err(if bandwidth {
                CgroupError::Bandwidth {
                    param: w.param,
                    file: display(&w.file),
                    value: w.value,
                    error,
                }
            } else {
                CgroupError::Write {
                    file: display(&w.file),
                    value: w.value,
                    error,
                }
            });
        }
        pending = refused.into_iter().map(|(w, _)| w).collect();
    }
}

#[cfg(test)]
mod tests;
