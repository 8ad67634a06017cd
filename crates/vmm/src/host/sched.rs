//! Host CPUs as the scheduler sees them, and thread placement: which CPUs exist
//! (`/sys/devices/system/cpu/possible`), are online, are isolated (`isolcpus=`), and may be
//! used by this process (its cgroup cpuset); a thread's scheduler state from
//! `/proc/PID/task/TID/stat` (state, utime, stime, the CPU it last ran on); and a thread's
//! CPU affinity (`sched_setaffinity`/`sched_getaffinity` on a TID).
//!
//! The parsers are pure and take the file text; the readers are thin wrappers. Deciding
//! whether a pinning request is acceptable is `vcpu::affinity`'s job.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::util::cpulist::{cpulist, parse_cpulist, MAX_CPU_ID};

/// sysfs directory with the CPU masks (Documentation/ABI/stable/sysfs-devices-system-cpu).
const SYS_CPU: &str = "/sys/devices/system/cpu";

/// Errors reading host scheduling facts or placing threads.
#[derive(Debug, Error)]
pub enum SchedError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: cannot parse {what}: {detail}")]
    Parse {
        path: String,
        what: &'static str,
        detail: String,
    },
    #[error("sched_setaffinity(thread {tid}, CPUs {cpus}): {error}")]
    SetAffinity {
        tid: i32,
        cpus: String,
        error: std::io::Error,
    },
    #[error("sched_getaffinity(thread {tid}): {error}")]
    GetAffinity { tid: i32, error: std::io::Error },
}

fn read(path: &Path) -> Result<String, SchedError> {
    std::fs::read_to_string(path).map_err(|error| SchedError::Read {
        path: path.display().to_string(),
        error,
    })
}

/// Where the CPUs this process may use come from (named in error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpusetSource {
    /// A cgroup's effective cpuset file.
    Cgroup(PathBuf),
    /// `/proc/self/status` `Cpus_allowed_list` (no cpuset controller found).
    Status,
}

impl std::fmt::Display for CpusetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CpusetSource::Cgroup(p) => write!(f, "cgroup cpuset {}", p.display()),
            CpusetSource::Status => f.write_str("Cpus_allowed_list in /proc/self/status"),
        }
    }
}

/// The host's CPUs as sets of CPU numbers, each sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCpus {
    /// CPUs the kernel can ever bring up (`possible`).
    pub possible: Vec<u32>,
    /// CPUs online now.
    pub online: Vec<u32>,
    /// CPUs removed from the scheduler's balancing (`isolcpus=`, `isolated`).
    pub isolated: Vec<u32>,
    /// CPUs this process's cpuset allows.
    pub allowed: Vec<u32>,
    pub allowed_source: CpusetSource,
}

/// Parses a sysfs CPU mask file (`0-3,8\n`); an empty file is the empty set.
pub fn parse_mask(text: &str) -> Result<Vec<u32>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    parse_cpulist(t).map_err(|e| e.to_string())
}

impl HostCpus {
    /// Reads sysfs and procfs.
    pub fn read() -> Result<HostCpus, SchedError> {
        let mask = |name: &'static str| -> Result<Vec<u32>, SchedError> {
            let path = Path::new(SYS_CPU).join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => parse_mask(&text).map_err(|detail| SchedError::Parse {
                    path: path.display().to_string(),
                    what: "a CPU list",
                    detail,
                }),
                // Kernels without isolcpus support have no `isolated` file.
                Err(e) if name == "isolated" && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(Vec::new())
                }
                Err(error) => Err(SchedError::Read {
                    path: path.display().to_string(),
                    error,
                }),
            }
        };
        let (allowed, allowed_source) = process_cpuset()?;
        Ok(HostCpus {
            possible: mask("possible")?,
            online: mask("online")?,
            isolated: mask("isolated")?,
            allowed,
            allowed_source,
        })
    }

    /// How many affinity positions to show (`yyyy----`): one per possible CPU.
    pub fn width(&self) -> u32 {
        self.possible.last().map_or(0, |&c| c + 1)
    }
}

