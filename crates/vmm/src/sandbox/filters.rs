//! The allow-lists, one per thread role, built with seccompiler's Rust API.
//!
//! Every role gets [`COMMON`] (what the Rust runtime, the allocator, a panic and the SIGSYS
//! handler need) plus its own calls; `ioctl`, `fcntl`, `prctl`, `seccomp` and `clone` are
//! allowed only with the arguments rvmm uses. The lists were found by running the
//! integration tests under `strace -f` and `--sandbox log` (docs/security.md lists them with
//! the reason for each).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::{SandboxError, SandboxMode};

/// What a thread does, which decides what it may ask of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The emulator thread: event loop, QMP commands, pinning, the end of the VM.
    Main = 0,
    /// A vCPU thread: KVM_RUN and the device models it calls on exits.
    Vcpu = 1,
    /// The QMP server's threads: accept, read requests, write replies and events.
    Control = 2,
    /// Helper threads that only touch guest memory (preallocation).
    Io = 3,
    /// The source's `migration` thread: connects to the destination, reads guest RAM and
    /// KVM's dirty log, and streams pages (docs/migration.md).
    Migration = 4,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Main,
        Role::Vcpu,
        Role::Control,
        Role::Io,
        Role::Migration,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Vcpu => "vcpu",
            Role::Control => "control",
            Role::Io => "io",
            Role::Migration => "migration",
        }
    }
}

/// Calls every thread may make with any arguments.
const COMMON: &[i64] = &[
    // I/O on descriptors the thread already has (stderr for a panic and the SIGSYS
    // message, eventfds, pipes).
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_poll,
    libc::SYS_ppoll,
    // The allocator and thread stacks.
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    // Locks, sleeps, time.
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_restart_syscall,
    // Signals: the vCPU kick, the SIGSYS handler's return, a panic's abort (raise).
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_tgkill,
    libc::SYS_tkill,
    libc::SYS_getpid,
    libc::SYS_gettid,
    // Thread start and end (threads made by a filtered thread run its filter), std's
    // hash seeds and CPU count.
    libc::SYS_rseq,
    libc::SYS_set_robust_list,
    libc::SYS_getrandom,
    libc::SYS_sched_getaffinity,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Extra calls, any arguments, per role.
const MAIN: &[i64] = &[
    // QMP commands read /proc and /sys (vCPU state, host CPUs) and the control socket is
    // removed at the end.
    libc::SYS_openat,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_getdents64,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    // The VM's cgroup: a hot-plugged vCPU's group is made, the groups are removed at the
    // end.
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    // A snapshot's memory.bin gets its full length (its zero pages are holes).
    libc::SYS_ftruncate,
    // Pinning (vcpupin, emulatorpin) and thread placement.
    libc::SYS_sched_setaffinity,
    // A migration's final phase flushes the disks before it hands them over; a snapshot
    // flushes them and syncs its files (memory.bin, state.json, the directory), writing
    // state.json under a temporary name first.
    libc::SYS_fdatasync,
    libc::SYS_fsync,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    // Closing client connections at shutdown.
    libc::SYS_shutdown,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_eventfd2,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getcwd,
    libc::SYS_dup,
    libc::SYS_dup3,
];

const VCPU: &[i64] = &[
    // KVM binary statistics (pread on the stats fd).
    libc::SYS_pread64,
];

const CONTROL: &[i64] = &[
    libc::SYS_accept4,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    // Commands answered by the client thread itself (host CPU description from /proc
    // and /sys).
    libc::SYS_openat,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_pread64,
];

const IO: &[i64] = &[
    // virtio-blk: the image file's reads, writes and flushes; discard and write-zeroes
    // (fallocate), and cache=none's read-modify-write of the last block (ftruncate).
    libc::SYS_fallocate,
    libc::SYS_ftruncate,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_fdatasync,
    libc::SYS_fsync,
];

const MIGRATION: &[i64] = &[
    // The stream to the destination (socket(2) itself is argument-checked:
    // [`migration_socket_rules`]). std's reads are recvfrom, its writes write(2).
    libc::SYS_connect,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_recvfrom,
    libc::SYS_shutdown,
    // TCP_NODELAY, and the read timeouts (SO_RCVTIMEO) for the destination's answers.
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    // /proc/self/pagemap (opened with guest RAM): the pages never touched are sent as zero
    // pages without reading them.
    libc::SYS_pread64,
];

/// The families a migration connects over (`unix:`, `tcp:` on IPv4 and IPv6).
const MIGRATION_FAMILIES: [libc::c_int; 3] = [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];

/// socket(2) for the migration thread: a stream socket of [`MIGRATION_FAMILIES`] (the
/// SOCK_CLOEXEC and SOCK_NONBLOCK bits may be set), protocol 0. No datagram, raw or
/// packet socket, no netlink.
fn migration_socket_rules() -> Result<Vec<SeccompRule>, String> {
    let flags = (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u32;
    let type_mask = u64::from(!flags);
    MIGRATION_FAMILIES
        .iter()
        .map(|&family| {
            SeccompRule::new(vec![
                cond(0, SeccompCmpOp::Eq, family as u64)?,
                cond(
                    1,
                    SeccompCmpOp::MaskedEq(type_mask),
                    libc::SOCK_STREAM as u64,
                )?,
                cond(2, SeccompCmpOp::Eq, 0)?,
            ])
            .map_err(|e| e.to_string())
        })
        .collect()
}

vmm_sys_util::ioctl_iow_nr!(KVM_GET_DIRTY_LOG, 0xAE, 0x42, kvm_bindings::kvm_dirty_log);

/// ioctl requests besides KVM's own type 0xAE: the terminal (raw mode, its size) and
/// FIONBIO (set_nonblocking).
const TTY_IOCTLS: &[u64] = &[
    libc::TCGETS,
    libc::TCSETS,
    libc::TCSETSW,
    libc::TCSETSF,
    libc::TIOCGWINSZ,
    libc::FIONBIO,
    libc::FIOCLEX,
];

/// `TUNSETOFFLOAD` (`_IOW('T', 208, unsigned int)`; host::tap's, which sandbox may not
/// import).
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
/// `TUNSETIFF` (`_IOW('T', 202, int)`) and `TUNSETVNETHDRSZ` (`_IOW('T', 216, int)`): a
/// migration source opens a tap it handed over again (a failed final phase, `cont` after
/// postmigrate), by the name it was started with.
const TUNSETIFF: u64 = 0x4004_54ca;
const TUNSETVNETHDRSZ: u64 = 0x4004_54d8;

/// KVM's ioctl type (`_IO(KVMIO, nr)` with KVMIO = 0xAE): bits 8..16 of the request.
const KVMIO: u64 = 0xAE;

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string())
}

