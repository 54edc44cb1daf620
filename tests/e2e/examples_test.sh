#!/usr/bin/env bash
# Every example job runs on a tiny slice of its data with 1 and 2 ranks and exits 0; its
# outputs are there and well formed (the word2vec export parses and has its declared shape;
# the drift demo logs its change points; Elec2 logs its baselines).
# Usage: examples_test.sh TENSAIR_BINARY REPO_ROOT
set -euo pipefail
bin=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=/usr/bin/python3

run() {  # run NP NAME ARGS...: runs examples/NAME.toml on NP ranks into $work/NAME.NP
  local np=$1 name=$2
  shift 2
  mpirun --oversubscribe -np "$np" "$bin" run "$root/examples/$name.toml" --no-progress --out "$work/$name.$np" "$@" \
    > "$work/$name.$np.log" 2>&1 || { echo "FAIL: $name on $np ranks:" >&2; cat "$work/$name.$np.log" >&2; exit 1; }
  tail -n 1 "$work/$name.$np/metrics.jsonl" | grep -q '"event":"end"' || { echo "FAIL: $name: metrics.jsonl incomplete" >&2; exit 1; }
}

for np in 1 2; do
  run "$np" cifar10 --set train.limit=640 --set train.replay=1 --set test.limit=500 --set model.eval_every=5
  grep -q '"kind":"eval"' "$work/cifar10.$np/metrics.jsonl" || { echo "FAIL: cifar10: no evaluation" >&2; exit 1; }
  test -s "$work/cifar10.$np/cifar_cnn_0.pt"

  run "$np" word2vec --set pairs.limit=400 --set model.eval_every=5
  $py - "$work/word2vec.$np/vectors.txt" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
n, d = map(int, lines[0].split())
assert len(lines) == n + 1, (len(lines), n)
for line in lines[1:]:
    parts = line.split(" ")
    assert len(parts) == d + 1, parts[:3]
    [float(x) for x in parts[1:]]
assert n > 100 and d == 100, (n, d)
PY
  grep -q '"kind":"neighbours"' "$work/word2vec.$np/metrics.jsonl"

  run "$np" drift_demo --set stream.limit=2400 \
    --set 'stream.concept_changes=[{at=800,permutation=[1,2,3,4,5,6,7,8,9,0]},{at=1600,permutation=[9,8,7,6,5,4,3,2,1,0]}]'
  test "$(grep -c '"kind":"concept_change"' "$work/drift_demo.$np/metrics.jsonl")" -ge 2

  run "$np" elec2 --set stream.limit=3000
  grep -q '"kind":"baselines".*"records":3000' "$work/elec2.$np/metrics.jsonl"
  test "$(($(wc -l < "$work/elec2.$np/steps.csv") - 1))" -ge 1
done

# The demo's terminal summary, drift-eval --run and the report work on a real run and show the
# same matches.
"$bin" drift-eval --run "$work/drift_demo.1" > /dev/null
summary=$($py "$root/scripts/drift_summary.py" "$work/drift_demo.1")
grep -q "2 true change(s)" <<< "$summary"
TENSAIR_REPORT_SCRIPT="$root/scripts/report.py" \
  $py "$root/tests/drift/check_agreement.py" "$bin" "$root" "$work/drift_demo.1"
test -s "$work/drift_demo.1/report.md"
echo "examples: cifar10, word2vec, drift_demo, elec2 ran on 1 and 2 ranks"
