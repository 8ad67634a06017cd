//! `rvmm run --domain FILE.xml`: the CPU and memory subset of a libvirt domain XML, mapped
//! onto the same [`VmConfig`] the `rvmm run` flags build, with libvirt's semantics.
//!
//! | libvirt element                                    | VmConfig                                  |
//! |----------------------------------------------------|-------------------------------------------|
//! | `<name>`                                           | `name` (`--name`)                          |
//! | `<memory unit>` (or the sum of `<cell memory>`)    | `memory` (`-m SIZE`)                       |
//! | `<vcpu current cpuset>M</vcpu>`, `<vcpus>`          | `smp.cpus`/`maxcpus`, `pinning.cpuset` (vcpus.rs) |
//! | `<cpu><topology sockets dies cores threads>`       | `smp` (none: `sockets=M,cores=1,threads=1`, as libvirt) |
//! | `<cpu mode='custom'><model>`                       | `cpu.model`                                |
//! | `<cpu mode='host-passthrough'>` / `'maximum'`      | `cpu.model = host` / `max`                 |
//! | `<cpu mode='host-model'>`                          | closest named model + the host's extra features |
//! | `<cpu check>`                                      | `cpu.check`: none → check, partial/full → enforce |
//! | `<feature policy name>`                            | `cpu.changes` (libvirt names → QEMU names by CPUID bit) |
//! | `<features><pmu state>`                            | `cpu.pmu`                                  |
//! | `<cpu><numa><cell id cpus memory memAccess>`       | `numa.nodes` (`--numa node,...`)           |
//! | `<cell><distances><sibling id value>`              | `numa.distances` (`--numa dist,...`)       |
//! | `<numatune><memory>`, `<memnode>`                  | host-nodes and policy of each guest node   |
//! | `<memoryBacking>`                                  | `memory_backing` (hugepages, merge, prealloc, shared) |
//! | `<cputune><vcpupin>`, `<emulatorpin>`              | `pinning` (`--vcpu-pin`, `--emulator-pin`) |
//! | `<cputune><shares>`                                | `cputune.shares` (`--cpu-shares`)          |
//! | `<cputune><period>`, `<quota>`                     | `cputune.vcpu`: each vCPU's group (`--cpu-quota vcpu_period=,vcpu_quota=`) |
//! | `<cputune><global_period>`, `<global_quota>`       | `cputune.global`: the VM's scope (`--cpu-quota global_period=,global_quota=`) |
//! | `<cputune><emulator_period>`, `<emulator_quota>`   | `cputune.emulator` (`--cpu-quota emulator_period=,emulator_quota=`) |
//! | `<memtune><hard_limit unit>` (default KiB)         | `memtune.hard_limit` (`--memory-limit`)    |
//! | `<os><kernel><initrd><cmdline>`                    | `boot` (no kernel: the probe guest, `<cmdline>` its mode) |
//! | `<devices><disk type='file' device='disk'>`         | `disks` (`--disk`; disk.rs)                |
//!
//! Anything else is either ignored with a warning that names it (`domain/devices/disk`), or
//! refused when ignoring it would change what the guest sees. Malformed XML, unknown units
//! and out-of-range values are one error naming the file, line, element and rule.
//!
//! Parsing is pure: the caller passes libvirt's CPU map (for feature names) and the host's
//! KVM CPU support (for `host-model`, `<vendor>` and the `require`/`optional`/`forbid`
//! policies) when it has them; without a host those checks are skipped with a warning.

mod cpu;
mod disk;
mod memory;
mod platform;
mod units;
mod vcpus;

#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use roxmltree::{Document, Node};
use thiserror::Error;

use super::balloon::BalloonConfig;
use super::VmConfig;
use crate::cpu::filter::HostCpuSupport;
use crate::cpu::libvirt_map::LibvirtCpuMap;
use crate::cpu::models::expand::HostIdentity;

/// What the host's KVM offers, for the parts of a domain that depend on the host.
#[derive(Clone, Copy)]
pub struct DomainHost<'a> {
    pub support: &'a HostCpuSupport,
    pub identity: &'a HostIdentity,
}

/// What parsing a domain may consult.
#[derive(Clone, Copy, Default)]
pub struct DomainEnv<'a> {
    /// libvirt's CPU map (feature names); `None` accepts QEMU's names only.
    pub cpu_map: Option<&'a LibvirtCpuMap>,
    /// The host; `None` skips the checks that need it (with a warning).
    pub host: Option<DomainHost<'a>>,
}

/// A parsed domain: the configuration and what was ignored or approximated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub config: VmConfig,
    /// One line per ignored element or approximation, each naming the file, line and
    /// element path.
    pub warnings: Vec<String>,
}

