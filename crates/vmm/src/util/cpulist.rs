//! CPU lists in the kernel's cpulist syntax (`/sys/.../cpulist`, `taskset -c`, `isolcpus=`):
//! formatting a set of CPU numbers as ranges (`0-3,8`) and parsing such text back.
//!
//! Grammar, a comma-separated list of groups:
//! - `N` one CPU; `N-M` a range (N <= M);
//! - `N-M:U/G` the kernel's grouped range: in each group of G CPUs starting at N, the first U
//!   (`0-15:2/4` is 0,1,4,5,8,9,12,13);
//! - `N-M:S` shorthand for `N-M:1/S`, every S-th CPU (not in the kernel's grammar);
//! - `^N`, `^N-M`, `^N-M:U/G` exclusions (libvirt's cpuset syntax): removed from the whole
//!   list whatever their position.
//!
//! Used by every option that takes host or guest CPU numbers (pinning, cpusets, NUMA nodes);
//! the callers decide what the numbers mean and check them against the machine.

use thiserror::Error;

/// The highest CPU number accepted (Linux's largest x86 NR_CPUS is 8192).
pub const MAX_CPU_ID: u32 = 8191;

/// A CPU list that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CpulistError {
    #[error("empty CPU list")]
    Empty,
    #[error("CPU list \"{list}\": bad token \"{token}\": {rule}")]
    BadToken {
        list: String,
        token: String,
        rule: String,
    },
    #[error("CPU list \"{list}\" selects no CPU (every CPU is excluded)")]
    NothingSelected { list: String },
}

/// Formats CPU numbers as the kernel does: sorted, duplicates dropped, consecutive runs
/// collapsed to `first-last`, joined by commas (`[3, 0, 1, 2, 8]` is `0-3,8`; `[]` is "").
pub fn cpulist(ids: &[u32]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if start == end {
            parts.push(start.to_string());
        } else {
            parts.push(format!("{start}-{end}"));
        }
        i += 1;
    }
    parts.join(",")
}

/// Words in a [`CpuSet`].
const WORDS: usize = (MAX_CPU_ID as usize + 1) / 64;

/// A set of CPU numbers `0..=MAX_CPU_ID` as a fixed bitmap (1 KiB): what a CPU list parses
/// into, so the memory a list takes is bounded by [`MAX_CPU_ID`] whatever its length, and
/// overlapping groups cost nothing extra.
#[derive(Clone, PartialEq, Eq)]
pub struct CpuSet {
    words: [u64; WORDS],
}

impl Default for CpuSet {
    fn default() -> Self {
        CpuSet { words: [0; WORDS] }
    }
}

impl std::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuSet({})", cpulist(&self.to_vec()))
    }
}

impl CpuSet {
    /// The empty set.
    pub fn new() -> CpuSet {
        CpuSet::default()
    }

    /// Adds `cpu`; numbers above [`MAX_CPU_ID`] are ignored (the parser never makes them).
    pub fn insert(&mut self, cpu: u32) {
        self.insert_range(cpu, cpu);
    }

    /// Adds `first..=last` a word at a time; the part above [`MAX_CPU_ID`] is ignored.
    pub fn insert_range(&mut self, first: u32, last: u32) {
        let last = last.min(MAX_CPU_ID);
        if first > last {
            return;
        }
        let (first, last) = (first as usize, last as usize);
        for word in first / 64..=last / 64 {
            let lo = if word == first / 64 { first % 64 } else { 0 };
            let hi = if word == last / 64 { last % 64 } else { 63 };
            // Bits lo..=hi: all ones shifted, `hi - lo` is at most 63.
            let mask = (u64::MAX >> (63 - (hi - lo))) << lo;
            self.words[word] |= mask;
        }
    }

    /// Removes every CPU of `other`.
    pub fn remove_all(&mut self, other: &CpuSet) {
        for (w, o) in self.words.iter_mut().zip(other.words.iter()) {
            *w &= !o;
        }
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        cpu <= MAX_CPU_ID && self.words[cpu as usize / 64] & (1 << (cpu % 64)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// How many CPUs the set holds.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The CPU numbers, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64u32)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| i as u32 * 64 + b)
        })
    }

    /// The CPU numbers, ascending.
    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }
}

/// Parses a CPU list (see the module documentation for the grammar) into sorted, distinct
/// CPU numbers. An empty list, or one whose exclusions remove every CPU, is an error.
pub fn parse_cpulist(text: &str) -> Result<Vec<u32>, CpulistError> {
    parse_cpuset(text).map(|set| set.to_vec())
}

