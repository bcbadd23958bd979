#!/usr/bin/env bash
# Coverage-guided fuzzing of the apiserver (apiserver/fuzz, cargo-fuzz + libFuzzer): the
# request decode/validate path (decode_validate) and the HTTP/1.1 connection loop (http1),
# bounded in time: every target in turn, the total split evenly.
#
#   scripts/fuzz.sh [TOTAL_SECONDS]      (default 60; or CAPSTAN_FUZZ_SECONDS)
#
# Installs cargo-fuzz when missing (idempotent). cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address, sancov); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# Seeds: apiserver/fuzz/seeds and, when present, manifests/ (read-only), or a target's own
# apiserver/fuzz/seeds-<target>/ when it has one; new inputs go to
# apiserver/fuzz/corpus/<target> (not committed). A crash fails the script and leaves the
# input in apiserver/fuzz/artifacts/<target>/ (reproduce: cargo fuzz run <target> <file>).
set -euo pipefail
cd "$(dirname "$0")/.."

total="${1:-${CAPSTAN_FUZZ_SECONDS:-60}}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

cd apiserver/fuzz
mapfile -t targets < <(cargo fuzz list)
((${#targets[@]})) || { echo "fuzz: no targets" >&2; exit 1; }
per=$((total / ${#targets[@]}))
((per >= 1)) || per=1

seeds=(seeds)
[[ -d ../../manifests ]] && seeds+=(../../manifests)

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  # A target with its own seeds (seeds-<target>/) starts from those alone.
  target_seeds=("${seeds[@]}")
  [[ -d "seeds-$t" ]] && target_seeds=("seeds-$t")
  echo "fuzz: $t for ${per}s (seeds: ${target_seeds[*]})" >&2
  cargo fuzz run "$t" "corpus/$t" "${target_seeds[@]}" -- \
    -max_total_time="$per" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1
done