/// Why a domain is not acceptable: one line naming the file, line and element.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("--domain {file}:{line}: not well-formed XML: {message}")]
    Xml {
        file: String,
        line: u32,
        message: String,
    },
    #[error("--domain {file}:{line}: refused before parsing: {rule}")]
    Limit {
        file: String,
        line: u32,
        rule: String,
    },
    #[error("--domain {file}:{line}: {element}: {rule}")]
    Element {
        file: String,
        line: u32,
        /// The element as written, with the attributes that matter (`<memory unit='XB'>`).
        element: String,
        rule: String,
    },
    #[error("--domain {file}: {rule}")]
    Domain { file: String, rule: String },
}

/// Parsing state: the document (for line numbers), the file name and the warnings so far.
pub(super) struct Ctx<'d, 'i> {
    file: &'d str,
    doc: &'d Document<'i>,
    warnings: Vec<String>,
}

/// `<name attr='value' ...>` with those of `attrs` the element has.
pub(super) fn tag(n: Node, attrs: &[&str]) -> String {
    let mut s = format!("<{}", n.tag_name().name());
    for a in attrs {
        if let Some(v) = n.attribute(*a) {
            let _ = write!(s, " {a}='{v}'");
        }
    }
    s.push('>');
    s
}

/// The element children of `n`.
pub(super) fn elements<'d, 'i>(n: Node<'d, 'i>) -> impl Iterator<Item = Node<'d, 'i>> {
    n.children().filter(Node::is_element)
}

/// The element's text, trimmed.
pub(super) fn text<'d>(n: Node<'d, '_>) -> &'d str {
    n.text().unwrap_or("").trim()
}

/// Strips an rvmm option prefix (`--numa: ` or `--numa node,...: `) from a message that
/// applies to the domain element instead.
pub(super) fn strip_option<'m>(message: &'m str, option: &str) -> &'m str {
    match message.strip_prefix(option) {
        Some(rest) if rest.starts_with(": ") => &rest[2..],
        Some(rest) if rest.starts_with(' ') => rest.split_once(": ").map_or(rest, |(_, r)| r),
        _ => message,
    }
}

impl<'d, 'i> Ctx<'d, 'i> {
    fn line(&self, n: Node) -> u32 {
        self.doc.text_pos_at(n.range().start).row
    }

    /// `domain/cpu/numa/cell`.
    fn path(n: Node) -> String {
        let mut names: Vec<&str> = n
            .ancestors()
            .filter(Node::is_element)
            .map(|a| a.tag_name().name())
            .collect();
        names.reverse();
        names.join("/")
    }

    /// An error about element `n` described as `element`.
    pub(super) fn err(&self, n: Node, element: String, rule: impl Into<String>) -> DomainError {
        DomainError::Element {
            file: self.file.to_string(),
            line: self.line(n),
            element,
            rule: rule.into(),
        }
    }

    /// An error about attribute `attr` of `n`.
    pub(super) fn attr_err(&self, n: Node, attr: &str, rule: impl Into<String>) -> DomainError {
        self.err(n, tag(n, &[attr]), rule)
    }

    /// An error about the text of `n`.
    pub(super) fn text_err(&self, n: Node, rule: impl Into<String>) -> DomainError {
        self.err(n, tag(n, &[]), rule)
    }

    /// An error about the whole domain.
    pub(super) fn domain_err(&self, rule: impl Into<String>) -> DomainError {
        DomainError::Domain {
            file: self.file.to_string(),
            rule: rule.into(),
        }
    }

    /// Records a warning about `n`.
    pub(super) fn warn(&mut self, n: Node, message: impl AsRef<str>) {
        let w = format!(
            "--domain {}:{}: {}: {}",
            self.file,
            self.line(n),
            Self::path(n),
            message.as_ref()
        );
        self.warnings.push(w);
    }

    /// Warns that `n` is ignored, and why.
    pub(super) fn ignored(&mut self, n: Node, why: &str) {
        self.warn(n, format!("ignored ({why})"));
    }

    /// Warns about each attribute of `n` not in `known` (namespaced ones are skipped).
    pub(super) fn check_attrs(&mut self, n: Node, known: &[&str]) {
        for a in n.attributes() {
            if a.namespace().is_none() && !known.contains(&a.name()) {
                let w = format!(
                    "--domain {}:{}: {}/@{}: ignored (rvmm does not support this attribute)",
                    self.file,
                    self.line(n),
                    Self::path(n),
                    a.name()
                );
                self.warnings.push(w);
            }
        }
    }

