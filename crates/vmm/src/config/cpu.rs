//! The `--cpu` front end: `MODEL[,+feat][,-feat][,feat=on|off][,feat][,pmu=on|off]
//! [,check][,enforce]` with QEMU 7.2's semantics (`x86_cpu_parse_featurestr`), parsed into
//! `CpuConfig`. Names are checked against the model and feature tables; expansion and
//! filtering against the host happen later (`cpu::models::expand`, `cpu::filter`).
//!
//! QEMU semantics kept: items are split on `,` and empty items are skipped; `feat=on|off`
//! settings apply in order (the later wins) and first; then every `+feat`, then every
//! `-feat`, whatever their position (so `-x2apic,x2apic=on` leaves x2apic off), with QEMU's
//! "Ambiguous CPU model string" warnings; `_` in a `key=value` key reads as `-`; `check` is
//! on by default.

use thiserror::Error;

use crate::cpu::features::{
    accepted_names, canonical_name, nearest_names, normalize_property_name,
};
pub use crate::cpu::filter::Check;
use crate::cpu::models::{all_names, lookup};
/// The type `--cpu` parses into is the CPU crate's: `CpuConfig` is its name on this side.
pub use crate::cpu::spec::{CpuSpec as CpuConfig, DEFAULT_MODEL};

/// `--cpu` errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CpuConfigError {
    #[error("--cpu: empty value; expected MODEL[,+feat][,-feat][,feat=on|off][,pmu=on|off][,check][,enforce]")]
    Empty,
    #[error("--cpu: unknown CPU model '{model}'{}", did_you_mean(.suggestions))]
    UnknownModel {
        model: String,
        suggestions: Vec<String>,
    },
    #[error("--cpu: unknown CPU feature '{feature}'{}", did_you_mean(.suggestions))]
    UnknownFeature {
        feature: String,
        suggestions: Vec<String>,
    },
    #[error("--cpu: empty feature name in '{item}'")]
    EmptyFeature { item: String },
    #[error("--cpu: invalid value '{value}' for '{key}': expected on or off")]
    BadValue { key: String, value: String },
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", suggestions.join(", "))
    }
}

/// How many suggestions an unknown-name error carries.
const MAX_SUGGESTIONS: usize = 2;

/// QEMU's boolean property values (`qapi_bool_parse`).
fn parse_bool(key: &str, value: &str) -> Result<bool, CpuConfigError> {
    match value {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(CpuConfigError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

fn unknown_feature(name: &str) -> CpuConfigError {
    let names = accepted_names();
    CpuConfigError::UnknownFeature {
        feature: name.to_string(),
        suggestions: nearest_names(name, names.iter().copied(), MAX_SUGGESTIONS)
            .into_iter()
            .map(String::from)
            .collect(),
    }
}

/// Parses a `--cpu` value.
pub fn parse_cpu(value: &str) -> Result<CpuConfig, CpuConfigError> {
    let mut items = value.split(',').filter(|s| !s.is_empty());
    let model = items.next().ok_or(CpuConfigError::Empty)?;
    if lookup(model).is_none() {
        let names = all_names();
        let suggestions = nearest_names(model, names.iter().map(String::as_str), MAX_SUGGESTIONS)
            .into_iter()
            .map(String::from)
            .collect();
        return Err(CpuConfigError::UnknownModel {
            model: model.to_string(),
            suggestions,
        });
    }
    let mut props: Vec<(String, bool)> = Vec::new();
    // (canonical name, name as written): QEMU's ambiguity warning compares the latter.
    let mut plus: Vec<(String, String)> = Vec::new();
    let mut minus: Vec<(String, String)> = Vec::new();
    let mut pmu = None;
    let mut check = true;
    let mut enforce = false;
    let mut warnings = Vec::new();
    for item in items {
        if let Some(name) = item.strip_prefix('+').or_else(|| item.strip_prefix('-')) {
            if name.is_empty() {
                return Err(CpuConfigError::EmptyFeature {
                    item: item.to_string(),
                });
            }
            // Legacy syntax: the name is looked up as written (aliases such as lahf_lm exist).
            let canonical = canonical_name(name).ok_or_else(|| unknown_feature(name))?;
            let list = if item.starts_with('+') {
                &mut plus
            } else {
                &mut minus
            };
            list.push((canonical.to_string(), name.to_string()));
            continue;
        }
        let (key, val) = item.split_once('=').unwrap_or((item, "on"));
        let key = normalize_property_name(key);
        match key.as_str() {
            "pmu" => pmu = Some(parse_bool(&key, val)?),
            "check" => check = parse_bool(&key, val)?,
            "enforce" => enforce = parse_bool(&key, val)?,
            _ => {
                let canonical = canonical_name(&key).ok_or_else(|| unknown_feature(&key))?;
                let on = parse_bool(&key, val)?;
                for (sign, list) in [('+', &plus), ('-', &minus)] {
                    if list.iter().any(|(_, written)| *written == key) {
                        warnings.push(format!(
                            "Ambiguous CPU model string. Don't mix both \"{sign}{key}\" and \"{key}={val}\""
                        ));
                    }
                }
                props.push((canonical.to_string(), on));
            }
        }
    }
    if !warnings.is_empty() {
        warnings.push(
            "Compatibility of ambiguous CPU model strings won't be kept on future QEMU versions"
                .to_string(),
        );
    }
    let mut changes = props;
    changes.extend(plus.into_iter().map(|(n, _)| (n, true)));
    changes.extend(minus.into_iter().map(|(n, _)| (n, false)));
    let check = match (enforce, check) {
        (true, _) => Check::Enforce,
        (false, true) => Check::Warn,
        (false, false) => Check::None,
    };
    Ok(CpuConfig {
        model: model.to_string(),
        changes,
        pmu,
        check,
        warnings,
    })
}

#[cfg(test)]
mod tests;
