#!/usr/bin/env bash
# Faults injected into real processes: a job of generator -> select -> CSV sink, generator ->
# keyed reduce -> CSV sink, and generator -> model (forward routing) runs under mpirun; a random
# rank is killed with SIGKILL at 5 random moments (each after the job took a new checkpoint),
# and after each kill the job goes on with `--resume latest`. Compared with an uninterrupted
# run of the same job:
#   - every sink's file is byte-identical (exactly-once output);
#   - every replica's version equals the uninterrupted run's number of updates, the records
#     trained add up to the stream's (none lost, none twice), and the replicas are equal;
#   - on 1 rank, and in sync mode, the final weights equal the uninterrupted run's.
# Then the same through `tensair launch --restarts 5`, the kills made by this test. Also: a
# checkpoint cut short while being written (no manifest; a half-written file) is ignored, and a
# damaged one is skipped with one warning line when resuming from "latest".
# Usage: fault_test.sh TENSAIR_BINARY REPO_ROOT [quick]
set -euo pipefail
bin=$1
work=$(mktemp -d)
cleanup() {
  pkill -KILL -f "$work/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
py=/usr/bin/python3
mpi=(mpirun --oversubscribe --bind-to none)
RANDOM=$$  # random moments, but reproducible from the log
echo "fault test: seed $$"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The job for `mode` (dasgd or sync). Its size makes an uninterrupted run take a few seconds,
# so that five kills fall in the middle.
write_job() {  # file mode
  cat > "$1" <<EOF
[job]
name = "faults"
heartbeat_timeout = 20
[checkpoint]
every_s = 0.25
keep = 3
[gen]
type = "generator"
count = 24000
batch_size = 40
columns = { id = "sequence", x = "normal[16]", y = "randint(3)", k = "randint(13)" }
[keep]
type = "select"
from = "gen"
routing = "forward"
columns = ["id", "k"]
[records]
type = "csv_sink"
from = "keep"
routing = "forward"
path = "records_{rank}.csv"
[count]
type = "reduce"
from = "gen"
routing = "key_hash"
key = "k"
group_by = ["k"]
aggregate = { n = "count", total = "sum(id)" }
[counts]
type = "csv_sink"
from = "count"
routing = "forward"
path = "counts_{rank}.csv"
[model]
type = "model"
from = "gen"
routing = "forward"
network = "mlp"
features = ["x"]
label = "y"
layers = [16, 384, 384, 3]
lr = 0.02
mode = "$2"
threads = 1
export = "model_{rank}.pt"
EOF
}

newest_checkpoint() {  # out -> the highest complete checkpoint id (0: none)
  local best=0 m id
  for m in "$1"/checkpoints/ckpt-*/MANIFEST.json; do
    [ -e "$m" ] || continue
    id=$(basename "$(dirname "$m")")
    id=$((10#${id#ckpt-}))
    [ "$id" -gt "$best" ] && best=$id
  done
  echo "$best"
}

# Waits until `out` has a complete checkpoint newer than `after`, while `pid` runs. Returns 1
# when `pid` ended first (the job finished).
wait_for_checkpoint() {  # out after pid
  for _ in $(seq 1200); do
    [ "$(newest_checkpoint "$1")" -gt "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  fail "no new checkpoint in 60 s"
}

# Kills a random rank (SIGKILL) among the children of mpirun `mpid`.
kill_random_rank() {  # mpid np
  local victim=$((RANDOM % $2)) p
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$victim"; then
      echo "  kill -9 rank $victim (pid $p)"
      kill -KILL "$p"
      return 0
    fi
  done
  echo "  (rank $victim already gone)"
}

pause() { sleep "0.$((RANDOM % 6 + 1))"; }  # 0.1 .. 0.6 s

compare() {  # reference out np exact_weights
  local ref=$1 out=$2 np=$3 exact=$4 r
  for r in $(seq 0 $((np - 1))); do
    cmp -s "$ref/records_$r.csv" "$out/records_$r.csv" || fail "$out: records_$r.csv differs from the uninterrupted run's"
    cmp -s "$ref/counts_$r.csv" "$out/counts_$r.csv" || fail "$out: counts_$r.csv differs from the uninterrupted run's"
  done
  $py - "$ref" "$out" "$np" "$exact" <<'PY'
import json, sys, torch
ref, out, np, exact = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
def summaries(d):
    s = {}
    for line in open(f"{d}/metrics.jsonl"):
        j = json.loads(line)
        if j.get("kind") == "model_summary":
            s[j["rank"]] = j  # the last run's
    return s
a, b = summaries(ref), summaries(out)
assert len(b) == np, f"{out}: model summaries of {sorted(b)}"
for r in range(np):
    assert b[r]["version"] == a[r]["version"], f"{out}: rank {r} version {b[r]['version']}, uninterrupted {a[r]['version']}"
assert sum(b[r]["samples"] for r in range(np)) == 24000, f"{out}: records trained {[b[r]['samples'] for r in range(np)]}"
w = [list(torch.jit.load(f"{out}/model_{r}.pt").parameters()) for r in range(np)]
for r in range(1, np):
    d = max((x - y).abs().max().item() for x, y in zip(w[0], w[r]))
    assert d < 1e-5, f"{out}: replica {r} differs from replica 0 by {d}"
if exact:
    w0 = list(torch.jit.load(f"{ref}/model_0.pt").parameters())
    d = max((x - y).abs().max().item() for x, y in zip(w0, w[0]))
    assert d < 1e-5, f"{out}: the weights differ from the uninterrupted run's by {d}"
PY
}

check_case() {  # np mode exact
  local np=$1 mode=$2 exact=$3
  local job="$work/job_$mode.toml" ref="$work/ref_${np}_$mode" out="$work/faults_${np}_$mode"
  write_job "$job" "$mode"
  "${mpi[@]}" -np "$np" "$bin" run "$job" --no-progress --out "$ref" > "$work/ref.log" 2>&1 ||
    { cat "$work/ref.log" >&2; fail "the uninterrupted run failed"; }
  echo "$np rank(s), $mode: uninterrupted run done; now 5 kills"
  local kills=0 newest=0 resume=() rc
  while [ "$kills" -lt 5 ]; do
    "${mpi[@]}" -np "$np" "$bin" run "$job" --no-progress --out "$out" "${resume[@]}" > "$work/seg.log" 2>&1 &
    local mpid=$!
    if ! wait_for_checkpoint "$out" "$newest" "$mpid"; then
      wait "$mpid" || { cat "$work/seg.log" >&2; fail "a segment failed without being killed"; }
      break  # finished before the kill
    fi
    pause
    kill_random_rank "$mpid" "$np"
    rc=0
    wait "$mpid" || rc=$?
    [ "$rc" -ne 0 ] || echo "  (the job ended before the kill took effect)"
    kills=$((kills + 1))
    newest=$(newest_checkpoint "$out")
    resume=(--resume latest)
    [ "$rc" -eq 0 ] && break
  done
  [ "$kills" -ge 5 ] || fail "$np rank(s), $mode: only $kills kills landed before the job ended (make it longer)"
  "${mpi[@]}" -np "$np" "$bin" run "$job" --no-progress --out "$out" --resume latest > "$work/final.log" 2>&1 ||
    { cat "$work/final.log" >&2; fail "the last resumed run failed"; }
  grep -q '"event":"start".*"resumed_from"' "$out/metrics.jsonl" || fail "no run resumed"
  compare "$ref" "$out" "$np" "$exact"
  echo "$np rank(s), $mode: $kills kills, resumed each time: output identical, every update once"
}

check_launch() {  # np
  local np=$1 job="$work/job_dasgd.toml" ref="$work/ref_${1}_dasgd" out="$work/launch_$1"
  "$bin" launch -np "$np" --restarts 5 --launcher "mpirun --oversubscribe --bind-to none -np {np}" "$job" \
    --no-progress --out "$out" > "$work/launch.log" 2>&1 &
  local lpid=$! kills=0 newest=0 mpid
  while [ "$kills" -lt 5 ]; do
    wait_for_checkpoint "$out" "$newest" "$lpid" || break
    pause
    mpid=$(pgrep -P "$lpid" | head -1)
    [ -n "$mpid" ] || continue
    kill_random_rank "$mpid" "$np"
    kills=$((kills + 1))
    # The launcher restarts the job; wait for the new one to make its own checkpoint.
    while kill -0 "$mpid" 2>/dev/null; do sleep 0.05; done
    newest=$(newest_checkpoint "$out")
  done
  wait "$lpid" || { cat "$work/launch.log" >&2; fail "tensair launch failed"; }
  [ "$kills" -ge 5 ] || fail "launch: only $kills kills landed"
  [ "$(grep -c 'restarting from checkpoint' "$work/launch.log")" -ge 5 ] ||
    { cat "$work/launch.log" >&2; fail "launch did not log five restarts"; }
  compare "$ref" "$out" "$np" 0
  echo "launch, $np ranks: $kills kills, $(grep -c 'restarting from' "$work/launch.log") restarts logged: output identical"
}

check_damaged() {  # a checkpoint folder cut short or damaged is not used
  local np=1 job="$work/job_dasgd.toml" out="$work/faults_1_dasgd" ref="$work/ref_1_dasgd"
  local newest next m
  newest=$(newest_checkpoint "$out")
  [ "$newest" -gt 0 ] || fail "no checkpoint to damage"
  m="$out/checkpoints/$(printf 'ckpt-%06d' "$newest")"
  # Killed while writing: a newer folder with a half-written temporary file and no manifest.
  next="$out/checkpoints/$(printf 'ckpt-%06d' $((newest + 1)))"
  mkdir -p "$next"
  head -c 100 "$m/rank-0.state" > "$next/rank-0.state.tmp"
  # And a newer complete-looking one whose file was truncated.
  local bad="$out/checkpoints/$(printf 'ckpt-%06d' $((newest + 2)))"
  cp -r "$m" "$bad"
  sed -i "s/\"checkpoint\": $newest,/\"checkpoint\": $((newest + 2)),/" "$bad/MANIFEST.json"
  truncate -s 50 "$bad/rank-0.state"
  "$bin" run "$job" --no-progress --out "$out" --resume "$bad" > "$work/bad.log" 2>&1 && fail "a truncated checkpoint was used"
  [ "$(grep -c 'tensair: error:' "$work/bad.log")" -eq 1 ] || { cat "$work/bad.log" >&2; fail "expected one error line"; }
  grep -q "cannot be used: rank-0.state has 50 bytes" "$work/bad.log" || { cat "$work/bad.log" >&2; fail "the error does not say why"; }
  "$bin" run "$job" --no-progress --out "$out" --resume latest > "$work/latest.log" 2>&1 ||
    { cat "$work/latest.log" >&2; fail "resume latest past a damaged checkpoint failed"; }
  [ "$(grep -c 'warning: checkpoint' "$work/latest.log")" -eq 1 ] || { cat "$work/latest.log" >&2; fail "expected one warning line"; }
  grep -q "\"resumed_from\":$newest" "$out/metrics.jsonl" || fail "it did not resume from checkpoint $newest"
  compare "$ref" "$out" 1 1
  echo "damaged checkpoints: cut short ignored, truncated refused with one line or skipped with one warning"
}

check_case 1 dasgd 1
check_damaged
if [ "${3:-}" != "quick" ]; then
  check_case 2 dasgd 0
  check_case 3 dasgd 0
  check_case 3 sync 1
  check_launch 2
fi
echo "fault test: passed"
