//! How guest RAM is backed on the host: anonymous memory, hugetlb pages (memfd,
//! MAP_HUGETLB or a file on a hugetlbfs mount), or a file; KSM and THP advice; host NUMA
//! policies; preallocation.
//!
//! [`plan`] is pure: from the `-m` options, the guest NUMA layout and a snapshot of the
//! host (pools, KSM, THP, nodes) it decides the mapping and refuses what cannot work, with
//! the numbers and the command that fixes it (a hugetlb pool too small is caught here and
//! again by the kernel's reservation at mmap time, never by a SIGBUS later). [`map`] then
//! creates the mapping in this order: map → madvise → mbind → prealloc, so every page is
//! first touched under its final policy. Every mapping is MADV_DONTDUMP and MADV_DONTFORK.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use thiserror::Error;

use super::numa::{self, range_policies, NumaBindError, RangePolicy};
use super::prealloc::{self, PreallocError, PreallocEvent};
use crate::config::memory::{check_page_multiple, MemoryBacking, MemoryOptionError};
use crate::config::numa::{GuestNuma, HostPolicy};
use crate::config::size::format_size;
use crate::host::memory::{nr_hugepages_path, KsmState, ThpMode, KSM_DIR, THP_DIR};
use crate::host::Host;
use crate::util::cpulist::cpulist;

/// The base page size.
pub const PAGE_SIZE: u64 = 4096;
/// Anonymous mappings start on a 2 MiB boundary so THP can back them and KVM can map
/// them with large pages (a huge page needs host and guest addresses congruent mod 2 MiB).
const ANON_ALIGN: u64 = 2 << 20;

/// Guest RAM below this offset is never advised into transparent huge pages (see the advice in
/// [`map`]).
const THP_SMALL_PAGES_BELOW: u64 = 2 << 20;
/// Linux's hugetlbfs super block magic (include/uapi/linux/magic.h), as statfs reports it.
const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;
/// Where mmap and memfd_create take log2(huge page size) (MAP_HUGE_SHIFT, MFD_HUGE_SHIFT).
const HUGE_SIZE_SHIFT: u32 = 26;

/// Where guest RAM comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A private anonymous mapping.
    Anonymous,
    /// Anonymous hugetlb pages of this size (MAP_HUGETLB, private).
    AnonHugeTlb { page_size: u64 },
    /// A memfd (shared=on), with hugetlb pages of this size or normal pages.
    Memfd { huge_page: Option<u64> },
    /// An unlinked file created in `dir` (mem-path=): on hugetlbfs when `huge_page` is set.
    File {
        dir: PathBuf,
        huge_page: Option<u64>,
    },
}

/// What [`map`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingPlan {
    pub size: u64,
    pub source: Source,
    /// MAP_SHARED rather than MAP_PRIVATE.
    pub shared: bool,
    /// The page size of the mapping (4 KiB or the huge page size).
    pub page_size: u64,
    /// madvise(MADV_MERGEABLE).
    pub merge: bool,
    /// THP advice: `Some(true)` MADV_HUGEPAGE, `Some(false)` MADV_NOHUGEPAGE (`thp=off`
    /// holds even where the host's THP mode is `always`), `None` none.
    pub thp: Option<bool>,
    pub prealloc: bool,
    /// Host NUMA policies, one per bound guest node.
    pub policies: Vec<RangePolicy>,
}

impl BackingPlan {
    /// Plain anonymous memory with no advice: what `GuestRam::new` maps.
    pub fn anonymous(size: u64) -> Self {
        BackingPlan {
            size,
            source: Source::Anonymous,
            shared: false,
            page_size: PAGE_SIZE,
            merge: false,
            thp: None,
            prealloc: false,
            policies: Vec::new(),
        }
    }

    /// The hugetlb page size, if huge pages back the RAM.
    pub fn huge_page(&self) -> Option<u64> {
        match &self.source {
            Source::AnonHugeTlb { page_size } => Some(*page_size),
            Source::Memfd { huge_page } | Source::File { huge_page, .. } => *huge_page,
            Source::Anonymous => None,
        }
    }
}

/// The file system of a `mem-path=` directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemPathInfo {
    /// The page size when it is a hugetlbfs mount.
    pub hugetlb_page_size: Option<u64>,
}

