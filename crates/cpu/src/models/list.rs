//! The model listing behind `rvmm cpu-models`: every name QEMU 7.2 registers with the
//! description `-cpu help` prints, and the exact `-cpu help` text (`x86_cpu_list`).

use super::{resolve, MODELS};
use crate::features::all_features;

/// What a listed name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `Haswell`: resolves through the machine type's default version.
    Unversioned,
    /// `Haswell-v2`.
    Versioned,
    /// `Haswell-noTSX`: a fixed alias of one version.
    VersionAlias,
    /// `base`, `host`, `max`.
    Special,
}

/// One line of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelListEntry {
    pub name: String,
    /// The description `-cpu help` prints after the name.
    pub description: String,
    /// For aliases: the versioned name they stand for (`Haswell-v1` for `Haswell` under the
    /// default version 1).
    pub alias_of: Option<String>,
    pub kind: EntryKind,
    /// QEMU's `X86CPUClass::ordering`: 0 for models, 8 for `base`/`host`, 9 for `max`.
    pub ordering: u8,
}

const SPECIAL: &[(&str, &str, u8)] = &[
    ("base", "base CPU model type with no features enabled", 8),
    ("host", "processor with all supported host features ", 8),
    (
        "max",
        "Enables all features supported by the accelerator in the current host",
        9,
    ),
];

/// Every model name in `-cpu help` order: by ordering, then by name (byte order).
pub fn entries() -> Vec<ModelListEntry> {
    let mut out = Vec::new();
    for def in MODELS {
        out.push(ModelListEntry {
            name: def.name.to_string(),
            description: "(alias configured by machine type)".to_string(),
            alias_of: Some(def.versioned_name(1)),
            kind: EntryKind::Unversioned,
            ordering: 0,
        });
        for v in def.versions() {
            let model_id = resolve(def, v.version)
                .map(|m| m.model_id)
                .unwrap_or_default();
            let description = match v.note {
                Some(note) => format!("{model_id} [{note}]"),
                None => model_id,
            };
            out.push(ModelListEntry {
                name: def.versioned_name(v.version),
                description,
                alias_of: None,
                kind: EntryKind::Versioned,
                ordering: 0,
            });
            if let Some(alias) = v.alias {
                out.push(ModelListEntry {
                    name: alias.to_string(),
                    description: format!("(alias of {})", def.versioned_name(v.version)),
                    alias_of: Some(def.versioned_name(v.version)),
                    kind: EntryKind::VersionAlias,
                    ordering: 0,
                });
            }
        }
    }
    for (name, description, ordering) in SPECIAL {
        out.push(ModelListEntry {
            name: name.to_string(),
            description: description.to_string(),
            alias_of: None,
            kind: EntryKind::Special,
            ordering: *ordering,
        });
    }
    out.sort_by(|a, b| (a.ordering, a.name.as_bytes()).cmp(&(b.ordering, b.name.as_bytes())));
    out
}

/// Every feature name QEMU lists under "Recognized CPUID flags" (all words, MSR ones
/// included, a name given to two bits listed twice), sorted by byte order.
pub fn recognized_flags() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = all_features().map(|f| f.name).collect();
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names
}

/// QEMU's `listflags`: names separated by spaces, each line starting with two spaces, a
/// new line before a name that would reach column 75.
fn list_flags(names: &[&str]) -> String {
    let mut out = String::new();
    let mut len = 0usize;
    for name in names {
        if len + name.len() + 1 >= 75 {
            out.push('\n');
            len = 0;
        }
        out.push_str(if len == 0 { "  " } else { " " });
        out.push_str(name);
        len += name.len() + 1;
    }
    out.push('\n');
    out
}

/// The exact text of `qemu-system-x86_64 -cpu help` (QEMU 7.2).
pub fn help_text() -> String {
    let mut out = String::from("Available CPUs:\n");
    for e in entries() {
        out.push_str(&format!("x86 {:<20}  {}\n", e.name, e.description));
    }
    out.push_str("\nRecognized CPUID flags:\n");
    out.push_str(&list_flags(&recognized_flags()));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_matches_qemu_lines() {
        let e = entries();
        let line = |name: &str| {
            let x = e.iter().find(|x| x.name == name).unwrap();
            format!("x86 {:<20}  {}", x.name, x.description)
        };
        assert_eq!(
            line("Haswell"),
            "x86 Haswell               (alias configured by machine type)"
        );
        assert_eq!(
            line("Haswell-noTSX"),
            "x86 Haswell-noTSX         (alias of Haswell-v2)"
        );
        assert_eq!(
            line("Cascadelake-Server-v2"),
            "x86 Cascadelake-Server-v2  Intel Xeon Processor (Cascadelake) [ARCH_CAPABILITIES]"
        );
        assert_eq!(line("486-v1"), "x86 486-v1                ");
        assert_eq!(e[0].name, "486");
        assert_eq!(
            e.iter()
                .rev()
                .take(3)
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>(),
            ["max", "host", "base"]
        );
    }

    #[test]
    fn listing_has_every_qemu_name() {
        // 38 models, 38 unversioned names, 76 versions, 15 version aliases, 3 special.
        assert_eq!(entries().len(), 132);
    }

    #[test]
    fn flags_wrap_before_column_75() {
        let text = list_flags(&["a"; 40]);
        assert_eq!(text.lines().next().unwrap().len(), 75);
        assert!(text.starts_with("  a a"));
    }
}
