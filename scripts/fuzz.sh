#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 10) from its
# committed seeds, new inputs in a scratch folder, and prints one row per
# target: executions, corpus size, findings. Exits non-zero on a finding (the
# input is saved under fuzz/artifacts/<target>/).
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#        scripts/fuzz.sh --build   (only install cargo-fuzz if missing and build)
# AZBATCH_FUZZ_RELEASE=1 builds optimized (faster runs; CI's short run builds
# the debug profile, which compiles in half the time and checks overflows).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
if [ "${1:-}" = --build ]; then
  profile=(--dev)
  [ "${AZBATCH_FUZZ_RELEASE:-}" = 1 ] && profile=(-O)
  RUSTC_BOOTSTRAP=1 cargo fuzz build "${profile[@]}"
  exit
fi
seconds=${1:-10}
shift || true
# cargo-fuzz passes nightly flags (sanitizer, coverage); this lets the stable compiler take them.
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
profile=(--dev)
[ "${AZBATCH_FUZZ_RELEASE:-}" = 1 ] && profile=(-O)
cargo fuzz build "${profile[@]}" >"$scratch/build.log" 2>&1 || { cat "$scratch/build.log" >&2; exit 1; }
printf '| target | seconds | executions | corpus (seeds + new) | findings |\n|---|---|---|---|---|\n'
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  rc=0
  cargo fuzz run "${profile[@]}" "$t" "$scratch/$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  corpus=$(( $(find "corpus/$t" -type f | wc -l) + $(find "$scratch/$t" -type f | wc -l) ))
  findings=0
  if [ "$rc" -ne 0 ]; then
    findings=1
    failed=1
    grep -E 'ERROR|panicked|Test unit written' "$log" | head -5 >&2
  fi
  printf '| %s | %s | %s | %s | %s |\n' "$t" "$seconds" "$execs" "$corpus" "$findings"
done
exit $failed