/// Why guest RAM cannot be backed as asked.
#[derive(Debug, Error)]
pub enum BackingError {
    #[error(transparent)]
    Option(#[from] MemoryOptionError),
    #[error(transparent)]
    Numa(#[from] NumaBindError),
    #[error(transparent)]
    Prealloc(#[from] PreallocError),
    #[error("-m: hugepages=on: this host kernel has no huge page pools (/sys/kernel/mm/hugepages is empty)")]
    NoHugeTlb,
    #[error("-m: hugepage-size={want}: this host has no {want} huge page pool (it has {have})")]
    NoSuchPool { want: String, have: String },
    #[error(
        "-m: mem-path={path} is not a hugetlbfs mount; hugepages=on needs one (mount -t hugetlbfs \
         none {path}) or no mem-path (rvmm then uses memfd huge pages)"
    )]
    NotHugetlbfs { path: String },
    #[error("-m: hugepage-size={want}, but mem-path={path} is a hugetlbfs mount of {have} pages")]
    MountPageSize {
        want: String,
        path: String,
        have: String,
    },
    #[error("-m: mem-path={path}: {reason}")]
    MemPath { path: String, reason: String },
    #[error("--numa node,nodeid={node}: mem={mem} is not a multiple of the {page} huge page size")]
    NodeNotPageMultiple {
        node: u32,
        mem: String,
        page: String,
    },
    #[error(
        "-m: {size} of guest memory in {page} huge pages needs {need} pages, but the host's \
         {page} pool has {free} free (of {total}); reserve them with: echo {suggest} > {sysctl}"
    )]
    PoolTooSmall {
        size: String,
        page: String,
        need: u64,
        free: u64,
        total: u64,
        suggest: u64,
        sysctl: String,
    },
    #[error(
        "--numa {guest}: {need} huge pages of {page} are needed on host node{plural} \
         {host}, which {verb} {free} free; reserve them with: echo {suggest} > {sysctl}",
        plural = if .host.contains(['-', ',']) { "s" } else { "" },
        verb = if .host.contains(['-', ',']) { "have" } else { "has" }
    )]
    NodePoolTooSmall {
        guest: String,
        page: String,
        need: u64,
        host: String,
        free: u64,
        suggest: u64,
        sysctl: String,
    },
    #[error("cannot map {size} of guest RAM ({what}): {reason}")]
    Map {
        size: String,
        what: String,
        reason: String,
    },
}

