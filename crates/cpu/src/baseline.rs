//! CPU baselines and comparisons over host CPU descriptions (`hostdesc`):
//! `baseline` finds the most capable named model every host can run plus the features all
//! hosts share beyond it (a migration-safe `--cpu` and libvirt `<cpu>`); `compare` says
//! whether a host runs a `--cpu` model identically, as a superset, or not at all.
//!
//! Models are compared by their definitions (QEMU 7.2's tables with version props
//! applied, then the `--cpu` changes), on `hostdesc::comparable` words, in QEMU names.

use std::fmt::Write as _;

use serde::Serialize;
use thiserror::Error;

use super::features::FeatureSet;
use super::hostdesc::{comparable, HostCpuDesc, HostDescError};
use super::libvirt_map::LibvirtCpuMap;
use super::models::{lookup, resolve, resolve_version, ModelDef, ModelRef, MODELS};
use crate::spec::CpuSpec;

/// QEMU's generic models, which libvirt and QEMU let run on any vendor.
const GENERIC_MODELS: [&str; 4] = ["qemu64", "kvm64", "qemu32", "kvm32"];

/// Why no baseline or comparison can be made.
#[derive(Debug, Error)]
pub enum BaselineError {
    #[error("cpu-baseline: no host CPU descriptions given")]
    NoHosts,
    #[error("cpu-baseline: CPU vendors do not match: {first_source} is {first}, {other_source} is {other}")]
    VendorMismatch {
        first: String,
        first_source: String,
        other: String,
        other_source: String,
    },
    #[error("cpu-baseline: the hosts share no named CPU model (common features: {common})")]
    NoModel { common: String },
    #[error("cpu-compare: '{0}' is not a named model; compare a model such as Haswell or Skylake-Client-v4")]
    NotNamed(String),
    #[error(transparent)]
    Desc(#[from] HostDescError),
}

/// A model's features as its definition gives them (version props applied), comparable
/// words only.
pub fn model_features(def: &'static ModelDef, version: u32) -> FeatureSet {
    resolve(def, version)
        .map(|m| comparable(&m.features))
        .unwrap_or_default()
}

/// The baseline of a set of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Baseline {
    /// The CPUID vendor string every host has.
    pub vendor: String,
    /// The chosen model, `NAME-vN`.
    pub model: String,
    /// QEMU's other name for that version, if it has one (`Haswell-noTSX-IBRS`), or the
    /// unversioned name for version 1.
    pub alias: Option<String>,
    /// Features every host has beyond the model, QEMU names.
    pub extra: Vec<String>,
    /// libvirt-only features (no QEMU name) every host description lists.
    pub libvirt_only: Vec<String>,
    /// Every feature every host has, QEMU names.
    pub common: Vec<String>,
    /// Why the model is one of QEMU's generic ones (`qemu64`, `qemu32`, ...) when no named
    /// model of the vendor fits: what every such model needs that the hosts lack, and
    /// what the closest ones lack. `None` when a named model fits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every host's features intersected; the vendor every host shares.
fn common_features(
    hosts: &[HostCpuDesc],
) -> Result<(String, FeatureSet, Vec<String>), BaselineError> {
    let first = hosts.first().ok_or(BaselineError::NoHosts)?;
    let mut common = first.feature_set()?;
    let mut libvirt_only = first.libvirt_only.clone();
    for h in &hosts[1..] {
        if !h.vendor.is_empty() && !first.vendor.is_empty() && h.vendor != first.vendor {
            return Err(BaselineError::VendorMismatch {
                first: first.vendor.clone(),
                first_source: first.source.clone(),
                other: h.vendor.clone(),
                other_source: h.source.clone(),
            });
        }
        common = common.intersection(&h.feature_set()?);
        libvirt_only.retain(|f| h.libvirt_only.contains(f));
    }
    let vendor = hosts
        .iter()
        .map(|h| h.vendor.clone())
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    Ok((vendor, common, libvirt_only))
}

/// QEMU's other name for `def` at `version`: the version's alias, or the bare name for v1.
fn alias_of(def: &ModelDef, version: u32) -> Option<String> {
    let v = def.versions().iter().find(|v| v.version == version)?;
    match (v.alias, version) {
        (Some(a), _) => Some(a.to_string()),
        (None, 1) => Some(def.name.to_string()),
        _ => None,
    }
}

/// The most capable model whose features are all in `common`: the most features, then the
/// later model in QEMU's order (newer generation), then the higher version. Models of
/// another vendor are skipped, except QEMU's generic ones.
pub fn best_model(
    vendor: &str,
    common: &FeatureSet,
) -> Option<(&'static ModelDef, u32, FeatureSet)> {
    // (feature count, definition order, version) ranks the candidates.
    type Rank = (usize, usize, u32);
    let mut best: Option<(Rank, &'static ModelDef, u32, FeatureSet)> = None;
    for (order, def) in MODELS.iter().enumerate() {
        if !vendor.is_empty()
            && def.vendor.as_string() != vendor
            && !GENERIC_MODELS.contains(&def.name)
        {
            continue;
        }
        for v in def.versions() {
            let f = model_features(def, v.version);
            if !f.difference(common).is_empty() {
                continue;
            }
            let key = (f.names().len(), order, v.version);
            if best.as_ref().is_none_or(|(k, ..)| key > *k) {
                best = Some((key, def, v.version, f));
            }
        }
    }
    best.map(|(_, d, v, f)| (d, v, f))
}

/// The baseline of `hosts`.
pub fn baseline(hosts: &[HostCpuDesc]) -> Result<Baseline, BaselineError> {
    let (vendor, common, libvirt_only) = common_features(hosts)?;
    let (def, version, model) =
        best_model(&vendor, &common).ok_or_else(|| BaselineError::NoModel {
            common: common.names().join(" "),
        })?;
    let note = GENERIC_MODELS
        .contains(&def.name)
        .then(|| fallback_note(&vendor, &common, def, version, &model))
        .flatten();
    Ok(Baseline {
        note,
        vendor,
        model: def.versioned_name(version),
        alias: alias_of(def, version),
        extra: common
            .difference(&model)
            .names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        libvirt_only,
        common: common.names().iter().map(|s| s.to_string()).collect(),
    })
}

/// How many of the closest named models a fallback note lists.
const CLOSEST_LISTED: usize = 3;

/// Why the baseline fell back to generic model `def` (version `version`, features
/// `model`): the features every named model of `vendor` (any vendor when unknown) needs
/// and the hosts lack, and the closest models (fewest features missing over their
/// versions) with what they lack. `None` when there is no named candidate at all.
fn fallback_note(
    vendor: &str,
    common: &FeatureSet,
    def: &ModelDef,
    version: u32,
    model: &FeatureSet,
) -> Option<String> {
    let mut every: Option<FeatureSet> = None;
    // (missing count, definition order, name, missing names) per model family.
    let mut closest: Vec<(usize, usize, String, Vec<&'static str>)> = Vec::new();
    for (order, d) in MODELS.iter().enumerate() {
        if GENERIC_MODELS.contains(&d.name)
            || (!vendor.is_empty() && d.vendor.as_string() != vendor)
        {
            continue;
        }
        let mut best: Option<(FeatureSet, u32)> = None;
        for v in d.versions() {
            let missing = model_features(d, v.version).difference(common);
            every = Some(match every {
                Some(e) => e.intersection(&missing),
                None => missing,
            });
            let count = missing.names().len();
            if best.as_ref().is_none_or(|(b, _)| count < b.names().len()) {
                best = Some((missing, v.version));
            }
        }
        if let Some((missing, v)) = best {
            let names = missing.names();
            closest.push((names.len(), order, d.versioned_name(v), names));
        }
    }
    let every = every?;
    closest.sort();
    let who = if vendor.is_empty() {
        "named model".to_string()
    } else {
        format!("named {vendor} model")
    };
    let mut note = format!(
        "no {who} fits every host, so the baseline is QEMU's generic {} plus {} features",
        def.versioned_name(version),
        common.difference(model).names().len()
    );
    let every = every.names();
    if every.is_empty() {
        note.push_str(&format!("; no one feature is missing for every {who}"));
    } else {
        note.push_str(&format!(
            "; every {who} needs {}, which not every host has",
            every.join(" ")
        ));
    }
    let listed: Vec<String> = closest
        .iter()
        .take(CLOSEST_LISTED)
        .map(|(_, _, name, missing)| format!("{name} lacks {}", missing.join(" ")))
        .collect();
    note.push_str(&format!(" (closest: {})", listed.join("; ")));
    Some(note)
}

impl Baseline {
    /// The `--cpu` value: `MODEL-vN,+feat,...`.
    pub fn cpu_string(&self) -> String {
        let mut s = self.model.clone();
        for f in &self.extra {
            s.push_str(",+");
            s.push_str(f);
        }
        s
    }

    /// The libvirt model to name: the chosen version's QEMU name when libvirt's map has a
    /// model so called, else the libvirt model of the vendor with the most features all
    /// hosts have.
    pub fn libvirt_model<'m>(&self, map: &'m LibvirtCpuMap) -> Option<&'m str> {
        let direct = self.alias.as_deref().and_then(|a| map.model(a));
        if let Some(m) = direct {
            return Some(m.name.as_str());
        }
        let vendor = map.vendor_name(&self.vendor);
        let common: Vec<&str> = self.common.iter().map(String::as_str).collect();
        map.models
            .iter()
            .filter(|m| m.vendor.is_none() || m.vendor.as_deref() == vendor)
            .filter(|m| {
                m.features.iter().all(|f| {
                    map.feature(f)
                        .map(|lf| match lf.qemu {
                            Some(q) => common.contains(&q) || q == "hypervisor",
                            None => self.libvirt_only.contains(&lf.name),
                        })
                        .unwrap_or(false)
                })
            })
            .max_by_key(|m| m.features.len())
            .map(|m| m.name.as_str())
    }

    /// A libvirt `<cpu>` for this baseline: the libvirt model, `require` for every common
    /// feature it lacks, `disable` for every feature it has that not every host has.
    /// Features libvirt has no name for are listed in a comment.
    pub fn libvirt_xml(&self, map: &LibvirtCpuMap) -> String {
        let mut out = String::from("<cpu mode='custom' match='exact'>\n");
        let model = self.libvirt_model(map);
        let mut model_features: Vec<String> = Vec::new();
        if let Some(m) = model.and_then(|m| map.model(m)) {
            let _ = writeln!(out, "  <model fallback='forbid'>{}</model>", m.name);
            model_features = m
                .features
                .iter()
                .filter_map(|f| map.feature(f))
                .map(|f| f.name.clone())
                .collect();
        }
        if let Some(v) = map.vendor_name(&self.vendor) {
            let _ = writeln!(out, "  <vendor>{v}</vendor>");
        }
        let mut wanted: Vec<String> = Vec::new();
        let mut unnamed: Vec<&str> = Vec::new();
        for q in &self.common {
            match map.libvirt_name(q) {
                Some(l) => wanted.push(l.to_string()),
                None => unnamed.push(q),
            }
        }
        wanted.extend(self.libvirt_only.iter().cloned());
        let mut require: Vec<&String> = wanted
            .iter()
            .filter(|f| !model_features.contains(f))
            .collect();
        require.sort();
        let mut disable: Vec<&String> = model_features
            .iter()
            .filter(|f| {
                !wanted.contains(f) && map.feature(f).and_then(|lf| lf.qemu) != Some("hypervisor")
            })
            .collect();
        disable.sort();
        for f in require {
            let _ = writeln!(out, "  <feature policy='require' name='{f}'/>");
        }
        for f in disable {
            let _ = writeln!(out, "  <feature policy='disable' name='{f}'/>");
        }
        if !unnamed.is_empty() {
            let _ = writeln!(
                out,
                "  <!-- common features libvirt has no name for: {} -->",
                unnamed.join(" ")
            );
        }
        out.push_str("</cpu>\n");
        out
    }
}

/// How a host relates to a CPU model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// The host has exactly the model's features.
    Identical,
    /// The host has every feature of the model and more.
    Superset,
    /// The host lacks some of the model's features.
    Incompatible,
}

