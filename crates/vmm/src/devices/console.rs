//! The guest console's way out to stdout, which a guest can never block.
//!
//! COM1 is written on a vCPU thread, one byte per exit, under the device lock. Writing
//! those bytes to stdout there would let whoever holds the other end of stdout (a pipe
//! nobody reads, a terminal stopped with Ctrl-S) stop the vCPU, then every other vCPU on
//! the lock, then the shutdown that joins them. So the UART's writer only appends to a
//! bounded in-memory buffer ([`CONSOLE_BUFFER`] bytes) and never waits; a dedicated
//! writer thread (`console-out`) moves the bytes to the file with ordinary blocking writes
//! as soon as they arrive, so each byte still shows at once on a terminal. Bytes that do
//! not fit are dropped and counted ([`ConsoleOut::undelivered`]); rvmm reports the count
//! when the VM ends.
//!
//! Why a thread and not non-blocking writes from the emulator thread: `O_NONBLOCK` is a
//! flag of the open file description, which rvmm's stdout shares with its parent (the
//! shell's terminal, a pipeline's other members), and it would stay set if rvmm died;
//! `poll(POLLOUT)` followed by a plain write does not promise the write will not block
//! (a socket, a terminal mid-flow-control). A thread blocked in `write(2)` harms nothing:
//! the process exit ends it.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How many bytes of guest output wait for stdout at most (beyond the chunk being written).
pub const CONSOLE_BUFFER: usize = 64 * 1024;

/// The writer thread's stack: it only copies bytes.
const WRITER_STACK: usize = 64 * 1024;

#[derive(Default)]
struct State {
    queue: VecDeque<u8>,
    /// Bytes the writer thread took and has not finished writing.
    in_flight: usize,
    /// Bytes dropped because the buffer was full or the output is gone.
    dropped: u64,
    /// The output failed (closed pipe, full disk, no writer thread): later bytes are
    /// dropped at once.
    broken: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when bytes arrive (the writer waits on it).
    arrived: Condvar,
    /// Signalled when the writer finished a chunk (`flush` waits on it).
    written: Condvar,
    capacity: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bounded, never-blocking path to an output file, drained by its own thread. Cloning
/// gives another handle to the same buffer.
#[derive(Clone)]
pub struct ConsoleOut {
    inner: Arc<Inner>,
}

/// rvmm's stdout as a raw file descriptor: no `std::io::Stdout` lock or buffer, so the
/// writer thread never waits on (or interleaves inside) a line another thread prints.
struct RawStdout;

impl Write for RawStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: writing from a valid buffer of buf.len() bytes to fd 1.
        let n = unsafe { libc::write(libc::STDOUT_FILENO, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static STDOUT: OnceLock<ConsoleOut> = OnceLock::new();

/// The process's console on stdout, created (with its writer thread) on first use.
pub fn stdout() -> ConsoleOut {
    STDOUT
        .get_or_init(|| ConsoleOut::spawn(RawStdout, CONSOLE_BUFFER))
        .clone()
}

/// The console on stdout if something has used it.
pub fn stdout_if_started() -> Option<ConsoleOut> {
    STDOUT.get().cloned()
}

impl ConsoleOut {
    /// A console writing to `out`, holding at most `capacity` bytes in waiting. If the
    /// writer thread cannot start, every byte is dropped (and counted).
    pub fn spawn(out: impl Write + Send + 'static, capacity: usize) -> ConsoleOut {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            written: Condvar::new(),
            capacity,
        });
        let worker = inner.clone();
        let started = std::thread::Builder::new()
            .name("console-out".into())
            .stack_size(WRITER_STACK)
            .spawn(move || {
                block_all_signals();
                crate::sandbox::apply(crate::sandbox::Role::Io);
                write_loop(&worker, out)
            });
        if started.is_err() {
            inner.lock().broken = true;
        }
        ConsoleOut { inner }
    }

    /// Queues `bytes` for the output; never blocks. What does not fit is dropped and
    /// counted. Returns how many bytes were queued.
    pub fn push(&self, bytes: &[u8]) -> usize {
        let mut st = self.inner.lock();
        let room = if st.broken {
            0
        } else {
            self.inner.capacity.saturating_sub(st.queue.len())
        };
        let taken = room.min(bytes.len());
        let was_empty = st.queue.is_empty();
        st.queue.extend(&bytes[..taken]);
        st.dropped = st.dropped.saturating_add((bytes.len() - taken) as u64);
        drop(st);
        if taken > 0 && was_empty {
            self.inner.arrived.notify_one();
        }
        taken
    }

    /// Waits until everything queued so far has been written, or `timeout` passes, or the
    /// output failed; true if it all went out.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        while (!st.queue.is_empty() || st.in_flight > 0) && !st.broken {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .inner
                .written
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        !st.broken
    }

