//! Host PMU and software counters of one thread, with perf_event_open(2): what `rvmm stats
//! --perf` counts on each vCPU thread. Hardware events (cycles, instructions, cache
//! references and misses, branch misses) need a PMU the host kernel drives; software events
//! (task-clock, context switches, CPU migrations, page faults) exist on every Linux. Each
//! event is opened on its own, so one the host cannot count says why ([`PerfError`]) and the
//! others still count.
//!
//! Counters count everything the thread does (user, kernel and guest mode: a vCPU thread
//! spends its guest time inside KVM_RUN), which an unprivileged user may do only with
//! `kernel.perf_event_paranoid` <= 1; rather than quietly excluding the kernel and the
//! guest, a refusal is reported with the setting that caused it. When the PMU has more
//! events than counters it multiplexes them: a reading carries the time the event was
//! enabled and the time it really counted, and [`scaled_delta`] scales a count up by their
//! ratio, as `perf stat` does.
//!
//! Opening and reading touch the kernel ([`ThreadCounter::open`], [`ThreadCounter::read`]);
//! turning readings into counts and errno values into reasons is pure.

use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// perf_event_attr.type (include/uapi/linux/perf_event.h).
const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_TYPE_SOFTWARE: u32 = 1;
/// perf_event_attr.read_format: the value is followed by time enabled and time running.
const PERF_FORMAT_TOTAL_TIME_ENABLED: u64 = 1 << 0;
const PERF_FORMAT_TOTAL_TIME_RUNNING: u64 = 1 << 1;
/// perf_event_open flags: the fd is close-on-exec.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// PERF_ATTR_SIZE_VER0: the attribute layout every kernel since 2.6.31 accepts.
const PERF_ATTR_SIZE_VER0: u32 = 64;

/// The fields of perf_event_attr up to PERF_ATTR_SIZE_VER0 (the kernel zero-extends it).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit fields: disabled, inherit, pinned, exclusive, exclude_user, exclude_kernel, ...
    /// All 0: enabled at once, this thread only, counting every mode.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == PERF_ATTR_SIZE_VER0 as usize);

/// An event `rvmm stats --perf` counts, named as `perf stat -e` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerfEvent {
    Cycles,
    Instructions,
    CacheReferences,
    CacheMisses,
    BranchMisses,
    TaskClock,
    ContextSwitches,
    CpuMigrations,
    PageFaults,
}

impl PerfEvent {
    /// Every event, hardware first, in the order they are reported.
    pub const ALL: [PerfEvent; 9] = [
        PerfEvent::Cycles,
        PerfEvent::Instructions,
        PerfEvent::CacheReferences,
        PerfEvent::CacheMisses,
        PerfEvent::BranchMisses,
        PerfEvent::TaskClock,
        PerfEvent::ContextSwitches,
        PerfEvent::CpuMigrations,
        PerfEvent::PageFaults,
    ];

    /// The name `perf stat -e` takes.
    pub fn name(self) -> &'static str {
        match self {
            PerfEvent::Cycles => "cycles",
            PerfEvent::Instructions => "instructions",
            PerfEvent::CacheReferences => "cache-references",
            PerfEvent::CacheMisses => "cache-misses",
            PerfEvent::BranchMisses => "branch-misses",
            PerfEvent::TaskClock => "task-clock",
            PerfEvent::ContextSwitches => "context-switches",
            PerfEvent::CpuMigrations => "cpu-migrations",
            PerfEvent::PageFaults => "page-faults",
        }
    }

    /// Counted by the CPU's PMU (else by the kernel's software events).
    pub fn is_hardware(self) -> bool {
        self.type_and_config().0 == PERF_TYPE_HARDWARE
    }

    /// What a count is of: nanoseconds for task-clock, events for the rest.
    pub fn unit(self) -> &'static str {
        match self {
            PerfEvent::TaskClock => "ns",
            _ => "",
        }
    }

    /// perf_event_attr's type and config (PERF_COUNT_HW_*, PERF_COUNT_SW_*).
    fn type_and_config(self) -> (u32, u64) {
        match self {
            PerfEvent::Cycles => (PERF_TYPE_HARDWARE, 0),
            PerfEvent::Instructions => (PERF_TYPE_HARDWARE, 1),
            PerfEvent::CacheReferences => (PERF_TYPE_HARDWARE, 2),
            PerfEvent::CacheMisses => (PERF_TYPE_HARDWARE, 3),
            PerfEvent::BranchMisses => (PERF_TYPE_HARDWARE, 5),
            PerfEvent::TaskClock => (PERF_TYPE_SOFTWARE, 1),
            PerfEvent::PageFaults => (PERF_TYPE_SOFTWARE, 2),
            PerfEvent::ContextSwitches => (PERF_TYPE_SOFTWARE, 3),
            PerfEvent::CpuMigrations => (PERF_TYPE_SOFTWARE, 4),
        }
    }
}

