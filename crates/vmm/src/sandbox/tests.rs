//! The filters at work: a forked child installs a role's filter (compiled before the fork,
//! so the child only makes async-signal-safe calls) and then makes allowed and forbidden
//! calls; the parent reads the child's stderr and exit status.

use std::io::Read;
use std::os::fd::FromRawFd;

use super::filters::rules;
use super::handler::message_text;
use super::*;

/// What a child did after installing a filter: its exit status (or the signal that killed
/// it) and what it wrote on stderr.
#[derive(Debug, PartialEq, Eq)]
struct ChildEnd {
    status: Result<i32, i32>,
    stderr: String,
}

/// Forks; the child names itself `thread`, installs the SIGSYS handler when `trap`,
/// applies `program`, runs `body` and exits 0 if it survived.
fn in_child(thread: &str, program: &BpfProgram, trap: bool, body: fn()) -> ChildEnd {
    let mut name = [0u8; 16];
    name[..thread.len().min(15)].copy_from_slice(&thread.as_bytes()[..thread.len().min(15)]);
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes async-signal-safe calls (dup2, prctl, sigaction,
    // seccomp, the body's raw calls, _exit) before it ends.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above; every call is a raw system call on our own data.
        unsafe {
            libc::dup2(fds[1], libc::STDERR_FILENO);
            libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0);
            if trap && handler::install().is_err() {
                libc::_exit(90);
            }
            if seccompiler::apply_filter(program).is_err() {
                libc::_exit(91);
            }
        }
        body();
        // SAFETY: ending the child without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: closing our copy of the write end; the child has its own.
    unsafe { libc::close(fds[1]) };
    // SAFETY: fds[0] is the read end we own.
    let mut reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut stderr = String::new();
    reader.read_to_string(&mut stderr).unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let status = if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(libc::WTERMSIG(status))
    };
    ChildEnd { status, stderr }
}

fn program(role: Role, mode: SandboxMode) -> BpfProgram {
    compile(role, mode).unwrap()
}

fn call_socket() {
    // SAFETY: socket with integer arguments.
    unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
}

#[test]
fn every_role_compiles_in_both_modes() {
    for role in Role::ALL {
        for mode in [SandboxMode::On, SandboxMode::Log] {
            assert!(!program(role, mode).is_empty(), "{role:?} {mode:?}");
        }
    }
}

#[test]
fn no_role_but_migration_may_open_sockets_and_none_starts_programs_or_processes() {
    for role in Role::ALL {
        let r = rules(role).unwrap();
        if role != Role::Migration {
            for nr in [libc::SYS_socket, libc::SYS_connect] {
                assert!(
                    !r.contains_key(&nr),
                    "{role:?} allows {:?}",
                    syscall_name(nr)
                );
            }
        }
        for nr in [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_process_vm_writev,
        ] {
            assert!(
                !r.contains_key(&nr),
                "{role:?} allows {:?}",
                syscall_name(nr)
            );
        }
    }
    // A vCPU thread opens nothing and starts no thread.
    let vcpu = rules(Role::Vcpu).unwrap();
    for nr in [
        libc::SYS_openat,
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_accept4,
    ] {
        assert!(!vcpu.contains_key(&nr), "{:?}", syscall_name(nr));
    }
}

#[test]
fn modes_parse_and_bad_ones_are_named() {
    assert_eq!(SandboxMode::parse("on").unwrap(), SandboxMode::On);
    assert_eq!(SandboxMode::parse("off").unwrap(), SandboxMode::Off);
    assert_eq!(SandboxMode::parse("log").unwrap(), SandboxMode::Log);
    assert_eq!(
        SandboxMode::parse("yes").unwrap_err().to_string(),
        "--sandbox: 'yes' is not a mode (expected on, off or log)"
    );
    assert_eq!(SandboxMode::default(), SandboxMode::On);
}

#[test]
fn the_message_names_thread_call_and_number() {
    assert_eq!(
        message_text("CPU 1/KVM", libc::SYS_socket),
        "rvmm: seccomp: thread 'CPU 1/KVM' made a forbidden system call 41 (socket); exiting\n"
    );
    assert_eq!(
        message_text("qmp-in-3", 100_000),
        "rvmm: seccomp: thread 'qmp-in-3' made a forbidden system call 100000; exiting\n"
    );
    assert_eq!(syscall_name(libc::SYS_execve), Some("execve"));
    assert_eq!(syscall_name(libc::SYS_clone3), Some("clone3"));
}

