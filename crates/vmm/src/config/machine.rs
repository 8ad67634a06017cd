//! The `--machine` front end: options of the machine itself, as QEMU's `-machine`/`-M`
//! properties (`-M microvm,pit=off`). rvmm has one machine type, so only the properties are
//! given: `--machine pit=on|off`.
//!
//! `pit` is KVM's in-kernel i8254 timer (KVM_CREATE_PIT2). Omitted, it follows the guest:
//! off for the built-in probe (it times with the TSC and never programs the PIT, and the
//! PIT's teardown costs every exit several milliseconds, docs/benchmarks.md), on for a
//! `--kernel`, because Linux may calibrate against the PIT and checks that the timer
//! interrupt reaches the IOAPIC at boot (`check_timer`). This module owns text →
//! [`MachineConfig`]; the machine layer creates (or not) the device.
//!
//! `virtio-cmdline` (default off) adds `virtio_mmio.device=512@0xfeb00000:16` for each
//! virtio device, in slot order and in QEMU microvm's spelling, to the kernel command line:
//! for kernels with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES booted without ACPI. Off by default
//! because the DSDT describes the devices already, and an unmodified kernel with ACPI finds
//! them there (with both, it would register each device twice).
//!
//! `debug-exit` is QEMU's isa-debug-exit at port 0xf4 (`-device
//! isa-debug-exit,iobase=0xf4,iosize=0x04`): a guest write of `v` ends rvmm with exit status
//! `(v << 1) | 1`. QEMU makes it opt-in, and so does rvmm for a `--kernel`; the built-in
//! probe has it on by default (it falls back to the port if ACPI S5 did not power off).

use thiserror::Error;

use super::BootSource;

/// The keys `--machine` accepts, for error messages.
const KEYS: &str = "pit, debug-exit, virtio-cmdline";

/// What `--machine` asked for; `None` is "the default for this guest".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineConfig {
    /// The in-kernel PIT (`pit=on|off`).
    pub pit: Option<Switch>,
    /// isa-debug-exit at port 0xf4 (`debug-exit=on|off`).
    pub debug_exit: Option<Switch>,
    /// The virtio devices on the kernel command line (`virtio-cmdline=on|off`).
    pub virtio_cmdline: Option<Switch>,
}

/// An on/off machine property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    /// `on` / `off`, as the option is spelled.
    pub fn as_str(self) -> &'static str {
        match self {
            Switch::On => "on",
            Switch::Off => "off",
        }
    }
}

impl MachineConfig {
    /// Whether the machine gets an in-kernel PIT: as asked, else on for a `--kernel` and
    /// off for the built-in probe (see the module documentation).
    pub fn pit_for(&self, boot: &BootSource) -> Switch {
        self.pit.unwrap_or(match boot {
            BootSource::Probe { .. } => Switch::Off,
            BootSource::Kernel { .. } => Switch::On,
        })
    }

    /// Whether the machine has isa-debug-exit: as asked, else on for the built-in probe and
    /// off for a `--kernel` (see the module documentation).
    pub fn debug_exit_for(&self, boot: &BootSource) -> Switch {
        self.debug_exit.unwrap_or(match boot {
            BootSource::Probe { .. } => Switch::On,
            BootSource::Kernel { .. } => Switch::Off,
        })
    }

    /// Whether the virtio devices go on the kernel command line (default off).
    pub fn virtio_cmdline_on(&self) -> bool {
        self.virtio_cmdline == Some(Switch::On)
    }

    /// The option text that gives this configuration back (`pit=off`); empty when every
    /// property is left to its default.
    pub fn option_text(&self) -> String {
        let mut items = Vec::new();
        if let Some(pit) = self.pit {
            items.push(format!("pit={}", pit.as_str()));
        }
        if let Some(debug_exit) = self.debug_exit {
            items.push(format!("debug-exit={}", debug_exit.as_str()));
        }
        if let Some(v) = self.virtio_cmdline {
            items.push(format!("virtio-cmdline={}", v.as_str()));
        }
        items.join(",")
    }
}

/// Why `--machine` text is not acceptable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MachineOptionError {
    #[error("--machine: unknown option '{key}' (expected {KEYS})")]
    UnknownKey { key: String },
    #[error("--machine: '{item}' is not key=value (rvmm has one machine type; give its options: {KEYS})")]
    BareValue { item: String },
    #[error("--machine: empty item in '{text}'")]
    EmptyItem { text: String },
    #[error("--machine: {key}='{value}' is not on or off")]
    NotASwitch { key: String, value: String },
}

