//! Transition only: the old path of the per-thread readers, now `host::thread`, kept so
//! branches written against it still build while the restructure merges. New code uses
//! `host::thread` (and `host::cpus` for the host's CPU sets); remove after the merge.

pub use super::sysfs::parse_mask;
pub use super::thread::ThreadError as SchedError;
pub use super::thread::{
    clock_ticks_per_second, from_mask, get_affinity, own_threads, parse_task_stat, set_affinity,
    task_stat, to_mask, TaskStat,
};
