#!/usr/bin/env bash
# `tensair report OUT` end to end, as a user runs it:
#  1. a tiny model job (generator -> model with a held-out evaluation) on 1 and 2 ranks, then
#     `tensair report`: report.md and its PNGs exist, the PNGs decode, the tables have the rows
#     the run implies (job, ranks, records per operator, final eval, model summary per rank);
#  2. a hand-written metrics.jsonl of a drift run (two true changes, detections, a false alarm,
#     a missed change, training stopped and restarted): the drift table and its delays;
#  3. mistakes: a missing folder, a folder without metrics.jsonl, a line that is not JSON, bad
#     arguments: one line "tensair: error: ..." each, exit 2 or 1.
# Usage: report_test.sh TENSAIR_BINARY REPO_ROOT
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../testing/expect_error.sh"
bin=$1
root=$2
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_row FILE ROW: report.md contains this exact table row (a whole line).
expect_row() {
  grep -qxF -- "$2" "$1" || { fail "$1 has no line '$2'"; grep -n '^|' "$1" | head -40 >&2; }
}

# check_pngs DIR NAME...: each DIR/NAME is a PNG file that decodes to a non-empty image.
check_pngs() {
  local dir=$1
  shift
  $py - "$dir" "$@" <<'PY' || fail "PNG check in $1"
import os, struct, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.image as mpimg
d = sys.argv[1]
for name in sys.argv[2:]:
    path = os.path.join(d, name)
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG file"
    w, h = struct.unpack(">II", head[16:24])
    img = mpimg.imread(path)  # decodes every chunk
    assert img.shape[0] == h and img.shape[1] == w and w >= 400 and h >= 300, f"{path}: {img.shape}"
    assert img.std() > 0.01, f"{path}: a blank image"
PY
}

cat > "$work/job.toml" <<'EOF'
[job]
name = "report_smoke"
[gen]
type = "generator"
count = 20000
batch_size = 50
columns = { x = "normal[8]", y = "randint(2)" }
[test]
type = "generator"
count = 400
batch_size = 100
columns = { x = "normal[8]", y = "randint(2)" }
[model]
type = "model"
network = "mlp"
layers = [8, 16, 2]
lr = 0.05
threads = 1
log_every = 4
eval_every = 100
[model.inputs.train]
from = "gen"
[model.inputs.evaluate]
from = "test"
EOF

# ---- 1. real runs --------------------------------------------------------------------------
for np in 1 2; do
  out="$work/np$np"
  mpirun --oversubscribe -np "$np" "$bin" run "$work/job.toml" --no-progress --out "$out"
  msg=$("$bin" report "$out")
  [ "$msg" = "tensair: report written to $out/report.md (3 plots in $out/report)" ] ||
    [ "$msg" = "tensair: report written to $out/report.md (2 plots in $out/report)" ] ||
    fail "$np ranks: tensair report printed '$msg'"
  md="$out/report.md"
  [ -s "$md" ] || { fail "$np ranks: no report.md"; continue; }
  # Loss/accuracy and staleness always; throughput once a rank measured samples/s (>= 1 s).
  check_pngs "$out/report" loss_accuracy.png staleness.png
  if grep -qF '](report/throughput.png)' "$md"; then
    check_pngs "$out/report" throughput.png
  else
    grep -qF 'no data (no `samples_per_s` measured' "$md" || fail "$np ranks: no throughput plot and no 'no data'"
  fi
  for img in $(grep -o '](report/[a-z_]*\.png)' "$md" | sed 's/^](//; s/)$//'); do
    [ -f "$out/$img" ] || fail "$np ranks: report.md shows $img, which does not exist"
  done
  expect_row "$md" "| job | report_smoke |"
  expect_row "$md" "| status | ok |"
  expect_row "$md" "| ranks | $np |"
  grep -qE '^\| duration \| [0-9]+\.[0-9]{2} s \|$' "$md" || fail "$np ranks: no duration row"
  # Operators (busy seconds vary: rows are checked up to them).
  grep -qE "^\| \`gen\` \| generator \| $np \| 0 \| 20,000 \| 0 \| " "$md" || fail "$np ranks: gen row"
  grep -qE "^\| \`test\` \| generator \| $np \| 0 \| 400 \| 0 \| " "$md" || fail "$np ranks: test row"
  grep -qE "^\| \`model\` \| model \| $np \| " "$md" || fail "$np ranks: model row"
  # Final held-out evaluation and model summary: one row per rank, numbers from metrics.jsonl.
  $py - "$out/metrics.jsonl" "$md" "$np" <<'PY' || fail "$np ranks: eval / summary rows"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
