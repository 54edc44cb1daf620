#!/usr/bin/env bash
# Clean stops: an endless job (generator -> model with an export, generator -> sort_by sink)
# gets SIGINT once its first checkpoint is complete, and must exit 130 with the end line
# "stopped", a final checkpoint (reason "stop"), the sorted sink complete (every row the source
# emitted, sorted) and the export written. The time to stop is printed, not asserted (CI
# machines are loaded); a stop that never ends fails after `hang_s`:
#   - one process, SIGINT to it;
#   - mpirun -np 2, SIGINT to both ranks (as a terminal's Ctrl-C reaches a process group);
#   - tensair launch -np 2, SIGINT to the launcher (it asks mpirun to forward SIGUSR1);
#   - mpirun -np 2, SIGINT to mpirun itself: mpirun turns it into SIGTERM for the ranks after
#     its 1 s grace; they stop cleanly within it (mpirun's own exit code is its own: non-zero);
#   - a second SIGINT during a long drain ends the process at once: exit 130 with no end line
#     and no stop checkpoint (the drain was cut short, not finished).
# Usage: signals_test.sh TENSAIR_BINARY REPO_ROOT
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

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cat > "$work/job.toml" <<EOF
[job]
name = "signals"
[checkpoint]
every_s = 0.5
[gen]
type = "generator"
count = 0
batch_size = 64
columns = { id = "sequence", x = "normal[8]", y = "randint(3)" }
[model]
type = "model"
from = "gen"
routing = "forward"
network = "mlp"
layers = [8, 64, 3]
threads = 1
export = "model_{rank}.pt"
[sorted]
type = "csv_sink"
from = "gen"
routing = "forward"
path = "sorted_{rank}.csv"
sort_by = "id"
EOF

wait_for_manifest() {  # out pid
  for _ in $(seq 1200); do
    ls "$1"/checkpoints/ckpt-*/MANIFEST.json > /dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || fail "the job ended before its first checkpoint"
    sleep 0.05
  done
  fail "no checkpoint in 60 s"
}

hang_s=120

# Waits for `pid` and sets rc (its exit code) and secs (seconds since `t0`, epoch seconds).
# A process still running after `hang_s` is a stop that hangs: killed, and the test fails.
wait_timed() {  # pid t0 label
  local i
  for i in $(seq $((hang_s * 20))); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$1" 2>/dev/null; then
    pkill -KILL -P "$1" 2>/dev/null || true
    kill -KILL "$1" 2>/dev/null || true
    fail "$3: still running $hang_s s after the signal"
  fi
  rc=0
  wait "$1" || rc=$?
  secs=$($py -c "import time; print(f'{time.time() - $2:.2f}')")
}

check_stopped() {  # out ranks label
  local out=$1 np=$2 label=$3
  grep -q '"event":"end".*"status":"stopped"' "$out/metrics.jsonl" ||
    fail "$label: no end line with status stopped"
  $py - "$out" "$np" "$label" <<'PY'
import csv, glob, json, os, sys
out, np, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ckpts = sorted(glob.glob(f"{out}/checkpoints/ckpt-*/MANIFEST.json"))
assert ckpts, f"{label}: no checkpoint"
assert json.load(open(ckpts[-1]))["reason"] == "stop", f"{label}: the last checkpoint is not the stop's"
emitted = {}
for line in open(f"{out}/metrics.jsonl"):
    j = json.loads(line)
    if j.get("type") == "operator" and j.get("operator") == "gen" and j.get("final"):
        emitted[j["rank"]] = j["records_out"]
assert len(emitted) == np, f"{label}: final source counters of ranks {sorted(emitted)}"
for r in range(np):
    rows = list(csv.DictReader(open(f"{out}/sorted_{r}.csv")))
    ids = [int(row["id"]) for row in rows]
    assert ids == sorted(ids), f"{label}: sorted_{r}.csv is not sorted"
    assert len(ids) == emitted[r], f"{label}: sorted_{r}.csv has {len(ids)} rows, the source emitted {emitted[r]}"
    assert os.path.getsize(f"{out}/model_{r}.pt") > 0, f"{label}: no export of rank {r}"
PY
}

signal_ranks() {  # mpid signal
  local p
  for p in $(pgrep -P "$1"); do kill "-$2" "$p"; done
}

