//! Opening and reading the files a user names (`--kernel`, `--initrd`, `--domain`, host CPU
//! descriptions, `probe --decode`): regular files only, within a size limit per kind.
//!
//! A path can name a FIFO (an `open` for reading waits for a writer forever), a device
//! (`/dev/zero` reads until memory runs out, a tty may block) or a directory. So a file is
//! opened with `O_NONBLOCK` (a FIFO cannot hang the open) and `O_NOCTTY`, checked with
//! `fstat` to be a regular file no larger than its kind's limit, and read for at most
//! limit + 1 bytes (a file that grows while it is read is caught too). `-` for stdin, where
//! an option accepts it, is read with the same limit. What the bytes mean is the callers'.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use thiserror::Error;

/// What a file holds, which sets how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A kernel image (bzImage or ELF vmlinux, which with debug information can be hundreds
    /// of MiB) or an initrd.
    Image,
    /// A text description: libvirt domain XML, host CPU XML/JSON, a probe dump.
    Text,
}

/// The largest kernel or initrd accepted: 1 GiB.
pub const IMAGE_LIMIT: u64 = 1 << 30;
/// The largest text description accepted: 16 MiB.
pub const TEXT_LIMIT: u64 = 16 << 20;

impl FileKind {
    /// The largest size accepted, in bytes.
    pub fn limit(self) -> u64 {
        match self {
            FileKind::Image => IMAGE_LIMIT,
            FileKind::Text => TEXT_LIMIT,
        }
    }

    /// The limit as people write it ("1 GiB").
    pub fn limit_text(self) -> &'static str {
        match self {
            FileKind::Image => "1 GiB",
            FileKind::Text => "16 MiB",
        }
    }
}

/// Why a named file cannot be used. `option` is how the file was given (`--kernel`,
/// `--domain x.xml: <initrd>`, ...), `path` the path as given.
#[derive(Debug, Error)]
pub enum FileError {
    #[error("{option}: cannot open {path}: {error}")]
    Open {
        option: String,
        path: String,
        error: std::io::Error,
    },
    #[error("{option}: {path} is a {what}: only regular files are accepted")]
    NotRegular {
        option: String,
        path: String,
        what: &'static str,
    },
    #[error("{option}: {path} is larger than {limit}, the limit for this kind of file")]
    TooLarge {
        option: String,
        path: String,
        limit: &'static str,
    },
    #[error("{option}: cannot write {path}: {error}")]
    Write {
        option: String,
        path: String,
        error: std::io::Error,
    },
    #[error("{option}: cannot read {path}: {error}")]
    Read {
        option: String,
        path: String,
        error: std::io::Error,
    },
}

/// The name of a file type that is not a regular file, for messages.
fn type_name(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("FIFO")
    } else if t.is_char_device() {
        Some("character device")
    } else if t.is_block_device() {
        Some("block device")
    } else if t.is_dir() {
        Some("directory")
    } else if t.is_socket() {
        Some("socket")
    } else {
        Some("special file")
    }
}

/// Refuses what `meta` describes unless it is a regular file.
fn require_regular(option: &str, path: &Path, meta: &std::fs::Metadata) -> Result<(), FileError> {
    match type_name(meta.file_type()) {
        None => Ok(()),
        Some(what) => Err(FileError::NotRegular {
            option: option.to_string(),
            path: path.display().to_string(),
            what,
        }),
    }
}

/// A first look at `path` without opening it: most non-files are refused before a device
/// or FIFO is touched. A path that does not exist (yet) passes.
fn look_before_opening(option: &str, path: &Path) -> Result<(), FileError> {
    match std::fs::metadata(path) {
        Ok(meta) => require_regular(option, path, &meta),
        Err(_) => Ok(()),
    }
}

/// Opens `path` for reading if it is a regular file of at most `kind`'s limit; returns the
/// file and its size. The file is opened close-on-exec; `O_NONBLOCK` has no effect on a
/// regular file's reads.
pub fn open_regular(option: &str, path: &Path, kind: FileKind) -> Result<(File, u64), FileError> {
    let shown = || path.display().to_string();
    look_before_opening(option, path)?;
    // std opens with O_CLOEXEC.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|error| FileError::Open {
            option: option.to_string(),
            path: shown(),
            error,
        })?;
    // What was opened, which may differ from what was looked at.
    let meta = file.metadata().map_err(|error| FileError::Read {
        option: option.to_string(),
        path: shown(),
        error,
    })?;
    require_regular(option, path, &meta)?;
    if meta.len() > kind.limit() {
        return Err(FileError::TooLarge {
            option: option.to_string(),
            path: shown(),
            limit: kind.limit_text(),
        });
    }
    Ok((file, meta.len()))
}