md = open(sys.argv[2]).read().splitlines()
n = int(sys.argv[3])
for r in range(n):
    ev = [l for l in lines if l.get("kind") == "eval" and l["rank"] == r][-1]
    s = [l for l in lines if l.get("kind") == "model_summary" and l["rank"] == r][0]
    rows = [f"| final eval accuracy (rank {r}) | {ev['accuracy']:.4f} |",
            f"| final eval loss (rank {r}) | {ev['loss']:.4f} |",
            f"| rank {r} | {ev['step']:,} | {ev['version']:,} | {ev['samples_seen']:,} | {ev['records']:,} | "
            f"{ev['loss']:.4f} | {ev['accuracy']:.4f} | {ev['t']:.2f} |"]
    for row in rows:
        assert row in md, f"missing row: {row}"
    prefix = (f"| rank {r} | {s['steps']:,} | {s['version']:,} | {s['samples']:,} | {s['predictions']:,} | "
              f"{s['deltas_sent']:,} | {s['deltas_applied']:,} | ")
    assert any(l.startswith(prefix) for l in md), f"missing model summary row: {prefix}"
# Every record of `gen` was trained on by some rank (training = "always").
assert sum(l["samples"] for l in lines if l.get("kind") == "model_summary") == 20000
PY
done
# Two ranks exchange deltas: their staleness is in the summary table, not all zero.
grep -qE '^\| rank 1 \| ([0-9,]+ \| ){5}[1-9][0-9,]* \| ' "$work/np2/report.md" || fail "2 ranks: rank 1 applied no deltas"

# The same folder under mpirun: one report, from rank 0, exit 0.
mpirun --oversubscribe -np 2 "$bin" report "$work/np2" > "$work/mpi_report.txt"
[ "$(grep -c '^tensair: report written' "$work/mpi_report.txt")" -eq 1 ] || fail "mpirun report: $(cat "$work/mpi_report.txt")"
"$bin" report "$work/np2" --x step > /dev/null || fail "--x step"

# ---- 2. a drift run, written by hand -------------------------------------------------------
syn="$work/drift"
mkdir -p "$syn"
$py - "$syn/metrics.jsonl" <<'PY'
import json, math, sys
out = open(sys.argv[1], "w")
def w(**kw): out.write(json.dumps(kw) + "\n")
w(t=0.0, type="job", event="start", job="drift_synth", ranks=2, operators=2)
for idx, t in ((40000, 12.0), (80000, 24.0)):
    w(t=t, rank=0, operator="source", instance=0, kind="concept_change", index=idx)
    w(t=t + 0.01, rank=1, operator="source", instance=1, kind="concept_change", index=idx)  # same change, once
for r in range(2):
    step, training = 0, True
    for i in range(1, 601):
        t = i * 0.06
        if 7.0 <= t < 12.5: training = False
        if 12.5 <= t and not training:
            training = True
            w(t=t, rank=r, operator="model", instance=r, kind="model_control", command="start", step=step, version=2 * step, training=True)
        if training: step += 4
        since = t - max(c for c in (0.0, 12.0, 24.0) if c <= t)
        loss = 0.5 + 1.8 * math.exp(-since / 2.0) + 0.05 * math.sin(i)
        w(t=t, rank=r, operator="model", instance=r, kind="model", phase="train" if training else "predict", step=step,
          version=2 * step, loss=loss, accuracy=1 - loss / 2.5, samples_per_s=3000.0 + 100 * r if t > 1 else 0.0,
          staleness_mean=2.5 + r, staleness_max=6 + r, training=training)
        if i % 100 == 0:
            w(t=t, rank=r, operator="model", instance=r, kind="eval", step=step, version=2 * step, samples_seen=64 * step,
              loss=loss, accuracy=1 - loss / 2.5, records=1000)
    if r == 0:
        w(t=7.0, rank=r, operator="model", instance=r, kind="converged", step=700, version=1400, by="self")
    w(t=3.0, rank=r, operator="model", instance=r, kind="drift", detector="optwin", index=10000, step=200, version=400)
    w(t=12.4, rank=r, operator="model", instance=r, kind="drift", detector="optwin", index=41200 + 100 * r, step=700, version=1400)
    if r == 0:  # rank 1 misses the second change
        w(t=24.6, rank=r, operator="model", instance=r, kind="drift", detector="optwin", index=82000, step=1500, version=3000)
    w(t=36.0, rank=r, operator="model", instance=r, kind="model_summary", steps=step, version=2 * step, samples=64 * step,
      deltas_sent=step, delta_bytes_sent=step * 1000, delta_bytes_max=1000, dense_delta_bytes=1000, deltas_applied=step,
      staleness_mean=2.5 + r, staleness_max=6 + r, nonfinite_losses=0, predictions=5000, training=True)
w(t=36.1, type="operator", rank=0, operator="source", op_type="cifar10_source", instance=0, source=True, records_in=0,
  records_out=120000, dead_letters=3, busy_s=1.0, final=True)
