//! Where the VM's threads may run, as the user asked at start: `--vcpu-pin VCPU=CPULIST`
//! (repeatable, libvirt's `<vcpupin vcpu= cpuset=>`), `--cpuset CPULIST` (the whole VM, like
//! `taskset` or libvirt's `<vcpu cpuset=>`) and `--emulator-pin CPULIST` (every thread that is
//! not a vCPU, libvirt's `<emulatorpin>`). CPU lists use the kernel's syntax (`util::cpulist`).
//!
//! Only the grammar and the guest-side rules (a vCPU pinned once, and existing) live here;
//! whether the host CPUs exist, are online and allowed is checked against the host by
//! `vcpu::affinity` when the VM is built.

use thiserror::Error;

use crate::util::cpulist::parse_cpulist;

/// One `--vcpu-pin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuPin {
    pub vcpu: u32,
    /// Host CPUs, sorted and distinct.
    pub cpus: Vec<u32>,
}

/// Thread placement for the whole VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinningConfig {
    /// Per-vCPU pins, sorted by vCPU.
    pub vcpus: Vec<VcpuPin>,
    /// Every thread of the VM, unless a more specific pin applies.
    pub cpuset: Option<Vec<u32>>,
    /// Every thread that is not a vCPU (the main loop, the QMP server).
    pub emulator: Option<Vec<u32>>,
}

/// Bad pinning options.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PinningError {
    #[error("--vcpu-pin: \"{value}\": expected VCPU=CPULIST (e.g. 0=2 or 1=4-7,^5)")]
    MissingEquals { value: String },
    #[error("--vcpu-pin: \"{value}\": vCPU \"{vcpu}\" is not a decimal vCPU number")]
    BadVcpu { value: String, vcpu: String },
    #[error("{option}: \"{value}\": {error}")]
    BadList {
        option: &'static str,
        value: String,
        error: crate::util::cpulist::CpulistError,
    },
    #[error("--vcpu-pin: vCPU {vcpu} is pinned twice (\"{first}\" and \"{second}\")")]
    Duplicate {
        vcpu: u32,
        first: String,
        second: String,
    },
    #[error(
        "--vcpu-pin: \"{value}\": vCPU {vcpu} does not exist (a VM has at most {max} vCPUs)",
        max = crate::config::smp::MAX_VCPUS
    )]
    AboveMaxVcpus { value: String, vcpu: u32 },
    #[error("--vcpu-pin: vCPU {vcpu} does not exist (--smp gives vCPUs 0-{last})")]
    NoSuchVcpu { vcpu: u32, last: u32 },
}

/// Parses `VCPU=CPULIST`.
pub fn parse_vcpu_pin(value: &str) -> Result<VcpuPin, PinningError> {
    let (vcpu, list) = value
        .split_once('=')
        .ok_or_else(|| PinningError::MissingEquals {
            value: value.to_string(),
        })?;
    let vcpu_text = vcpu.trim();
    if vcpu_text.is_empty() || !vcpu_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PinningError::BadVcpu {
            value: value.to_string(),
            vcpu: vcpu_text.to_string(),
        });
    }
    let vcpu = vcpu_text
        .parse::<u32>()
        .map_err(|_| PinningError::BadVcpu {
            value: value.to_string(),
            vcpu: vcpu_text.to_string(),
        })?;
    // Checked before the list is read: at most MAX_VCPUS pins can be held at once.
    if vcpu >= crate::config::smp::MAX_VCPUS {
        return Err(PinningError::AboveMaxVcpus {
            value: value.to_string(),
            vcpu,
        });
    }
    let cpus = parse_cpulist(list).map_err(|error| PinningError::BadList {
        option: "--vcpu-pin",
        value: value.to_string(),
        error,
    })?;
    Ok(VcpuPin { vcpu, cpus })
}

/// Parses a plain CPU list option (`--cpuset`, `--emulator-pin`).
pub fn parse_cpus(option: &'static str, value: &str) -> Result<Vec<u32>, PinningError> {
    parse_cpulist(value).map_err(|error| PinningError::BadList {
        option,
        value: value.to_string(),
        error,
    })
}

impl PinningConfig {
    /// Builds the configuration from the raw option values.
    pub fn parse(
        vcpu_pins: &[String],
        cpuset: Option<&str>,
        emulator: Option<&str>,
    ) -> Result<Self, PinningError> {
        let mut vcpus: Vec<(VcpuPin, &String)> = Vec::new();
        for text in vcpu_pins {
            let pin = parse_vcpu_pin(text)?;
            if let Some((_, first)) = vcpus.iter().find(|(p, _)| p.vcpu == pin.vcpu) {
                return Err(PinningError::Duplicate {
                    vcpu: pin.vcpu,
                    first: (*first).clone(),
                    second: text.clone(),
                });
            }
            vcpus.push((pin, text));
        }
        let mut vcpus: Vec<VcpuPin> = vcpus.into_iter().map(|(p, _)| p).collect();
        vcpus.sort_by_key(|p| p.vcpu);
        Ok(PinningConfig {
            vcpus,
            cpuset: cpuset.map(|v| parse_cpus("--cpuset", v)).transpose()?,
            emulator: emulator
                .map(|v| parse_cpus("--emulator-pin", v))
                .transpose()?,
        })
    }

