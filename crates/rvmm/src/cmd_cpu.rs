//! `rvmm cpu-models`, `rvmm cpu-baseline` and `rvmm cpu-compare`: their arguments and how
//! their results are printed. The work is the library's (`vmm::cpu::availability`,
//! `vmm::cpu::baseline`, `vmm::cpu::hostdesc`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::output::{errln, out, outln};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use serde_json::json;
use vmm::config::cpu::parse_cpu;
use vmm::cpu::availability::{expand_for_host, model_availability, ModelAvailability};
use vmm::cpu::baseline::{baseline, compare, Verdict};
use vmm::cpu::filter::{filter_cpu, HostCpuSupport};
use vmm::cpu::hostdesc::{parse_text, HostCpuDesc};
use vmm::cpu::libvirt_map::{LibvirtCpuMap, LibvirtMapError};
use vmm::cpu::models::expand::HostIdentity;
use vmm::cpu::models::list::{help_text, recognized_flags, EntryKind};
use vmm::cpu::models::{lookup, ModelRef};
use vmm::host::KvmHost;
use vmm::util::file::{read_regular, FileKind};

#[derive(Debug, Args)]
pub struct CpuModelsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print one model's full, unfiltered feature set (MODEL[,+feat][,-feat]... as --cpu).
    #[arg(long, value_name = "MODEL")]
    pub expand: Option<String>,
}