w(t=36.2, type="job", event="end", status="ok", elapsed_s=36.2)
PY
"$bin" report "$syn" > /dev/null || fail "drift report"
md="$syn/report.md"
check_pngs "$syn/report" loss_accuracy.png throughput.png staleness.png
expect_row "$md" "| job | drift_synth |"
expect_row "$md" "| duration | 36.20 s |"
expect_row "$md" "| drift detections / true concept changes | 5 / 2 |"
expect_row "$md" "| 1 | 40,000 | 12.00 | optwin (rank 0) | 41,200 | 12.40 | 1,200 | 0.40 |"
expect_row "$md" "| 2 | 80,000 | 24.00 | optwin (rank 0) | 82,000 | 24.60 | 2,000 | 0.60 |"
expect_row "$md" "| 1 | 40,000 | 12.00 | optwin (rank 1) | 41,300 | 12.40 | 1,300 | 0.40 |"
expect_row "$md" "| 2 | 80,000 | 24.00 | optwin (rank 1) | missed | – | – | – |"
expect_row "$md" "- optwin (rank 0): 2 of 2 changes detected, mean delay 1,600.0 (index positions); 1 false alarm: at 10,000"
expect_row "$md" "- optwin (rank 1): 1 of 2 changes detected, mean delay 1,300.0 (index positions); 1 false alarm: at 10,000"
expect_row "$md" "| 7.00 | rank 0 | converged (self) | 700 | 1,400 |"
expect_row "$md" "| \`source\` | cifar10_source | 1 | 0 | 120,000 | 3 | 1.00 | 0 |"
grep -qF '](report/throughput.png)' "$md" || fail "drift report: no throughput plot"
# A run that did not finish (no end line): still a report, which says so.
head -n -1 "$syn/metrics.jsonl" > "$work/cut.jsonl"
mkdir -p "$work/cut" && mv "$work/cut.jsonl" "$work/cut/metrics.jsonl"
"$bin" report "$work/cut" > /dev/null || fail "report of an unfinished run"
expect_row "$work/cut/report.md" "| status | no end line: the run did not finish |"

# A run killed while writing its last line, and a resumed run after such a line: the cut line
# is noted and skipped, the report is written.
mkdir -p "$work/killed" "$work/resumed"
size=$(stat -c %s "$work/np1/metrics.jsonl")
head -c $((size - 15)) "$work/np1/metrics.jsonl" > "$work/killed/metrics.jsonl"
err=$("$bin" report "$work/killed" 2>&1 >/dev/null) || fail "report of a run killed mid-line: $err"
printf '%s' "$err" | grep -q "a line cut off (a killed run?); skipped" || fail "no note of the cut line: $err"
{ cat "$work/killed/metrics.jsonl"; echo; head -n 1 "$work/np1/metrics.jsonl"; } > "$work/resumed/metrics.jsonl"
"$bin" report "$work/resumed" > /dev/null 2>&1 || fail "report of a resumed run after a cut line"

# ---- 3. mistakes ---------------------------------------------------------------------------
mkdir -p "$work/empty" "$work/bad" "$work/badnum"
cp "$work/np1/metrics.jsonl" "$work/badnum/metrics.jsonl"
sed -i '3i {"t": 0.5, "kind": "model", "rank": 0, "loss": "abc"}' "$work/badnum/metrics.jsonl"
expect_error "field not a number" 1 "tensair: error: $work/badnum/metrics.jsonl:3: \"loss\" is not a number: \"abc\"" "$bin" report "$work/badnum"
cp "$work/np1/metrics.jsonl" "$work/bad/metrics.jsonl"
sed -i '3s/.*/{"t": 0.5, "kind": "model", oops/' "$work/bad/metrics.jsonl"
expect_error "missing folder" 2 "tensair: error: output folder $work/nope does not exist" "$bin" report "$work/nope"
expect_error "no metrics.jsonl" 2 "tensair: error: $work/empty/metrics.jsonl does not exist" "$bin" report "$work/empty"
expect_error "line not JSON" 1 "tensair: error: $work/bad/metrics.jsonl:3: not JSON" "$bin" report "$work/bad"
expect_error "missing argument" 2 "out is required" "$bin" report
expect_error "bad --x" 2 "--x" "$bin" report "$work/np1" --x nope
expect_error "missing script" 1 "report script $work/none.py does not exist" env TENSAIR_REPORT_SCRIPT="$work/none.py" "$bin" report "$work/np1"
expect_error "missing folder, mpirun" 2 "output folder $work/nope does not exist" mpirun --oversubscribe -np 2 "$bin" report "$work/nope"
# The script on its own says the same.
set +e
err=$($py "$root/scripts/report.py" "$work/nope" 2>&1 >/dev/null); rc=$?
set -e
[ "$rc" -eq 2 ] && [ "$err" = "error: output folder $work/nope does not exist" ] || fail "report.py alone: exit $rc: $err"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "report: 1- and 2-rank runs, a drift run and 9 mistakes, a killed and a resumed run give the expected report.md, plots and errors"
