#!/usr/bin/env bash
# Set up a fresh machine and run every test: format, lints, a bounded fuzz run, then unit,
# component, conformance, crash, kubectl and cluster tests. Exits non-zero on any failure.
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# One build, no incremental caches: they doubled the target directory and a one-off build
# gains nothing from them. The free disk is printed first, since a full disk fails a build
# in ways (a linker's bus error) that do not say so.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | awk 'NR == 2 { print "test.sh: " $4 " free on " $6 " before the build" }'

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

# Coverage-guided fuzzing of the apiserver's decode/validate path, bounded: 60 s of fuzzing
# in total (CAPSTAN_FUZZ_SECONDS overrides; 0 skips), after its build.
if [[ "${CAPSTAN_FUZZ_SECONDS:-60}" != 0 ]]; then
  bash scripts/fuzz.sh "${CAPSTAN_FUZZ_SECONDS:-60}"
fi

# Every test of the workspace; the last line sums the results of every test binary.
mkdir -p target
log=target/test-output.log
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
