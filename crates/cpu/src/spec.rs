//! The CPU a VM asks for, as plain data: a model name known to exist, the feature changes
//! in QEMU's application order, `pmu` and `check`/`enforce`. The VMM's front ends
//! (`--cpu`, libvirt `<cpu>`) produce it; `builder`, `availability` and `baseline` take it.

use crate::filter::Check;
use crate::models::expand::CpuRequest;
use crate::models::DefaultVersion;

/// The model when `--cpu` is absent, as QEMU's `pc` machines.
pub const DEFAULT_MODEL: &str = "qemu64";

/// The CPU a VM asks for: a model and feature changes, resolved from `--cpu` or a libvirt
/// `<cpu>` by the VMM's front ends (which own the text and its error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSpec {
    /// The model name as given (`Haswell`, `Haswell-v2`, `host`, ...); known to exist.
    pub model: String,
    /// Feature changes in the order to apply them, names canonical: `feat=on|off` items in
    /// command-line order, then `+feat` items, then `-feat` items.
    pub changes: Vec<(String, bool)>,
    /// `pmu=on|off`; `None` keeps the model's default.
    pub pmu: Option<bool>,
    /// `check`/`enforce` (QEMU: `check` is on unless `check=off`).
    pub check: Check,
    /// QEMU's warnings about the option text itself (ambiguous `+feat` and `feat=` mixes).
    pub warnings: Vec<String>,
}

impl Default for CpuSpec {
    fn default() -> Self {
        CpuSpec {
            model: DEFAULT_MODEL.to_string(),
            changes: Vec::new(),
            pmu: None,
            check: Check::Warn,
            warnings: Vec::new(),
        }
    }
}

impl CpuSpec {
    /// The expansion request for this configuration.
    pub fn request(&self, default_version: DefaultVersion, dies: u32) -> CpuRequest<'_> {
        CpuRequest {
            model: &self.model,
            changes: &self.changes,
            pmu: self.pmu,
            default_version,
            dies,
        }
    }
}