/// Parses a CPU list into a [`CpuSet`]: each group is set in the bitmap as it is read, so
/// the memory used is one bitmap for the selected and one for the excluded CPUs whatever
/// the list's length, and the work per group is bounded by [`MAX_CPU_ID`].
pub fn parse_cpuset(text: &str) -> Result<CpuSet, CpulistError> {
    if text.trim().is_empty() {
        return Err(CpulistError::Empty);
    }
    let mut selected = CpuSet::new();
    let mut excluded = CpuSet::new();
    for raw in text.split(',') {
        let token = raw.trim();
        let bad = |rule: &str| CpulistError::BadToken {
            list: text.to_string(),
            token: token.to_string(),
            rule: rule.to_string(),
        };
        if token.is_empty() {
            return Err(bad(
                "empty entry (two commas in a row, or a comma at an end)",
            ));
        }
        let (target, body) = match token.strip_prefix('^') {
            Some(rest) => (&mut excluded, rest.trim_start()),
            None => (&mut selected, token),
        };
        parse_group(body, target).map_err(|rule| bad(&rule))?;
    }
    selected.remove_all(&excluded);
    if selected.is_empty() {
        return Err(CpulistError::NothingSelected {
            list: text.to_string(),
        });
    }
    Ok(selected)
}

/// Parses one group (`N`, `N-M`, `N-M:U/G`, `N-M:S`) and adds its CPUs to `out`.
/// Returns the rule broken on error.
fn parse_group(body: &str, out: &mut CpuSet) -> Result<(), String> {
    let (range, grouping) = match body.split_once(':') {
        Some((range, grouping)) => (range, Some(grouping)),
        None => (body, None),
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (parse_cpu(a)?, parse_cpu(b)?),
        None => {
            if grouping.is_some() {
                return Err("a ':' grouping needs a range before it (N-M:U/G)".to_string());
            }
            let cpu = parse_cpu(range)?;
            (cpu, cpu)
        }
    };
    if start > end {
        return Err(format!("range start {start} is above its end {end}"));
    }
    let (used, group) = match grouping {
        None => (1, 1),
        Some(g) => match g.split_once('/') {
            Some((u, g)) => (parse_count(u, "used size")?, parse_count(g, "group size")?),
            None => (1, parse_count(g, "stride")?),
        },
    };
    if used > group {
        return Err(format!(
            "used size {used} is larger than the group size {group}"
        ));
    }
    if used == group {
        // Every group is whole: the range itself.
        out.insert_range(start, end);
        return Ok(());
    }
    // At most (MAX_CPU_ID + 1) / group groups, each a range of `used` CPUs.
    let mut base = start;
    loop {
        let last = base.saturating_add(used - 1).min(end);
        out.insert_range(base, last);
        match base.checked_add(group) {
            Some(next) if next <= end => base = next,
            _ => break,
        }
    }
    Ok(())
}

/// One CPU number: decimal digits, at most MAX_CPU_ID.
fn parse_cpu(text: &str) -> Result<u32, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("missing CPU number".to_string());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("\"{text}\" is not a decimal CPU number"));
    }
    match text.parse::<u32>() {
        Ok(cpu) if cpu <= MAX_CPU_ID => Ok(cpu),
        _ => Err(format!("CPU {text} is above the limit {MAX_CPU_ID}")),
    }
}

