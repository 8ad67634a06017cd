//! Filtering a CPU model's features against what the host's KVM can give: the kept and
//! dropped features and QEMU 7.2's exact warning lines (`x86_cpu_filter_features` /
//! `mark_unavailable_features` in target/i386/cpu.c), and `check`/`enforce`.
//!
//! What the host supports is plain data (`support::HostCpuSupport`, filled by the VMM at
//! its KVM edge); nothing here touches /dev/kvm.

use thiserror::Error;

use crate::features::{name_of, FeatureSet, FeatureWord};
use crate::models::expand::ExpandedCpu;
use crate::support::{CPUID_7_0_EBX_INTEL_PT, INTEL_PT_LIP};
// Their home before `support` and `features` took them; kept for the VMM's callers.
pub use crate::features::{warning_line, warning_lines};
pub use crate::support::{tsx_broken, HostCpuSupport, AMD_ALIASES};

/// The prefix of QEMU's filter warnings under KVM.
pub const HOST_WARNING_PREFIX: &str = "host doesn't support requested feature";

/// The outcome of filtering a feature set against the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterResult {
    /// Requested features the host supports.
    pub kept: FeatureSet,
    /// Requested features the host lacks.
    pub dropped: FeatureSet,
    /// QEMU's warning lines for `dropped`, in QEMU's order.
    pub warnings: Vec<String>,
}

impl FilterResult {
    /// Names of the dropped features (unnamed bits as `MSR(48CH)[14]`-style text).
    pub fn dropped_names(&self) -> Vec<String> {
        self.dropped
            .bits()
            .map(|(word, bit)| match name_of(word, bit) {
                Some(name) => name.to_string(),
                None => format!("{}[{bit}]", word.description()),
            })
            .collect()
    }
}

/// QEMU's `x86_cpu_filter_features` under KVM: drops every requested bit the host lacks,
/// then Intel PT if the host's PT capabilities fall short.
pub fn filter(requested: &FeatureSet, host: &HostCpuSupport) -> FilterResult {
    let supported = host.supported_set();
    let mut dropped = requested.difference(&supported);
    let mut warnings = warning_lines(HOST_WARNING_PREFIX, &dropped);
    let pt_requested = requested
        .difference(&dropped)
        .contains(FeatureWord::Cpuid7_0Ebx, CPUID_7_0_EBX_INTEL_PT);
    if pt_requested {
        let lip = requested.word(FeatureWord::Cpuid14_0Ecx) & u64::from(INTEL_PT_LIP) != 0;
        if !host.intel_pt_usable(lip) {
            dropped.insert(FeatureWord::Cpuid7_0Ebx, CPUID_7_0_EBX_INTEL_PT);
            warnings.push(warning_line(
                HOST_WARNING_PREFIX,
                FeatureWord::Cpuid7_0Ebx,
                25,
            ));
        }
    }
    FilterResult {
        kept: requested.difference(&dropped),
        dropped,
        warnings,
    }
}

/// Filters an expanded CPU: `filter` on its features, with the bits its expansion already
/// dropped for missing dependencies counted as dropped too (QEMU marks both as filtered,
/// so both make `enforce` fail). `warnings` holds the host lines only: QEMU prints
/// `cpu.dependency_warnings` whatever `check` says, and before these.
pub fn filter_cpu(cpu: &ExpandedCpu, host: &HostCpuSupport) -> FilterResult {
    let mut result = filter(&cpu.features, host);
    for (word, bit) in cpu.dependency_dropped.bits() {
        result.dropped.insert(word, 1u64 << bit);
    }
    result
}

/// What to do about dropped features (QEMU's `check` and `enforce` properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Check {
    /// `check=off`: drop silently.
    None,
    /// `check` (QEMU's default, `check=on`): drop and warn.
    #[default]
    Warn,
    /// `enforce`: warn and refuse to start.
    Enforce,
}

/// `enforce` refused a model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    #[error("--cpu: enforce: host doesn't support requested features: {}", .features.join(", "))]
    Enforce {
        /// The dropped features' names.
        features: Vec<String>,
        /// QEMU's warning lines, which QEMU prints before the error.
        warnings: Vec<String>,
    },
}

/// Applies `check` to a filter result: the warnings to print (empty for `Check::None`), or
/// under `Check::Enforce` with dropped features an error naming them that also carries the
/// warning lines (QEMU prints them before its error).
pub fn apply_check(check: Check, result: &FilterResult) -> Result<Vec<String>, FilterError> {
    match check {
        Check::None => Ok(Vec::new()),
        Check::Warn => Ok(result.warnings.clone()),
        Check::Enforce if result.dropped.is_empty() => Ok(Vec::new()),
        Check::Enforce => Err(FilterError::Enforce {
            features: result.dropped_names(),
            warnings: result.warnings.clone(),
        }),
    }
}

#[cfg(test)]
mod tests;
