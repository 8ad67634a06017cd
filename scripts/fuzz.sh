#!/usr/bin/env bash
# fuzz.sh — runs every cargo-fuzz target of fuzz/ for SECONDS each (default 1800), one after
# the other, at low priority, and prints each target's last libFuzzer status line (executions,
# coverage, corpus). Nightly only (cargo +nightly fuzz; `cargo install cargo-fuzz`); CI does not
# call it: CI replays the corpora with `cargo test -p vmm --test fuzz_corpus`.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# New corpus entries land in fuzz/corpus/TARGET/ (minimize with `cargo +nightly fuzz cmin
# TARGET` before committing); a crash stops its target and leaves the reproducer in
# fuzz/artifacts/TARGET/, and the script exits 1 after the remaining targets have run.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-1800}"
shift || true
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build || exit 1
mkdir -p logs
failed=0
for t in "${targets[@]}"; do
    log="logs/$t.log"
    echo "fuzz: $t for ${seconds}s (log: fuzz/$log)"
    if nice -n 10 cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^#[0-9]+' "$log" | tail -1
        grep -E '^stat::number_of_executed_units' "$log"
    else
        echo "fuzz: $t FAILED; see fuzz/$log and fuzz/artifacts/$t/"
        grep -E 'panicked at|ERROR: ' "$log" | head -3
        failed=1
    fi
done
exit $failed
