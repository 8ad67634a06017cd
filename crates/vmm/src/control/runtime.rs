//! Where control sockets live. A VM started with `--name NAME` listens on
//! `RUNTIME/NAME.qmp`, where RUNTIME is `$XDG_RUNTIME_DIR/rvmm`, else `/run/rvmm` for root,
//! else `/tmp/rvmm-UID`; `--qmp unix:PATH` picks any path. A `VM` argument is a socket path
//! (anything with a `/`) or a name resolved the same way. Binding and serving the socket is
//! `server`'s job.
//!
//! The runtime directory is trusted only if it is ours: a real directory (checked with
//! `lstat`, so a symbolic link is refused), owned by our effective uid, that neither group
//! nor others may write to. Otherwise another user could have planted it (`/tmp/rvmm-UID`
//! is predictable) and put their own socket where our VMs' would be. The server side
//! creates it 0700 and checks it ([`ensure_runtime_dir`]); the client side checks it before
//! it connects to a VM by name ([`resolve_vm_checked`]).

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors in control options and the runtime directory.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("--qmp: \"{value}\": expected unix:PATH (optionally with ,server=on and ,wait=off)")]
    QmpSyntax { value: String },
    #[error("--qmp: \"{value}\": option \"{option}\" is not supported (rvmm listens on a Unix socket and never waits for a client)")]
    QmpOption { value: String, option: String },
    #[error(transparent)]
    BadName(#[from] crate::config::name::BadName),
    #[error("runtime directory {path}: {problem}")]
    RuntimeDir { path: String, problem: String },
}

pub use crate::config::name::MAX_NAME;

/// Checks a `--name` used for a socket name.
pub fn check_name(name: &str) -> Result<(), ControlError> {
    crate::config::name::check_name(name).map_err(ControlError::from)
}

/// rvmm's runtime directory for a user with `xdg_runtime_dir` (`$XDG_RUNTIME_DIR`) and `uid`.
pub fn runtime_dir(xdg_runtime_dir: Option<&str>, uid: u32) -> PathBuf {
    match xdg_runtime_dir {
        Some(d) if !d.is_empty() => Path::new(d).join("rvmm"),
        _ if uid == 0 => PathBuf::from("/run/rvmm"),
        _ => PathBuf::from(format!("/tmp/rvmm-{uid}")),
    }
}

/// This process's effective uid, the one that owns the files it creates.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's runtime directory.
pub fn default_runtime_dir() -> PathBuf {
    let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
    runtime_dir(xdg.as_deref(), euid())
}

/// The control socket of the VM named `name`.
pub fn socket_for_name(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.qmp"))
}

/// A `VM` argument: a path if it holds a `/`, else a name under `dir`.
pub fn resolve_vm(dir: &Path, vm: &str) -> PathBuf {
    if vm.contains('/') {
        PathBuf::from(vm)
    } else {
        socket_for_name(dir, vm)
    }
}

/// `resolve_vm`, checking first that `dir` is ours when `vm` is a name (a missing `dir` is
/// left to the connection to report).
pub fn resolve_vm_checked(dir: &Path, vm: &str) -> Result<PathBuf, ControlError> {
    if !vm.contains('/') && std::fs::symlink_metadata(dir).is_ok() {
        check_runtime_dir(dir)?;
    }
    Ok(resolve_vm(dir, vm))
}

/// Parses `--qmp unix:PATH[,server[=on]][,wait=off][,nowait]`, as QEMU's `-qmp` takes it.
pub fn parse_qmp_option(value: &str) -> Result<PathBuf, ControlError> {
    let rest = value
        .strip_prefix("unix:")
        .ok_or_else(|| ControlError::QmpSyntax {
            value: value.to_string(),
        })?;
    let mut parts = rest.split(',');
    let path = parts.next().unwrap_or_default();
    if path.is_empty() {
        return Err(ControlError::QmpSyntax {
            value: value.to_string(),
        });
    }
    for option in parts {
        if !matches!(option, "server" | "server=on" | "wait=off" | "nowait") {
            return Err(ControlError::QmpOption {
                value: value.to_string(),
                option: option.to_string(),
            });
        }
    }
    Ok(PathBuf::from(path))
}

/// Creates `dir` (mode 0700) if needed and checks it is ours ([`check_runtime_dir`]).
pub fn ensure_runtime_dir(dir: &Path) -> Result<(), ControlError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| runtime_dir_error(dir, format!("cannot create it: {e}")))?;
        }
        Err(e) => return Err(runtime_dir_error(dir, e.to_string())),
        Ok(_) => {}
    }
    check_runtime_dir(dir)
}

fn runtime_dir_error(dir: &Path, problem: String) -> ControlError {
    ControlError::RuntimeDir {
        path: dir.display().to_string(),
        problem,
    }
}