# One process.
out="$work/one"
"$bin" run "$work/job.toml" --no-progress --out "$out" > "$work/one.log" 2>&1 &
pid=$!
wait_for_manifest "$out" "$pid"
t0=$($py -c "import time; print(time.time())")
kill -INT "$pid"
wait_timed "$pid" "$t0" "one process"
[ "$rc" -eq 130 ] || { cat "$work/one.log" >&2; fail "one process: exit $rc, not 130"; }
check_stopped "$out" 1 "one process"
grep -q 'stopped by SIGINT' "$work/one.log" || fail "one process: no stop message"
echo "one process: SIGINT -> exit 130 in $secs s, final checkpoint, sorted sink complete, export written"

# mpirun -np 2, the signal reaching both ranks.
out="$work/mpi"
"${mpi[@]}" -np 2 "$bin" run "$work/job.toml" --no-progress --out "$out" > "$work/mpi.log" 2>&1 &
pid=$!
wait_for_manifest "$out" "$pid"
t0=$($py -c "import time; print(time.time())")
signal_ranks "$pid" INT
wait_timed "$pid" "$t0" "mpirun -np 2"
[ "$rc" -eq 130 ] || { cat "$work/mpi.log" >&2; fail "mpirun -np 2: exit $rc, not 130"; }
check_stopped "$out" 2 "mpirun -np 2"
echo "mpirun -np 2: SIGINT to the ranks -> exit 130 in $secs s, final checkpoint, sorted sinks complete"

# tensair launch -np 2, SIGINT to the launcher.
out="$work/launch"
"$bin" launch -np 2 --launcher "mpirun --oversubscribe --bind-to none -np {np}" "$work/job.toml" --no-progress \
  --out "$out" > "$work/launch.log" 2>&1 &
pid=$!
wait_for_manifest "$out" "$pid"
t0=$($py -c "import time; print(time.time())")
kill -INT "$pid"
wait_timed "$pid" "$t0" "launch"
[ "$rc" -eq 130 ] || { cat "$work/launch.log" >&2; fail "launch: exit $rc, not 130"; }
check_stopped "$out" 2 "launch"
echo "tensair launch -np 2: SIGINT -> exit 130 in $secs s, final checkpoint, sorted sinks complete"

# mpirun -np 2, SIGINT to mpirun: its SIGTERM reaches the ranks 1 s later, and its SIGKILL 1 s
# after that, so the drain must fit in 1 s: a small credit keeps the queues short.
out="$work/mpirun_int"
"${mpi[@]}" -np 2 "$bin" run "$work/job.toml" --no-progress --out "$out" --set job.credit_bytes=65536 \
  > "$work/mpirun_int.log" 2>&1 &
pid=$!
wait_for_manifest "$out" "$pid"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -ne 0 ] || fail "mpirun after SIGINT exited 0"
check_stopped "$out" 2 "SIGINT to mpirun"
grep -q '"signal":15' "$out/metrics.jsonl" || fail "SIGINT to mpirun: the ranks did not stop on SIGTERM"
echo "SIGINT to mpirun: the ranks stopped cleanly on its SIGTERM (mpirun exit $rc)"

# A second signal during a long drain: the process ends at once. The model is slow and its
# queue deep, so the drain after the first signal takes a while.
out="$work/twice"
"$bin" run "$work/job.toml" --no-progress --out "$out" --set model.layers=[8,4096,4096,3] > "$work/twice.log" 2>&1 &
pid=$!
wait_for_manifest "$out" "$pid"
kill -INT "$pid"
sleep 0.3
kill -0 "$pid" 2>/dev/null || fail "second signal: the first stop was already over (drain too short for this test)"
t0=$($py -c "import time; print(time.time())")
kill -INT "$pid"
wait_timed "$pid" "$t0" "second signal"
[ "$rc" -eq 130 ] || fail "second signal: exit $rc, not 130"
! grep -q '"event":"end"' "$out/metrics.jsonl" || fail "second signal: the drain ran to its end line"
for m in "$out"/checkpoints/ckpt-*/MANIFEST.json; do
  ! grep -q '"reason" *: *"stop"' "$m" || fail "second signal: a stop checkpoint was written"
done
grep -q 'a second signal exits at once' "$work/twice.log" || fail "second signal: no stop message"
echo "second SIGINT: exit 130 in $secs s"
echo "signals: passed"