/// The cgroup cpuset file for this process, from `/proc/self/cgroup` and
/// `/proc/self/mountinfo`: cgroup v2's `cpuset.cpus.effective` in the unified hierarchy, or
/// cgroup v1's `cpuset.effective_cpus` in the cpuset hierarchy.
pub fn cpuset_file(proc_cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    let mut v1_path = None;
    let mut v2_path = None;
    // Lines are `hierarchy-ID:controller-list:cgroup-path` (cgroups(7)).
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "cpuset") {
            v1_path = Some(path.to_string());
        }
    }
    // mountinfo: `id parent maj:min root mountpoint options [optional...] - fstype source super-options`
    // (proc(5)).
    let mut v1_mount = None;
    let mut v2_mount = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rest: Vec<&str> = right.split(' ').collect();
        let (Some(mountpoint), Some(fstype)) = (fields.get(4), rest.first()) else {
            continue;
        };
        match *fstype {
            "cgroup2" if v2_mount.is_none() => v2_mount = Some(mountpoint.to_string()),
            "cgroup"
                if rest
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|x| x == "cpuset")) =>
            {
                v1_mount = Some(mountpoint.to_string())
            }
            _ => {}
        }
    }
    let join = |mount: &str, path: &str, file: &str| {
        PathBuf::from(format!("{}{}/{file}", mount, path.trim_end_matches('/')))
    };
    if let (Some(m), Some(p)) = (&v1_mount, &v1_path) {
        return Some(join(m, p, "cpuset.effective_cpus"));
    }
    if let (Some(m), Some(p)) = (&v2_mount, &v2_path) {
        return Some(join(m, p, "cpuset.cpus.effective"));
    }
    None
}

/// Parses `Cpus_allowed_list:` from `/proc/PID/status` text.
pub fn parse_status_allowed(status: &str) -> Option<Vec<u32>> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|v| parse_mask(v).ok())
}

/// The CPUs this process's cpuset allows, and where that came from.
fn process_cpuset() -> Result<(Vec<u32>, CpusetSource), SchedError> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(file) = cpuset_file(&cgroup, &mountinfo) {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Ok(cpus) = parse_mask(&text) {
                if !cpus.is_empty() {
                    return Ok((cpus, CpusetSource::Cgroup(file)));
                }
            }
        }
    }
    let path = Path::new("/proc/self/status");
    let status = read(path)?;
    let cpus = parse_status_allowed(&status).ok_or_else(|| SchedError::Parse {
        path: path.display().to_string(),
        what: "Cpus_allowed_list",
        detail: "missing or malformed".into(),
    })?;
    Ok((cpus, CpusetSource::Status))
}

/// One thread's scheduler state from `/proc/PID/task/TID/stat` (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    /// Field 2, without the parentheses.
    pub comm: String,
    /// Field 3: R running, S sleeping, D disk sleep, T stopped, ...
    pub state: char,
    /// Field 14: user time in clock ticks.
    pub utime: u64,
    /// Field 15: system time in clock ticks (a vCPU's guest time counts here or in utime).
    pub stime: u64,
    /// Field 39: the CPU the thread last ran on.
    pub processor: u32,
}

/// Field numbers (1-based, as proc(5) numbers them).
const STAT_STATE: usize = 3;
const STAT_UTIME: usize = 14;
const STAT_STIME: usize = 15;
const STAT_PROCESSOR: usize = 39;

