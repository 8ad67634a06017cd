//! One thread's placement, as the kernel reports and sets it: its scheduler state from
//! `/proc/PID/task/TID/stat` (state, utime, stime, the CPU it last ran on), this process's
//! threads (`/proc/self/task`) and a thread's CPU affinity (`sched_setaffinity`,
//! `sched_getaffinity` on a TID).
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
pub fn task_stat(pid: i32, tid: i32) -> Result<TaskStat, ThreadError> {
    let path = PathBuf::from(format!("/proc/{pid}/task/{tid}/stat"));
    let text = read(&path)?;
    parse_task_stat(&text).map_err(|detail| ThreadError::Parse {
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