/// Checks that `dir` is a real directory (not a symbolic link) owned by our effective uid
/// that neither group nor others may write to.
pub fn check_runtime_dir(dir: &Path) -> Result<(), ControlError> {
    let err = |problem: String| runtime_dir_error(dir, problem);
    let meta = std::fs::symlink_metadata(dir).map_err(|e| err(e.to_string()))?;
    if !meta.file_type().is_dir() {
        return Err(err(
            "exists and is not a directory (a symbolic link is refused)".into(),
        ));
    }
    let uid = euid();
    if meta.uid() != uid {
        return Err(err(format!(
            "is owned by uid {}, not by us (uid {uid})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(err(format!(
            "has mode {mode:04o}: group or others may write to it (it must be 0700, or at least not group- or other-writable; chmod 700 it)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dirs() {
        assert_eq!(
            runtime_dir(Some("/run/user/1000"), 1000),
            PathBuf::from("/run/user/1000/rvmm")
        );
        assert_eq!(runtime_dir(Some(""), 0), PathBuf::from("/run/rvmm"));
        assert_eq!(runtime_dir(None, 0), PathBuf::from("/run/rvmm"));
        assert_eq!(runtime_dir(None, 1000), PathBuf::from("/tmp/rvmm-1000"));
        let dir = Path::new("/run/rvmm");
        assert_eq!(resolve_vm(dir, "web1"), PathBuf::from("/run/rvmm/web1.qmp"));
        assert_eq!(resolve_vm(dir, "./x.sock"), PathBuf::from("./x.sock"));
        assert_eq!(resolve_vm(dir, "/tmp/a.sock"), PathBuf::from("/tmp/a.sock"));
    }

    #[test]
    fn names() {
        assert_eq!(check_name("web-1.test_a"), Ok(()));
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert_eq!(
                check_name(bad),
                Err(ControlError::BadName(crate::config::name::BadName {
                    name: bad.to_string()
                })),
                "{bad}"
            );
        }
        assert_eq!(
            check_name("a/b").unwrap_err().to_string(),
            "--name: \"a/b\": a VM name may hold only letters, digits, '.', '_' and '-', must not start with '.', and is at most 64 characters (it names the control socket)"
        );
    }

    #[test]
    fn qmp_option() {
        assert_eq!(
            parse_qmp_option("unix:/tmp/q.sock"),
            Ok(PathBuf::from("/tmp/q.sock"))
        );
        assert_eq!(
            parse_qmp_option("unix:q.sock,server=on,wait=off"),
            Ok(PathBuf::from("q.sock"))
        );
        assert_eq!(
            parse_qmp_option("unix:q.sock,server,nowait"),
            Ok(PathBuf::from("q.sock"))
        );
        assert_eq!(
            parse_qmp_option("tcp:localhost:4444").unwrap_err().to_string(),
            "--qmp: \"tcp:localhost:4444\": expected unix:PATH (optionally with ,server=on and ,wait=off)"
        );
        assert_eq!(
            parse_qmp_option("unix:").unwrap_err(),
            ControlError::QmpSyntax {
                value: "unix:".into()
            }
        );
        assert_eq!(
            parse_qmp_option("unix:q,wait=on").unwrap_err().to_string(),
            "--qmp: \"unix:q,wait=on\": option \"wait=on\" is not supported (rvmm listens on a Unix socket and never waits for a client)"
        );
    }

    #[test]
    fn runtime_dir_refuses_symlinks() {
        let base = std::env::temp_dir().join(format!("rvmm-rt-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("a/rvmm");
        ensure_runtime_dir(&dir).unwrap();
        assert!(std::fs::symlink_metadata(&dir).unwrap().is_dir());
        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert_eq!(
            ensure_runtime_dir(&link).unwrap_err().to_string(),
            format!(
                "runtime directory {}: exists and is not a directory (a symbolic link is refused)",
                link.display()
            )
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A fresh directory for one test.
    fn temp(tag: &str) -> PathBuf {
        let base = std::env::temp_dir().join(format!("rvmm-rt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        base
    }

    fn set_mode(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn runtime_dir_is_created_private_and_must_stay_so() {
        let base = temp("mode");
        let dir = base.join("rvmm");
        ensure_runtime_dir(&dir).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o700);
        // Readable by others is fine; writable by group or others is not.
        set_mode(&dir, 0o755);
        assert_eq!(ensure_runtime_dir(&dir), Ok(()));
        for mode in [0o770, 0o702, 0o1777] {
            set_mode(&dir, mode);
            assert_eq!(
                ensure_runtime_dir(&dir).unwrap_err().to_string(),
                format!(
                    "runtime directory {}: has mode {mode:04o}: group or others may write to it (it must be 0700, or at least not group- or other-writable; chmod 700 it)",
                    dir.display()
                )
            );
            // The client refuses it too before connecting by name, not by path.
            assert!(resolve_vm_checked(&dir, "web1").is_err());
            assert_eq!(
                resolve_vm_checked(&dir, "./web1.qmp"),
                Ok(PathBuf::from("./web1.qmp"))
            );
        }
        set_mode(&dir, 0o700);
        assert_eq!(resolve_vm_checked(&dir, "web1"), Ok(dir.join("web1.qmp")));
        // A missing directory is left to the connection to report.
        let missing = base.join("missing");
        assert_eq!(
            resolve_vm_checked(&missing, "web1"),
            Ok(missing.join("web1.qmp"))
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn runtime_dir_of_another_user_is_refused() {
        let us = euid();
        let base = temp("owner");
        let dir = base.join("rvmm");
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o700);
        // As root, give it away; as anyone else, "/" belongs to root already.
        let (theirs, owner) = if us == 0 {
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            (dir.clone(), 65534)
        } else {
            (PathBuf::from("/"), 0)
        };
        let expected = format!(
            "runtime directory {}: is owned by uid {owner}, not by us (uid {us})",
            theirs.display()
        );
        assert_eq!(
            ensure_runtime_dir(&theirs).unwrap_err().to_string(),
            expected
        );
        assert_eq!(
            resolve_vm_checked(&theirs, "web1").unwrap_err().to_string(),
            expected
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn client_refuses_a_planted_symlink() {
        let base = temp("client-link");
        let real = base.join("real");
        std::fs::create_dir(&real).unwrap();
        set_mode(&real, 0o700);
        let link = base.join("rvmm");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(
            resolve_vm_checked(&link, "web1").unwrap_err().to_string(),
            format!(
                "runtime directory {}: exists and is not a directory (a symbolic link is refused)",
                link.display()
            )
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
