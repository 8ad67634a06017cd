//! Host CPU descriptions, the input of `rvmm cpu-baseline` and `rvmm cpu-compare`: what a
//! host's KVM can give a guest, by QEMU feature name. Written by `rvmm host --cpu-json`
//! (JSON, from KVM_GET_SUPPORTED_CPUID), and read from that JSON or from libvirt's host CPU
//! XML (the `<cpu>` of `virsh capabilities`, or the `host-model` `<mode>` of `virsh
//! domcapabilities`), whose model and features are translated through libvirt's CPU map.
//!
//! Which model a set of hosts can share is `baseline`'s job.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::features::{canonical_name, FeatureSet, FeatureWord};
use super::filter::HostCpuSupport;
use super::libvirt_map::{LibvirtCpuMap, LibvirtMapError};
use super::models::expand::HostIdentity;

/// A host CPU description cannot be read.
#[derive(Debug, Error)]
pub enum HostDescError {
    #[error("{source_name}: cannot read: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error(
        "{source_name}: not a host CPU description (JSON from `rvmm host --cpu-json`): {message}"
    )]
    Json {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: not well-formed XML: {message}")]
    Xml {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: no <cpu> element with a <model> or <feature> (expected libvirt host CPU XML)")]
    NoCpu { source_name: String },
    #[error("{source_name}: <{element}>: {rule}")]
    Bad {
        source_name: String,
        element: String,
        rule: String,
    },
    #[error("{source_name}: unknown CPU feature '{feature}' (not a QEMU 7.2 feature name)")]
    UnknownFeature {
        source_name: String,
        feature: String,
    },
    #[error(transparent)]
    Map(#[from] LibvirtMapError),
}

/// One host's CPU, as a guest on it can see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCpuDesc {
    /// `x86_64`.
    pub arch: String,
    /// The CPUID vendor string (`GenuineIntel`, `AuthenticAMD`).
    pub vendor: String,
    #[serde(default)]
    pub family: Option<u32>,
    #[serde(default)]
    pub model: Option<u32>,
    #[serde(default)]
    pub stepping: Option<u32>,
    #[serde(default)]
    pub model_name: Option<String>,
    /// The features a guest can get, QEMU names, in QEMU's table order.
    pub features: Vec<String>,
    /// Where the description came from (`kvm`, or the file and its n-th `<cpu>`).
    #[serde(default)]
    pub source: String,
    /// The libvirt model the XML named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libvirt_model: Option<String>,
    /// libvirt features with no QEMU 7.2 name (`osxsave`, `cmt`, ...), libvirt spelling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libvirt_only: Vec<String>,
}

/// The feature words a host description and a model are compared on: every CPUID feature
/// word except the KVM paravirtual leaf (it describes the hypervisor, not the CPU), the
/// XSAVE component words (derived from features) and the Intel PT and SGX capability
/// words; plus IA32_ARCH_CAPABILITIES and IA32_CORE_CAPABILITIES, which libvirt also
/// names. The `hypervisor` bit is left out (QEMU sets it on every model).
pub fn comparable(set: &FeatureSet) -> FeatureSet {
    use FeatureWord as W;
    let mut out = FeatureSet::new();
    for word in FeatureWord::all() {
        let keep = match word {
            W::Kvm
            | W::KvmHints
            | W::XsaveXcr0Lo
            | W::XsaveXcr0Hi
            | W::XsaveXssLo
            | W::XsaveXssHi
            | W::Cpuid14_0Ecx
            | W::Sgx12_0Eax
            | W::Sgx12_0Ebx
            | W::Sgx12_1Eax => false,
            W::ArchCapabilities | W::CoreCapability => true,
            w => !w.is_msr(),
        };
        if keep {
            let mut named = 0u64;
            for bit in 0..64u8 {
                if super::features::name_of(word, bit).is_some() {
                    named |= 1 << bit;
                }
            }
            out.set_word(word, set.word(word) & named);
        }
    }
    out.set_named("hypervisor", false);
    out
}

impl HostCpuDesc {
    /// This host: the features KVM can give a guest (KVM_GET_SUPPORTED_CPUID and the
    /// feature MSRs, with QEMU's fixups), the CPU's own identity.
    pub fn from_kvm(host: &HostCpuSupport, identity: &HostIdentity) -> HostCpuDesc {
        let set = comparable(&host.supported_set());
        HostCpuDesc {
            arch: "x86_64".into(),
            vendor: identity.vendor.as_string(),
            family: Some(identity.family),
            model: Some(identity.model),
            stepping: Some(identity.stepping),
            model_name: Some(identity.model_id.clone()),
            features: set.names().iter().map(|s| s.to_string()).collect(),
            source: "kvm".into(),
            libvirt_model: None,
            libvirt_only: Vec::new(),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The features as a set (restricted to the comparable words); unknown names are errors.
    pub fn feature_set(&self) -> Result<FeatureSet, HostDescError> {
        let mut set = FeatureSet::new();
        for f in &self.features {
            if canonical_name(f).is_none() {
                return Err(HostDescError::UnknownFeature {
                    source_name: self.source.clone(),
                    feature: f.clone(),
                });
            }
            set.set_named(f, true);
        }
        Ok(comparable(&set))
    }
}

/// Parses `rvmm host --cpu-json` output: one description or an array of them.
pub fn parse_json(text: &str, source_name: &str) -> Result<Vec<HostCpuDesc>, HostDescError> {
    let bad = |e: serde_json::Error| HostDescError::Json {
        source_name: source_name.to_string(),
        message: e.to_string(),
    };
    let mut descs: Vec<HostCpuDesc> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(bad)?
    } else {
        vec![serde_json::from_str(text).map_err(bad)?]
    };
    let many = descs.len() > 1;
    for (i, d) in descs.iter_mut().enumerate() {
        d.source = if many {
            format!("{source_name}#{}", i + 1)
        } else {
            source_name.to_string()
        };
        d.feature_set()?;
    }
    Ok(descs)
}

/// The size and nesting limits of `xml_limits`, checked before the parser sees `text`.
fn xml_limits(text: &str, source_name: &str) -> Result<(), HostDescError> {
    crate::xml_limits::check(text).map_err(|e| HostDescError::Xml {
        source_name: source_name.to_string(),
        message: format!("line {}: refused before parsing: {e}", e.line()),
    })
}

fn xml_doc<'a>(text: &'a str, source_name: &str) -> Result<roxmltree::Document<'a>, HostDescError> {
    roxmltree::Document::parse(text).map_err(|e| HostDescError::Xml {
        source_name: source_name.to_string(),
        message: e.to_string(),
    })
}