    /// Bytes that did not reach the output: dropped so far, plus (as the VM ends, after a
    /// [`ConsoleOut::flush`] that timed out) those still waiting.
    pub fn undelivered(&self) -> u64 {
        let st = self.inner.lock();
        st.dropped
            .saturating_add(st.queue.len() as u64)
            .saturating_add(st.in_flight as u64)
    }
}

/// The UART's writer: queues and reports every byte as taken (what is dropped is counted,
/// not an error the guest could see).
impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The writer thread takes no signals: SIGINT/SIGTERM/SIGHUP belong to the emulator
/// thread's signalfd (a stop signal delivered here would kill rvmm before it could stop the
/// VM), and a closed stdout must come back as EPIPE, not SIGPIPE. (The thread may start
/// before the VMM blocks the stop signals, so it cannot rely on inheriting the mask.)
pub(crate) fn block_all_signals() {
    // SAFETY: a zeroed sigset is valid input for sigfillset, which fills our own set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigfillset(&mut set) };
    // SAFETY: changes only this thread's mask; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// The writer thread: takes whatever is queued and writes it out, until the output fails.
fn write_loop(inner: &Inner, mut out: impl Write) {
    let mut chunk = Vec::with_capacity(inner.capacity);
    loop {
        let mut st = inner.lock();
        while st.queue.is_empty() {
            st = inner.arrived.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        chunk.clear();
        chunk.extend(st.queue.drain(..));
        st.in_flight = chunk.len();
        drop(st);
        let result = out.write_all(&chunk).and_then(|()| out.flush());
        let mut st = inner.lock();
        st.in_flight = 0;
        if result.is_err() {
            st.broken = true;
            st.dropped = st
                .dropped
                .saturating_add((chunk.len() + st.queue.len()) as u64);
            st.queue.clear();
        }
        let broken = st.broken;
        drop(st);
        inner.written.notify_all();
        if broken {
            // Drop everything from now on; `push` sees `broken` and counts it.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};

    fn pipe() -> (std::fs::File, std::fs::File) {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 fills two new descriptors into our array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and owned by nothing else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        (r.into(), w.into())
    }

    #[test]
    fn bytes_reach_the_output_in_order() {
        let (mut r, w) = pipe();
        let console = ConsoleOut::spawn(w, 1024);
        for b in b"hello, " {
            assert_eq!(console.push(&[*b]), 1);
        }
        console.push(b"world\n");
        assert!(console.flush(Duration::from_secs(30)));
        let mut got = [0u8; 13];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello, world\n");
        assert_eq!(console.undelivered(), 0);
    }

    /// Fills the pipe whose write end is `w` until a write would block.
    fn fill(w: &std::fs::File) {
        use std::os::fd::AsRawFd;
        let fd = w.as_raw_fd();
        // SAFETY: F_GETFL/F_SETFL on our own descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) };
        let block = [b'f'; 4096];
        // SAFETY: writing from a valid buffer of its own length.
        while unsafe { libc::write(fd, block.as_ptr().cast(), block.len()) } > 0 {}
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    }

    #[test]
    fn an_undrained_output_drops_and_counts_but_never_blocks() {
        // Nobody reads the pipe and it is full: the writer thread blocks in write(2), the
        // buffer fills, and every later push returns at once having queued nothing.
        let (r, w) = pipe();
        fill(&w);
        let console = ConsoleOut::spawn(w, 4096);
        let total: u64 = 1 << 20;
        let mut queued = 0u64;
        for _ in 0..total / 256 {
            queued += console.push(&[b'x'; 256]) as u64;
        }
        // The buffer, and at most one chunk of the same size in flight.
        assert!(queued <= 2 * 4096, "queued {queued}");
        assert!(!console.flush(Duration::from_millis(50)));
        assert_eq!(console.undelivered(), total, "nothing reached the pipe");
        drop(r);
    }

    #[test]
    fn a_closed_output_counts_everything_as_dropped() {
        let (r, w) = pipe();
        drop(r);
        // SAFETY: ignoring SIGPIPE in the test process (Rust's runtime already does).
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let console = ConsoleOut::spawn(w, 1024);
        console.push(b"lost\n");
        assert!(!console.flush(Duration::from_secs(30)));
        console.push(b"also lost\n");
        assert_eq!(console.undelivered(), 15);
    }
}