    /// Checks every pinned vCPU exists among `maxcpus` vCPU slots.
    pub fn validate(&self, maxcpus: u32) -> Result<(), PinningError> {
        match self.vcpus.iter().find(|p| p.vcpu >= maxcpus) {
            Some(p) => Err(PinningError::NoSuchVcpu {
                vcpu: p.vcpu,
                last: maxcpus.saturating_sub(1),
            }),
            None => Ok(()),
        }
    }

    /// The pin for vCPU `index`: its `--vcpu-pin`, else `--cpuset`, else none.
    pub fn for_vcpu(&self, index: u32) -> Option<&[u32]> {
        self.vcpus
            .iter()
            .find(|p| p.vcpu == index)
            .map(|p| p.cpus.as_slice())
            .or(self.cpuset.as_deref())
    }

    /// The pin for the emulator threads: `--emulator-pin`, else `--cpuset`, else none.
    pub fn for_emulator(&self) -> Option<&[u32]> {
        self.emulator.as_deref().or(self.cpuset.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_and_orders_pins() {
        let p =
            PinningConfig::parse(&strings(&["1=4-7,^5", "0=2"]), Some("0-7"), Some("0")).unwrap();
        assert_eq!(
            p.vcpus,
            vec![
                VcpuPin {
                    vcpu: 0,
                    cpus: vec![2]
                },
                VcpuPin {
                    vcpu: 1,
                    cpus: vec![4, 6, 7]
                }
            ]
        );
        assert_eq!(p.cpuset, Some((0..8).collect()));
        assert_eq!(p.emulator, Some(vec![0]));
        assert_eq!(p.for_vcpu(1), Some(&[4, 6, 7][..]));
        assert_eq!(p.for_vcpu(2), Some(&(0..8).collect::<Vec<_>>()[..]));
        assert_eq!(p.for_emulator(), Some(&[0][..]));
        let none = PinningConfig::default();
        assert_eq!(none.for_vcpu(0), None);
        assert_eq!(none.for_emulator(), None);
    }

    #[test]
    fn errors_name_option_value_and_rule() {
        let err = |pins: &[&str], cpuset: Option<&str>| {
            PinningConfig::parse(&strings(pins), cpuset, None)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&["0"], None),
            "--vcpu-pin: \"0\": expected VCPU=CPULIST (e.g. 0=2 or 1=4-7,^5)"
        );
        assert_eq!(
            err(&["x=1"], None),
            "--vcpu-pin: \"x=1\": vCPU \"x\" is not a decimal vCPU number"
        );
        assert_eq!(
            err(&["=1"], None),
            "--vcpu-pin: \"=1\": vCPU \"\" is not a decimal vCPU number"
        );
        assert_eq!(
            err(&["0=3-1"], None),
            "--vcpu-pin: \"0=3-1\": CPU list \"3-1\": bad token \"3-1\": range start 3 is above its end 1"
        );
        assert_eq!(err(&["0="], None), "--vcpu-pin: \"0=\": empty CPU list");
        assert_eq!(
            err(&["0=1", "0=2"], None),
            "--vcpu-pin: vCPU 0 is pinned twice (\"0=1\" and \"0=2\")"
        );
        assert_eq!(
            err(&[], Some("a")),
            "--cpuset: \"a\": CPU list \"a\": bad token \"a\": \"a\" is not a decimal CPU number"
        );
        assert_eq!(
            PinningConfig::parse(&[], None, Some(""))
                .unwrap_err()
                .to_string(),
            "--emulator-pin: \"\": empty CPU list"
        );
    }

    #[test]
    fn pinned_vcpus_must_exist() {
        let p = PinningConfig::parse(&strings(&["3=0"]), None, None).unwrap();
        assert_eq!(p.validate(4), Ok(()));
        assert_eq!(
            p.validate(2).unwrap_err().to_string(),
            "--vcpu-pin: vCPU 3 does not exist (--smp gives vCPUs 0-1)"
        );
        // Past the largest possible VM: refused as the option is read, before its list.
        for vcpu in ["4096", "4294967295"] {
            let text = format!("{vcpu}=0-8191");
            assert_eq!(
                PinningConfig::parse(&strings(&[text.as_str()]), None, None)
                    .unwrap_err()
                    .to_string(),
                format!(
                    "--vcpu-pin: \"{text}\": vCPU {vcpu} does not exist (a VM has at most 4096 \
                     vCPUs)"
                )
            );
        }
        assert_eq!(
            PinningConfig::parse(&strings(&["4294967296=0"]), None, None)
                .unwrap_err()
                .to_string(),
            "--vcpu-pin: \"4294967296=0\": vCPU \"4294967296\" is not a decimal vCPU number"
        );
    }
}