/// The outcome of `compare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub verdict: Verdict,
    /// The model, `NAME-vN`.
    pub model: String,
    /// Features the model needs and the host lacks (what blocks it).
    pub missing: Vec<String>,
    /// Features the host has beyond the model.
    pub extra: Vec<String>,
}

/// The features `cpu` asks for: its model's definition with the `--cpu` changes applied.
pub fn requested_features(cpu: &CpuSpec) -> Result<(String, FeatureSet), BaselineError> {
    match lookup(&cpu.model) {
        Some(ModelRef::Builtin { def, version }) => {
            let v = resolve_version(def, version, super::builder::DEFAULT_VERSION);
            let mut set = resolve(def, v).map(|m| m.features).unwrap_or_default();
            for (name, on) in &cpu.changes {
                set.set_named(name, *on);
            }
            Ok((def.versioned_name(v), comparable(&set)))
        }
        Some(ModelRef::Base) => {
            let mut set = FeatureSet::new();
            for (name, on) in &cpu.changes {
                set.set_named(name, *on);
            }
            Ok(("base".to_string(), comparable(&set)))
        }
        _ => Err(BaselineError::NotNamed(cpu.model.clone())),
    }
}

/// Compares `cpu` with `host`.
pub fn compare(cpu: &CpuSpec, host: &HostCpuDesc) -> Result<Comparison, BaselineError> {
    let (model, want) = requested_features(cpu)?;
    let have = host.feature_set()?;
    let names = |s: FeatureSet| s.names().iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let missing = names(want.difference(&have));
    let extra = names(have.difference(&want));
    let verdict = if !missing.is_empty() {
        Verdict::Incompatible
    } else if extra.is_empty() {
        Verdict::Identical
    } else {
        Verdict::Superset
    };
    Ok(Comparison {
        verdict,
        model,
        missing,
        extra,
    })
}

#[cfg(test)]
mod tests;
