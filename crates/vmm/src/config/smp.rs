//! The `--smp` front end: QEMU 7.2's `-smp` grammar and its rules for filling in omitted
//! topology values, for the current pc/q35 machine types, plus the KVM vCPU limits.
//!
//! `--smp N[,maxcpus=M][,sockets=S][,dies=D][,cores=C][,threads=T]` (the first item may
//! also be written `cpus=N`). Values are resolved exactly as QEMU 7.2's
//! `machine_parse_smp_config()` (hw/core/machine-smp.c) does with `prefer_sockets` off:
//! cores are computed before sockets, threads last, `maxcpus` defaults to `cpus` and
//! `cpus` to `maxcpus`, then `sockets * dies * cores * threads` must equal `maxcpus` and
//! `cpus` must not exceed it. The KVM checks follow `kvm_init()` in accel/kvm/kvm-all.c.
//! This module owns text → [`SmpConfig`]; APIC IDs and CPUID live in `cpu::topology`,
//! which takes the counts through [`SmpConfig::topology`].

use thiserror::Error;

use crate::cpu::topology::{CpuTopology, TopologyCounts};

/// The most vCPU slots (`maxcpus`) rvmm accepts: 4096, the largest `KVM_MAX_VCPUS` an x86
/// Linux kernel can be built with (`CONFIG_KVM_MAX_NR_VCPUS`, 1024 by default, at most
/// 4096), and QEMU 9's q35 limit. Checked when the text is read, before anything is sized
/// by the count; the host's own `KVM_CAP_MAX_VCPUS` is checked when the VM is built.
pub const MAX_VCPUS: u32 = 4096;

/// The keys `--smp` accepts, in the order QEMU documents them.
pub const SMP_KEYS: [&str; 6] = ["cpus", "maxcpus", "sockets", "dies", "cores", "threads"];

/// Errors from parsing or validating `--smp`; each names the option, the values and the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmpError {
    #[error("--smp: {key} '{value}' is not a number")]
    NotANumber { key: &'static str, value: String },
    #[error("--smp: {key} '{value}' is too large (at most {max})", max = u32::MAX)]
    TooLarge { key: &'static str, value: String },
    #[error("--smp: {key} (0) must be greater than zero")]
    Zero { key: &'static str },
    #[error("--smp: unknown key '{key}' (expected cpus, maxcpus, sockets, dies, cores, threads)")]
    UnknownKey { key: String },
    #[error("--smp: '{key}' has no value (write {key}=N)")]
    MissingValue { key: String },
    #[error("--smp: '{item}' is not key=value (only the first item may be a bare cpu count)")]
    BareValue { item: String },
    #[error("--smp: empty item in '{text}'")]
    EmptyItem { text: String },
    #[error(
        "--smp: sockets ({sockets}) * dies ({dies}) * cores ({cores}) * threads ({threads}) \
         = {product} does not equal maxcpus ({maxcpus})"
    )]
    ProductMismatch {
        sockets: u32,
        dies: u32,
        cores: u32,
        threads: u32,
        product: u128,
        maxcpus: u32,
    },
    #[error(
        "--smp: sockets ({sockets}) * dies ({dies}) * cores ({cores}) * threads ({threads}) \
         = {product} exceeds the maximum of {MAX_VCPUS} vCPUs (the largest KVM_MAX_VCPUS of \
         x86 Linux)"
    )]
    ProductTooLarge {
        sockets: u32,
        dies: u32,
        cores: u32,
        threads: u32,
        product: u128,
    },
    #[error(
        "--smp: {key} ({value}) exceeds the maximum of {MAX_VCPUS} vCPUs (the largest \
         KVM_MAX_VCPUS of x86 Linux)"
    )]
    TooManyVcpus { key: &'static str, value: u32 },
    #[error("--smp: cpus ({cpus}) must not exceed maxcpus ({maxcpus})")]
    CpusExceedMaxcpus { cpus: u32, maxcpus: u32 },
    #[error(
        "--smp: number of {what} cpus requested ({requested}) exceeds the maximum cpus \
         supported by KVM ({limit})"
    )]
    ExceedsKvmMax {
        what: &'static str,
        requested: u32,
        limit: u32,
    },
}

/// The `--smp` values as the user gave them: `None` for an omitted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmpOptions {
    pub cpus: Option<u32>,
    pub maxcpus: Option<u32>,
    pub sockets: Option<u32>,
    pub dies: Option<u32>,
    pub cores: Option<u32>,
    pub threads: Option<u32>,
}