#[derive(Debug, Args)]
pub struct CpuBaselineArgs {
    /// Host CPU descriptions: `rvmm host --cpu-json` output, or libvirt host CPU XML
    /// (`virsh capabilities` / `domcapabilities`; a file may hold several <cpu> elements).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CpuCompareArgs {
    /// The CPU to compare: MODEL[,+feat][,-feat][,feat=on|off], as --cpu.
    #[arg(value_name = "MODEL", allow_hyphen_values = true)]
    pub cpu: String,
    /// The host to compare with (JSON from `rvmm host --cpu-json` or libvirt host CPU XML);
    /// default: this host's KVM.
    #[arg(long, value_name = "FILE")]
    pub host: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The host's KVM, or why it cannot be used (printed as a warning by callers that can do
/// without it).
fn open_kvm() -> Result<KvmHost, String> {
    KvmHost::open().map_err(|e| e.to_string())
}

/// Words wrapped into lines of at most `width` columns, each starting with `indent`.
fn wrap(words: &[String], indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in words {
        if !line.is_empty() && indent.len() + line.len() + 1 + w.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Unversioned => "unversioned",
        EntryKind::Versioned => "versioned",
        EntryKind::VersionAlias => "alias",
        EntryKind::Special => "special",
    }
}

pub fn cpu_models(args: CpuModelsArgs) -> Result<ExitCode> {
    if let Some(cpu) = &args.expand {
        return expand_model(cpu, args.json);
    }
    let kvm = open_kvm();
    if let Err(e) = &kvm {
        errln!("rvmm: warning: cannot tell which models run on this host: {e}");
    }
    let list: Option<Vec<ModelAvailability>> = kvm
        .as_ref()
        .ok()
        .map(|h| model_availability(&h.cpu_support, &h.identity));
    if args.json {
        let models: Vec<serde_json::Value> = match &list {
            Some(list) => list
                .iter()
                .map(|m| {
                    json!({
                        "name": m.entry.name,
                        "description": m.entry.description,
                        "kind": kind_name(m.entry.kind),
                        "alias_of": m.entry.alias_of,
                        "resolves_to": m.resolves_to,
                        "usable": m.usable(),
                        "unavailable_features": m.unavailable,
                    })
                })
                .collect(),
            None => vmm::cpu::models::list::entries()
                .iter()
                .map(|e| {
                    json!({
                        "name": e.name,
                        "description": e.description,
                        "kind": kind_name(e.kind),
                        "alias_of": e.alias_of,
                        "resolves_to": vmm::cpu::availability::resolved_name(&e.name),
                        "usable": null,
                        "unavailable_features": null,
                    })
                })
                .collect(),
        };
        let host = kvm.as_ref().ok().map(|h| {
            json!({
                "vendor": h.identity.vendor.as_string(),
                "family": h.identity.family,
                "model": h.identity.model,
                "stepping": h.identity.stepping,
                "model_id": h.identity.model_id,
            })
        });
        let out = json!({
            "host": host,
            "models": models,
            "flags": recognized_flags(),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    match &list {
        Some(list) => {
            let usable = list.iter().filter(|m| m.usable()).count();
            out.push_str(&format!(
                "Available CPUs ({usable} of {} run on this host's KVM without losing features):\n",
                list.len()
            ));
            for m in list {
                let state = if m.usable() { "yes" } else { "no" };
                out.push_str(&format!(
                    "x86 {:<24} {:<4} {}\n",
                    m.entry.name, state, m.entry.description
                ));
                if !m.usable() {
                    let mut words = vec![format!("lacks {}:", m.unavailable.len())];
                    words.extend(m.unavailable.iter().cloned());
                    out.push_str(&wrap(&words, "        ", 100));
                }
            }
        }
        None => {
            // Without KVM: QEMU's own listing.
            let help = help_text();
            let models = help.split("\nRecognized CPUID flags:").next().unwrap_or("");
            out.push_str(models.trim_end());
            out.push('\n');
        }
    }
    let help = help_text();
    if let Some(pos) = help.find("\nRecognized CPUID flags:") {
        out.push_str(&help[pos..]);
    }
    out!("{out}")?;
    Ok(ExitCode::SUCCESS)
}

/// A host for expanding without /dev/kvm: QEMU's default irqchip, the model's own vendor.
fn neutral_host(model: &str) -> (HostCpuSupport, HostIdentity) {
    let vendor = match lookup(model) {
        Some(ModelRef::Builtin { def, .. }) => def.vendor,
        _ => vmm::cpu::models::VendorId::INTEL,
    };
    let identity = HostIdentity {
        vendor,
        family: 0,
        model: 0,
        stepping: 0,
        model_id: String::new(),
    };
    (HostCpuSupport::default(), identity)
}

fn expand_model(spec: &str, json_out: bool) -> Result<ExitCode> {
    let cpu = parse_cpu(spec)?;
    let kvm = open_kvm();
    let (support, identity, on_kvm) = match &kvm {
        Ok(h) => (h.cpu_support.clone(), h.identity.clone(), true),
        Err(e) => {
            errln!("rvmm: warning: {e}; expanding without this host's KVM (the vendor is the model's own)");
            let (s, i) = neutral_host(&cpu.model);
            (s, i, false)
        }
    };
    let expanded =
        expand_for_host(&cpu, &support, &identity).with_context(|| format!("--expand {spec}"))?;
    let lacking = if on_kvm {
        Some(filter_cpu(&expanded, &support).dropped_names())
    } else {
        None
    };
    let features: Vec<String> = expanded
        .features
        .names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let versioned = expanded
        .versioned_name
        .clone()
        .unwrap_or_else(|| expanded.name.clone());
    if json_out {
        let out = json!({
            "name": expanded.name,
            "resolves_to": versioned,
            "vendor": expanded.vendor.as_string(),
            "family": expanded.family,
            "model": expanded.model,
            "stepping": expanded.stepping,
            "model_id": expanded.model_id,
            "level": expanded.level,
            "xlevel": expanded.xlevel,
            "pmu": expanded.pmu,
            "features": features,
            "unavailable_on_this_host": lacking,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    out.push_str(&format!("model: {} ({versioned})\n", expanded.name));
    out.push_str(&format!("vendor: {}\n", expanded.vendor.as_string()));
    out.push_str(&format!(
        "family: {} model: {} stepping: {}\n",
        expanded.family, expanded.model, expanded.stepping
    ));
    out.push_str(&format!("model-id: {}\n", expanded.model_id));
    out.push_str(&format!(
        "level: {:#x} xlevel: {:#x}\n",
        expanded.level, expanded.xlevel
    ));
    out.push_str(&format!("features ({}):\n", features.len()));
    out.push_str(&wrap(&features, "  ", 78));
    match lacking {
        Some(l) if l.is_empty() => out.push_str("this host's KVM gives all of them\n"),
        Some(l) => {
            out.push_str(&format!("this host's KVM lacks {}:\n", l.len()));
            out.push_str(&wrap(&l, "  ", 78));
        }
        None => {}
    }
    out!("{out}")?;
    Ok(ExitCode::SUCCESS)
}

/// Loads every description in `files`, reading libvirt's CPU map once if any is XML.
/// `option` names where the files were given (`cpu-baseline`, `--host`).
fn load_hosts(
    option: &str,
    files: &[PathBuf],
) -> Result<(Vec<HostCpuDesc>, Option<LibvirtCpuMap>)> {
    let mut map: Option<LibvirtCpuMap> = None;
    let mut hosts = Vec::new();
    for f in files {
        let shown = f.display().to_string();
        let bytes = read_regular(option, f, FileKind::Text)?;
        let text = String::from_utf8(bytes)
            .map_err(|e| anyhow!("{option}: {shown}: not UTF-8 text: {}", e.utf8_error()))?;
        let mut get_map = || -> Result<LibvirtCpuMap, LibvirtMapError> {
            if let Some(m) = &map {
                return Ok(m.clone());
            }
            let m = LibvirtCpuMap::load()?;
            map = Some(m.clone());
            Ok(m)
        };
        hosts.extend(parse_text(&text, &shown, &mut get_map)?);
    }
    Ok((hosts, map))
}

pub fn cpu_baseline(args: CpuBaselineArgs) -> Result<ExitCode> {
    let (hosts, map) = load_hosts("cpu-baseline", &args.files)?;
    let b = baseline(&hosts)?;
    // The libvirt XML needs the map even when every input was JSON.
    let map = match map {
        Some(m) => Some(m),
        None => match LibvirtCpuMap::load() {
            Ok(m) => Some(m),
            Err(e) => {
                errln!("rvmm: warning: no libvirt XML: {e}");
                None
            }
        },
    };
    let xml = map.as_ref().map(|m| b.libvirt_xml(m));
    if let Some(note) = &b.note {
        eprintln!("rvmm: note: {note}");
    }
    if args.json {
        let out = json!({
            "hosts": hosts.iter().map(|h| h.source.clone()).collect::<Vec<_>>(),
            "vendor": b.vendor,
            "model": b.model,
            "alias": b.alias,
            "extra": b.extra,
            "libvirt_only": b.libvirt_only,
            "common": b.common,
            "cpu": b.cpu_string(),
            "libvirt_model": map.as_ref().and_then(|m| b.libvirt_model(m)),
            "libvirt_xml": xml,
            "note": b.note,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "hosts: {}",
        hosts
            .iter()
            .map(|h| h.source.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    outln!(
        "model: {}{}",
        b.model,
        b.alias
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default()
    )?;
    outln!(
        "extra features: {}",
        if b.extra.is_empty() {
            "none".to_string()
        } else {
            b.extra.join(" ")
        }
    )?;
    outln!("--cpu {}", b.cpu_string())?;
    if let Some(xml) = xml {
        out!("{xml}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cpu_compare(args: CpuCompareArgs) -> Result<ExitCode> {
    let cpu = parse_cpu(&args.cpu)?;
    let hosts = match &args.host {
        Some(f) => load_hosts("--host", std::slice::from_ref(f))?.0,
        None => {
            let kvm = KvmHost::open()?;
            vec![HostCpuDesc::from_kvm(&kvm.cpu_support, &kvm.identity)]
        }
    };
    let mut results = Vec::new();
    for h in &hosts {
        results.push((h.source.clone(), compare(&cpu, h)?));
    }
    if args.json {
        let out: Vec<serde_json::Value> = results
            .iter()
            .map(|(src, c)| {
                json!({
                    "host": src,
                    "model": c.model,
                    "verdict": verdict_name(c.verdict),
                    "missing": c.missing,
                    "extra": c.extra,
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        for (src, c) in &results {
            let host = if src == "kvm" {
                "this host"
            } else {
                src.as_str()
            };
            match c.verdict {
                Verdict::Identical => outln!("{host}: identical to {}", c.model)?,
                Verdict::Superset => outln!(
                    "{host}: superset of {} (the host also has: {})",
                    c.model,
                    c.extra.join(" ")
                )?,
                Verdict::Incompatible => outln!(
                    "{host}: incompatible with {} (the host lacks: {})",
                    c.model,
                    c.missing.join(" ")
                )?,
            }
        }
    }
    // As `virsh cpu-compare`: an incompatible CPU is not an error of the command.
    Ok(ExitCode::SUCCESS)
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Identical => "identical",
        Verdict::Superset => "superset",
        Verdict::Incompatible => "incompatible",
    }
}
