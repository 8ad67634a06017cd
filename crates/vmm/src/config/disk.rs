//! `--disk path=FILE[,readonly=on|off][,cache=none|writeback][,serial=ID]` (repeatable): the
//! virtio-blk disks, each on a raw image file. `cache` is QEMU's: `writeback` (the default)
//! goes through the host page cache, `none` opens the file with O_DIRECT; a guest flush is
//! fdatasync in both. Only the text is checked here; opening and locking the file is
//! `devices::virtio::blk`'s work when the VM is built.

use std::path::PathBuf;

use thiserror::Error;

/// The most disks: one virtio-mmio transport each (QEMU microvm has 8).
pub const MAX_DISKS: usize = 8;
/// The longest serial: virtio-blk's GET_ID answers 20 bytes (VIRTIO_BLK_ID_BYTES).
pub const MAX_SERIAL: usize = 20;

/// One disk as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    pub path: PathBuf,
    pub readonly: bool,
    pub cache: Cache,
    pub serial: Option<String>,
}

/// The host page cache's part (`cache=`), as QEMU's `-drive cache=` of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cache {
    /// Through the host page cache; flushes are fdatasync.
    #[default]
    Writeback,
    /// O_DIRECT: around the host page cache; flushes are still fdatasync.
    None,
}

impl Cache {
    /// The value as the option spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Cache::Writeback => "writeback",
            Cache::None => "none",
        }
    }

    /// Parses `none` / `writeback`.
    pub fn parse(text: &str) -> Option<Cache> {
        match text {
            "writeback" => Some(Cache::Writeback),
            "none" => Some(Cache::None),
            _ => None,
        }
    }
}

/// Why a `--disk` value is not a disk.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DiskOptionError {
    #[error("--disk: '{0}' has no path= (expected path=FILE[,readonly=on][,cache=none|writeback][,serial=ID])")]
    NoPath(String),
    #[error("--disk: path= is empty")]
    EmptyPath,
    #[error("--disk: '{0}' is not KEY=VALUE (keys: path, readonly, cache, serial)")]
    NotKeyValue(String),
    #[error("--disk: unknown key '{0}' (keys: path, readonly, cache, serial)")]
    UnknownKey(String),
    #[error("--disk: '{key}' is given twice")]
    Repeated { key: String },
    #[error("--disk: readonly={0}: expected on or off")]
    Switch(String),
    #[error("--disk: cache={0}: expected none or writeback")]
    Cache(String),
    #[error("--disk: serial={serial}: {len} bytes, longer than virtio-blk's {MAX_SERIAL}-byte ID")]
    SerialTooLong { serial: String, len: usize },
    #[error("--disk: serial={0}: only printable ASCII without spaces or commas is allowed")]
    SerialChars(String),
    #[error("--disk: {count} disks given; at most {MAX_DISKS} (one virtio-mmio slot each)")]
    TooMany { count: usize },
}

/// Whether `s` can be a disk's serial (GET_ID's 20 bytes, printable ASCII).
pub fn check_serial(s: &str) -> Result<(), DiskOptionError> {
    if s.len() > MAX_SERIAL {
        return Err(DiskOptionError::SerialTooLong {
            serial: s.to_string(),
            len: s.len(),
        });
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DiskOptionError::SerialChars(s.escape_debug().to_string()));
    }
    Ok(())
}

