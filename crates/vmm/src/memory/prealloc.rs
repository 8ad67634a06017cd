//! Preallocating guest RAM (`-m ...,prealloc=on`): every page faulted in before the guest
//! runs, in parallel across host CPUs.
//!
//! Each worker thread takes the next chunk and faults it in with
//! madvise(MADV_POPULATE_WRITE) (Linux 5.14+), which reports a shortage as an error instead
//! of a SIGBUS; on older kernels it writes one byte per page (each byte rewritten with its
//! own value, so file contents survive). The calling thread reports progress meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::size::format_size;

/// Work unit: big enough to keep syscall overhead low, small enough to balance threads.
const CHUNK: u64 = 64 << 20;
/// How often progress is reported.
const PROGRESS_PERIOD: Duration = Duration::from_millis(200);
/// How often the reporting thread checks whether the workers are done.
const POLL_PERIOD: Duration = Duration::from_millis(20);
/// Most preallocation threads (QEMU caps its default at 16 as well).
const MAX_THREADS: usize = 16;

/// Set once the kernel has refused MADV_POPULATE_WRITE as unknown (EINVAL).
static NO_POPULATE_WRITE: AtomicBool = AtomicBool::new(false);

/// What preallocation is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreallocEvent {
    Start {
        total: u64,
        threads: usize,
    },
    Progress {
        done: u64,
        total: u64,
    },
    Done {
        total: u64,
        threads: usize,
        elapsed: Duration,
    },
}

/// Why guest RAM could not be preallocated.
#[derive(Debug, Error)]
#[error(
    "-m prealloc=on: faulting in guest memory failed at offset {offset:#x} of {total}: {reason}"
)]
pub struct PreallocError {
    pub offset: u64,
    pub total: String,
    pub reason: String,
}

/// The number of threads for `size` bytes: one per host CPU, at most one per chunk.
pub fn thread_count(size: u64, host_cpus: usize) -> usize {
    let chunks = size.div_ceil(CHUNK).max(1);
    host_cpus.clamp(1, MAX_THREADS).min(chunks as usize)
}