/// One rule per value: argument `arg` equals one of `values`.
fn one_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, String> {
    values
        .iter()
        .map(|&v| {
            SeccompRule::new(vec![cond(arg, SeccompCmpOp::Eq, v)?]).map_err(|e| e.to_string())
        })
        .collect()
}

/// The argument-checked calls every role may make.
fn common_rules(rules: &mut BTreeMap<i64, Vec<SeccompRule>>) -> Result<(), String> {
    // Thread names (the SIGSYS handler reads its own) and seccompiler's apply_filter.
    rules.insert(
        libc::SYS_prctl,
        one_of(
            0,
            &[
                libc::PR_GET_NAME as u64,
                libc::PR_SET_NAME as u64,
                libc::PR_SET_NO_NEW_PRIVS as u64,
            ],
        )?,
    );
    // Adding a filter only ever takes rights away.
    rules.insert(
        libc::SYS_seccomp,
        one_of(0, &[libc::SECCOMP_SET_MODE_FILTER as u64])?,
    );
    rules.insert(
        libc::SYS_fcntl,
        one_of(
            1,
            &[
                libc::F_GETFD as u64,
                libc::F_SETFD as u64,
                libc::F_GETFL as u64,
                libc::F_SETFL as u64,
                libc::F_DUPFD_CLOEXEC as u64,
            ],
        )?,
    );
    Ok(())
}

// The KVM ioctls that build or rewire a VM: made by the emulator thread while it builds the
// VM, never by a vCPU thread. A vCPU thread that could make them could map rvmm's own memory
// into the guest (a memory region over its heap) or create VMs, vCPUs and devices.
vmm_sys_util::ioctl_io_nr!(KVM_CREATE_VM, 0xAE, 0x01);
vmm_sys_util::ioctl_io_nr!(KVM_CREATE_VCPU, 0xAE, 0x41);
vmm_sys_util::ioctl_iow_nr!(
    KVM_SET_USER_MEMORY_REGION,
    0xAE,
    0x46,
    kvm_bindings::kvm_userspace_memory_region
);
vmm_sys_util::ioctl_iow_nr!(
    KVM_SET_USER_MEMORY_REGION2,
    0xAE,
    0x49,
    kvm_bindings::kvm_userspace_memory_region2
);
vmm_sys_util::ioctl_iow_nr!(
    KVM_SET_GSI_ROUTING,
    0xAE,
    0x6a,
    kvm_bindings::kvm_irq_routing
);
vmm_sys_util::ioctl_iow_nr!(KVM_IRQFD, 0xAE, 0x76, kvm_bindings::kvm_irqfd);
vmm_sys_util::ioctl_iow_nr!(KVM_IOEVENTFD, 0xAE, 0x79, kvm_bindings::kvm_ioeventfd);
vmm_sys_util::ioctl_iow_nr!(KVM_SET_CPUID2, 0xAE, 0x90, kvm_bindings::kvm_cpuid2);
vmm_sys_util::ioctl_iowr_nr!(
    KVM_CREATE_DEVICE,
    0xAE,
    0xe0,
    kvm_bindings::kvm_create_device
);