impl DiskConfig {
    /// Parses one `--disk` value.
    pub fn parse(text: &str) -> Result<DiskConfig, DiskOptionError> {
        let (mut path, mut readonly, mut cache, mut serial) = (None, None, None, None);
        for item in text.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                return Err(DiskOptionError::NotKeyValue(item.to_string()));
            };
            let slot_taken = match key {
                "path" => path.replace(value.to_string()).is_some(),
                "readonly" => readonly.replace(value.to_string()).is_some(),
                "cache" => cache.replace(value.to_string()).is_some(),
                "serial" => serial.replace(value.to_string()).is_some(),
                _ => return Err(DiskOptionError::UnknownKey(key.to_string())),
            };
            if slot_taken {
                return Err(DiskOptionError::Repeated {
                    key: key.to_string(),
                });
            }
        }
        let path = path.ok_or_else(|| DiskOptionError::NoPath(text.to_string()))?;
        if path.is_empty() {
            return Err(DiskOptionError::EmptyPath);
        }
        let readonly = match readonly.as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => return Err(DiskOptionError::Switch(other.to_string())),
        };
        let cache = match cache.as_deref() {
            None => Cache::default(),
            Some(text) => {
                Cache::parse(text).ok_or_else(|| DiskOptionError::Cache(text.to_string()))?
            }
        };
        if let Some(s) = &serial {
            check_serial(s)?;
        }
        Ok(DiskConfig {
            path: PathBuf::from(path),
            readonly,
            cache,
            serial,
        })
    }

    /// Parses every `--disk` value.
    pub fn parse_all(values: &[String]) -> Result<Vec<DiskConfig>, DiskOptionError> {
        if values.len() > MAX_DISKS {
            return Err(DiskOptionError::TooMany {
                count: values.len(),
            });
        }
        values.iter().map(|v| DiskConfig::parse(v)).collect()
    }

    /// The option text that gives this disk back.
    pub fn option(&self) -> String {
        let mut s = format!("path={}", self.path.display());
        if self.readonly {
            s.push_str(",readonly=on");
        }
        if self.cache != Cache::default() {
            s.push_str(&format!(",cache={}", self.cache.as_str()));
        }
        if let Some(serial) = &self.serial {
            s.push_str(&format!(",serial={serial}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        DiskConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_keys() {
        let d = DiskConfig::parse("path=/tmp/a.img,readonly=on,serial=ABC-1").unwrap();
        assert_eq!(d.path, PathBuf::from("/tmp/a.img"));
        assert!(d.readonly);
        assert_eq!(d.serial.as_deref(), Some("ABC-1"));
        assert_eq!(d.option(), "path=/tmp/a.img,readonly=on,serial=ABC-1");
        let d = DiskConfig::parse("path=x,readonly=off").unwrap();
        assert!(!d.readonly);
        assert_eq!(d.cache, Cache::Writeback, "QEMU's default");
        let d = DiskConfig::parse("path=x,cache=none").unwrap();
        assert_eq!(d.cache, Cache::None);
        assert_eq!(d.option(), "path=x,cache=none");
        assert_eq!(DiskConfig::parse(&d.option()), Ok(d));
        let d = DiskConfig::parse("path=x,cache=writeback").unwrap();
        assert_eq!((d.cache, d.option().as_str()), (Cache::Writeback, "path=x"));
        assert_eq!(d.serial, None);
    }

    #[test]
    fn errors_name_the_option_value_and_rule() {
        assert_eq!(
            err("readonly=on"),
            "--disk: 'readonly=on' has no path= (expected path=FILE[,readonly=on][,cache=none|writeback][,serial=ID])"
        );
        assert_eq!(err("path="), "--disk: path= is empty");
        assert_eq!(
            err("path=a,cache"),
            "--disk: 'cache' is not KEY=VALUE (keys: path, readonly, cache, serial)"
        );
        assert_eq!(
            err("path=a,format=qcow2"),
            "--disk: unknown key 'format' (keys: path, readonly, cache, serial)"
        );
        assert_eq!(err("path=a,path=b"), "--disk: 'path' is given twice");
        assert_eq!(
            err("path=a,cache=directsync"),
            "--disk: cache=directsync: expected none or writeback"
        );
        assert_eq!(
            err("path=a,cache=none,cache=none"),
            "--disk: 'cache' is given twice"
        );
        assert_eq!(
            err("path=a,readonly=yes"),
            "--disk: readonly=yes: expected on or off"
        );
        assert_eq!(
            err("path=a,serial=123456789012345678901"),
            "--disk: serial=123456789012345678901: 21 bytes, longer than virtio-blk's \
             20-byte ID"
        );
        assert_eq!(
            err("path=a,serial=a b"),
            "--disk: serial=a b: only printable ASCII without spaces or commas is allowed"
        );
        let nine: Vec<String> = (0..9).map(|i| format!("path={i}")).collect();
        assert_eq!(
            DiskConfig::parse_all(&nine).unwrap_err().to_string(),
            "--disk: 9 disks given; at most 8 (one virtio-mmio slot each)"
        );
    }
}
