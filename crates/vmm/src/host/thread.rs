//! One thread's placement and use, as the kernel reports and sets them: its scheduler
//! state from `/proc/PID/task/TID/stat` (state, utime, stime, guest time, the CPU it last
//! ran on), `schedstat` (time on a CPU, run delay), `status` (context switches) and `sched`
//! (migrations), this process's threads (`/proc/self/task`) and a thread's CPU affinity
//! (`sched_setaffinity`, `sched_getaffinity` on a TID).
//!
//! These are not host facts: they change while a VM runs and are read per thread, from the
//! running kernel (never from a fixture tree). The host's CPU sets are `host::cpus`'s.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::util::cpulist::{cpulist, MAX_CPU_ID};

/// Errors reading a thread's state or placing it.
#[derive(Debug, Error)]
pub enum ThreadError {
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

fn read(path: &Path) -> Result<String, ThreadError> {
    std::fs::read_to_string(path).map_err(|error| ThreadError::Read {
        path: path.display().to_string(),
        error,
    })
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
    /// Field 43: time spent running a guest, in clock ticks (0 where the kernel does not
    /// account guest time to the thread, as under kvm-pvm).
    pub guest_time: u64,
}

/// Field numbers (1-based, as proc(5) numbers them).
const STAT_STATE: usize = 3;
const STAT_UTIME: usize = 14;
const STAT_STIME: usize = 15;
const STAT_PROCESSOR: usize = 39;
const STAT_GUEST_TIME: usize = 43;

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
        // Linux has had field 43 since 2.6.24; a shorter line reads as no guest time.
        guest_time: if rest.len() > STAT_GUEST_TIME - STAT_STATE {
            number(STAT_GUEST_TIME)?
        } else {
            0
        },
    })
}

/// Reads `/proc/PID/task/TID/stat`.
pub fn task_stat(pid: i32, tid: i32) -> Result<TaskStat, ThreadError> {
    let path = PathBuf::from(format!("/proc/{pid}/task/{tid}/stat"));
    let text = read(&path)?;
    parse_task_stat(&text).map_err(|detail| ThreadError::Parse {
        path: path.display().to_string(),
        what: "a task stat line",
        detail,
    })
}

/// `/proc/PID/task/TID/schedstat`: the thread's time on a CPU, its time runnable but
/// waiting for one (run delay: what its guest sees as steal, and where a CPU quota's
/// throttling shows), and how many times it was scheduled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedStat {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub timeslices: u64,
}

/// Parses a schedstat line (three numbers).
pub fn parse_schedstat(text: &str) -> Result<SchedStat, String> {
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() < 3 {
        return Err(format!("{} fields, expected 3", f.len()));
    }
    let n = |i: usize| {
        f[i].parse::<u64>()
            .map_err(|_| format!("field {} \"{}\" is not a number", i + 1, f[i]))
    };
    Ok(SchedStat {
        run_ns: n(0)?,
        wait_ns: n(1)?,
        timeslices: n(2)?,
    })
}

/// Reads `/proc/PID/task/TID/schedstat`.
pub fn schedstat(pid: i32, tid: i32) -> Result<SchedStat, ThreadError> {
    let path = PathBuf::from(format!("/proc/{pid}/task/{tid}/schedstat"));
    let text = read(&path)?;
    parse_schedstat(&text).map_err(|detail| ThreadError::Parse {
        path: path.display().to_string(),
        what: "schedstat",
        detail,
    })
}

/// Context switches from `/proc/PID/task/TID/status`: voluntary (the thread blocked, e.g.
/// a halted vCPU) and involuntary (the scheduler took the CPU away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Switches {
    pub voluntary: u64,
    pub involuntary: u64,
}

/// Parses the `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` lines.
pub fn parse_switches(status: &str) -> Result<Switches, String> {
    let field = |key: &str| -> Result<u64, String> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .ok_or(format!("no {key} line"))?;
        line.trim()
            .parse()
            .map_err(|_| format!("{key} \"{}\" is not a number", line.trim()))
    };
    Ok(Switches {
        voluntary: field("voluntary_ctxt_switches")?,
        involuntary: field("nonvoluntary_ctxt_switches")?,
    })
}

