//! `--balloon [on|off][,deflate-on-oom=on|off][,free-page-reporting=on|off][,current-memory=SIZE]`:
//! the virtio-balloon device (`devices::virtio::balloon`). Off unless asked for, as in QEMU;
//! a libvirt domain gets one unless `<memballoon model='none'/>` (`config::libvirt`).
//! `current-memory` is libvirt's `<currentMemory>`: the guest memory wanted at start (the
//! balloon's first target is `-m` less it).

use thiserror::Error;

use super::size::{format_size, parse_size, DefaultUnit, SizeError};

/// The balloon as the user asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalloonConfig {
    /// VIRTIO_BALLOON_F_DEFLATE_ON_OOM offered (the guest may take pages back under memory
    /// pressure).
    pub deflate_on_oom: bool,
    /// VIRTIO_BALLOON_F_REPORTING offered (the guest reports free pages, which the host
    /// takes back).
    pub free_page_reporting: bool,
    /// The guest memory wanted at start, in bytes (libvirt's `<currentMemory>` below
    /// `<memory>`): the balloon's first target is the difference.
    pub initial_memory: Option<u64>,
}

/// Why a `--balloon` value is not a balloon.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BalloonOptionError {
    #[error("--balloon: '{0}' is not on, off or KEY=VALUE (keys: {KEYS})")]
    NotKeyValue(String),
    #[error("--balloon: unknown key '{0}' (keys: {KEYS})")]
    UnknownKey(String),
    #[error(transparent)]
    Size(#[from] SizeError),
    #[error(
        "--balloon: current-memory={value} ({bytes} bytes) must be a multiple of 4 KiB and at \
         most the guest memory ({memory} bytes)"
    )]
    CurrentMemory {
        value: String,
        bytes: u64,
        memory: u64,
    },
    #[error("--balloon: '{key}' is given twice")]
    Repeated { key: String },
    #[error("--balloon: {key}={value}: expected on or off")]
    Switch { key: String, value: String },
    #[error("--balloon: off conflicts with {key}=on (there is no balloon to have it)")]
    OffWithFeature { key: String },
}

/// The keys, for messages.
const KEYS: &str = "deflate-on-oom, free-page-reporting, current-memory";

fn switch(key: &str, value: &str) -> Result<bool, BalloonOptionError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(BalloonOptionError::Switch {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

impl BalloonConfig {
    /// Parses a `--balloon` value (`on` when the flag has none): `None` for off.
    pub fn parse(text: &str) -> Result<Option<BalloonConfig>, BalloonOptionError> {
        let mut items = text.split(',').peekable();
        let mut enabled = true;
        if let Some(first) = items.peek() {
            match *first {
                "on" | "" => {
                    items.next();
                }
                "off" => {
                    enabled = false;
                    items.next();
                }
                _ => {}
            }
        }
        let (mut oom, mut fpr, mut current) = (None, None, None);
        for item in items {
            let Some((key, value)) = item.split_once('=') else {
                return Err(BalloonOptionError::NotKeyValue(item.to_string()));
            };
            if key == "current-memory" {
                let bytes = parse_size("--balloon: current-memory", value, DefaultUnit::Mebibytes)?;
                if current.replace(bytes).is_some() {
                    return Err(BalloonOptionError::Repeated {
                        key: key.to_string(),
                    });
                }
                continue;
            }
            let slot = match key {
                "deflate-on-oom" => &mut oom,
                "free-page-reporting" => &mut fpr,
                _ => return Err(BalloonOptionError::UnknownKey(key.to_string())),
            };
            if slot.replace(switch(key, value)?).is_some() {
                return Err(BalloonOptionError::Repeated {
                    key: key.to_string(),
                });
            }
        }
        if !enabled {
            for (key, on) in [("deflate-on-oom", oom), ("free-page-reporting", fpr)] {
                if on == Some(true) {
                    return Err(BalloonOptionError::OffWithFeature {
                        key: key.to_string(),
                    });
                }
            }
            return Ok(None);
        }
        Ok(Some(BalloonConfig {
            deflate_on_oom: oom.unwrap_or(false),
            free_page_reporting: fpr.unwrap_or(false),
            initial_memory: current,
        }))
    }

    /// Checks `current-memory` against the guest's `memory`.
    pub fn validate(&self, memory: u64) -> Result<(), BalloonOptionError> {
        match self.initial_memory {
            Some(bytes) if bytes > memory || bytes % 4096 != 0 => {
                Err(BalloonOptionError::CurrentMemory {
                    value: format_size(bytes),
                    bytes,
                    memory,
                })
            }
            _ => Ok(()),
        }
    }

    /// The option text that gives this balloon back.
    pub fn option(&self) -> String {
        let mut s = "on".to_string();
        if self.deflate_on_oom {
            s.push_str(",deflate-on-oom=on");
        }
        if self.free_page_reporting {
            s.push_str(",free-page-reporting=on");
        }
        if let Some(m) = self.initial_memory {
            s.push_str(&format!(",current-memory={}", format_size(m)));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        BalloonConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn on_off_and_features() {
        assert_eq!(
            BalloonConfig::parse("on").unwrap(),
            Some(BalloonConfig::default())
        );
        assert_eq!(BalloonConfig::parse("off").unwrap(), None);
        assert_eq!(
            BalloonConfig::parse("off,deflate-on-oom=off").unwrap(),
            None
        );
        let b = BalloonConfig::parse("deflate-on-oom=on,free-page-reporting=on")
            .unwrap()
            .unwrap();
        assert!(b.deflate_on_oom && b.free_page_reporting);
        let b = BalloonConfig::parse("on,free-page-reporting=on,current-memory=768M")
            .unwrap()
            .unwrap();
        assert!(!b.deflate_on_oom && b.free_page_reporting);
        assert_eq!(b.initial_memory, Some(768 << 20));
        assert_eq!(b.option(), "on,free-page-reporting=on,current-memory=768M");
        assert!(b.validate(1 << 30).is_ok());
        assert_eq!(
            b.validate(512 << 20).unwrap_err().to_string(),
            "--balloon: current-memory=768M (805306368 bytes) must be a multiple of 4 KiB and at \
             most the guest memory (536870912 bytes)"
        );
        assert_eq!(
            BalloonConfig::parse(&b.option()).unwrap().unwrap(),
            b,
            "option() parses back"
        );
    }

    #[test]
    fn bad_values_name_the_rule() {
        assert_eq!(
            err("yes"),
            "--balloon: 'yes' is not on, off or KEY=VALUE (keys: deflate-on-oom, \
             free-page-reporting, current-memory)"
        );
        assert_eq!(
            err("stats=on"),
            "--balloon: unknown key 'stats' (keys: deflate-on-oom, free-page-reporting, \
             current-memory)"
        );
        assert!(err("current-memory=lots").starts_with("--balloon: current-memory: 'lots'"));
        assert_eq!(
            err("deflate-on-oom=1"),
            "--balloon: deflate-on-oom=1: expected on or off"
        );
        assert_eq!(
            err("deflate-on-oom=on,deflate-on-oom=off"),
            "--balloon: 'deflate-on-oom' is given twice"
        );
        assert_eq!(
            err("off,free-page-reporting=on"),
            "--balloon: off conflicts with free-page-reporting=on (there is no balloon to have it)"
        );
        assert_eq!(
            err("deflate-on-oom=on,on"),
            "--balloon: 'on' is not on, off or KEY=VALUE (keys: deflate-on-oom, \
             free-page-reporting, current-memory)"
        );
    }
}
