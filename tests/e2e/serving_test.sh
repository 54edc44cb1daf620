#!/usr/bin/env bash
# Serving while training, end to end (docs/serving.md): a job trains an mlp from an endless
# generator with serve_port = 0 (a free port, read from the log), snapshot_every and
# checkpoints; serving_check.py then checks the endpoint against the snapshot files, runs
# concurrent clients, sends malformed requests, parses /metrics strictly and loads snapshots
# while they are written. The job is stopped with SIGINT and must end cleanly (exit 130).
# The same job under mpirun -np 2: each replica serves on its own port (docs/serving.md).
# A third job without a model checks [job] metrics_port.
# Usage: serving_test.sh TENSAIR_BINARY REPO_ROOT
set -euo pipefail
bin=$1
root=$2
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
py=/usr/bin/python3
mpi=(mpirun --oversubscribe --bind-to none)

cat > "$work/serve.toml" <<'TOML'
[job]
name = "serve"
[checkpoint]
every_s = 1
[gen]
type = "generator"
count = 100000000
batch_size = 16
rate = 3000
columns = { x = "normal[8]", y = "randint(2)" }
[model]
type = "model"
from = "gen"
network = "mlp"
layers = [8, 16, 2]
lr = 0.05
serve_port = 0
serve_every = 200
snapshot_every = 200
TOML

# The addresses the job logs once it serves: waits for exactly COUNT (default 1) distinct
# "WHAT at URL" lines and sets url (the first) and urls (all, one per line).
wait_for_url() {
  local log=$1 what=$2 count=${3:-1}
  for _ in $(seq 1 300); do
    urls=$(grep -o "$what at http://127.0.0.1:[0-9]*" "$log" | sed 's/.* at //' | sort -u) || true
    url=$(echo "$urls" | head -1)
    [ "$(echo "$urls" | grep -c http)" -eq "$count" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "job ended before serving"; exit 1; }
    sleep 0.1
  done
  cat "$log"; echo "not $count '$what at' line(s) in 30 s: $urls"; exit 1
}

"$bin" run "$work/serve.toml" --out "$work/out" > "$work/run.log" 2>&1 &
pid=$!
wait_for_url "$work/run.log" "serving"
echo "endpoint: $url"
"$py" "$root/tests/e2e/serving_check.py" "$url" model "$work/out/snapshots/model" 8 1000
kill -INT "$pid"
status=0
wait "$pid" || status=$?
pid=""
# A stop by SIGINT exits 130 after its last checkpoint (docs/fault-tolerance.md).
[ "$status" -eq 130 ] || { cat "$work/run.log"; echo "the job exited $status after SIGINT"; exit 1; }
grep -q '"status":"stopped"' "$work/out/metrics.jsonl" || { echo "no stopped end line"; exit 1; }
grep -q '"kind":"model_snapshot"' "$work/out/metrics.jsonl" || { echo "no snapshot lines"; exit 1; }
# Every snapshot file is whole: Python loads each one (at most 50 of them).
"$py" - "$work/out/snapshots/model" <<'PY'
import os, sys, torch
d = sys.argv[1]
files = sorted(f for f in os.listdir(d) if f.endswith(".pt"))
assert files and not [f for f in os.listdir(d) if f.endswith(".tmp")], os.listdir(d)
latest = open(os.path.join(d, "latest")).read().strip()
assert latest in files, latest
for f in files[:: max(1, len(files) // 50)] + [latest]:
    torch.jit.load(os.path.join(d, f))(torch.zeros(1, 8))
print(f"{len(files)} snapshot files, latest {latest}: all load")
PY

# Two ranks (mpirun -np 2, DASGD): every replica serves its own copy on its own port. Each
# endpoint answers; its /metrics carries its own rank's series; both replicas' served versions
# grow past their own steps (the peer's updates are applied to the served replica too).
"${mpi[@]}" -np 2 "$bin" run "$work/serve.toml" --out "$work/out2" --no-progress \
  > "$work/run2.log" 2>&1 &
pid=$!
wait_for_url "$work/run2.log" "serving" 2
"$py" - "$root/tests/e2e" $urls <<'PY'
import json, math, sys, time, urllib.request
sys.path.insert(0, sys.argv[1])
import prometheus_text
urls = sys.argv[2:]

def infer(url):
    body = json.dumps({"inputs": [{"name": "x", "shape": [3, 8], "datatype": "FP32",
                                   "data": [[0.1 * (i + j) for j in range(8)] for i in range(3)]}]})
    req = urllib.request.Request(url + "/v2/models/model/infer", body.encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    o = out["outputs"][0]
    assert o["shape"] == [3, 2] and all(math.isfinite(v) for v in o["data"]), out
    return int(out["model_version"])

def series(url, name):
    f = prometheus_text.parse(urllib.request.urlopen(url + "/metrics", timeout=30).read().decode())
    return {s[1]["rank"]: s[2] for s in f[name].samples}

first = [infer(u) for u in urls]
ranks = set()
for u in urls:
    ranks |= set(series(u, "tensair_model_version"))
    mine = series(u, "tensair_model_version")
    assert len(mine) == 1, f"{u}: /metrics shows ranks {sorted(mine)}, not one"
assert ranks == {"0", "1"}, f"the endpoints show ranks {sorted(ranks)}, not 0 and 1"
deadline = time.time() + 60
while True:
    later = [infer(u) for u in urls]
    steps = [sum(series(u, "tensair_model_steps_total").values()) for u in urls]
    versions = [sum(series(u, "tensair_model_version").values()) for u in urls]
    if all(l > f for l, f in zip(later, first)) and all(v > s for v, s in zip(versions, steps)):
        break
    if time.time() > deadline:
        sys.exit(f"2 ranks: served versions {first} -> {later}, versions {versions}, steps {steps}")
    time.sleep(0.2)
print(f"2 ranks: endpoints {urls} serve ranks 0 and 1; served versions {first} -> {later}; "
      f"replica versions {versions} > own steps {steps} (the peer's updates applied)")
PY
for p in $(pgrep -P "$pid"); do kill -INT "$p"; done
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 130 ] || { cat "$work/run2.log"; echo "the 2-rank job exited $status after SIGINT"; exit 1; }

# [job] metrics_port for a job without a model.
cat > "$work/metrics.toml" <<'TOML'
[job]
name = "metrics_only"
metrics_port = 0
[gen]
type = "generator"
count = 100000000
batch_size = 64
rate = 20000
columns = { x = "normal[2]" }
[sink]
type = "csv_sink"
from = "gen"
path = "rows.csv"
TOML
"$bin" run "$work/metrics.toml" --out "$work/mout" > "$work/mrun.log" 2>&1 &
pid=$!
wait_for_url "$work/mrun.log" "metrics"
"$py" - "$url" "$root/tests/e2e" <<'PY'
import sys, time, urllib.request
sys.path.insert(0, sys.argv[2])
import prometheus_text
for _ in range(50):
    text = urllib.request.urlopen(sys.argv[1] + "/metrics").read().decode()
    f = prometheus_text.parse(text)
    rows = [s for s in f["tensair_operator_records_in_total"].samples
            if s[1]["operator"] == "sink"]
    if rows and rows[0][2] > 0:
        break
    time.sleep(0.1)
else:
    sys.exit("the sink's records_in stayed 0")
assert "tensair_model_loss" not in f
print(f"metrics_port: {len(f)} families parsed strictly, sink records_in {rows[0][2]:.0f}")
PY
kill -INT "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 130 ] || { cat "$work/mrun.log"; echo "metrics job exited $status"; exit 1; }
echo "serving_test: ok"
