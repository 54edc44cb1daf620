#!/usr/bin/env bash
# make fuzz: builds the libFuzzer targets with clang (ASan + UBSan + coverage) and runs each
# for FUZZ_SECONDS, starting from the committed seeds (fuzz/corpus/NAME). See docs/fuzzing.md.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS [TARGET...]     (default: every target)
#
# Writes BUILD_DIR/fuzz/results/NAME.log, the corpus it grew (BUILD_DIR/fuzz/work/NAME, not
# committed), any crashing input (BUILD_DIR/fuzz/crashes/NAME/), and a summary table on stdout
# and in BUILD_DIR/fuzz/results/summary.json. Exits 1 when a target found a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?build dir}
seconds=${2:?seconds per target}
shift 2

bash scripts/bootstrap.sh clang libclang-rt-14-dev
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTENSAIR_FUZZ=ON -DTENSAIR_BUILD_TESTS=OFF -DTENSAIR_BUILD_BENCH=OFF -DTENSAIR_WITH_MODEL=OFF
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cut -d' ' -f1 "$build/fuzz/targets.txt")
fi
cmake --build "$build" -j "${JOBS:-2}" --target $(printf 'fuzz_%s ' "${targets[@]}")

results="$build/fuzz/results"
mkdir -p "$results"
# Only the library's own reports matter; LibTorch and Open MPI keep allocations to exit.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
failed=0
for t in "${targets[@]}"; do
  max_len=$(awk -v t="$t" '$1 == t {print $2}' "$build/fuzz/targets.txt")
  work="$build/fuzz/work/$t"
  crashes="$build/fuzz/crashes/$t"
  mkdir -p "$work" "$crashes"
  log="$results/$t.log"
  stamp="$results/$t.started"  # crashes of this run: the files newer than it
  touch "$stamp"
  echo "fuzz: $t for ${seconds}s (max_len $max_len)"
  rc=0
  "$build/fuzz/fuzz_$t" "$work" "fuzz/corpus/$t" -max_total_time="$seconds" -max_len="$max_len" \
    -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$crashes/" \
    >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "$work" -type f | wc -l)
  found=$(find "$crashes" -type f -newer "$stamp" | wc -l)
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then failed=1; fi
  echo "{\"target\": \"$t\", \"seconds\": $seconds, \"executions\": ${execs:-0},\
 \"coverage_edges\": ${cov:-0}, \"features\": ${ft:-0}, \"corpus\": $corpus,\
 \"crashes\": $found, \"exit\": $rc, \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" \
    >"$results/$t.json"
  printf '%-14s %8ss %12s execs %7s edges %7s features %6s corpus %3s crashes (exit %s)\n' \
    "$t" "$seconds" "${execs:-0}" "${cov:-0}" "${ft:-0}" "$corpus" "$found" "$rc"
done
# The summary holds the last run of every target, those of earlier or concurrent runs of this
# script too (each leaves its target's NAME.json).
{
  echo "{\"results\": ["
  first=1
  for f in "$results"/*.json; do
    [ "$(basename "$f")" = summary.json ] && continue
    [ "$first" -eq 1 ] || echo ","
    first=0
    printf '  %s' "$(cat "$f")"
  done
  echo
  echo "]}"
} >"$results/summary.json.$$" && mv "$results/summary.json.$$" "$results/summary.json"
echo "fuzz: summary in $results/summary.json"
if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target found a crash: inputs in $build/fuzz/crashes/ (make each a regression:" \
       "fuzz/regressions/NAME/)" >&2
  exit 1
fi
