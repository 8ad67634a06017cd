//! Helpers for the memory and NUMA integration tests: a lock so tests that change host
//! memory settings never overlap (in this process or another test run), sysctl guards that
//! put the old value back even when a test fails, a VM left running in the probe's halt
//! mode, and readers for /proc/meminfo and /proc/PID files.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Held while a test changes host-wide memory settings (hugetlb pool, KSM).
pub struct HostLock(File);

impl HostLock {
    /// Blocks until no other test (in any process) holds the lock.
    pub fn acquire() -> HostLock {
        let f = File::create(std::env::temp_dir().join("rvmm-host-memory-tests.lock"))
            .expect("lock file");
        // SAFETY: flock on a descriptor we own; released when the file closes.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
        HostLock(f)
    }
}

/// Sets a sysctl/sysfs value and restores the original on drop.
pub struct Sysctl {
    path: PathBuf,
    original: String,
}

impl Sysctl {
    pub fn set(path: &str, value: &str) -> Sysctl {
        let original = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let guard = Sysctl {
            path: PathBuf::from(path),
            original: original.trim().to_string(),
        };
        guard.write(value);
        guard
    }

    pub fn write(&self, value: &str) {
        std::fs::write(&self.path, value)
            .unwrap_or_else(|e| panic!("write {value} > {}: {e}", self.path.display()));
    }

    pub fn original(&self) -> &str {
        &self.original
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.original) {
            eprintln!(
                "could not restore {} to {}: {e}",
                self.path.display(),
                self.original
            );
        }
    }
}

/// A huge page pool (`.../hugepages-<size>kB`): its size and pages free for a new mapping.
pub fn hugepage_pool(size_kb: u64) -> (u64, u64) {
    let dir = format!("/sys/kernel/mm/hugepages/hugepages-{size_kb}kB");
    let read = |f: &str| -> u64 {
        let text = std::fs::read_to_string(format!("{dir}/{f}"))
            .unwrap_or_else(|e| panic!("read {dir}/{f}: {e}"));
        text.trim().parse().unwrap()
    };
    let free = read("free_hugepages").saturating_sub(read("resv_hugepages"));
    (read("nr_hugepages"), free)
}

/// Makes `needed` pages of `size_kb` free for the test, growing the pool by only what is
/// missing, after asking the kernel to compact memory (a host that has run for a while has
/// few contiguous free 2 MiB blocks, and a fresh CI machine once could not find 1,040).
/// The returned guard puts the pool size back. Err: how many pages the kernel found, when it
/// could not find them all even after compaction (the caller decides whether that skips).
pub fn reserve_hugepages(size_kb: u64, needed: u64) -> Result<Sysctl, String> {
    let path = format!("/sys/kernel/mm/hugepages/hugepages-{size_kb}kB/nr_hugepages");
    let (total, free) = hugepage_pool(size_kb);
    let missing = needed.saturating_sub(free);
    // Compaction is best effort (it needs root, as the pool does).
    if missing > 0 {
        let _ = std::fs::write("/proc/sys/vm/compact_memory", "1");
    }
    let guard = Sysctl::set(&path, &(total + missing).to_string());
    let (_, now) = hugepage_pool(size_kb);
    if now < needed {
        return Err(format!(
            "the kernel found only {now} free {size_kb} kB huge pages of the {needed} needed, \
             even after compacting memory"
        ));
    }
    Ok(guard)
}

/// A `/proc/meminfo` field (the number before any unit).
pub fn meminfo(key: &str) -> u64 {
    field(&std::fs::read_to_string("/proc/meminfo").unwrap(), key)
}

/// `Key: N ...` from procfs text.
pub fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

/// /proc/PID/smaps split into one text per mapping (each starts with its address range).
pub fn smaps_mappings(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let header = line.split_once(' ').is_some_and(|(range, _)| {
            range.split_once('-').is_some_and(|(a, b)| {
                !a.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit())
            })
        });
        if header || out.is_empty() {
            out.push(String::new());
        }
        let last = out.last_mut().unwrap();
        last.push_str(line);
        last.push('\n');
    }
    out
}

/// An rvmm VM booted with the probe in halt mode, killed on drop.
pub struct HaltedVm {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(r: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl HaltedVm {
    /// Starts `rvmm run ARGS --append mode=halt` and waits (up to `limit`) until rvmm printed
    /// the guest's view and every vCPU thread sleeps (halted in KVM); panics with the output
    /// if rvmm exits or times out first.
    pub fn start(args: &[&str], limit: Duration) -> HaltedVm {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvmm"));
        cmd.arg("run").args(args).args(["--append", "mode=halt"]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rvmm");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        let mut vm = HaltedVm {
            child,
            stdout,
            stderr,
        };
        let start = Instant::now();
        let mut quiet_polls = 0;
        loop {
            if vm.stdout().contains("vCPUs ") && vcpus_sleep(vm.pid()) {
                quiet_polls += 1;
                if quiet_polls == 3 {
                    return vm;
                }
            } else {
                quiet_polls = 0;
            }
            if let Some(status) = vm.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "rvmm {args:?} exited ({status}) before halting:\n{}\n{}",
                    vm.stdout(),
                    vm.stderr()
                );
            }
            if start.elapsed() >= limit {
                panic!(
                    "rvmm {args:?} did not halt in {limit:?}:\n{}\n{}\n{}",
                    vm.stdout(),
                    vm.stderr(),
                    threads(vm.pid())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The text of /proc/PID/NAME.
    pub fn proc(&self, name: &str) -> String {
        std::fs::read_to_string(Path::new("/proc").join(self.pid().to_string()).join(name))
            .unwrap_or_else(|e| panic!("/proc/{}/{name}: {e}", self.pid()))
    }

    /// Stops the VM and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: sending SIGTERM to our own child process by its id.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for HaltedVm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when `pid` has vCPU threads ("CPU N/KVM") and all of them sleep.
fn vcpus_sleep(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut vcpus = 0;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !(comm.starts_with("CPU ") && comm.trim_end().ends_with("/KVM")) {
            continue;
        }
        vcpus += 1;
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        if state != Some("S") {
            return false;
        }
    }
    vcpus > 0
}

/// Each thread of `pid`: name, state, CPU time and kernel stack, for diagnosing a stall.
pub fn threads(pid: u32) -> String {
    let mut out = String::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let p = t.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        let stat = read("stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, r)| r.split_whitespace().collect());
        out.push_str(&format!(
            "thread {} {:?}: state {} utime {} stime {}\n{}",
            t.file_name().to_string_lossy(),
            read("comm").trim(),
            fields.first().unwrap_or(&"?"),
            fields.get(11).unwrap_or(&"?"),
            fields.get(12).unwrap_or(&"?"),
            read("stack")
        ));
    }
    out
}

/// Runs `rvmm run ARGS` expecting a refusal: returns stderr after checking the exit status.
pub fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rvmm"))
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rvmm");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "rvmm {args:?} must exit 1 with one message; stderr:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "rvmm {args:?} printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}