/// The VM-building KVM ioctls a vCPU thread may not make (see above).
pub fn vm_building_ioctls() -> [u64; 9] {
    [
        KVM_CREATE_VM(),
        KVM_CREATE_VCPU(),
        KVM_SET_USER_MEMORY_REGION(),
        KVM_SET_USER_MEMORY_REGION2(),
        KVM_SET_GSI_ROUTING(),
        KVM_IRQFD(),
        KVM_IOEVENTFD(),
        KVM_SET_CPUID2(),
        KVM_CREATE_DEVICE(),
    ]
    .map(u64::from)
}

/// A vCPU thread's ioctls: KVM's type except the VM-building ones, and the terminal's.
fn vcpu_ioctl_rules() -> Result<Vec<SeccompRule>, String> {
    let mut conditions = vec![cond(1, SeccompCmpOp::MaskedEq(0xff00), KVMIO << 8)?];
    for nr in vm_building_ioctls() {
        conditions.push(cond(1, SeccompCmpOp::Ne, nr)?);
    }
    let mut rules = vec![SeccompRule::new(conditions).map_err(|e| e.to_string())?];
    rules.extend(one_of(1, TTY_IOCTLS)?);
    Ok(rules)
}

/// ioctl: KVM's type plus the terminal requests.
fn ioctl_rules() -> Result<Vec<SeccompRule>, String> {
    let mut rules =
        vec![
            SeccompRule::new(vec![cond(1, SeccompCmpOp::MaskedEq(0xff00), KVMIO << 8)?])
                .map_err(|e| e.to_string())?,
        ];
    rules.extend(one_of(1, TTY_IOCTLS)?);
    Ok(rules)
}

/// clone for threads only (CLONE_THREAD set), never a new process; clone3's flags live in
/// memory the filter cannot read, so it is allowed for the roles that start threads
/// (glibc tries it first), and fork/vfork are never.
fn thread_rules(rules: &mut BTreeMap<i64, Vec<SeccompRule>>) -> Result<(), String> {
    let t = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![
            SeccompRule::new(vec![cond(0, SeccompCmpOp::MaskedEq(t), t)?])
                .map_err(|e| e.to_string())?,
        ],
    );
    rules.insert(libc::SYS_clone3, vec![]);
    Ok(())
}

/// The rules of `role`: syscall number → conditions (an empty list allows any arguments).
pub fn rules(role: Role) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let extra = match role {
        Role::Main => MAIN,
        Role::Vcpu => VCPU,
        Role::Control => CONTROL,
        Role::Io => IO,
        Role::Migration => MIGRATION,
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = COMMON
        .iter()
        .chain(extra)
        .map(|&nr| (nr, Vec::new()))
        .collect();
    common_rules(&mut rules)?;
    match role {
        Role::Main => {
            let mut ioctls = ioctl_rules()?;
            ioctls.extend(one_of(1, &[TUNSETIFF, TUNSETVNETHDRSZ, TUNSETOFFLOAD])?);
            rules.insert(libc::SYS_ioctl, ioctls);
            thread_rules(&mut rules)?;
            // A migration's disk locks: released by the source's final phase, taken by
            // the destination's (OFD locks, docs/migration.md).
            if let Some(fcntl) = rules.get_mut(&libc::SYS_fcntl) {
                fcntl.extend(one_of(1, &[libc::F_OFD_SETLK as u64])?);
            }
        }
        Role::Vcpu => {
            rules.insert(libc::SYS_ioctl, vcpu_ioctl_rules()?);
        }
        Role::Control => {
            // set_nonblocking on sockets.
            rules.insert(libc::SYS_ioctl, one_of(1, &[libc::FIONBIO, libc::FIOCLEX])?);
            thread_rules(&mut rules)?;
        }
        Role::Io => {
            // virtio-net sets the tap's offloads from its I/O thread.
            rules.insert(libc::SYS_ioctl, one_of(1, &[TUNSETOFFLOAD])?);
        }
        Role::Migration => {
            rules.insert(libc::SYS_socket, migration_socket_rules()?);
            // The dirty log is read here; turning it on and off (KVM_SET_USER_MEMORY_REGION,
            // which could map any memory into the guest) is the emulator thread's.
            rules.insert(libc::SYS_ioctl, one_of(1, &[KVM_GET_DIRTY_LOG()])?);
        }
    }
    Ok(rules)
}

/// Compiles `role`'s filter for `mode` (`on`: a call outside the list traps; `log`: it is
/// logged and allowed).
pub fn compile(role: Role, mode: SandboxMode) -> Result<BpfProgram, SandboxError> {
    let err = |reason: String| SandboxError::Compile {
        role: role.name(),
        reason,
    };
    let mismatch = match mode {
        SandboxMode::Log => SeccompAction::Log,
        _ => SeccompAction::Trap,
    };
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules(role).map_err(err)?,
        mismatch,
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| err(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(e.to_string()))
}
