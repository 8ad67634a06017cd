//! The SIGSYS handler of `--sandbox on`: names the thread and the forbidden call on stderr,
//! then ends the process with [`super::EXIT_FORBIDDEN`].
//!
//! It runs on the thread that made the call, inside a signal handler, so it only makes
//! async-signal-safe system calls that every filter allows (prctl(PR_GET_NAME), write(2),
//! exit_group) and formats into a stack buffer: no allocation, no lock, no std I/O.

/// The names of the calls rvmm could plausibly make, for the message; others print as a
/// number only.
macro_rules! names {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, strip(stringify!($name)))),*]
    };
}

const fn strip(s: &str) -> &str {
    // "SYS_socket" → "socket"
    let (_, rest) = s.as_bytes().split_at(4);
    match std::str::from_utf8(rest) {
        Ok(r) => r,
        Err(_) => s,
    }
}

static NAMES: &[(i64, &str)] = names!(
    SYS_read,
    SYS_write,
    SYS_open,
    SYS_close,
    SYS_stat,
    SYS_fstat,
    SYS_lstat,
    SYS_poll,
    SYS_lseek,
    SYS_mmap,
    SYS_mprotect,
    SYS_munmap,
    SYS_brk,
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_ioctl,
    SYS_pread64,
    SYS_pwrite64,
    SYS_readv,
    SYS_writev,
    SYS_access,
    SYS_pipe,
    SYS_select,
    SYS_sched_yield,
    SYS_mremap,
    SYS_msync,
    SYS_mincore,
    SYS_madvise,
    SYS_dup,
    SYS_dup2,
    SYS_nanosleep,
    SYS_getpid,
    SYS_sendfile,
    SYS_socket,
    SYS_connect,
    SYS_accept,
    SYS_sendto,
    SYS_recvfrom,
    SYS_sendmsg,
    SYS_recvmsg,
    SYS_shutdown,
    SYS_bind,
    SYS_listen,
    SYS_getsockname,
    SYS_getpeername,
    SYS_socketpair,
    SYS_setsockopt,
    SYS_getsockopt,
    SYS_clone,
    SYS_fork,
    SYS_vfork,
    SYS_execve,
    SYS_exit,
    SYS_wait4,
    SYS_kill,
    SYS_uname,
    SYS_fcntl,
    SYS_flock,
    SYS_fsync,
    SYS_truncate,
    SYS_ftruncate,
    SYS_getdents,
    SYS_getcwd,
    SYS_chdir,
    SYS_rename,
    SYS_mkdir,
    SYS_rmdir,
    SYS_creat,
    SYS_link,
    SYS_unlink,
    SYS_symlink,
    SYS_readlink,
    SYS_chmod,
    SYS_fchmod,
    SYS_chown,
    SYS_umask,
    SYS_gettimeofday,
    SYS_getrlimit,
    SYS_getrusage,
    SYS_sysinfo,
    SYS_ptrace,
    SYS_getuid,
    SYS_getgid,
    SYS_setuid,
    SYS_setgid,
    SYS_geteuid,
    SYS_getegid,
    SYS_setsid,
    SYS_capget,
    SYS_capset,
    SYS_sigaltstack,
    SYS_personality,
    SYS_statfs,
    SYS_sched_setparam,
    SYS_sched_setscheduler,
    SYS_mlock,
    SYS_munlock,
    SYS_mlockall,
    SYS_prctl,
    SYS_arch_prctl,
    SYS_chroot,
    SYS_mount,
    SYS_umount2,
    SYS_reboot,
    SYS_init_module,
    SYS_gettid,
    SYS_tkill,
    SYS_futex,
    SYS_sched_setaffinity,
    SYS_sched_getaffinity,
    SYS_getdents64,
    SYS_set_tid_address,
    SYS_timer_create,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_exit_group,
    SYS_epoll_wait,
    SYS_epoll_ctl,
    SYS_tgkill,
    SYS_mbind,
    SYS_set_mempolicy,
    SYS_get_mempolicy,
    SYS_kexec_load,
    SYS_waitid,
    SYS_openat,
    SYS_mkdirat,
    SYS_newfstatat,
    SYS_unlinkat,
    SYS_renameat,
    SYS_readlinkat,
    SYS_faccessat,
    SYS_ppoll,
    SYS_unshare,
    SYS_set_robust_list,
    SYS_splice,
    SYS_move_pages,
    SYS_utimensat,
    SYS_epoll_pwait,
    SYS_signalfd4,
    SYS_timerfd_create,
    SYS_eventfd2,
    SYS_epoll_create1,
    SYS_dup3,
    SYS_pipe2,
    SYS_perf_event_open,
    SYS_accept4,
    SYS_prlimit64,
    SYS_setns,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_finit_module,
    SYS_seccomp,
    SYS_getrandom,
    SYS_memfd_create,
    SYS_bpf,
    SYS_execveat,
    SYS_userfaultfd,
    SYS_membarrier,
    SYS_statx,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_pidfd_open,
    SYS_clone3,
    SYS_openat2,
    SYS_pidfd_getfd,
    SYS_faccessat2,
    SYS_process_madvise,
    SYS_rseq,
);

