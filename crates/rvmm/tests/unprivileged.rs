//! rvmm as a user that is not root and has access to /dev/kvm and nothing else: the
//! built-in probe runs, and a VM started with `--name` makes its runtime directory under
//! `$XDG_RUNTIME_DIR`, serves QMP there, and `rvmm qmp NAME` (as that user) finds it.
//!
//! Setting this up needs root (CI runs as root): rvmm runs as `nobody` (uid and gid 65534,
//! no supplementary groups) inside a private mount namespace where a KVM device node owned
//! by that user is bind-mounted over /dev/kvm, so the host's /dev/kvm keeps its owner and
//! mode. A copy of the binary in a 0755 directory makes it reachable whatever the modes of
//! the build directory. Without root the test fails unless RVMM_SKIP_KVM=1.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::vm::{test_dir, BackgroundVm};
use common::{kvm_available, run_with_timeout, text};
use serde_json::{json, Value};

/// The unprivileged user.
const NOBODY: u32 = 65534;

/// A private directory holding a 0755 copy of rvmm, a KVM node owned by `nobody` and a
/// runtime directory for it.
struct Setup {
    dir: PathBuf,
    rvmm: PathBuf,
    kvm: PathBuf,
    xdg: PathBuf,
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn setup(tag: &str) -> Setup {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root to set up an unprivileged user's access to KVM; set RVMM_SKIP_KVM=1 to skip KVM tests"
    );
    for tool in ["unshare", "setpriv"] {
        let found = Command::new(tool).arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{tool} (util-linux) is missing"
        );
    }
    let dir = test_dir(tag);
    set_mode(&dir, 0o755);
    let rvmm = dir.join("rvmm");
    std::fs::copy(env!("CARGO_BIN_EXE_rvmm"), &rvmm).unwrap();
    set_mode(&rvmm, 0o755);
    let kvm = dir.join("kvm");
    let rdev = std::fs::metadata("/dev/kvm").unwrap().rdev();
    let node = std::ffi::CString::new(kvm.to_str().unwrap()).unwrap();
    // SAFETY: node is a valid C string; mknod creates a character device node there.
    let rc = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, rdev) };
    assert_eq!(
        rc,
        0,
        "mknod {}: {}",
        kvm.display(),
        std::io::Error::last_os_error()
    );
    std::os::unix::fs::chown(&kvm, Some(NOBODY), Some(NOBODY)).unwrap();
    let xdg = dir.join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    std::os::unix::fs::chown(&xdg, Some(NOBODY), Some(NOBODY)).unwrap();
    set_mode(&xdg, 0o700);
    Setup {
        dir,
        rvmm,
        kvm,
        xdg,
    }
}

impl Setup {
    /// `rvmm ARGS` as nobody, with an empty environment but `XDG_RUNTIME_DIR`.
    fn as_nobody(&self, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .args(["env", "-i"])
            .arg(format!("XDG_RUNTIME_DIR={}", self.xdg.display()))
            .arg(&self.rvmm)
            .args(args);
        c
    }

    /// `rvmm ARGS` as nobody, with our KVM node as its /dev/kvm.
    fn with_kvm(&self, args: &[&str]) -> Command {
        let inner = self.as_nobody(args);
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount --bind "$0" /dev/kvm && exec "$@""#)
            .arg(&self.kvm)
            .arg(inner.get_program())
            .args(inner.get_args());
        c.stdin(std::process::Stdio::null());
        c
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real, effective, saved and filesystem uids of process `pid`.
fn uids(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_probe_runs_as_an_unprivileged_user_with_access_to_kvm() {
    if !kvm_available("the_probe_runs_as_an_unprivileged_user_with_access_to_kvm") {
        return;
    }
    let s = setup("unpriv-probe");
    // Without access to /dev/kvm (unless the host opens it to everyone), nobody is told so.
    let host_mode = std::fs::metadata("/dev/kvm").unwrap().mode();
    if host_mode & 0o006 != 0o006 {
        let out = run_with_timeout(s.as_nobody(&["run"]), Duration::from_secs(30));
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("/dev/kvm"), "{stderr}");
    }
    // With it, the probe boots on two vCPUs and prints its view.
    let out = run_with_timeout(s.with_kvm(&["run", "--smp", "2"]), Duration::from_secs(60));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("CPU  APIC"))
        .skip(1)
        .collect();
    assert_eq!(table.len(), 2, "{stdout}");
}

#[test]
fn qmp_works_for_an_unprivileged_user() {
    if !kvm_available("qmp_works_for_an_unprivileged_user") {
        return;
    }
    let s = setup("unpriv-qmp");
    let runtime = s.xdg.join("rvmm");
    let socket = runtime.join("web1.qmp");
    let cmd = s.with_kvm(&[
        "run",
        "--smp",
        "2",
        "--append",
        "mode=halt",
        "--name",
        "web1",
    ]);
    // The setup directory outlives the VM (`Setup` removes it); the VM's own is `runtime`.
    let vm = BackgroundVm::spawn(cmd, runtime.clone(), socket.clone());
    assert_eq!(
        uids(vm.pid()),
        "65534 65534 65534 65534",
        "rvmm runs as nobody"
    );
    let meta = std::fs::symlink_metadata(&runtime).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (NOBODY, 0o700));
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o600));
    let mut c = vm.client();
    assert_eq!(c.ok("query-name", None), json!({"name": "web1"}));
    assert_eq!(c.ok("query-cpus-fast", None).as_array().unwrap().len(), 2);
    // The same user finds it by name.
    let out = run_with_timeout(
        s.as_nobody(&["qmp", "web1", r#"{"execute": "query-status"}"#]),
        Duration::from_secs(30),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let reply: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reply["return"]["status"], "running");
    c.ok("quit", None);
    let out = vm.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!socket.exists(), "socket removed on exit");
}