#[test]
fn a_vcpu_thread_that_opens_a_socket_dies_with_the_message() {
    let end = in_child(
        "CPU 1/KVM",
        &program(Role::Vcpu, SandboxMode::On),
        true,
        call_socket,
    );
    assert_eq!(
        end,
        ChildEnd {
            status: Ok(EXIT_FORBIDDEN),
            stderr: "rvmm: seccomp: thread 'CPU 1/KVM' made a forbidden system call 41 \
                     (socket); exiting\n"
                .into(),
        }
    );
    assert_eq!(EXIT_FORBIDDEN, 159);
}

#[test]
fn every_role_but_migration_forbids_socket() {
    for role in Role::ALL.into_iter().filter(|&r| r != Role::Migration) {
        let end = in_child(
            role.name(),
            &program(role, SandboxMode::On),
            true,
            call_socket,
        );
        assert_eq!(end.status, Ok(EXIT_FORBIDDEN), "{role:?}: {end:?}");
        assert!(end.stderr.contains("(socket); exiting"), "{end:?}");
    }
}

#[test]
fn vcpu_ioctls_are_limited_to_kvm_and_the_terminal() {
    // KVM's type and TCGETS pass the filter (and fail on the bad descriptor: EBADF).
    fn allowed() {
        // SAFETY: ioctls on an invalid descriptor fail with EBADF; nothing is touched.
        unsafe {
            let mut buf = [0u8; 256];
            libc::ioctl(-1, 0xAE00, 0); // KVM_GET_API_VERSION
            libc::ioctl(-1, 0xAE80, 0); // KVM_RUN
            libc::ioctl(-1, libc::TCGETS, buf.as_mut_ptr());
            libc::ioctl(-1, libc::TIOCGWINSZ, buf.as_mut_ptr());
        }
    }
    let end = in_child(
        "CPU 0/KVM",
        &program(Role::Vcpu, SandboxMode::On),
        true,
        allowed,
    );
    assert_eq!(end.status, Ok(0), "{end:?}");
    // TIOCSTI (push characters into a terminal's input) is not rvmm's to make.
    fn tiocsti() {
        let c = b'x';
        // SAFETY: as above.
        unsafe { libc::ioctl(-1, libc::TIOCSTI, &c) };
    }
    let end = in_child(
        "CPU 0/KVM",
        &program(Role::Vcpu, SandboxMode::On),
        true,
        tiocsti,
    );
    assert_eq!(end.status, Ok(EXIT_FORBIDDEN), "{end:?}");
    assert!(
        end.stderr.ends_with("call 16 (ioctl); exiting\n"),
        "{end:?}"
    );
}

/// The (family, type) the next forked child passes to socket(2) (fork copies it).
static SOCKET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// socket(family, type, 0) with SOCKET's halves; exits 3 if the call failed (a family the
/// kernel lacks), so a pass means the filter let it through and the kernel made it.
fn socket_of() {
    let v = SOCKET.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: socket with integer arguments; a descriptor it returns is closed at once.
    unsafe {
        let fd = libc::socket((v >> 32) as libc::c_int, v as u32 as libc::c_int, 0);
        if fd < 0 {
            libc::_exit(3);
        }
        libc::close(fd);
    }
}