/// A resolved, consistent vCPU topology: every count is at least 1,
/// `sockets * dies * cores * threads == maxcpus` and `cpus <= maxcpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmpConfig {
    /// vCPUs present at boot.
    pub cpus: u32,
    /// vCPU slots, present plus hot-pluggable.
    pub maxcpus: u32,
    pub sockets: u32,
    /// Dies per socket.
    pub dies: u32,
    /// Cores per die.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

impl Default for SmpConfig {
    /// QEMU's default for pc/q35 without `-smp`: one vCPU (`mc->default_cpus` = 1).
    fn default() -> Self {
        SmpConfig {
            cpus: 1,
            maxcpus: 1,
            sockets: 1,
            dies: 1,
            cores: 1,
            threads: 1,
        }
    }
}

/// Parses one number as QEMU's `qemu_strtou64(.., base 0)` reads it: decimal, `0x` hex,
/// or a leading `0` for octal (so `010` is 8, as in QEMU).
fn parse_number(key: &'static str, text: &str) -> Result<u32, SmpError> {
    let not_a_number = || SmpError::NotANumber {
        key,
        value: text.to_string(),
    };
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(not_a_number());
    }
    u32::from_str_radix(digits, radix).map_err(|_| SmpError::TooLarge {
        key,
        value: text.to_string(),
    })
}

fn key_slot<'a>(
    opts: &'a mut SmpOptions,
    key: &str,
) -> Option<(&'static str, &'a mut Option<u32>)> {
    Some(match key {
        "cpus" => ("cpus", &mut opts.cpus),
        "maxcpus" => ("maxcpus", &mut opts.maxcpus),
        "sockets" => ("sockets", &mut opts.sockets),
        "dies" => ("dies", &mut opts.dies),
        "cores" => ("cores", &mut opts.cores),
        "threads" => ("threads", &mut opts.threads),
        _ => return None,
    })
}

impl SmpOptions {
    /// Tokenizes `--smp` text. As with QEMU's QemuOpts, the first item may be a bare
    /// number meaning `cpus=`, a repeated key keeps its last value, one trailing comma is
    /// accepted and an empty text means "all omitted".
    pub fn parse(text: &str) -> Result<SmpOptions, SmpError> {
        let mut opts = SmpOptions::default();
        if text.is_empty() {
            return Ok(opts);
        }
        let body = text.strip_suffix(',').unwrap_or(text);
        for (position, item) in body.split(',').enumerate() {
            if item.is_empty() {
                return Err(SmpError::EmptyItem {
                    text: text.to_string(),
                });
            }
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key, value),
                None if position == 0 => ("cpus", item),
                None if SMP_KEYS.contains(&item) => {
                    return Err(SmpError::MissingValue {
                        key: item.to_string(),
                    })
                }
                None => {
                    return Err(SmpError::BareValue {
                        item: item.to_string(),
                    })
                }
            };
            let Some((name, slot)) = key_slot(&mut opts, key) else {
                return Err(SmpError::UnknownKey {
                    key: key.to_string(),
                });
            };
            *slot = Some(parse_number(name, value)?);
        }
        Ok(opts)
    }

    /// Fills in omitted values and checks consistency, as QEMU 7.2's
    /// `machine_parse_smp_config()` does for pc/q35 machines (`prefer_sockets` false,
    /// `dies_supported` true). QEMU 7.2 only warns about an explicit 0 ("Deprecated CPU
    /// topology (considered invalid)") and treats it as omitted; QEMU 9.0 refuses it, and
    /// so do we.
    pub fn resolve(&self) -> Result<SmpConfig, SmpError> {
        let given = [
            ("cpus", self.cpus),
            ("maxcpus", self.maxcpus),
            ("sockets", self.sockets),
            ("dies", self.dies),
            ("cores", self.cores),
            ("threads", self.threads),
        ];
        if let Some((key, _)) = given.iter().find(|(_, value)| *value == Some(0)) {
            return Err(SmpError::Zero { key });
        }

        // Computed in u128: a product of four u32 factors cannot wrap there (QEMU uses
        // `unsigned`, which wraps to 0 and then divides by it). Every quotient is at most
        // `maxcpus`, a u32.
        let dies = u128::from(self.dies.unwrap_or(1));
        let mut sockets = self.sockets.map_or(0, u128::from);
        let mut cores = self.cores.map_or(0, u128::from);
        let mut threads = self.threads.map_or(0, u128::from);
        let mut maxcpus = self.maxcpus.map_or(0, u128::from);
        let cpus = self.cpus.map_or(0, u128::from);

        if cpus == 0 && maxcpus == 0 {
            sockets = sockets.max(1);
            cores = cores.max(1);
            threads = threads.max(1);
        } else {
            if maxcpus == 0 {
                maxcpus = cpus;
            }
            // "prefer cores over sockets since 6.2"; every divisor is a product of counts
            // of at least 1, so never 0.
            if cores == 0 {
                sockets = sockets.max(1);
                threads = threads.max(1);
                cores = maxcpus / (sockets * dies * threads);
            } else if sockets == 0 {
                threads = threads.max(1);
                sockets = maxcpus / (dies * cores * threads);
            }
            // "try to calculate omitted threads at last"
            if threads == 0 {
                threads = maxcpus / (sockets * dies * cores).max(1);
            }
        }

        // Every factor is user-given (u32) or a quotient of a u32, so fits in u32.
        let narrow = |v: u128| u32::try_from(v).unwrap_or(u32::MAX);
        let product = sockets * dies * cores * threads;
        if maxcpus == 0 {
            if product > u128::from(MAX_VCPUS) {
                return Err(SmpError::ProductTooLarge {
                    sockets: narrow(sockets),
                    dies: narrow(dies),
                    cores: narrow(cores),
                    threads: narrow(threads),
                    product,
                });
            }
            maxcpus = product;
        }
        let cpus = if cpus == 0 { maxcpus } else { cpus };

        if product != maxcpus {
            return Err(SmpError::ProductMismatch {
                sockets: narrow(sockets),
                dies: narrow(dies),
                cores: narrow(cores),
                threads: narrow(threads),
                product,
                maxcpus: narrow(maxcpus),
            });
        }
        if maxcpus < cpus {
            return Err(SmpError::CpusExceedMaxcpus {
                cpus: narrow(cpus),
                maxcpus: narrow(maxcpus),
            });
        }
        if maxcpus > u128::from(MAX_VCPUS) {
            // Name what the user wrote: maxcpus, else cpus (maxcpus defaulted to it).
            let key = if self.maxcpus.is_some() {
                "maxcpus"
            } else {
                "cpus"
            };
            return Err(SmpError::TooManyVcpus {
                key,
                value: narrow(maxcpus),
            });
        }
        Ok(SmpConfig {
            cpus: narrow(cpus),
            maxcpus: narrow(maxcpus),
            sockets: narrow(sockets),
            dies: narrow(dies),
            cores: narrow(cores),
            threads: narrow(threads),
        })
    }
}

