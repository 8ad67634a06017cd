//! Replays every committed fuzz input on stable Rust: each file of `fuzz/corpus/NAME/` and
//! `fuzz/regressions/NAME/` goes through `vmm::fuzz_targets::NAME`, the body the cargo-fuzz
//! target of that name runs under libFuzzer (docs/security.md, "Fuzzing"). A panic fails the
//! test and names the file. Reproducers of crashes not fixed yet wait in
//! `fuzz/regressions-open/` and are not replayed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/KIND/NAME/` for every target NAME that has such a directory.
fn inputs(kind: &str) -> Vec<(String, PathBuf)> {
    let root = fuzz_dir().join(kind);
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return out;
    };
    for dir in dirs {
        let dir = dir.expect("reading a fuzz input directory").path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).expect("reading a fuzz input directory") {
            let file = file.expect("reading a fuzz input directory").path();
            if file.is_file() {
                out.push((name.clone(), file));
            }
        }
    }
    out.sort();
    out
}

/// Runs every input through its target; returns how many ran, and fails on the first
/// directory without a target or the inputs that panicked.
fn replay(kind: &str) -> usize {
    let inputs = inputs(kind);
    let mut panicked = Vec::new();
    for (name, file) in &inputs {
        let target = vmm::fuzz_targets::target(name)
            .unwrap_or_else(|| panic!("fuzz/{kind}/{name}: no vmm::fuzz_targets::{name}"));
        let data = std::fs::read(file).unwrap();
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            panicked.push(file.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "inputs that panic: {panicked:#?}");
    inputs.len()
}

#[test]
fn every_target_has_a_corpus() {
    for (name, _) in vmm::fuzz_targets::TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let seeds = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .count();
        assert!(seeds > 0, "{} is empty", dir.display());
        let bin = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(bin.is_file(), "{} is missing", bin.display());
    }
}

#[test]
fn corpus_replays_without_a_panic() {
    let n = replay("corpus");
    assert!(
        n >= vmm::fuzz_targets::TARGETS.len(),
        "only {n} corpus files"
    );
}

#[test]
fn regressions_replay_without_a_panic() {
    replay("regressions");
}