/// Why an event could not be counted on a thread.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PerfError {
    /// ENOENT (no PMU knows the event), EOPNOTSUPP or ENODEV.
    #[error("not supported by this host's PMU ({errno})")]
    NotSupported { errno: String },
    /// EACCES or EPERM.
    #[error("not permitted ({errno}): kernel.perf_event_paranoid is {paranoid}; counting another thread's kernel and guest time needs root or CAP_PERFMON, or perf_event_paranoid <= 1")]
    NotPermitted { errno: String, paranoid: String },
    /// ESRCH.
    #[error("thread {tid} does not exist (it ended)")]
    NoThread { tid: i32 },
    #[error("perf_event_open refused it ({errno})")]
    Open { errno: String },
    #[error("reading the counter: {0}")]
    Read(String),
    /// Enabled but never on a PMU counter: the PMU's counters were taken all the interval.
    #[error("never counted during the interval (the PMU's counters were busy with other events)")]
    NeverRan,
}

/// `ENOENT (No such file or directory)` for errno `code`.
fn errno_text(code: i32) -> String {
    let name = match code {
        libc::ENOENT => "ENOENT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENODEV => "ENODEV",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ESRCH => "ESRCH",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::EBUSY => "EBUSY",
        libc::E2BIG => "E2BIG",
        _ => "errno",
    };
    let text = std::io::Error::from_raw_os_error(code).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("{name} {code}: {text}")
}

/// The reason perf_event_open's errno `code` gives, for thread `tid`; `paranoid` is
/// kernel.perf_event_paranoid as read.
pub fn open_error(code: i32, tid: i32, paranoid: &str) -> PerfError {
    let errno = errno_text(code);
    match code {
        libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV => PerfError::NotSupported { errno },
        libc::EACCES | libc::EPERM => PerfError::NotPermitted {
            errno,
            paranoid: paranoid.to_string(),
        },
        libc::ESRCH => PerfError::NoThread { tid },
        _ => PerfError::Open { errno },
    }
}

/// kernel.perf_event_paranoid as the kernel reports it, or why it could not be read.
pub fn paranoid() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid") {
        Ok(s) => s.trim().to_string(),
        Err(e) => format!("unreadable ({e})"),
    }
}

/// One reading of a counter: its value, and how long it was enabled and really counting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub value: u64,
    pub enabled_ns: u64,
    pub running_ns: u64,
}

/// What an event counted between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The count, scaled up by enabled/running when the PMU multiplexed the event.
    pub count: u64,
    /// The share of the interval the event really counted, in percent (100 unless
    /// multiplexed).
    pub running_pct: f64,
}

/// The count between `before` and `after`, scaled for multiplexing as `perf stat` scales
/// it (count × enabled ÷ running); [`PerfError::NeverRan`] if it never counted.
pub fn scaled_delta(before: Reading, after: Reading) -> Result<Delta, PerfError> {
    let value = after.value.saturating_sub(before.value);
    let enabled = after.enabled_ns.saturating_sub(before.enabled_ns);
    let running = after.running_ns.saturating_sub(before.running_ns);
    if running == 0 {
        return if enabled == 0 && value == 0 {
            // Nothing elapsed for the counter (a zero interval): nothing counted.
            Ok(Delta {
                count: 0,
                running_pct: 100.0,
            })
        } else {
            Err(PerfError::NeverRan)
        };
    }
    let count = if running >= enabled {
        value
    } else {
        let scaled = u128::from(value) * u128::from(enabled) / u128::from(running);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    };
    Ok(Delta {
        count,
        running_pct: (running as f64 * 100.0 / enabled.max(running) as f64).min(100.0),
    })
}

/// One event counting on one thread, from the moment it is opened.
#[derive(Debug)]
pub struct ThreadCounter {
    pub event: PerfEvent,
    pub tid: i32,
    file: File,
}

impl ThreadCounter {
    /// Starts counting `event` on thread `tid` (of any process the caller may trace), on
    /// whatever CPU it runs.
    pub fn open(event: PerfEvent, tid: i32) -> Result<ThreadCounter, PerfError> {
        let (kind, config) = event.type_and_config();
        let attr = PerfEventAttr {
            kind,
            size: PERF_ATTR_SIZE_VER0,
            config,
            read_format: PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING,
            ..PerfEventAttr::default()
        };
        // SAFETY: perf_event_open reads `attr` (a valid, initialised perf_event_attr of the
        // size it states) and returns a new fd or -1; no memory of ours is written.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                tid as libc::pid_t,
                -1 as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            let code = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(open_error(code, tid, &paranoid()));
        }
        let fd = i32::try_from(fd).map_err(|_| PerfError::Open {
            errno: format!("fd {fd} out of range"),
        })?;
        // SAFETY: `fd` is a new perf event fd the kernel just returned; we own it alone.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(ThreadCounter { event, tid, file })
    }

    /// The counter's value and times now.
    pub fn read(&self) -> Result<Reading, PerfError> {
        let mut buf = [0u8; 24];
        (&self.file)
            .read_exact(&mut buf)
            .map_err(|e| PerfError::Read(e.to_string()))?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        Ok(Reading {
            value: word(0),
            enabled_ns: word(1),
            running_ns: word(2),
        })
    }
}