    /// A decimal attribute, if present.
    pub(super) fn attr_u32(&self, n: Node, attr: &str) -> Result<Option<u32>, DomainError> {
        let Some(v) = n.attribute(attr) else {
            return Ok(None);
        };
        self.number(n, attr, v).map(Some)
    }

    /// A required decimal attribute.
    pub(super) fn required_u32(&self, n: Node, attr: &str) -> Result<u32, DomainError> {
        self.attr_u32(n, attr)?
            .ok_or_else(|| self.err(n, tag(n, &[]), format!("the '{attr}' attribute is missing")))
    }

    /// `v` as an unsigned decimal integer; errors name `attr` of `n` (or its text when
    /// `attr` is empty).
    pub(super) fn number(&self, n: Node, attr: &str, v: &str) -> Result<u32, DomainError> {
        let t = v.trim();
        let bad = |rule: String| {
            if attr.is_empty() {
                self.text_err(n, rule)
            } else {
                self.attr_err(n, attr, rule)
            }
        };
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!(
                "'{v}' is not a number (expected an unsigned decimal integer)"
            )));
        }
        t.parse()
            .map_err(|_| bad(format!("{t} is out of range (at most {})", u32::MAX)))
    }

    /// An attribute that must be one of `choices`, if present.
    pub(super) fn attr_choice(
        &self,
        n: Node<'d, 'i>,
        attr: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, DomainError> {
        let Some(v) = n.attribute(attr) else {
            return Ok(None);
        };
        match choices.iter().find(|c| **c == v) {
            Some(c) => Ok(Some(*c)),
            None => Err(self.attr_err(
                n,
                attr,
                format!("unknown value '{v}' (expected {})", choices.join(", ")),
            )),
        }
    }

    /// A CPU or node list attribute in libvirt's syntax (`0-3,^2,8`), if present.
    pub(super) fn attr_list(&self, n: Node, attr: &str) -> Result<Option<Vec<u32>>, DomainError> {
        let Some(v) = n.attribute(attr) else {
            return Ok(None);
        };
        crate::util::cpulist::parse_cpulist(v)
            .map(Some)
            .map_err(|e| self.attr_err(n, attr, e.to_string()))
    }

    /// A size in bytes: the `value_attr` attribute of `n` (`None`: its text) scaled by its
    /// `unit_attr` attribute (default KiB, libvirt's default for memory sizes).
    pub(super) fn size(
        &self,
        n: Node,
        value_attr: Option<&str>,
        unit_attr: &str,
    ) -> Result<u64, DomainError> {
        let value = match value_attr {
            Some(a) => n.attribute(a).ok_or_else(|| {
                self.err(n, tag(n, &[]), format!("the '{a}' attribute is missing"))
            })?,
            None => text(n),
        };
        let unit = n.attribute(unit_attr);
        units::scaled(value, unit, units::KIB).map_err(|e| match e {
            units::ScaleError::NotANumber => {
                let rule =
                    format!("'{value}' is not a number (expected an unsigned decimal integer)");
                match value_attr {
                    Some(a) => self.attr_err(n, a, rule),
                    None => self.text_err(n, rule),
                }
            }
            units::ScaleError::UnknownUnit => self.attr_err(
                n,
                unit_attr,
                format!(
                    "unknown unit '{}' (expected {})",
                    unit.unwrap_or(""),
                    units::UNITS
                ),
            ),
            units::ScaleError::TooLarge => self.err(
                n,
                tag(n, &[value_attr.unwrap_or(""), unit_attr]),
                format!("{value} {} is too large", unit.unwrap_or("KiB")),
            ),
        })
    }
}

/// The top-level elements rvmm maps (each at most once).
#[derive(Default)]
struct TopLevel<'d, 'i> {
    name: Option<Node<'d, 'i>>,
    memory: Option<Node<'d, 'i>>,
    current_memory: Option<Node<'d, 'i>>,
    max_memory: Option<Node<'d, 'i>>,
    memory_backing: Option<Node<'d, 'i>>,
    vcpu: Option<Node<'d, 'i>>,
    vcpus: Option<Node<'d, 'i>>,
    cputune: Option<Node<'d, 'i>>,
    memtune: Option<Node<'d, 'i>>,
    cpu: Option<Node<'d, 'i>>,
    numatune: Option<Node<'d, 'i>>,
    features: Option<Node<'d, 'i>>,
    os: Option<Node<'d, 'i>>,
    devices: Option<Node<'d, 'i>>,
}