/// Writes `bytes` to `path`, created or truncated, if it is (or becomes) a regular file: a
/// FIFO, a device or a directory is refused before anything is written (the open is
/// `O_NONBLOCK`, so a FIFO with no reader cannot hang it).
pub fn write_regular(option: &str, path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    look_before_opening(option, path)?;
    let write_error = |error| FileError::Write {
        option: option.to_string(),
        path: path.display().to_string(),
        error,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(write_error)?;
    let meta = file.metadata().map_err(write_error)?;
    require_regular(option, path, &meta)?;
    file.write_all(bytes).map_err(write_error)
}

/// Reads at most `kind`'s limit from `reader`; more is an error.
fn read_limited(
    reader: impl Read,
    option: &str,
    shown: &str,
    kind: FileKind,
    size_hint: u64,
) -> Result<Vec<u8>, FileError> {
    let mut bytes = Vec::with_capacity(usize::try_from(size_hint.min(kind.limit())).unwrap_or(0));
    reader
        .take(kind.limit().saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| FileError::Read {
            option: option.to_string(),
            path: shown.to_string(),
            error,
        })?;
    if bytes.len() as u64 > kind.limit() {
        return Err(FileError::TooLarge {
            option: option.to_string(),
            path: shown.to_string(),
            limit: kind.limit_text(),
        });
    }
    Ok(bytes)
}

/// The whole content of the regular file `path` (at most `kind`'s limit).
pub fn read_regular(option: &str, path: &Path, kind: FileKind) -> Result<Vec<u8>, FileError> {
    let (file, size) = open_regular(option, path, kind)?;
    read_limited(file, option, &path.display().to_string(), kind, size)
}

/// As `read_regular`, except that `-` means stdin (which may be a pipe; the limit holds).
pub fn read_regular_or_stdin(
    option: &str,
    path: &Path,
    kind: FileKind,
) -> Result<Vec<u8>, FileError> {
    if path.as_os_str() == "-" {
        return read_limited(std::io::stdin().lock(), option, "stdin", kind, 0);
    }
    read_regular(option, path, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rvmm-util-file-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = scratch("regular");
        let path = dir.join("a.txt");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(
            read_regular("--domain", &path, FileKind::Text).unwrap(),
            b"hello"
        );
        let (_, size) = open_regular("--kernel", &path, FileKind::Image).unwrap();
        assert_eq!(size, 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn devices_and_directories_are_refused_by_type() {
        let err = read_regular("--decode", Path::new("/dev/zero"), FileKind::Text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--decode: /dev/zero is a character device: only regular files are accepted"
        );
        let err = open_regular("--kernel", Path::new("/"), FileKind::Image).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--kernel: / is a directory: only regular files are accepted"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = scratch("fifo");
        let path = dir.join("fifo");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path; mkfifo only creates a file there.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_regular("--domain", &path, FileKind::Text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--domain: {} is a FIFO: only regular files are accepted",
                path.display()
            )
        );
        // Nor is it written to (a FIFO with no reader would block the open).
        let err = write_regular("--elf", &path, b"x").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--elf: {} is a FIFO: only regular files are accepted",
                path.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn regular_files_are_created_or_truncated_and_devices_refused() {
        let dir = scratch("write");
        let path = dir.join("probe.elf");
        write_regular("--elf", &path, b"long content").unwrap();
        write_regular("--elf", &path, b"short").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        let err = write_regular("--elf", Path::new("/dev/null"), b"x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--elf: /dev/null is a character device: only regular files are accepted"
        );
        let err = write_regular("--elf", &dir.join("no/such/dir"), b"x").unwrap_err();
        assert!(err.to_string().starts_with("--elf: cannot write "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let dir = scratch("large");
        let path = dir.join("big.xml");
        let f = File::create(&path).unwrap();
        f.set_len(TEXT_LIMIT + 1).unwrap();
        let err = read_regular("--domain", &path, FileKind::Text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--domain: {} is larger than 16 MiB, the limit for this kind of file",
                path.display()
            )
        );
        f.set_len(TEXT_LIMIT).unwrap();
        assert_eq!(
            read_regular("--domain", &path, FileKind::Text)
                .unwrap()
                .len() as u64,
            TEXT_LIMIT
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reader_longer_than_the_limit_is_cut_and_refused() {
        let long = std::io::repeat(b'x').take(TEXT_LIMIT + 10);
        let err = read_limited(long, "--decode", "stdin", FileKind::Text, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--decode: stdin is larger than 16 MiB, the limit for this kind of file"
        );
    }
}