/// Parses libvirt host CPU XML: every `<cpu>` with a `<model>` or `<feature>` child and
/// every `<mode name='host-model'>`, anywhere in the document. A file holding several
/// top-level `<cpu>` elements (as `virsh cpu-baseline` accepts) is read as one list.
pub fn parse_libvirt_xml(
    text: &str,
    source_name: &str,
    map: &LibvirtCpuMap,
) -> Result<Vec<HostCpuDesc>, HostDescError> {
    xml_limits(text, source_name)?;
    let body = text
        .trim_start()
        .strip_prefix("<?xml")
        .and_then(|rest| rest.split_once("?>").map(|(_, b)| b))
        .unwrap_or(text);
    let wrapped;
    let doc = match roxmltree::Document::parse(body) {
        Ok(d) => d,
        Err(_) => {
            wrapped = format!("<rvmm-cpus>{body}</rvmm-cpus>");
            xml_doc(&wrapped, source_name)?
        }
    };
    let nodes: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| {
            (n.has_tag_name("cpu")
                && n.children()
                    .any(|c| c.has_tag_name("model") || c.has_tag_name("feature")))
                || (n.has_tag_name("mode") && n.attribute("name") == Some("host-model"))
        })
        .collect();
    if nodes.is_empty() {
        return Err(HostDescError::NoCpu {
            source_name: source_name.to_string(),
        });
    }
    let many = nodes.len() > 1;
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let name = if many {
                format!("{source_name}#{}", i + 1)
            } else {
                source_name.to_string()
            };
            cpu_from_xml(*n, &name, map)
        })
        .collect()
}

