//! The listening Unix sockets rvmm offers (QMP, the human monitor, the metrics endpoint):
//! bound as mode 0600 from the start, replacing only a stale socket (one nobody answers
//! on), never a file of another kind. Each server names its own option in the messages.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use thiserror::Error;

/// Why a socket could not be bound; the caller adds the option and the path.
#[derive(Debug, Error)]
pub enum BindError {
    #[error("exists and is {0}, not a socket; refusing to replace it")]
    NotASocket(&'static str),
    #[error("another process is listening on this socket")]
    InUse,
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("after bind the socket has mode {0:o}, expected 600")]
    Mode(u32),
}

/// What a path that is not our socket is, for messages.
pub(crate) fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Binds `path` as a 0600 socket, replacing only a stale socket.
pub(crate) fn bind_private(path: &Path) -> Result<UnixListener, BindError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse);
            }
            std::fs::remove_file(path)
                .map_err(|e| BindError::Io("removing the stale socket", e))?;
        }
        Ok(meta) => return Err(BindError::NotASocket(kind_of(&meta))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BindError::Io("lstat", e)),
    }
    // The umask makes bind create the node as 0600 from the start (the mode of a socket
    // node comes from the umask; fchmod on the socket does not reach it). The process has
    // no other thread creating files while its servers start.
    // SAFETY: umask only swaps the process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(|e| BindError::Io("bind", e))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| BindError::Io("lstat after bind", e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o600 {
        let _ = std::fs::remove_file(path);
        return Err(BindError::Mode(mode));
    }
    Ok(listener)
}