/// The name of system call `nr` on this architecture, if it is one rvmm knows.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    NAMES.iter().find(|(n, _)| *n == nr).map(|(_, s)| *s)
}

/// A fixed buffer that a signal handler can format into.
struct Line {
    buf: [u8; 192],
    len: usize,
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn push_number(&mut self, n: i64) {
        if n < 0 {
            self.push(b"-");
        }
        let mut v = n.unsigned_abs();
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let tail = digits;
        self.push(&tail[i..]);
    }
}

/// Formats the message for a forbidden call `nr` by thread `thread` (the name bytes, up to
/// a NUL).
fn message(thread: &[u8], nr: i64) -> Line {
    let mut line = Line {
        buf: [0; 192],
        len: 0,
    };
    let name_len = thread.iter().position(|&b| b == 0).unwrap_or(thread.len());
    line.push(b"rvmm: seccomp: thread '");
    line.push(&thread[..name_len]);
    line.push(b"' made a forbidden system call ");
    line.push_number(nr);
    if let Some(name) = syscall_name(nr) {
        line.push(b" (");
        line.push(name.as_bytes());
        line.push(b")");
    }
    line.push(b"; exiting\n");
    line
}

/// The text [`message`] would write, for tests.
#[cfg(test)]
pub(super) fn message_text(thread: &str, nr: i64) -> String {
    let line = message(thread.as_bytes(), nr);
    String::from_utf8_lossy(&line.buf[..line.len]).into_owned()
}

/// Where the kernel puts the system call number in a SIGSYS siginfo (`si_syscall`, after
/// si_signo, si_errno, si_code, padding and `si_call_addr`).
const SI_SYSCALL_OFFSET: usize = 24;

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo for SIGSYS with SA_SIGINFO; si_syscall is an
    // int at a fixed offset of its union on Linux.
    let nr = unsafe {
        *(info as *const u8)
            .add(SI_SYSCALL_OFFSET)
            .cast::<libc::c_int>()
    };
    let mut name = [0u8; 17];
    // SAFETY: PR_GET_NAME writes at most 16 bytes into our 17-byte buffer.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr(), 0, 0, 0) };
    let line = message(&name[..16], i64::from(nr));
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is ours.
    unsafe {
        libc::write(libc::STDERR_FILENO, line.buf.as_ptr().cast(), line.len);
        libc::_exit(super::EXIT_FORBIDDEN);
    }
}

/// Installs the handler for the whole process.
pub(super) fn install() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; we fill handler, flags, mask.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_sigsys as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO;
    // SAFETY: act.sa_mask is ours to initialise.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    // SAFETY: installing a handler that only makes async-signal-safe calls.
    let rc = unsafe { libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
