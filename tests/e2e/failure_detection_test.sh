#!/usr/bin/env bash
# Failure detection in a 3-rank job (heartbeat_timeout = 3 s): one rank is killed (SIGKILL), and
# another time one rank is stopped (SIGSTOP). The other ranks must exit non-zero with exactly
# one "tensair: error:" line naming that rank and what was seen, and an end line with status
# "failed" in metrics.jsonl. The time they take is printed, not asserted (CI machines are
# loaded); a job still running `hang_s` after the signal has not detected the failure (a
# stopped rank hangs a job without heartbeats for ever) and fails the test.
# Usage: failure_detection_test.sh TENSAIR_BINARY REPO_ROOT
set -euo pipefail
bin=$1
work=$(mktemp -d)
cleanup() {
  pkill -CONT -f "$work/" 2>/dev/null || true
  pkill -KILL -f "$work/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
py=/usr/bin/python3
timeout_s=3
hang_s=60

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cat > "$work/job.toml" <<EOF
[job]
name = "failures"
heartbeat_timeout = $timeout_s
[gen]
type = "generator"
count = 0
batch_size = 32
columns = { x = "normal[8]", y = "randint(3)" }
[model]
type = "model"
from = "gen"
routing = "forward"
network = "mlp"
layers = [8, 32, 3]
threads = 1
EOF

rank_pid() {  # mpid rank
  local p
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}

check() {  # signal victim expected-text
  local sig=$1 victim=$2 expect=$3 out="$work/out_$1"
  mpirun --oversubscribe --bind-to none -np 3 "$bin" run "$work/job.toml" --no-progress --out "$out" \
    > "$work/$sig.log" 2>&1 &
  local mpid=$!
  for _ in $(seq 400); do
    grep -q '"kind":"model"' "$out/metrics.jsonl" 2>/dev/null && break  # training is under way
    sleep 0.05
  done
  local pid
  pid=$(rank_pid "$mpid" "$victim")
  [ -n "$pid" ] || fail "$sig: no rank $victim"
  local t0
  t0=$($py -c "import time; print(time.time())")
  kill "-$sig" "$pid"
  local i
  for i in $(seq $((hang_s * 20))); do
    kill -0 "$mpid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$mpid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true
    fail "$sig: the job still runs $hang_s s after rank $victim got SIG$sig (no detection)"
  fi
  local rc=0
  wait "$mpid" || rc=$?
  local secs
  secs=$($py -c "import time; print(f'{time.time() - $t0:.1f}')")
  [ "$sig" = STOP ] && kill -CONT "$pid" 2>/dev/null || true
  [ "$rc" -ne 0 ] || fail "$sig: the job exited 0"
  local lines
  lines=$(grep -c '^tensair: error:' "$work/$sig.log" || true)
  [ "$lines" -eq 1 ] || { cat "$work/$sig.log" >&2; fail "$sig: $lines error lines, expected one"; }
  grep '^tensair: error:' "$work/$sig.log" | grep -q "rank $victim $expect" ||
    { grep '^tensair: error:' "$work/$sig.log" >&2; fail "$sig: the error line does not name rank $victim"; }
  grep -q '"event":"end","lost_ranks":\['"$victim"'\],"status":"failed"\|"event":"end".*"status":"failed"' "$out/metrics.jsonl" ||
    { tail -2 "$out/metrics.jsonl" >&2; fail "$sig: no end line with status failed"; }
  echo "SIG$sig of rank $victim: the others stopped in $secs s: $(grep '^tensair: error:' "$work/$sig.log")"
}

check KILL 1 "is gone"
check STOP 2 "stopped responding"
echo "failure detection: passed"