/// What `KVM_CHECK_EXTENSION` reported: pass the raw results, 0 meaning "cap absent".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvmVcpuLimits {
    /// `KVM_CAP_MAX_VCPUS`, the hard limit.
    pub max_vcpus: u32,
    /// `KVM_CAP_NR_VCPUS`, the recommended limit.
    pub nr_vcpus: u32,
}

impl KvmVcpuLimits {
    /// The recommended limit with QEMU's fallback (`kvm_recommended_vcpus()`: 4 when absent).
    pub fn recommended(&self) -> u32 {
        if self.nr_vcpus == 0 {
            4
        } else {
            self.nr_vcpus
        }
    }

    /// The hard limit with QEMU's fallback (`kvm_max_vcpus()`: the recommended one).
    pub fn maximum(&self) -> u32 {
        if self.max_vcpus == 0 {
            self.recommended()
        } else {
            self.max_vcpus
        }
    }
}

impl SmpConfig {
    /// Parses and resolves `--smp` text (see [`SmpOptions::parse`] and [`SmpOptions::resolve`]).
    pub fn parse(text: &str) -> Result<SmpConfig, SmpError> {
        SmpOptions::parse(text)?.resolve()
    }

    /// The topology these counts describe (APIC IDs, CPUID topology leaves).
    pub fn topology(&self) -> CpuTopology {
        CpuTopology::new(TopologyCounts {
            sockets: self.sockets,
            dies: self.dies,
            cores: self.cores,
            threads: self.threads,
            max_cpus: self.maxcpus,
        })
    }

    /// vCPU slots per socket: `dies * cores * threads` (saturating: a resolved
    /// configuration keeps it at most [`MAX_VCPUS`]).
    pub fn threads_per_socket(&self) -> u32 {
        self.dies
            .saturating_mul(self.cores)
            .saturating_mul(self.threads)
    }