#[test]
fn the_migration_thread_opens_only_unix_and_ip_stream_sockets() {
    let run = |family: libc::c_int, kind: libc::c_int| {
        SOCKET.store(
            (family as u64) << 32 | u64::from(kind as u32),
            std::sync::atomic::Ordering::Relaxed,
        );
        in_child(
            "migration",
            &program(Role::Migration, SandboxMode::On),
            true,
            socket_of,
        )
    };
    for family in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
        for kind in [
            libc::SOCK_STREAM,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        ] {
            let end = run(family, kind);
            // 3: the host has no IPv6 (the filter let the call through all the same).
            assert!(
                end.status == Ok(0) || (family == libc::AF_INET6 && end.status == Ok(3)),
                "family {family} type {kind:#x}: {end:?}"
            );
        }
    }
    for (family, kind) in [
        (libc::AF_PACKET, libc::SOCK_RAW),
        (libc::AF_PACKET, libc::SOCK_DGRAM),
        (libc::AF_INET, libc::SOCK_DGRAM),
        (libc::AF_INET, libc::SOCK_RAW),
        (libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC),
        (libc::AF_UNIX, libc::SOCK_DGRAM),
        (libc::AF_UNIX, libc::SOCK_SEQPACKET),
        (libc::AF_NETLINK, libc::SOCK_RAW),
        (libc::AF_NETLINK, libc::SOCK_STREAM),
    ] {
        let end = run(family, kind);
        assert_eq!(
            end.status,
            Ok(EXIT_FORBIDDEN),
            "family {family} type {kind:#x}: {end:?}"
        );
        assert!(
            end.stderr.ends_with(
                "thread 'migration' made a forbidden system call 41 (socket); exiting\n"
            ),
            "{end:?}"
        );
    }
    // It reads the dirty log; it may not remap guest memory nor build anything.
    let end = ioctl_in("migration", Role::Migration, 0x4010_AE42); // KVM_GET_DIRTY_LOG
    assert_eq!(end.status, Ok(0), "KVM_GET_DIRTY_LOG: {end:?}");
    for nr in super::filters::vm_building_ioctls()
        .into_iter()
        .chain([0xAE80u64])
    {
        let end = ioctl_in("migration", Role::Migration, nr);
        assert_eq!(end.status, Ok(EXIT_FORBIDDEN), "ioctl {nr:#x}: {end:?}");
    }
    // No file, no thread, no program.
    let r = rules(Role::Migration).unwrap();
    for nr in [
        libc::SYS_openat,
        libc::SYS_open,
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_accept4,
        libc::SYS_bind,
        libc::SYS_listen,
    ] {
        assert!(!r.contains_key(&nr), "{:?}", syscall_name(nr));
    }
}

/// The ioctl request the next forked child makes (fork copies it into the child).
static REQUEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Held from setting REQUEST until the child is forked: tests run on parallel threads, and
/// another test's request stored in between would be the one this child makes.
static REQUEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// ioctl(-1, REQUEST, &zeroed memory): EBADF if the filter lets it through.
fn ioctl_request() {
    let arg = [0u8; 256];
    let nr = REQUEST.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: an ioctl on an invalid descriptor, with a readable buffer large enough for
    // any of the structures; the kernel fails it with EBADF without touching anything.
    unsafe { libc::ioctl(-1, nr as libc::c_ulong, arg.as_ptr()) };
}

/// ioctl request `nr` (as [`ioctl_request`]) in a child named `thread` under `role`'s
/// filter, with the SIGSYS handler: how the child ended.
fn ioctl_in(thread: &str, role: Role, nr: u64) -> ChildEnd {
    let _only_us = REQUEST_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    REQUEST.store(nr, std::sync::atomic::Ordering::Relaxed);
    in_child(thread, &program(role, SandboxMode::On), true, ioctl_request)
}

#[test]
fn vcpu_threads_cannot_rebuild_the_vm() {
    // Mapping memory into the guest (possibly over rvmm's own heap), new VMs, vCPUs, devices,
    // interrupt routes and CPUID tables are the emulator thread's to make: a vCPU thread that
    // asks dies, the emulator thread (which builds the VM and hot-plugs vCPUs) may.
    for nr in super::filters::vm_building_ioctls() {
        let end = ioctl_in("CPU 0/KVM", Role::Vcpu, nr);
        assert_eq!(end.status, Ok(EXIT_FORBIDDEN), "ioctl {nr:#x}: {end:?}");
        let end = ioctl_in("rvmm", Role::Main, nr);
        assert_eq!(
            end.status,
            Ok(0),
            "ioctl {nr:#x} on the main thread: {end:?}"
        );
    }
    // The calls a vCPU thread does make still pass.
    for nr in [0xAE80u64, 0x8090_AE81, 0x8138_AE83, 0x4004_AE99] {
        // KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, and KVM_SET_MP_STATE (a replugged vCPU
        // resets itself to wait for INIT/SIPI).
        let end = ioctl_in("CPU 0/KVM", Role::Vcpu, nr);
        assert_eq!(end.status, Ok(0), "ioctl {nr:#x}: {end:?}");
    }
}
