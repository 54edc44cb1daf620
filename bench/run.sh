#!/usr/bin/env bash
# Runs every benchmark program and merges their figures.
#
#   bash bench/run.sh [BUILD_DIR]        (default: build; `make bench` calls it as `bench/run.sh build`)
#
# - Configures BUILD_DIR if it has not been (CMake + Ninja, Release) and builds it
#   (`cmake --build BUILD_DIR -j2`; TENSAIR_BENCH_BUILD=0 skips building).
# - Runs every executable BUILD_DIR/bench/bench_* with `--json BUILD_DIR/bench/<name>.json`,
#   plus `--quick` when TENSAIR_BENCH_QUICK=1. Programs listed in BENCH_RANKS below run under
#   `mpirun -np N`; all others run as one process. Programs that do not exist yet are simply
#   not run.
# - Merges every JSON into BUILD_DIR/bench/results.json and prints one markdown table of all
#   figures (format: bench/README.md).
# - Exits non-zero if any program failed (a failed correctness check exits 1) or wrote no
#   JSON; the figures of the others are still merged.
set -uo pipefail
# The whole script is one function, read by bash before it runs: nothing a benchmark does to
# the script's file descriptor (an mpirun run once left bash reading from a wrong offset) can
# derail the rest.
main() {

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac

# Benchmarks that need several ranks: program name -> rank count. Add yours here.
declare -A BENCH_RANKS=(
  [bench_transport]=2
  [bench_pipeline]=2
)
# mpirun options for them: room for more ranks than cores, and no binding of a rank to one
# core (a TensAIR rank runs several threads: progress, operators, main).
MPI_FLAGS=(--oversubscribe --bind-to none)
TIMEOUT_S=${TENSAIR_BENCH_TIMEOUT:-3600}
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

say() { echo "bench: $*" >&2; }

# Configure and build -----------------------------------------------------------------------------
if [ "${TENSAIR_BENCH_BUILD:-1}" != 0 ]; then
  if [ ! -f "$build/CMakeCache.txt" ]; then
    say "configuring $build"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release || exit 1
  fi
  say "building $build"
  cmake --build "$build" -j2 || { say "error: the build failed"; exit 1; }
fi
if [ ! -d "$build/bench" ]; then
  say "error: no $build/bench (was the build configured with -DTENSAIR_BUILD_BENCH=OFF?)"
  exit 1
fi

# Run ---------------------------------------------------------------------------------------------
quick=()
[ "${TENSAIR_BENCH_QUICK:-0}" = 1 ] && quick=(--quick)

programs=()
for p in "$build"/bench/bench_*; do
  [ -f "$p" ] && [ -x "$p" ] && programs+=("$p")
done
if [ ${#programs[@]} -eq 0 ]; then
  say "error: no benchmark programs in $build/bench"
  exit 1
fi

failed=()
jsons=()
for p in "${programs[@]}"; do
  name=$(basename "$p")
  json="$build/bench/$name.json"
  rm -f "$json"
  ranks=${BENCH_RANKS[$name]:-1}
  if [ "$ranks" -gt 1 ]; then
    if ! command -v mpirun >/dev/null 2>&1; then
      say "error: $name needs mpirun (Open MPI) and there is none on PATH"
      failed+=("$name")
      continue
    fi
    cmd=(mpirun -np "$ranks" "${MPI_FLAGS[@]}" "$p" "${quick[@]}" --json "$json")
  else
    cmd=("$p" "${quick[@]}" --json "$json")
  fi
  say "running: ${cmd[*]} (load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))"
  timeout "$TIMEOUT_S" "${cmd[@]}" </dev/null
  rc=$?
  echo
  if [ $rc -ne 0 ]; then
    case $rc in
      1) say "error: $name FAILED (exit 1: a result was wrong or the run failed)" ;;
      124) say "error: $name did not finish within ${TIMEOUT_S}s" ;;
      *) say "error: $name exited with status $rc" ;;
    esac
    failed+=("$name")
    continue
  fi
  if [ ! -s "$json" ]; then
    say "error: $name wrote no $json"
    failed+=("$name")
    continue
  fi
  jsons+=("$json")
done

# Merge -------------------------------------------------------------------------------------------
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
if [ "$commit" != unknown ] && [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  dirty=true
fi
out="$build/bench/results.json"
"$PYTHON" - "$out" "$commit" "$dirty" "${TENSAIR_BENCH_QUICK:-0}" "${failed[*]:-}" "${jsons[@]}" <<'EOF'
import datetime, json, os, sys

out, commit, dirty, quick, failed = sys.argv[1:6]
paths = sys.argv[6:]

def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"

benches, flat, problems = [], [], []
for p in paths:
    try:
        with open(p) as f:
            b = json.load(f)
        if not isinstance(b.get("results"), list) or "bench" not in b:
            raise ValueError("no \"bench\" or \"results\" list")
    except (OSError, ValueError) as e:
        problems.append(f"{os.path.basename(p)}: {e}")
        continue
    benches.append(b)
    for r in b["results"]:
        flat.append({"bench": b["bench"], **r})

doc = {
    "machine": machine(),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git_commit": commit,
    "git_dirty": dirty == "true",
    "quick": quick == "1",
    "failed": failed.split() if failed else [],
    "benchmarks": benches,
    "results": flat,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")

def num(v):
    if v is None:
        return ""
    if isinstance(v, (int, float)):
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1e6 or a < 1e-3:
            return f"{v:.3g}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        return f"{v:.3f}"
    return str(v)

print(f"## All benchmarks: {doc['machine']}, commit {commit[:12]}{' (+ local changes)' if doc['git_dirty'] else ''}, {doc['date']}{', quick' if doc['quick'] else ''}")
print()
print("| bench | name | value | unit | baseline | baseline value | ratio |")
print("|---|---|---:|---|---|---:|---:|")
for r in flat:
    print(f"| {r['bench']} | {r.get('name', '')} | {num(r.get('value'))} | {r.get('unit', '')} | "
          f"{r.get('baseline') or ''} | {num(r.get('baseline_value'))} | {num(r.get('ratio'))} |")
print()
print(f"written: {out}")
for p in problems:
    print(f"bench: error: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
merge_rc=$?

if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED: ${failed[*]}"
  exit 1
fi
[ $merge_rc -eq 0 ] || exit 1
exit 0
}
main "$@"