    /// Checks the topology against KVM's limits as QEMU's `kvm_init()` does: first the
    /// present cpus ("SMP"), then maxcpus ("hotpluggable"); above the recommended limit
    /// is a warning, above the maximum an error. `max_vcpus` and `nr_vcpus` are the raw
    /// `KVM_CAP_MAX_VCPUS` / `KVM_CAP_NR_VCPUS` results (0 = absent, QEMU's fallbacks apply).
    /// Returns the warnings, worded as QEMU's.
    pub fn validate_limits(&self, max_vcpus: u32, nr_vcpus: u32) -> Result<Vec<String>, SmpError> {
        let limits = KvmVcpuLimits {
            max_vcpus,
            nr_vcpus,
        };
        let (soft, hard) = (limits.recommended(), limits.maximum());
        let mut warnings = Vec::new();
        for (what, requested) in [("SMP", self.cpus), ("hotpluggable", self.maxcpus)] {
            if requested > soft {
                warnings.push(format!(
                    "Number of {what} cpus requested ({requested}) exceeds the recommended \
                     cpus supported by KVM ({soft})"
                ));
                if requested > hard {
                    return Err(SmpError::ExceedsKvmMax {
                        what,
                        requested,
                        limit: hard,
                    });
                }
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (cpus, maxcpus, sockets, dies, cores, threads)
    type Counts = (u32, u32, u32, u32, u32, u32);

    fn resolved(text: &str) -> Counts {
        let c = SmpConfig::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        (c.cpus, c.maxcpus, c.sockets, c.dies, c.cores, c.threads)
    }

    /// Each expected tuple (cpus, maxcpus, sockets, dies, cores, threads) was read from
    /// QEMU 7.2.22 (`-M pc -smp TEXT -S -qmp stdio`, query-hotpluggable-cpus: slot count,
    /// present count and the largest socket/die/core/thread id + 1).
    #[test]
    fn valid_topologies_match_qemu_7_2() {
        let table: &[(&str, Counts)] = &[
            ("", (1, 1, 1, 1, 1, 1)),
            ("1", (1, 1, 1, 1, 1, 1)),
            ("4", (4, 4, 1, 1, 4, 1)),
            ("cpus=4", (4, 4, 1, 1, 4, 1)),
            ("4,", (4, 4, 1, 1, 4, 1)),
            ("8,sockets=2", (8, 8, 2, 1, 4, 1)),
            ("8,cores=2", (8, 8, 4, 1, 2, 1)),
            ("8,threads=2", (8, 8, 1, 1, 4, 2)),
            ("8,sockets=2,cores=2", (8, 8, 2, 1, 2, 2)),
            ("8,sockets=2,threads=2", (8, 8, 2, 1, 2, 2)),
            ("8,cores=2,threads=2", (8, 8, 2, 1, 2, 2)),
            ("8,sockets=2,cores=2,threads=2", (8, 8, 2, 1, 2, 2)),
            ("8,maxcpus=16", (8, 16, 1, 1, 16, 1)),
            ("8,maxcpus=16,sockets=2", (8, 16, 2, 1, 8, 1)),
            ("8,maxcpus=16,cores=4", (8, 16, 4, 1, 4, 1)),
            ("8,maxcpus=16,threads=2", (8, 16, 1, 1, 8, 2)),
            ("maxcpus=12", (12, 12, 1, 1, 12, 1)),
            ("maxcpus=12,sockets=3", (12, 12, 3, 1, 4, 1)),
            ("sockets=2", (2, 2, 2, 1, 1, 1)),
            ("cores=4", (4, 4, 1, 1, 4, 1)),
            ("threads=2", (2, 2, 1, 1, 1, 2)),
            ("sockets=2,cores=3,threads=2", (12, 12, 2, 1, 3, 2)),
            ("sockets=2,dies=2,cores=2", (8, 8, 2, 2, 2, 1)),
            ("dies=2,threads=2", (4, 4, 1, 2, 1, 2)),
            ("8,dies=2", (8, 8, 1, 2, 4, 1)),
            ("8,sockets=2,dies=2", (8, 8, 2, 2, 2, 1)),
            ("8,sockets=2,dies=2,cores=2,threads=1", (8, 8, 2, 2, 2, 1)),
            ("6,sockets=1,cores=3,threads=2", (6, 6, 1, 1, 3, 2)),
            ("6,maxcpus=12,dies=3,threads=2", (6, 12, 1, 3, 2, 2)),
            ("16,sockets=2,threads=2", (16, 16, 2, 1, 4, 2)),
            ("12,sockets=2,dies=3", (12, 12, 2, 3, 2, 1)),
            ("12,sockets=2,cores=2", (12, 12, 2, 1, 2, 3)),
            ("5,maxcpus=12,sockets=2,threads=3", (5, 12, 2, 1, 2, 3)),
            ("cores=3,threads=2,maxcpus=12", (12, 12, 2, 1, 3, 2)),
            ("0x10", (16, 16, 1, 1, 16, 1)),
            ("010", (8, 8, 1, 1, 8, 1)),
            ("4,cpus=6", (6, 6, 1, 1, 6, 1)),
            ("cpus=4,cpus=6", (6, 6, 1, 1, 6, 1)),
        ];
        for (text, expected) in table {
            assert_eq!(resolved(text), *expected, "--smp {text}");
        }
    }

    /// The rule and values of each error match QEMU 7.2's message for the same text.
    #[test]
    fn invalid_topologies_name_the_rule_and_values() {
        let table: &[(&str, &str)] = &[
            (
                "8,sockets=2,cores=3,threads=2",
                "--smp: sockets (2) * dies (1) * cores (3) * threads (2) = 12 does not equal maxcpus (8)",
            ),
            (
                "4,sockets=8",
                "--smp: sockets (8) * dies (1) * cores (0) * threads (1) = 0 does not equal maxcpus (4)",
            ),
            (
                "10,sockets=3",
                "--smp: sockets (3) * dies (1) * cores (3) * threads (1) = 9 does not equal maxcpus (10)",
            ),
            (
                "7,cores=2",
                "--smp: sockets (3) * dies (1) * cores (2) * threads (1) = 6 does not equal maxcpus (7)",
            ),
            (
                "2,sockets=2,cores=2",
                "--smp: sockets (2) * dies (1) * cores (2) * threads (0) = 0 does not equal maxcpus (2)",
            ),
            (
                "3,threads=2",
                "--smp: sockets (1) * dies (1) * cores (1) * threads (2) = 2 does not equal maxcpus (3)",
            ),
            ("9,maxcpus=8", "--smp: cpus (9) must not exceed maxcpus (8)"),
            ("4,maxcpus=2", "--smp: cpus (4) must not exceed maxcpus (2)"),
            ("foo", "--smp: cpus 'foo' is not a number"),
            ("4,sockets=two", "--smp: sockets 'two' is not a number"),
            ("4,cores=", "--smp: cores '' is not a number"),
            ("08", "--smp: cpus '08' is not a number"),
            ("-1", "--smp: cpus '-1' is not a number"),
            ("4294967296", "--smp: cpus '4294967296' is too large (at most 4294967295)"),
            ("0", "--smp: cpus (0) must be greater than zero"),
            ("4,sockets=0", "--smp: sockets (0) must be greater than zero"),
            ("cpus=4,maxcpus=0", "--smp: maxcpus (0) must be greater than zero"),
            (
                "4,sokets=2",
                "--smp: unknown key 'sokets' (expected cpus, maxcpus, sockets, dies, cores, threads)",
            ),
            (
                "4,clusters=1",
                "--smp: unknown key 'clusters' (expected cpus, maxcpus, sockets, dies, cores, threads)",
            ),
            ("4,sockets", "--smp: 'sockets' has no value (write sockets=N)"),
            (
                "sockets=2,4",
                "--smp: '4' is not key=value (only the first item may be a bare cpu count)",
            ),
            ("4,,sockets=1", "--smp: empty item in '4,,sockets=1'"),
        ];
        for (text, message) in table {
            let err = SmpConfig::parse(text).expect_err(text);
            assert_eq!(err.to_string(), *message, "--smp {text}");
        }
    }

    #[test]
    fn huge_factors_do_not_wrap() {
        let err = SmpConfig::parse("sockets=65536,cores=65536,threads=2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--smp: sockets (65536) * dies (1) * cores (65536) * threads (2) = 8589934592 \
             exceeds the maximum of 4096 vCPUs (the largest KVM_MAX_VCPUS of x86 Linux)"
        );
        let err = SmpConfig::parse("8,sockets=65536,cores=65536,threads=2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--smp: sockets (65536) * dies (1) * cores (65536) * threads (2) = 8589934592 \
             does not equal maxcpus (8)"
        );
    }

    /// Products of u32 factors that wrap u32 and u64 (2^32 split across the factors, all
    /// four at u32::MAX): an error naming the product, never a wrap to 0 (QEMU's `unsigned`
    /// arithmetic divides by it), an overflow panic or a topology of 0 CPUs.
    #[test]
    fn topology_products_beyond_u64_are_errors() {
        let max = u32::MAX;
        let table: &[(String, &str)] = &[
            (
                format!("sockets={max},dies={max},cores={max},threads={max}"),
                "--smp: sockets (4294967295) * dies (4294967295) * cores (4294967295) * threads \
                 (4294967295) = 340282366604025813516997721482669850625 exceeds the maximum of \
                 4096 vCPUs (the largest KVM_MAX_VCPUS of x86 Linux)",
            ),
            (
                "sockets=65536,dies=65536,cores=65536,threads=65536".to_string(),
                "--smp: sockets (65536) * dies (65536) * cores (65536) * threads (65536) = \
                 18446744073709551616 exceeds the maximum of 4096 vCPUs (the largest \
                 KVM_MAX_VCPUS of x86 Linux)",
            ),
            // 2^32 * 2^32 wraps u64 to 0: the cores quotient would divide by zero.
            (
                "4,sockets=65536,dies=65536,threads=4294967295".to_string(),
                "--smp: sockets (65536) * dies (65536) * cores (0) * threads (4294967295) = 0 \
                 does not equal maxcpus (4)",
            ),
            (
                format!("{max},sockets=65536,dies=65536,cores=65536"),
                "--smp: sockets (65536) * dies (65536) * cores (65536) * threads (0) = 0 does \
                 not equal maxcpus (4294967295)",
            ),
            (
                "maxcpus=4294967295".to_string(),
                "--smp: maxcpus (4294967295) exceeds the maximum of 4096 vCPUs (the largest \
                 KVM_MAX_VCPUS of x86 Linux)",
            ),
            (
                "4097".to_string(),
                "--smp: cpus (4097) exceeds the maximum of 4096 vCPUs (the largest \
                 KVM_MAX_VCPUS of x86 Linux)",
            ),
            (
                "2,maxcpus=65536,sockets=65536".to_string(),
                "--smp: maxcpus (65536) exceeds the maximum of 4096 vCPUs (the largest \
                 KVM_MAX_VCPUS of x86 Linux)",
            ),
            (
                "18446744073709551615".to_string(),
                "--smp: cpus '18446744073709551615' is too large (at most 4294967295)",
            ),
            (
                "maxcpus=4294967296".to_string(),
                "--smp: maxcpus '4294967296' is too large (at most 4294967295)",
            ),
        ];
        for (text, message) in table {
            let err = SmpConfig::parse(text).expect_err(text);
            assert_eq!(err.to_string(), *message, "--smp {text}");
        }
        let c = SmpConfig::parse("4096,sockets=16,dies=4,threads=2").unwrap();
        assert_eq!((c.maxcpus, c.cores), (4096, 32));
        assert_eq!(c.threads_per_socket(), 256);
    }

    #[test]
    fn kvm_limits_warn_above_recommended_and_fail_above_maximum() {
        let smp = SmpConfig::parse("4,maxcpus=8").unwrap();
        assert_eq!(smp.validate_limits(288, 16).unwrap(), Vec::<String>::new());
        // Wording checked against QEMU 7.2 on this host (KVM_CAP_NR_VCPUS = 2).
        assert_eq!(
            smp.validate_limits(288, 2).unwrap(),
            vec![
                "Number of SMP cpus requested (4) exceeds the recommended cpus supported by KVM (2)",
                "Number of hotpluggable cpus requested (8) exceeds the recommended cpus supported by KVM (2)",
            ]
        );
        assert_eq!(
            smp.validate_limits(6, 2).unwrap_err().to_string(),
            "--smp: number of hotpluggable cpus requested (8) exceeds the maximum cpus supported by KVM (6)"
        );
        assert_eq!(
            smp.validate_limits(3, 2).unwrap_err().to_string(),
            "--smp: number of SMP cpus requested (4) exceeds the maximum cpus supported by KVM (3)"
        );
        // Absent caps: recommended falls back to 4, maximum to the recommended limit.
        assert_eq!(
            smp.validate_limits(0, 0).unwrap_err().to_string(),
            "--smp: number of hotpluggable cpus requested (8) exceeds the maximum cpus supported by KVM (4)"
        );
    }

    #[test]
    fn default_is_one_cpu() {
        assert_eq!(SmpConfig::default(), SmpConfig::parse("").unwrap());
        assert_eq!(
            SmpConfig::parse("2,dies=1,cores=2")
                .unwrap()
                .threads_per_socket(),
            2
        );
    }
}