/// Every event of [`PerfEvent::ALL`] opened on thread `tid`: a counter, or why not.
pub fn open_all(tid: i32) -> Vec<(PerfEvent, Result<ThreadCounter, PerfError>)> {
    PerfEvent::ALL
        .iter()
        .map(|&e| (e, ThreadCounter::open(e, tid)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(value: u64, enabled_ns: u64, running_ns: u64) -> Reading {
        Reading {
            value,
            enabled_ns,
            running_ns,
        }
    }

    #[test]
    fn deltas_scale_for_multiplexing_as_perf_stat() {
        // Counted all along: the plain difference.
        let d = scaled_delta(r(100, 1000, 1000), r(350, 2000, 2000)).unwrap();
        assert_eq!(d.count, 250);
        assert_eq!(d.running_pct, 100.0);
        // On a counter a quarter of the time: scaled up four times.
        let d = scaled_delta(r(0, 0, 0), r(1000, 4000, 1000)).unwrap();
        assert_eq!(d.count, 4000);
        assert_eq!(d.running_pct, 25.0);
        // Enabled but never counted.
        assert_eq!(
            scaled_delta(r(5, 10, 0), r(5, 5000, 0)),
            Err(PerfError::NeverRan)
        );
        // No time at all: nothing counted, not an error.
        assert_eq!(scaled_delta(r(5, 10, 10), r(5, 10, 10)).unwrap().count, 0);
        // Huge values do not overflow.
        let d = scaled_delta(r(0, 0, 0), r(u64::MAX, u64::MAX, 1)).unwrap();
        assert_eq!(d.count, u64::MAX);
    }

    #[test]
    fn errno_values_become_reasons() {
        let e = open_error(libc::ENOENT, 7, "2");
        assert_eq!(
            e.to_string(),
            "not supported by this host's PMU (ENOENT 2: No such file or directory)"
        );
        let e = open_error(libc::EACCES, 7, "3");
        assert!(matches!(e, PerfError::NotPermitted { .. }));
        assert!(
            e.to_string().contains("kernel.perf_event_paranoid is 3"),
            "{e}"
        );
        assert_eq!(
            open_error(libc::ESRCH, 7, "2"),
            PerfError::NoThread { tid: 7 }
        );
        assert!(matches!(
            open_error(libc::EINVAL, 7, "2"),
            PerfError::Open { .. }
        ));
    }

    #[test]
    fn names_and_kinds() {
        let names: Vec<&str> = PerfEvent::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            [
                "cycles",
                "instructions",
                "cache-references",
                "cache-misses",
                "branch-misses",
                "task-clock",
                "context-switches",
                "cpu-migrations",
                "page-faults"
            ]
        );
        assert_eq!(PerfEvent::ALL.iter().filter(|e| e.is_hardware()).count(), 5);
        assert_eq!(
            serde_json::to_value(PerfEvent::CacheMisses).unwrap(),
            "cache-misses"
        );
    }

    /// The kernel counts this very thread: task-clock grows while it works, and every
    /// event either opens or says why not.
    #[test]
    fn counts_a_real_thread() {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        let opened = open_all(tid);
        let task_clock = opened
            .iter()
            .find(|(e, _)| *e == PerfEvent::TaskClock)
            .unwrap();
        let counter = match &task_clock.1 {
            Ok(c) => c,
            // Only a host that forbids perf entirely refuses the software clock.
            Err(e) => {
                assert!(matches!(e, PerfError::NotPermitted { .. }), "{e}");
                return;
            }
        };
        let before = counter.read().unwrap();
        let mut x = 1u64;
        while counter.read().unwrap().value == before.value {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
        }
        let after = counter.read().unwrap();
        assert!(scaled_delta(before, after).unwrap().count > 0);
        for (event, result) in &opened {
            if let Ok(c) = result {
                assert_eq!(c.event, *event);
                assert_eq!(c.tid, tid);
                c.read().unwrap();
            }
        }
    }

    #[test]
    fn a_missing_thread_is_named() {
        // Thread ids are below pid_max (at most 2^22); this one cannot exist.
        let e = ThreadCounter::open(PerfEvent::TaskClock, i32::MAX).unwrap_err();
        assert_eq!(e, PerfError::NoThread { tid: i32::MAX });
    }
}
