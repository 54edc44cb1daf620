#!/usr/bin/env bash
# Bounded memory on the model exchange. Two ranks train one MLP [256, 2048, 2048, 10] (4.7 M
# parameters, 19 MB per update) from their own generators: rank 0 on batches of 4 (fast), rank 1
# on batches of 2048 (slow), so rank 0's updates arrive far faster than rank 1 applies them.
# (Before the exchange had credit, rank 1's queue reached 384 updates, 7.25 GB, in 50 s.)
# For DURATION seconds (default 60), with rank 1 paused by SIGSTOP for 10 s in the middle:
#   - the bytes ever queued on a replica's exchange input stay within the credit plus one
#     update (from the metrics);
#   - each rank's resident memory, sampled twice a second, stays in the second half of the run
#     within the credit + two model sizes + a fixed allowance (128 MiB: what glibc keeps of a
#     training step's working set; the slow rank's steps take seconds) of its highest level
#     over the first 40 % (the warm-up), and rank 0's stays so while rank 1 is paused;
#   - at the end every update is in every replica once: versions equal, weights equal.
# The job's credit is 2 MiB (rather than 8): the slow rank's input queue then holds about one of
# its 2 MB batches, so the drain at the clean stop that ends the test takes a step or two, not
# a minute; the exchange is bounded by the same credit.
# Usage: exchange_memory_test.sh TENSAIR_BINARY REPO_ROOT [DURATION] [OPTIMIZER]
set -euo pipefail
bin=$1
duration=${3:-60}
optimizer=${4:-sgd}
work=$(mktemp -d)
cleanup() {
  pkill -CONT -f "$work/" 2>/dev/null || true
  pkill -KILL -f "$work/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
py=/usr/bin/python3

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cat > "$work/job.toml" <<EOF
[job]
name = "imbalanced"
metrics_interval = 1
credit_bytes = 2097152
[fast]
type = "generator"
placement = 0
batch_size = 4
columns = { x = "normal[256]", y = "randint(10)" }
[slow]
type = "generator"
placement = 1
batch_size = 2048
columns = { x = "normal[256]", y = "randint(10)" }
[model]
type = "model"
network = "mlp"
features = ["x"]
label = "y"
layers = [256, 2048, 2048, 10]
optimizer = "$optimizer"
lr = 0.001
threads = 1
export = "model_{rank}.pt"
[model.inputs.train]
from = ["fast", "slow"]
routing = "forward"
EOF

out="$work/out"
mpirun --oversubscribe --bind-to none -np 2 "$bin" run "$work/job.toml" --no-progress --out "$out" \
  > "$work/run.log" 2>&1 &
mpid=$!
pids=()
for _ in $(seq 200); do
  mapfile -t pids < <(pgrep -P "$mpid")
  [ "${#pids[@]}" -eq 2 ] && break
  sleep 0.05
done
[ "${#pids[@]}" -eq 2 ] || fail "the two ranks did not start"
rank_of() { tr '\0' '\n' < "/proc/$1/environ" | grep '^OMPI_COMM_WORLD_RANK=' | cut -d= -f2; }
for p in "${pids[@]}"; do
  if [ "$(rank_of "$p")" = 0 ]; then pid0=$p; else pid1=$p; fi
done

rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
: > "$work/rss.txt"
start=$(date +%s.%N)
stopped=0
while :; do
  now=$(echo "$(date +%s.%N) - $start" | bc)
  t=${now%.*}
  t=${t:-0}
  [ "$t" -ge "$duration" ] && break
  if [ "$stopped" -eq 0 ] && [ "$t" -ge $((duration / 2 - 5)) ]; then
    kill -STOP "$pid1"
    stopped=1
    echo "rank 1 stopped at $now s"
  elif [ "$stopped" -eq 1 ] && [ "$t" -ge $((duration / 2 + 5)) ]; then
    kill -CONT "$pid1"
    stopped=2
    echo "rank 1 continued at $now s"
  fi
  echo "$now $(rss "$pid0") $(rss "$pid1") $stopped" >> "$work/rss.txt"
  sleep 0.5
done
[ "$stopped" -eq 2 ] || kill -CONT "$pid1" 2>/dev/null || true
for p in "$pid0" "$pid1"; do kill -INT "$p"; done  # a clean stop: exports and summaries
rc=0
wait "$mpid" || rc=$?
[ "$rc" -eq 130 ] || { tail -20 "$work/run.log" >&2; fail "the job exited $rc, not 130"; }

$py - "$out" "$work/rss.txt" "$duration" <<'PY'
import json, sys, torch
out, rss_file, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
credit = 2 << 20
summaries, peaks, delta = {}, {0: 0, 1: 0}, None
for line in open(f"{out}/metrics.jsonl"):
    j = json.loads(line)
    if j.get("kind") == "model_summary":
        summaries[j["rank"]] = j
        delta = j["dense_delta_bytes"]
    if j.get("type") == "operator" and j.get("operator") == "model":
        peaks[j["rank"]] = max(peaks[j["rank"]], j["queued_bytes_peak_by_port"]["exchange"])
assert len(summaries) == 2, f"model summaries of ranks {sorted(summaries)}"
bound = credit + delta + (64 << 10)
for r in (0, 1):
    print(f"rank {r}: exchange queue peak {peaks[r] / 2**20:.1f} MiB (bound {bound / 2**20:.1f} MiB: credit + one update); "
          f"{summaries[r]['deltas_folded']} updates folded, {summaries[r]['deltas_sent']} sent")
    assert peaks[r] <= bound, f"rank {r}: {peaks[r]} bytes queued on the exchange, more than {bound}"
assert summaries[0]["deltas_folded"] > 0, "the fast rank should have folded updates"
v = [summaries[r]["version"] for r in (0, 1)]
assert v[0] == v[1], f"versions differ: {v}"
assert v[0] == summaries[0]["steps"] + summaries[1]["steps"], f"versions {v} are not the sum of the steps"
w = [list(torch.jit.load(f"{out}/model_{r}.pt").parameters()) for r in (0, 1)]
diff = max((a - b).abs().max().item() for a, b in zip(*w))
assert diff < 1e-5, f"replicas differ by {diff}"
# Resident memory after the warm-up: flat within credit + two model sizes + an allowance.
rows = [list(map(float, l.split())) for l in open(rss_file)]
line = "RSS MiB every 5 s (rank 0 / rank 1):"
for r in rows[::10]:
    line += f" {r[0]:.0f}s:{r[1] / 2**20:.0f}/{r[2] / 2**20:.0f}"
print(line)
allowance = 128 << 20
limit = credit + 2 * delta + allowance
warm = [r for r in rows if r[0] < 0.4 * duration]
later = [r for r in rows if r[0] >= 0.4 * duration]
assert warm and later, "too few samples"
for rank in (0, 1):
    base = max(r[1 + rank] for r in warm)
    # Rank 1 is frozen while paused; its own memory is judged when it runs.
    top = max(r[1 + rank] for r in later if rank == 0 or r[3] != 1)
    grew = max(0.0, top - base)
    print(f"rank {rank}: RSS at most {base / 2**20:.0f} MiB in the warm-up, {top / 2**20:.0f} MiB after "
          f"(+{grew / 2**20:.0f} MiB; bound +{limit / 2**20:.0f} MiB)")
    assert grew <= limit, f"rank {rank}: RSS grew by {grew / 2**20:.0f} MiB"
paused = [r for r in rows if r[3] == 1]
assert paused, "no samples while rank 1 was paused"
grew = max(r[1] for r in paused) - paused[0][1]
print(f"rank 0 while rank 1 was paused: RSS +{grew / 2**20:.0f} MiB over {paused[-1][0] - paused[0][0]:.0f} s")
assert grew <= limit, f"rank 0 grew by {grew / 2**20:.0f} MiB while rank 1 was paused"
print(f"versions {v[0]} and {v[1]}, replicas equal within {diff:.1e}")
PY
echo "exchange memory: passed"
