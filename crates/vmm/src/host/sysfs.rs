//! Reading the kernel's text files (procfs, sysfs) under a root directory: `/` on a real
//! host, a fixture tree in tests. Every host reader in `host` goes through [`HostFs`].
//! Missing files read as `None`, never as a guessed value; the parsers shared by several
//! subjects (CPU masks, selection files, module parameters) live here, the others with
//! their subjects (cpuinfo, numa, memory, ...).

use std::path::{Path, PathBuf};

use crate::util::cpulist::parse_cpulist;

/// A view of the host's /proc and /sys, rooted at `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFs {
    root: PathBuf,
}

impl Default for HostFs {
    fn default() -> Self {
        HostFs::real()
    }
}

impl HostFs {
    /// The running host.
    pub fn real() -> HostFs {
        HostFs {
            root: PathBuf::from("/"),
        }
    }

    /// A tree that mimics the host's layout under `root` (tests).
    pub fn at(root: impl Into<PathBuf>) -> HostFs {
        HostFs { root: root.into() }
    }

    /// The real path of `path` (an absolute host path such as `/proc/cpuinfo`).
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The file's text, or `None` when it is missing or unreadable.
    pub fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.path(path)).ok()
    }

    /// The file's text without surrounding whitespace.
    pub fn read_trim(&self, path: &str) -> Option<String> {
        self.read(path).map(|s| s.trim().to_string())
    }

    /// The file's content as a decimal number.
    pub fn read_u64(&self, path: &str) -> Option<u64> {
        self.read_trim(path).and_then(|s| s.parse().ok())
    }

    /// True when the path exists.
    pub fn exists(&self, path: &str) -> bool {
        self.path(path).exists()
    }

    /// The names in a directory, sorted (numbers in numeric order, then the rest by name);
    /// empty when it is missing.
    pub fn list(&self, path: &str) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.path(path)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort_by_key(|a| natural_key(a));
        names
    }

    /// The target of a symbolic link, as written.
    pub fn link(&self, path: &str) -> Option<PathBuf> {
        std::fs::read_link(self.path(path)).ok()
    }

    /// The root this view reads under.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Sorts `node10` after `node9`: the name split into its text before the trailing digits
/// and their value.
fn natural_key(name: &str) -> (String, u64, String) {
    let digits_start = name
        .rfind(|c: char| !c.is_ascii_digit())
        .map(|i| i + 1)
        .unwrap_or(0);
    let (text, digits) = name.split_at(digits_start);
    match digits.parse::<u64>() {
        Ok(n) => (text.to_string(), n, String::new()),
        Err(_) => (name.to_string(), 0, String::new()),
    }
}

/// A kernel "selection" file such as THP's `always [madvise] never`: the bracketed choice.
pub fn bracketed_choice(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    Some(text[start + 1..end].to_string())
}

/// Parses a kernel CPU or node mask file (`0-3,8\n`). An empty file, and the `(null)`
/// older kernels print for an unset mask, are the empty set.
pub fn parse_mask(text: &str) -> Result<Vec<u32>, String> {
    let t = text.trim();
    if t.is_empty() || t == "(null)" {
        return Ok(Vec::new());
    }
    parse_cpulist(t).map_err(|e| e.to_string())
}

/// A sysfs boolean module parameter (`Y`/`N`, `1`/`0`).
pub fn parse_bool_param(text: &str) -> Option<bool> {
    match text.trim() {
        "Y" | "y" | "1" => Some(true),
        "N" | "n" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["node10", "node2", "node1", "has_cpu", "cpu0"];
        v.sort_by_key(|a| natural_key(a));
        assert_eq!(v, ["cpu0", "has_cpu", "node1", "node2", "node10"]);
    }

    #[test]
    fn bracketed() {
        assert_eq!(
            bracketed_choice("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(bracketed_choice("always madvise never"), None);
    }

    #[test]
    fn bracketed_words() {
        // Moved from the second THP parser: the same file, the same answers.
        assert_eq!(
            bracketed_choice("[always] madvise never").as_deref(),
            Some("always")
        );
        assert_eq!(
            bracketed_choice("always defer defer+madvise [madvise] never").as_deref(),
            Some("madvise")
        );
    }

    #[test]
    fn masks() {
        assert_eq!(parse_mask("0-3,8\n").unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_mask("\n").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_mask("(null)\n").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_mask("2-3\n").unwrap(), vec![2, 3]);
        assert!(parse_mask("3-x").is_err());
    }

    #[test]
    fn bool_params() {
        assert_eq!(parse_bool_param("Y\n"), Some(true));
        assert_eq!(parse_bool_param("0"), Some(false));
        assert_eq!(parse_bool_param("maybe"), None);
    }

    #[test]
    fn reads_under_root() {
        let dir = std::env::temp_dir().join(format!("rvmm-sysfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sys/x")).unwrap();
        std::fs::write(dir.join("sys/x/n"), " 42\n").unwrap();
        let fs = HostFs::at(&dir);
        assert_eq!(fs.read_u64("/sys/x/n"), Some(42));
        assert_eq!(fs.read("/sys/x/missing"), None);
        assert_eq!(fs.list("/sys/x"), ["n"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