fn top_level<'d, 'i>(
    ctx: &mut Ctx<'d, 'i>,
    root: Node<'d, 'i>,
) -> Result<TopLevel<'d, 'i>, DomainError> {
    let mut top = TopLevel::default();
    for child in elements(root) {
        let slot = match child.tag_name().name() {
            "name" => &mut top.name,
            "memory" => &mut top.memory,
            "currentMemory" => &mut top.current_memory,
            "maxMemory" => &mut top.max_memory,
            "memoryBacking" => &mut top.memory_backing,
            "vcpu" => &mut top.vcpu,
            "vcpus" => &mut top.vcpus,
            "cputune" => &mut top.cputune,
            "memtune" => &mut top.memtune,
            "cpu" => &mut top.cpu,
            "numatune" => &mut top.numatune,
            "features" => &mut top.features,
            "os" => &mut top.os,
            "devices" => &mut top.devices,
            _ => {
                platform::other_top_level(ctx, child)?;
                continue;
            }
        };
        if slot.is_some() {
            return Err(ctx.text_err(child, "appears more than once (libvirt allows one)"));
        }
        *slot = Some(child);
    }
    Ok(top)
}

/// Parses domain XML `text` (from `file`, for messages) into a VM configuration.
pub fn parse_domain(text: &str, file: &str, env: &DomainEnv) -> Result<Domain, DomainError> {
    // Size and nesting depth first: the parser recurses per nesting level.
    crate::cpu::xml_limits::check(text).map_err(|e| DomainError::Limit {
        file: file.to_string(),
        line: e.line(),
        rule: e.to_string(),
    })?;
    let doc = Document::parse(text).map_err(|e| {
        // Errors found at the end of the text carry no position.
        let line = match e {
            roxmltree::Error::UnexpectedEndOfStream | roxmltree::Error::UnclosedRootNode => {
                text.lines().count().max(1) as u32
            }
            _ => e.pos().row,
        };
        DomainError::Xml {
            file: file.to_string(),
            line,
            message: e.to_string(),
        }
    })?;
    let mut ctx = Ctx {
        file,
        doc: &doc,
        warnings: Vec::new(),
    };
    let root = doc.root_element();
    if root.tag_name().name() != "domain" {
        return Err(ctx.text_err(root, "the root element must be <domain>"));
    }
    platform::domain_type(&mut ctx, root)?;
    let top = top_level(&mut ctx, root)?;

    let name = match top.name {
        Some(n) => platform::name(&ctx, n)?,
        None => return Err(ctx.domain_err("<domain> has no <name> (libvirt requires one)")),
    };
    let vcpu = vcpus::vcpu(&mut ctx, top.vcpu)?;
    let current = vcpus::vcpus(&mut ctx, top.vcpus, &vcpu)?;
    let smp = cpu::smp(&mut ctx, top.cpu, &vcpu, current)?;
    let pmu = platform::features(&mut ctx, root, top.features)?;
    let cpu_config = cpu::cpu(&mut ctx, top.cpu, pmu, env)?;
    let mut cells = memory::cells(&mut ctx, top.cpu, smp.maxcpus)?;
    let (size, initial_memory) = memory::memory(
        &mut ctx,
        top.memory,
        top.current_memory,
        top.max_memory,
        &cells,
        platform::has_balloon(top.devices),
    )?;
    memory::numatune(&mut ctx, top.numatune, &mut cells)?;
    let backing = memory::backing(&mut ctx, top.memory_backing, &cells, size)?;
    let numa = memory::numa_config(&ctx, top.cpu, &cells, &smp, size)?;
    let (pinning, cputune) = cpu::cputune(&mut ctx, top.cputune, smp.maxcpus, vcpu.cpuset)?;
    let memtune = memory::memtune(&mut ctx, top.memtune, size)?;
    let boot = platform::os(&mut ctx, top.os)?;
    let (nets, balloon) = platform::devices(&mut ctx, top.devices)?;
    crate::config::net::check_unique(&nets).map_err(|e| {
        let rule = e.to_string();
        ctx.domain_err(rule.replace("--net: ", "<interface>: "))
    })?;
    let balloon = balloon.map(|b| BalloonConfig {
        initial_memory,
        ..b
    });
    let disks = disk::disks(&mut ctx, top.devices)?;

    let config = VmConfig {
        name: Some(name),
        boot,
        smp,
        cpu: cpu_config,
        memory: size,
        pinning,
        qmp: None,
        metrics: None,
        memory_backing: backing,
        numa,
        machine: Default::default(),
        cputune,
        memtune,
        cgroup: Default::default(),
        disks,
        nets,
        balloon,
    };
    // The element checks above cover these rules; this is the backstop.
    config
        .validate()
        .map_err(|e| ctx.domain_err(e.to_string()))?;
    Ok(Domain {
        config,
        warnings: ctx.warnings,
    })
}