/// Reads the context switches of a thread.
pub fn switches(pid: i32, tid: i32) -> Result<Switches, ThreadError> {
    let path = PathBuf::from(format!("/proc/{pid}/task/{tid}/status"));
    let text = read(&path)?;
    parse_switches(&text).map_err(|detail| ThreadError::Parse {
        path: path.display().to_string(),
        what: "context switches",
        detail,
    })
}

/// `se.nr_migrations` from a `/proc/.../sched` text (moves between host CPUs).
pub fn parse_migrations(sched: &str) -> Option<u64> {
    sched.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "se.nr_migrations").then(|| value.trim().parse().ok())?
    })
}

/// How many times a thread moved between host CPUs; `None` where the kernel has no
/// `/proc/PID/task/TID/sched` (CONFIG_SCHED_DEBUG off).
pub fn migrations(pid: i32, tid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/sched")).ok()?;
    parse_migrations(&text)
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
pub fn own_threads() -> Result<Vec<i32>, ThreadError> {
    let dir = Path::new("/proc/self/task");
    let entries = std::fs::read_dir(dir).map_err(|error| ThreadError::Read {
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
pub fn set_affinity(tid: i32, cpus: &[u32]) -> Result<(), ThreadError> {
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
        return Err(ThreadError::SetAffinity {
            tid,
            cpus: cpulist(cpus),
            error: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Thread `tid`'s affinity (0 means the calling thread).
pub fn get_affinity(tid: i32) -> Result<Vec<u32>, ThreadError> {
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
        return Err(ThreadError::GetAffinity {
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
    fn guest_time_and_scheduler_figures() {
        let line = "4242 (CPU 0/KVM) R 1 4242 1 34816 4242 4194368 1036 0 0 0 375 12 0 0 20 0 4 0 \
                    98765 1234567 890 18446744073709551615 1 1 0 0 0 0 0 4096 1260 0 0 0 -1 1 0 0 0 77 0 \
                    0 0 0 0 0 0 0";
        assert_eq!(parse_task_stat(line).unwrap().guest_time, 77);
        // A line that stops at field 39 has no guest time.
        let short: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
        let short = short[..40].join(" ");
        assert_eq!(parse_task_stat(&short).unwrap().guest_time, 0);

        assert_eq!(
            parse_schedstat("4911109245 71779684 164\n").unwrap(),
            SchedStat {
                run_ns: 4911109245,
                wait_ns: 71779684,
                timeslices: 164
            }
        );
        assert_eq!(parse_schedstat("1 2").unwrap_err(), "2 fields, expected 3");
        assert_eq!(
            parse_schedstat("1 x 3").unwrap_err(),
            "field 2 \"x\" is not a number"
        );

        let status =
            "Name:\tCPU 0/KVM\nvoluntary_ctxt_switches:\t3\nnonvoluntary_ctxt_switches:\t163\n";
        assert_eq!(
            parse_switches(status).unwrap(),
            Switches {
                voluntary: 3,
                involuntary: 163
            }
        );
        assert_eq!(
            parse_switches("Name:\tx\n").unwrap_err(),
            "no voluntary_ctxt_switches line"
        );
        let sched = "CPU 0/KVM (4242, #threads: 5)\n----\nse.exec_start    :    1.5\nse.nr_migrations                             :                    12\n";
        assert_eq!(parse_migrations(sched), Some(12));
        assert_eq!(parse_migrations("se.exec_start : 1\n"), None);
    }

    #[test]
    fn own_thread_scheduler_figures_are_readable() {
        let pid = std::process::id() as i32;
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let s = schedstat(pid, tid).unwrap();
        assert!(s.timeslices > 0, "a running thread was scheduled in: {s:?}");
        switches(pid, tid).unwrap();
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
        let m = to_mask(&[0, 3, 64, 8191]);
        assert_eq!(m.len(), 128);
        assert_eq!(m[0], 0b1001);
        assert_eq!(m[1], 1);
        assert_eq!(m[127], 1 << 63);
        assert_eq!(from_mask(&m), vec![0, 3, 64, 8191]);
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