fn parse_switch(key: &str, value: &str) -> Result<Switch, MachineOptionError> {
    match value {
        "on" | "yes" | "true" => Ok(Switch::On),
        "off" | "no" | "false" => Ok(Switch::Off),
        _ => Err(MachineOptionError::NotASwitch {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

/// Parses `--machine` text: comma-separated `key=value` items; a repeated key keeps its
/// last value (as QEMU's option parser).
pub fn parse_machine(text: &str) -> Result<MachineConfig, MachineOptionError> {
    let mut config = MachineConfig::default();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(MachineOptionError::EmptyItem {
                text: text.to_string(),
            });
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(MachineOptionError::BareValue {
                item: item.to_string(),
            });
        };
        match key {
            "pit" => config.pit = Some(parse_switch(key, value)?),
            "debug-exit" => config.debug_exit = Some(parse_switch(key, value)?),
            "virtio-cmdline" => config.virtio_cmdline = Some(parse_switch(key, value)?),
            _ => {
                return Err(MachineOptionError::UnknownKey {
                    key: key.to_string(),
                })
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_machine(text).unwrap_err().to_string()
    }

    #[test]
    fn pit_switch() {
        assert_eq!(parse_machine("pit=off").unwrap().pit, Some(Switch::Off));
        assert_eq!(parse_machine("pit=on").unwrap().pit, Some(Switch::On));
        assert_eq!(parse_machine("pit=yes").unwrap().pit, Some(Switch::On));
        assert_eq!(
            parse_machine("pit=on,pit=false").unwrap().pit,
            Some(Switch::Off)
        );
        assert_eq!(parse_machine("pit=off").unwrap().option_text(), "pit=off");
        assert_eq!(MachineConfig::default().option_text(), "");
    }

    #[test]
    fn debug_exit_is_opt_in_for_a_kernel_and_on_for_the_probe() {
        let kernel = BootSource::Kernel {
            kernel: "vmlinux".into(),
            initrd: None,
            cmdline: String::new(),
        };
        let probe = BootSource::Probe {
            cmdline: String::new(),
            initrd: None,
        };
        let default = MachineConfig::default();
        assert_eq!(default.debug_exit_for(&kernel), Switch::Off);
        assert_eq!(default.debug_exit_for(&probe), Switch::On);
        let on = parse_machine("debug-exit=on").unwrap();
        assert_eq!(on.debug_exit_for(&kernel), Switch::On);
        assert_eq!(on.option_text(), "debug-exit=on");
        let off = parse_machine("pit=on,debug-exit=off").unwrap();
        assert_eq!(off.debug_exit_for(&probe), Switch::Off);
        assert_eq!(off.option_text(), "pit=on,debug-exit=off");
        assert_eq!(
            err("debug-exit=2"),
            "--machine: debug-exit='2' is not on or off"
        );
    }

    #[test]
    fn virtio_cmdline_is_opt_in() {
        assert!(!MachineConfig::default().virtio_cmdline_on());
        let on = parse_machine("virtio-cmdline=on").unwrap();
        assert!(on.virtio_cmdline_on());
        assert_eq!(on.option_text(), "virtio-cmdline=on");
        assert!(!parse_machine("virtio-cmdline=off")
            .unwrap()
            .virtio_cmdline_on());
        assert_eq!(
            err("virtio-cmdline=1"),
            "--machine: virtio-cmdline='1' is not on or off"
        );
    }

    #[test]
    fn errors_name_option_value_and_rule() {
        assert_eq!(err("pit=maybe"), "--machine: pit='maybe' is not on or off");
        assert_eq!(
            err("hpet=off"),
            "--machine: unknown option 'hpet' (expected pit, debug-exit, virtio-cmdline)"
        );
        assert_eq!(
            err("microvm"),
            "--machine: 'microvm' is not key=value (rvmm has one machine type; give its options: pit, debug-exit, virtio-cmdline)"
        );
        assert_eq!(err("pit=on,"), "--machine: empty item in 'pit=on,'");
        assert_eq!(err(""), "--machine: empty item in ''");
    }

    #[test]
    fn default_follows_the_guest() {
        let probe = BootSource::Probe {
            cmdline: String::new(),
            initrd: None,
        };
        let kernel = BootSource::Kernel {
            kernel: "/k".into(),
            initrd: None,
            cmdline: String::new(),
        };
        let default = MachineConfig::default();
        assert_eq!(default.pit_for(&probe), Switch::Off);
        assert_eq!(default.pit_for(&kernel), Switch::On);
        let on = parse_machine("pit=on").unwrap();
        assert_eq!(on.pit_for(&probe), Switch::On);
        let off = parse_machine("pit=off").unwrap();
        assert_eq!(off.pit_for(&kernel), Switch::Off);
    }
}