/// Decides how to back `size` bytes of guest RAM. Returns the plan and warnings for the
/// user (a KSM or THP asked for that the host lacks).
pub fn plan(
    size: u64,
    backing: &MemoryBacking,
    numa: &GuestNuma,
    host: &Host,
    mem_path: Option<&MemPathInfo>,
) -> Result<(BackingPlan, Vec<String>), BackingError> {
    let mut warnings = Vec::new();
    numa::check_host_nodes(numa, host.numa())?;
    let mount_page = mem_path.and_then(|m| m.hugetlb_page_size);
    let path_text = || {
        backing
            .mem_path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    if backing.hugepages && mem_path.is_some() && mount_page.is_none() {
        return Err(BackingError::NotHugetlbfs { path: path_text() });
    }
    // A hugetlbfs mem-path means huge pages, as in QEMU, even without hugepages=on.
    let huge = backing.hugepages || mount_page.is_some();
    let huge_page = if huge {
        let page = match (backing.hugepage_size, mount_page) {
            (Some(want), Some(have)) if want != have => {
                return Err(BackingError::MountPageSize {
                    want: format_size(want),
                    path: path_text(),
                    have: format_size(have),
                })
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => host.memory().default_huge_page(),
        };
        check_pool(size, page, numa, host)?;
        Some(page)
    } else {
        None
    };

    let f = host.memory();
    let merge = match (backing.merge, huge, f.ksm.run_state()) {
        (_, true, _) | (Some(false), ..) => false,
        (None, _, KsmState::Absent) => false,
        (None, ..) => true,
        (Some(true), _, KsmState::Absent) => {
            warnings.push(format!(
                "-m merge=on: this host kernel has no KSM (/{KSM_DIR} is missing: CONFIG_KSM \
                 is off); guest memory will not be merged"
            ));
            false
        }
        (Some(true), _, state) => {
            if state != KsmState::Running {
                warnings.push(format!(
                    "-m merge=on: KSM is not running on this host, so nothing is merged yet; \
                     start it with: echo 1 > /{KSM_DIR}/run"
                ));
            }
            true
        }
    };
    let thp = match (backing.thp, huge, f.thp.mode()) {
        (_, true, _) => None,
        (Some(false), _, ThpMode::Absent) | (None, _, ThpMode::Absent) => None,
        (Some(false), ..) => Some(false),
        (None, ..) => Some(true),
        (Some(true), _, ThpMode::Absent) => {
            warnings.push(format!(
                "-m thp=on: this host kernel has no transparent huge pages (/{THP_DIR} is \
                 missing: CONFIG_TRANSPARENT_HUGEPAGE is off)"
            ));
            None
        }
        (Some(true), _, mode) => {
            if mode == ThpMode::Never {
                warnings.push(format!(
                    "-m thp=on: transparent huge pages are disabled on this host (enabled is \
                     never); enable them with: echo madvise > /{THP_DIR}/enabled"
                ));
            }
            Some(true)
        }
    };
    let source = match (&backing.mem_path, huge_page, backing.shared) {
        (Some(dir), _, _) => Source::File {
            dir: dir.clone(),
            huge_page,
        },
        (None, Some(page_size), false) => Source::AnonHugeTlb { page_size },
        (None, huge_page, true) => Source::Memfd { huge_page },
        (None, None, false) => Source::Anonymous,
    };
    Ok((
        BackingPlan {
            size,
            source,
            shared: backing.shared,
            page_size: huge_page.unwrap_or(PAGE_SIZE),
            merge,
            thp,
            prealloc: backing.prealloc,
            policies: range_policies(numa),
        },
        warnings,
    ))
}

/// Checks that the `page`-sized pool can hold the guest, globally and on the host nodes
/// each bound guest node names.
fn check_pool(size: u64, page: u64, numa: &GuestNuma, host: &Host) -> Result<(), BackingError> {
    let f = host.memory();
    if f.huge_pages.pools.is_empty() || page == 0 {
        return Err(BackingError::NoHugeTlb);
    }
    let Some(pool) = f.huge_pages.get(page) else {
        let have: Vec<String> = f.huge_pages.sizes().into_iter().map(format_size).collect();
        return Err(BackingError::NoSuchPool {
            want: format_size(page),
            have: have.join(", "),
        });
    };
    check_page_multiple(size, page)?;
    for node in &numa.nodes {
        if node.mem % page != 0 {
            return Err(BackingError::NodeNotPageMultiple {
                node: node.id,
                mem: format_size(node.mem),
                page: format_size(page),
            });
        }
    }
    let need = size / page;
    if need > pool.available() {
        return Err(BackingError::PoolTooSmall {
            size: format_size(size),
            page: format_size(page),
            need,
            free: pool.available(),
            total: pool.total,
            suggest: pool.total + need - pool.available(),
            sysctl: nr_hugepages_path(page, f.default_huge_page(), None)
                .display()
                .to_string(),
        });
    }
    // Guest nodes whose pages must come from given host nodes (bind, interleave), grouped
    // by host node set: each set must have the free pages of all the guest nodes on it.
    let mut groups: Vec<(Vec<u32>, Vec<u32>, u64)> = Vec::new();
    for node in &numa.nodes {
        let Some(b) = node
            .host
            .as_ref()
            .filter(|b| b.policy != HostPolicy::Preferred)
        else {
            continue;
        };
        match groups.iter_mut().find(|g| g.0 == b.nodes) {
            Some(g) => {
                g.1.push(node.id);
                g.2 += node.mem / page;
            }
            None => groups.push((b.nodes.clone(), vec![node.id], node.mem / page)),
        }
    }
    for (hosts, guests, need) in groups {
        let free = host.numa().free_huge_pages(page, &hosts);
        if need > free {
            let first = hosts[0];
            let first_total = host
                .numa()
                .node(first)
                .and_then(|n| n.huge_pages.get(page))
                .map_or(0, |p| p.total);
            return Err(BackingError::NodePoolTooSmall {
                guest: match guests.as_slice() {
                    [one] => format!("node,nodeid={one}"),
                    _ => format!("guest nodes {} together", cpulist(&guests)),
                },
                page: format_size(page),
                need,
                host: cpulist(&hosts),
                free,
                suggest: first_total + need - free,
                sysctl: nr_hugepages_path(page, f.default_huge_page(), Some(first))
                    .display()
                    .to_string(),
            });
        }
    }
    Ok(())
}

/// Reads what file system `dir` is on.
pub fn probe_mem_path(dir: &Path) -> Result<MemPathInfo, BackingError> {
    let err = |reason: String| BackingError::MemPath {
        path: dir.display().to_string(),
        reason,
    };
    let c =
        CString::new(dir.as_os_str().as_bytes()).map_err(|_| err("contains a NUL byte".into()))?;
    // SAFETY: a zeroed statfs is a valid output buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid buffer for the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(err(std::io::Error::last_os_error().to_string()));
    }
    if !dir.is_dir() {
        return Err(err("is not a directory".into()));
    }
    Ok(MemPathInfo {
        hugetlb_page_size: (st.f_type as u64 == HUGETLBFS_MAGIC).then_some(st.f_bsize as u64),
    })
}

/// A live host mapping of guest RAM; unmapped (and its file closed) on drop.
pub struct HostMapping {
    ptr: NonNull<u8>,
    size: u64,
    /// The mmap flags it was created with (MAP_SHARED or MAP_PRIVATE, ...).
    flags: libc::c_int,
    hugetlb: bool,
    _file: Option<OwnedFd>,
}

// SAFETY: the mapping is plain memory owned by this value; sharing its address between
// threads is how guest RAM works.
unsafe impl Send for HostMapping {}
// SAFETY: see Send.
unsafe impl Sync for HostMapping {}

impl HostMapping {
    /// The host address of guest RAM offset 0.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The mmap flags the mapping was created with.
    pub fn flags(&self) -> libc::c_int {
        self.flags
    }

    /// Whether hugetlb pages back it.
    pub fn is_hugetlb(&self) -> bool {
        self.hugetlb
    }

    /// Whether it is private anonymous memory of normal pages: where a page that has no
    /// entry in this process's page tables (and is not swapped out) has never been
    /// written, and reads as zero.
    pub fn is_private_anonymous(&self) -> bool {
        self._file.is_none() && !self.hugetlb && self.flags & libc::MAP_PRIVATE != 0
    }
}

impl Drop for HostMapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we created; nothing uses it afterwards.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.size as usize) };
    }
}

