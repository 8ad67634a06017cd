#!/usr/bin/env bash
# bench/run.sh — the one command behind docs/benchmarks.md: builds rvmm and rvmm-bench with
# the release profile (fat LTO, size-optimised: what `cargo build --release` ships), then
# runs every benchmark (rvmm and QEMU alternating) and writes docs/benchmarks.md, docs/bench/*.svg and docs/bench/results.json.
#   bench/run.sh                 everything, 5 counted runs per configuration (~30 min here)
#   bench/run.sh --runs 9        more runs
#   bench/run.sh --smoke         each benchmark once, tiny; writes to a scratch directory
# Other arguments go to `rvmm-bench all` (see `rvmm-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release -p rvmm -p rvmm-bench
exec "${CARGO_TARGET_DIR:-target}/release/rvmm-bench" all "$@"