/// Faults in `[base, base + len)` one way or the other.
///
/// # Safety
/// The range must be a live mapping the caller owns, with `page_size`-aligned start and
/// length.
unsafe fn populate(base: usize, len: u64, page_size: u64) -> std::io::Result<()> {
    if !NO_POPULATE_WRITE.load(Ordering::Relaxed) {
        // SAFETY: per the contract the range is the caller's mapping.
        if unsafe {
            libc::madvise(
                base as *mut libc::c_void,
                len as usize,
                libc::MADV_POPULATE_WRITE,
            )
        } == 0
        {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
        NO_POPULATE_WRITE.store(true, Ordering::Relaxed);
    }
    // SAFETY: same contract as ours.
    unsafe { touch_pages(base, len, page_size) };
    Ok(())
}

/// Faults in `[base, base + len)` by rewriting one byte per page with its own value (which
/// faults the page in writable without changing content).
///
/// # Safety
/// As for [`populate`].
unsafe fn touch_pages(base: usize, len: u64, page_size: u64) {
    let mut off = 0;
    while off < len {
        let p = (base + off as usize) as *mut u8;
        // SAFETY: `p` is inside the caller's mapping.
        unsafe { p.write_volatile(p.read_volatile()) };
        off += page_size;
    }
}

/// Faults in all of `[base, base + size)` on up to one thread per host CPU, calling
/// `progress` from this thread at the start, every [`PROGRESS_PERIOD`] and at the end.
///
/// # Safety
/// `base..base + size` must be a live mapping the caller owns, `page_size`-aligned, that
/// nothing else accesses during the call.
pub unsafe fn prealloc(
    base: *mut u8,
    size: u64,
    page_size: u64,
    progress: &mut dyn FnMut(PreallocEvent),
) -> Result<(), PreallocError> {
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = thread_count(size, host_cpus);
    let chunk = CHUNK.next_multiple_of(page_size);
    let chunks = size.div_ceil(chunk);
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let finished = AtomicUsize::new(0);
    let failure: Mutex<Option<(u64, std::io::Error)>> = Mutex::new(None);
    let base_addr = base as usize;
    let start = Instant::now();
    progress(PreallocEvent::Start {
        total: size,
        threads,
    });
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                crate::sandbox::apply(crate::sandbox::Role::Io);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks || failure.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    let off = i * chunk;
                    let len = chunk.min(size - off);
                    // SAFETY: [off, off+len) is inside the caller's mapping, page-aligned
                    // (chunk is a page multiple and size is too), and each chunk is
                    // handed to exactly one thread.
                    match unsafe { populate(base_addr + off as usize, len, page_size) } {
                        Ok(()) => {
                            done.fetch_add(len, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert((off, e));
                            }
                            break;
                        }
                    }
                }
                finished.fetch_add(1, Ordering::Release);
            });
        }
        let mut last_report = Instant::now();
        while finished.load(Ordering::Acquire) < threads {
            std::thread::sleep(POLL_PERIOD);
            if last_report.elapsed() >= PROGRESS_PERIOD {
                last_report = Instant::now();
                progress(PreallocEvent::Progress {
                    done: done.load(Ordering::Relaxed),
                    total: size,
                });
            }
        }
    });
    let failure = failure.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some((offset, e)) = failure {
        return Err(PreallocError {
            offset,
            total: format_size(size),
            reason: e.to_string(),
        });
    }
    progress(PreallocEvent::Done {
        total: size,
        threads,
        elapsed: start.elapsed(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_follow_cpus_and_chunks() {
        assert_eq!(thread_count(2 << 30, 2), 2);
        assert_eq!(thread_count(2 << 30, 64), 16);
        assert_eq!(thread_count(64 << 20, 8), 1);
        assert_eq!(thread_count(65 << 20, 8), 2);
        assert_eq!(thread_count(4096, 0), 1);
    }

    /// A fresh private anonymous mapping of `size` bytes.
    fn mapping(size: u64) -> *mut libc::c_void {
        // SAFETY: a fresh anonymous mapping, checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // Base pages even where THP is "always", so one write makes one page resident.
        // SAFETY: advising our own mapping.
        unsafe { libc::madvise(p, size as usize, libc::MADV_NOHUGEPAGE) };
        p
    }

    /// Resident flags of each page of the mapping.
    fn resident(p: *mut libc::c_void, size: u64) -> Vec<bool> {
        let mut flags = vec![0u8; (size / 4096) as usize];
        // SAFETY: mincore on our mapping with a buffer of one byte per page.
        let rc = unsafe { libc::mincore(p, size as usize, flags.as_mut_ptr()) };
        assert_eq!(rc, 0);
        flags.iter().map(|f| f & 1 == 1).collect()
    }

    #[test]
    fn the_fallback_touches_every_page_and_keeps_content() {
        let size = 64u64 << 12;
        let p = mapping(size);
        // SAFETY: writing inside our mapping.
        unsafe { *p.cast::<u8>().add(5 * 4096 + 7) = 0xab };
        assert_eq!(resident(p, size).iter().filter(|r| **r).count(), 1);
        // SAFETY: our own page-aligned mapping, used by nobody else.
        unsafe { touch_pages(p as usize, size, 4096) };
        assert!(resident(p, size).iter().all(|r| *r));
        // SAFETY: reading inside our mapping, then unmapping it.
        unsafe {
            assert_eq!(*p.cast::<u8>().add(5 * 4096 + 7), 0xab);
            libc::munmap(p, size as usize);
        }
    }

    #[test]
    fn faults_in_a_mapping_and_reports() {
        let size = 130u64 << 20;
        let p = mapping(size);
        let mut events = Vec::new();
        // SAFETY: our own mapping, page-aligned, used by nobody else.
        unsafe { prealloc(p.cast(), size, 4096, &mut |e| events.push(e)).unwrap() };
        assert!(
            resident(p, size).iter().all(|r| *r),
            "every page is resident"
        );
        assert!(
            matches!(events.first(), Some(PreallocEvent::Start { total, .. }) if *total == size)
        );
        assert!(matches!(events.last(), Some(PreallocEvent::Done { total, .. }) if *total == size));
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(p, size as usize) };
    }
}