/// A positive count in a grouping (`U`, `G` or `S`).
fn parse_count(text: &str, what: &str) -> Result<u32, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} \"{text}\" is not a decimal number"));
    }
    match text.parse::<u32>() {
        Ok(0) => Err(format!("{what} must be at least 1")),
        Ok(n) if n <= MAX_CPU_ID + 1 => Ok(n),
        _ => Err(format!("{what} {text} is above {}", MAX_CPU_ID + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_cpulist(text).unwrap_err().to_string()
    }

    #[test]
    fn formats_ranges() {
        assert_eq!(cpulist(&[]), "");
        assert_eq!(cpulist(&[5]), "5");
        assert_eq!(cpulist(&[3, 0, 1, 2, 8]), "0-3,8");
        assert_eq!(cpulist(&[0, 2, 4]), "0,2,4");
        assert_eq!(cpulist(&[1, 1, 2, 7, 6, 10]), "1-2,6-7,10");
        assert_eq!(cpulist(&[u32::MAX - 1, u32::MAX]), "4294967294-4294967295");
    }

    #[test]
    fn parses_kernel_syntax() {
        assert_eq!(parse_cpulist("0-3,8").unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_cpulist(" 8 , 0-1 ,1").unwrap(), vec![0, 1, 8]);
        assert_eq!(
            parse_cpulist("0-15:2/4").unwrap(),
            vec![0, 1, 4, 5, 8, 9, 12, 13]
        );
        assert_eq!(parse_cpulist("1-9:3").unwrap(), vec![1, 4, 7]);
        assert_eq!(parse_cpulist("0-3,8,^2").unwrap(), vec![0, 1, 3, 8]);
        assert_eq!(parse_cpulist("^1-2,0-4").unwrap(), vec![0, 3, 4]);
        assert_eq!(parse_cpulist("0-7,^0-7:1/2").unwrap(), vec![1, 3, 5, 7]);
        assert_eq!(parse_cpulist("8191").unwrap(), vec![8191]);
    }

    /// A ~128 KiB list of overlapping ranges over the whole CPU space (the kind that took
    /// 570 MB when every group was expanded into a vector first) parses into the one set
    /// it describes.
    #[test]
    fn long_list_of_overlapping_huge_ranges_is_one_bitmap() {
        let mut text = String::new();
        let mut i = 0u32;
        while text.len() < 128 << 10 {
            if !text.is_empty() {
                text.push(',');
            }
            match i % 4 {
                0 => text.push_str(&format!("{}-{MAX_CPU_ID}", i % 64)),
                1 => text.push_str(&format!("0-{MAX_CPU_ID}:1/2")),
                2 => text.push_str(&format!("0-{}", MAX_CPU_ID - i % 100)),
                _ => text.push_str(&format!("^{}-{}:1/8191", 1, MAX_CPU_ID)),
            }
            i += 1;
        }
        assert!(text.len() >= 128 << 10);
        let set = parse_cpuset(&text).unwrap();
        // Every CPU is selected; the exclusion `1-8191:1/8191` removes CPU 1 only.
        assert_eq!(set.len(), MAX_CPU_ID as usize);
        assert!(!set.contains(1) && set.contains(0) && set.contains(MAX_CPU_ID));
        let list = parse_cpulist(&text).unwrap();
        assert_eq!(list.len(), MAX_CPU_ID as usize);
        assert_eq!(&list[..3], &[0, 2, 3]);
    }

    #[test]
    fn cpuset_ranges_cross_words() {
        let mut s = CpuSet::new();
        assert!(s.is_empty());
        s.insert_range(60, 130);
        s.insert(MAX_CPU_ID);
        s.insert(MAX_CPU_ID + 1);
        assert_eq!(s.len(), 72);
        assert_eq!(cpulist(&s.to_vec()), "60-130,8191");
        let mut hole = CpuSet::new();
        hole.insert_range(64, 127);
        s.remove_all(&hole);
        assert_eq!(cpulist(&s.to_vec()), "60-63,128-130,8191");
        assert_eq!(format!("{s:?}"), "CpuSet(60-63,128-130,8191)");
        assert_eq!(
            parse_cpuset("0-8191:63/64").unwrap().len(),
            128 * 63,
            "the last CPU of every 64"
        );
    }

    #[test]
    fn round_trips() {
        let ids = vec![0, 1, 2, 5, 7, 8, 9, 100];
        assert_eq!(parse_cpulist(&cpulist(&ids)).unwrap(), ids);
    }

    #[test]
    fn rejects_bad_lists_with_token_and_rule() {
        assert_eq!(err(""), "empty CPU list");
        assert_eq!(err("  "), "empty CPU list");
        assert_eq!(
            err("0,,1"),
            "CPU list \"0,,1\": bad token \"\": empty entry (two commas in a row, or a comma at an end)"
        );
        assert_eq!(
            err("0,3-1"),
            "CPU list \"0,3-1\": bad token \"3-1\": range start 3 is above its end 1"
        );
        assert_eq!(
            err("a"),
            "CPU list \"a\": bad token \"a\": \"a\" is not a decimal CPU number"
        );
        assert_eq!(
            err("-1"),
            "CPU list \"-1\": bad token \"-1\": missing CPU number"
        );
        assert_eq!(
            err("0-"),
            "CPU list \"0-\": bad token \"0-\": missing CPU number"
        );
        assert_eq!(
            err("9000"),
            "CPU list \"9000\": bad token \"9000\": CPU 9000 is above the limit 8191"
        );
        assert_eq!(
            err("0-7:0/2"),
            "CPU list \"0-7:0/2\": bad token \"0-7:0/2\": used size must be at least 1"
        );
        assert_eq!(
            err("0-7:3/2"),
            "CPU list \"0-7:3/2\": bad token \"0-7:3/2\": used size 3 is larger than the group size 2"
        );
        assert_eq!(
            err("0-7:x"),
            "CPU list \"0-7:x\": bad token \"0-7:x\": stride \"x\" is not a decimal number"
        );
        assert_eq!(
            err("4:2"),
            "CPU list \"4:2\": bad token \"4:2\": a ':' grouping needs a range before it (N-M:U/G)"
        );
        assert_eq!(
            err("0-1,^0-1"),
            "CPU list \"0-1,^0-1\" selects no CPU (every CPU is excluded)"
        );
    }
}
