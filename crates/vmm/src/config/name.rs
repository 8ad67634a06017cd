//! VM names (`--name`, libvirt `<name>`): a name also names the VM's control socket, so it
//! must be a safe, short file name. The control plane builds the socket path from it.

use thiserror::Error;

/// Longest VM name (a socket path must fit in `sun_path`'s 108 bytes).
pub const MAX_NAME: usize = 64;

/// A name that cannot name a VM.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("--name: \"{name}\": a VM name may hold only letters, digits, '.', '_' and '-', must not start with '.', and is at most {MAX_NAME} characters (it names the control socket)")]
pub struct BadName {
    pub name: String,
}

impl BadName {
    /// The rule broken, without the option name (for front ends other than `--name`).
    pub fn rule(&self) -> String {
        let message = self.to_string();
        message
            .strip_prefix("--name: ")
            .unwrap_or(&message)
            .to_string()
    }
}

/// Checks a VM name.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BadName {
            name: name.to_string(),
        })
    }
}