fn huge_flag(page_size: u64) -> libc::c_int {
    (page_size.trailing_zeros() << HUGE_SIZE_SHIFT) as libc::c_int
}

fn last_os_error() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Creates the backing file: a memfd or an unlinked file in a directory.
fn backing_file(plan: &BackingPlan) -> Result<Option<OwnedFd>, BackingError> {
    let map_err = |what: &str, reason: String| BackingError::Map {
        size: format_size(plan.size),
        what: what.to_string(),
        reason,
    };
    let fd = match &plan.source {
        Source::Anonymous | Source::AnonHugeTlb { .. } => return Ok(None),
        Source::Memfd { huge_page } => {
            let mut flags = libc::MFD_CLOEXEC;
            if let Some(p) = huge_page {
                flags |= libc::MFD_HUGETLB | huge_flag(*p) as libc::c_uint;
            }
            // SAFETY: a static NUL-terminated name; the result is checked.
            let fd = unsafe { libc::memfd_create(c"rvmm-guest-ram".as_ptr(), flags) };
            if fd < 0 {
                return Err(map_err("memfd_create", last_os_error()));
            }
            fd
        }
        Source::File { dir, .. } => {
            let template = dir.join("rvmm-guest-ram.XXXXXX");
            let mut bytes = template.as_os_str().as_bytes().to_vec();
            bytes.push(0);
            // SAFETY: `bytes` is a writable NUL-terminated template mkostemp fills in.
            let fd = unsafe { libc::mkostemp(bytes.as_mut_ptr().cast(), libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(map_err(
                    &format!("creating a file in {}", dir.display()),
                    last_os_error(),
                ));
            }
            // The file lives as long as the descriptor, as QEMU's mem-path files do.
            // SAFETY: `bytes` holds the NUL-terminated name mkostemp created.
            unsafe { libc::unlink(bytes.as_ptr().cast()) };
            fd
        }
    };
    // SAFETY: `fd` is a new descriptor we own.
    let file = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sizing our own file.
    if unsafe {
        libc::ftruncate(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            plan.size as libc::off_t,
        )
    } != 0
    {
        return Err(map_err("ftruncate", last_os_error()));
    }
    Ok(Some(file))
}

/// Maps guest RAM as `plan` says, advises it, binds it and preallocates it. `progress` sees
/// preallocation start, advance and finish. Returns warnings (advice the kernel refused).
pub fn map(
    plan: &BackingPlan,
    progress: &mut dyn FnMut(PreallocEvent),
) -> Result<(HostMapping, Vec<String>), BackingError> {
    let mut warnings = Vec::new();
    let file = backing_file(plan)?;
    let what = match (&plan.source, plan.huge_page()) {
        (Source::File { dir, .. }, _) => format!("file in {}", dir.display()),
        (_, Some(p)) => format!("{} huge pages", format_size(p)),
        _ => "anonymous memory".to_string(),
    };
    let map_err = |reason: String| BackingError::Map {
        size: format_size(plan.size),
        what: what.clone(),
        reason,
    };
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let share = if plan.shared {
        libc::MAP_SHARED
    } else {
        libc::MAP_PRIVATE
    };
    let anon_flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let (ptr, flags) = match (&file, &plan.source) {
        (Some(f), _) => (
            // SAFETY: mapping our own file at a kernel-chosen address; checked below.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    plan.size as usize,
                    prot,
                    share,
                    std::os::fd::AsRawFd::as_raw_fd(f),
                    0,
                )
            },
            share,
        ),
        (None, Source::AnonHugeTlb { page_size }) => {
            // Not MAP_NORESERVE: the kernel reserves the pages now or fails here.
            let flags = anon_flags | libc::MAP_HUGETLB | huge_flag(*page_size);
            // SAFETY: an anonymous mapping at a kernel-chosen address; checked below.
            let ptr =
                unsafe { libc::mmap(std::ptr::null_mut(), plan.size as usize, prot, flags, -1, 0) };
            (ptr, flags)
        }
        (None, _) => (
            map_anonymous_aligned(plan.size).map_err(|e| map_err(e.to_string()))?,
            anon_flags | libc::MAP_NORESERVE,
        ),
    };
    if ptr == libc::MAP_FAILED {
        return Err(map_err(last_os_error()));
    }
    let mapping = HostMapping {
        ptr: NonNull::new(ptr.cast()).expect("mmap never returns NULL on success"),
        size: plan.size,
        flags,
        hugetlb: plan.huge_page().is_some(),
        _file: file,
    };
    // With THP, the first 2 MiB of guest RAM stay in small pages: they hold the boot
    // structures, the real-mode area and the legacy holes, where a huge page gains the
    // guest nothing but costs the host 2 MiB per VM as soon as the guest touches any of it.
    let low = THP_SMALL_PAGES_BELOW.min(plan.size);
    let thp_on = plan.thp == Some(true);
    let advice = [
        // Guest RAM stays out of core dumps (a crash must not write the guest's secrets to
        // disk) and out of any child process (docs/security.md).
        (true, 0, plan.size, libc::MADV_DONTDUMP, "MADV_DONTDUMP"),
        (true, 0, plan.size, libc::MADV_DONTFORK, "MADV_DONTFORK"),
        (
            plan.merge,
            0,
            plan.size,
            libc::MADV_MERGEABLE,
            "MADV_MERGEABLE (KSM)",
        ),
        (
            thp_on && plan.size > low,
            low,
            plan.size,
            libc::MADV_HUGEPAGE,
            "MADV_HUGEPAGE (THP)",
        ),
        (
            thp_on,
            0,
            low,
            libc::MADV_NOHUGEPAGE,
            "MADV_NOHUGEPAGE (THP)",
        ),
        (
            plan.thp == Some(false),
            0,
            plan.size,
            libc::MADV_NOHUGEPAGE,
            "MADV_NOHUGEPAGE (THP)",
        ),
    ];
    for (on, start, end, advice, name) in advice {
        if !on || start == end {
            continue;
        }
        // SAFETY: advising a range of our own mapping (start <= end <= plan.size).
        let rc = unsafe {
            libc::madvise(
                mapping.as_ptr().add(start as usize).cast(),
                (end - start) as usize,
                advice,
            )
        };
        if rc != 0 {
            warnings.push(format!(
                "-m: the kernel refused {name} for guest memory: {}",
                last_os_error()
            ));
        }
    }
    for policy in &plan.policies {
        // SAFETY: the policies cover guest RAM offsets inside this mapping (they come from
        // the NUMA layout whose node sizes add up to plan.size).
        unsafe { numa::apply(mapping.as_ptr(), policy)? };
    }
    if plan.prealloc {
        // SAFETY: the whole range is our mapping and nothing else uses it yet.
        unsafe { prealloc::prealloc(mapping.as_ptr(), plan.size, plan.page_size, progress)? };
    }
    Ok((mapping, warnings))
}

/// A private anonymous MAP_NORESERVE mapping of `size` bytes starting on an [`ANON_ALIGN`]
/// boundary (over-allocate, then unmap the unaligned head and the tail).
fn map_anonymous_aligned(size: u64) -> std::io::Result<*mut libc::c_void> {
    let span = size + ANON_ALIGN;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: an anonymous mapping at a kernel-chosen address; checked below.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let start = raw as u64;
    let aligned = start.next_multiple_of(ANON_ALIGN);
    let head = aligned - start;
    let tail = span - head - size;
    // SAFETY: unmapping the parts of our own fresh mapping outside [aligned, aligned+size).
    unsafe {
        if head > 0 {
            libc::munmap(raw, head as usize);
        }
        if tail > 0 {
            libc::munmap((aligned + size) as *mut libc::c_void, tail as usize);
        }
    }
    Ok(aligned as *mut libc::c_void)
}

#[cfg(test)]
mod tests;