fn cpu_from_xml(
    cpu: roxmltree::Node,
    source_name: &str,
    map: &LibvirtCpuMap,
) -> Result<HostCpuDesc, HostDescError> {
    let bad = |element: &str, rule: String| HostDescError::Bad {
        source_name: source_name.to_string(),
        element: element.to_string(),
        rule,
    };
    let child_text = |tag: &str| {
        cpu.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    if let Some(arch) = child_text("arch") {
        if arch != "x86_64" && arch != "i686" {
            return Err(bad("arch", format!("'{arch}' is not x86_64")));
        }
    }
    let mut set = FeatureSet::new();
    let mut libvirt_only: Vec<String> = Vec::new();
    let mut add = |name: &str, on: bool, element: &str| -> Result<(), HostDescError> {
        let f = map.feature(name).ok_or_else(|| {
            bad(
                element,
                format!(
                    "unknown feature '{name}' (not in libvirt's CPU map {})",
                    LibvirtCpuMap::dir().display()
                ),
            )
        })?;
        match f.qemu {
            Some(q) => {
                set.set_named(q, on);
            }
            None if on => {
                if !libvirt_only.contains(&f.name) {
                    libvirt_only.push(f.name.clone());
                }
            }
            None => libvirt_only.retain(|n| n != &f.name),
        }
        Ok(())
    };
    let model = child_text("model");
    let mut vendor_name = child_text("vendor");
    if let Some(m) = &model {
        let def = map.model(m).ok_or_else(|| {
            bad(
                "model",
                format!(
                    "'{m}' is not in libvirt's CPU map {}",
                    LibvirtCpuMap::dir().display()
                ),
            )
        })?;
        for f in &def.features {
            add(f, true, "model")?;
        }
        if vendor_name.is_none() {
            vendor_name = def.vendor.clone();
        }
    }
    for f in cpu.children().filter(|c| c.has_tag_name("feature")) {
        let name = f
            .attribute("name")
            .ok_or_else(|| bad("feature", "has no name attribute".into()))?;
        let on = match f.attribute("policy").unwrap_or("require") {
            "require" | "force" | "optional" => true,
            "disable" | "forbid" => false,
            other => {
                return Err(bad(
                    "feature",
                    format!("policy '{other}' of '{name}' is not require, force, optional, disable or forbid"),
                ))
            }
        };
        add(name, on, "feature")?;
    }
    let vendor = match &vendor_name {
        Some(v) => map
            .vendor_string(v)
            .ok_or_else(|| bad("vendor", format!("unknown vendor '{v}'")))?
            .to_string(),
        None => String::new(),
    };
    let sig = cpu.children().find(|c| c.has_tag_name("signature"));
    let sig_num = |a: &str| {
        sig.and_then(|s| s.attribute(a))
            .and_then(|v| v.parse().ok())
    };
    let set = comparable(&set);
    Ok(HostCpuDesc {
        arch: "x86_64".into(),
        vendor,
        family: sig_num("family"),
        model: sig_num("model"),
        stepping: sig_num("stepping"),
        model_name: None,
        features: set.names().iter().map(|s| s.to_string()).collect(),
        source: source_name.to_string(),
        libvirt_model: model,
        libvirt_only,
    })
}

/// Reads a file of host CPU descriptions: JSON when it starts with `{` or `[`, libvirt XML
/// otherwise (the CPU map is loaded only then, by `map`).
pub fn load_file(
    path: &Path,
    map: &mut dyn FnMut() -> Result<LibvirtCpuMap, LibvirtMapError>,
) -> Result<Vec<HostCpuDesc>, HostDescError> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| HostDescError::Read {
        source_name: source_name.clone(),
        error,
    })?;
    parse_text(&text, &source_name, map)
}

/// Host CPU descriptions from a file's text (read by the caller, e.g. with rvmm's bounded
/// reader): JSON when it starts with `{` or `[`, libvirt XML otherwise (the CPU map is
/// loaded only then, by `map`). `source_name` names the file in errors.
pub fn parse_text(
    text: &str,
    source_name: &str,
    map: &mut dyn FnMut() -> Result<LibvirtCpuMap, LibvirtMapError>,
) -> Result<Vec<HostCpuDesc>, HostDescError> {
    let first = text.trim_start().chars().next();
    if matches!(first, Some('{') | Some('[')) {
        parse_json(text, source_name)
    } else {
        // Before the CPU map is loaded: a refused document needs no map.
        xml_limits(text, source_name)?;
        parse_libvirt_xml(text, source_name, &map()?)
    }
}

#[cfg(test)]
pub(crate) mod tests;