/// Parses one `stat` line. `comm` may hold spaces and parentheses, so the fields after it
/// are found from the last `)`.
pub fn parse_task_stat(text: &str) -> Result<TaskStat, String> {
    let open = text.find('(').ok_or("no '(' before comm")?;
    let close = text.rfind(')').ok_or("no ')' after comm")?;
    if close < open {
        return Err("')' before '('".into());
    }
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] is field 3.
    let field = |n: usize| {
        rest.get(n - STAT_STATE)
            .copied()
            .ok_or(format!("no field {n}"))
    };
    let number = |n: usize| -> Result<u64, String> {
        let f = field(n)?;
        f.parse::<u64>()
            .map_err(|_| format!("field {n} \"{f}\" is not a number"))
    };
    let state = field(STAT_STATE)?
        .chars()
        .next()
        .ok_or("empty state field")?;
    Ok(TaskStat {
        comm,
        state,
        utime: number(STAT_UTIME)?,
        stime: number(STAT_STIME)?,
        processor: number(STAT_PROCESSOR)? as u32,
    })
}

/// Reads `/proc/PID/task/TID/stat`.
pub fn task_stat(pid: i32, tid: i32) -> Result<TaskStat, SchedError> {
    let path = PathBuf::from(format!("/proc/{pid}/task/{tid}/stat"));
    let text = read(&path)?;
    parse_task_stat(&text).map_err(|detail| SchedError::Parse {
        path: path.display().to_string(),
        what: "a task stat line",
        detail,
    })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of utime and stime.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The TIDs of this process's threads (`/proc/self/task`), sorted.
pub fn own_threads() -> Result<Vec<i32>, SchedError> {
    let dir = Path::new("/proc/self/task");
    let entries = std::fs::read_dir(dir).map_err(|error| SchedError::Read {
        path: dir.display().to_string(),
        error,
    })?;
    let mut tids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// Bits per mask word.
const WORD_BITS: u32 = 64;
/// Words in an affinity mask covering CPUs 0..=MAX_CPU_ID.
const MASK_WORDS: usize = (MAX_CPU_ID / WORD_BITS + 1) as usize;

/// Encodes CPU numbers as the kernel's affinity bitmap (bit N = CPU N, 64-bit words).
pub fn to_mask(cpus: &[u32]) -> Vec<u64> {
    let mut mask = vec![0u64; MASK_WORDS];
    for &c in cpus {
        if c <= MAX_CPU_ID {
            mask[(c / WORD_BITS) as usize] |= 1 << (c % WORD_BITS);
        }
    }
    mask
}

/// Decodes an affinity bitmap into sorted CPU numbers.
pub fn from_mask(mask: &[u64]) -> Vec<u32> {
    let mut cpus = Vec::new();
    for (w, &word) in mask.iter().enumerate() {
        for b in 0..WORD_BITS {
            if word & (1 << b) != 0 {
                cpus.push(w as u32 * WORD_BITS + b);
            }
        }
    }
    cpus
}

/// Sets thread `tid`'s affinity (0 means the calling thread).
pub fn set_affinity(tid: i32, cpus: &[u32]) -> Result<(), SchedError> {
    let mask = to_mask(cpus);
    // SAFETY: the kernel reads `mask.len() * 8` bytes from a buffer of exactly that size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            tid,
            mask.len() * 8,
            mask.as_ptr(),
        )
    };
    if r != 0 {
        return Err(SchedError::SetAffinity {
            tid,
            cpus: cpulist(cpus),
            error: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Thread `tid`'s affinity (0 means the calling thread).
pub fn get_affinity(tid: i32) -> Result<Vec<u32>, SchedError> {
    let mut mask = vec![0u64; MASK_WORDS];
    // SAFETY: the kernel writes at most `mask.len() * 8` bytes into our buffer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            tid,
            mask.len() * 8,
            mask.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(SchedError::GetAffinity {
            tid,
            error: std::io::Error::last_os_error(),
        });
    }
    Ok(from_mask(&mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_tricky_comm() {
        // A real line from a vCPU thread (fields 3..52), comm with a space and a slash.
        let line = "4242 (CPU 0/KVM) R 1 4242 1 34816 4242 4194368 1036 0 0 0 375 12 0 0 20 0 4 0 \
                    98765 1234567 890 18446744073709551615 1 1 0 0 0 0 0 4096 1260 0 0 0 -1 1 0 0 0 0 0 \
                    0 0 0 0 0 0 0";
        let s = parse_task_stat(line).unwrap();
        assert_eq!(s.comm, "CPU 0/KVM");
        assert_eq!(s.state, 'R');
        assert_eq!((s.utime, s.stime), (375, 12));
        assert_eq!(s.processor, 1);
        // Parentheses inside comm: the last ')' ends it.
        let odd = line.replacen("(CPU 0/KVM)", "(a) b (c)", 1);
        let s = parse_task_stat(&odd).unwrap();
        assert_eq!(s.comm, "a) b (c");
        assert_eq!(s.processor, 1);
    }

    #[test]
    fn stat_errors_name_the_field() {
        assert_eq!(parse_task_stat("1 (x) R 1 2").unwrap_err(), "no field 14");
        assert_eq!(parse_task_stat("1 x R").unwrap_err(), "no '(' before comm");
        let bad =
            "1 (x) S 1 1 1 0 1 0 0 0 0 0 zz 0 0 0 20 0 1 0 1 1 1 1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 3";
        assert_eq!(
            parse_task_stat(bad).unwrap_err(),
            "field 14 \"zz\" is not a number"
        );
    }

    #[test]
    fn own_thread_stat_is_readable() {
        let pid = std::process::id() as i32;
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let s = task_stat(pid, tid).unwrap();
        assert_eq!(s.state, 'R', "the thread reading its own stat is running");
        assert!(own_threads().unwrap().contains(&tid));
    }

    #[test]
    fn masks() {
        assert_eq!(parse_mask("0-3,8\n").unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_mask("\n").unwrap(), Vec::<u32>::new());
        let m = to_mask(&[0, 3, 64, 8191]);
        assert_eq!(m.len(), 128);
        assert_eq!(m[0], 0b1001);
        assert_eq!(m[1], 1);
        assert_eq!(m[127], 1 << 63);
        assert_eq!(from_mask(&m), vec![0, 3, 64, 8191]);
    }

    #[test]
    fn status_allowed_list() {
        let status = "Name:\trvmm\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\n";
        assert_eq!(parse_status_allowed(status), Some(vec![0, 1]));
        assert_eq!(parse_status_allowed("Name:\tx\n"), None);
    }

    #[test]
    fn cpuset_file_v1_and_v2() {
        let cgroup_v1 = "9:name=systemd:/\n4:memory:/x\n3:cpuset:/vms/a\n0::/\n";
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
                         33 30 0:29 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n\
                         40 30 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cpuset_file(cgroup_v1, mountinfo),
            Some(PathBuf::from(
                "/sys/fs/cgroup/cpuset/vms/a/cpuset.effective_cpus"
            ))
        );
        let root_v1 = "3:cpuset:/\n0::/\n";
        assert_eq!(
            cpuset_file(root_v1, mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/cpuset/cpuset.effective_cpus"))
        );
        let v2_only = "0::/user.slice/session-1.scope\n";
        let mi2 = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cpuset_file(v2_only, mi2),
            Some(PathBuf::from(
                "/sys/fs/cgroup/user.slice/session-1.scope/cpuset.cpus.effective"
            ))
        );
        assert_eq!(cpuset_file("", mi2), None);
    }

    #[test]
    fn own_affinity_round_trips() {
        let before = get_affinity(0).unwrap();
        assert!(!before.is_empty());
        set_affinity(0, &before).unwrap();
        assert_eq!(get_affinity(0).unwrap(), before);
        let err = set_affinity(0, &[MAX_CPU_ID]).unwrap_err().to_string();
        assert_eq!(
            err,
            "sched_setaffinity(thread 0, CPUs 8191): Invalid argument (os error 22)"
        );
    }
}
