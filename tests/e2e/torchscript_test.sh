#!/usr/bin/env bash
# A model written in Python, end to end through the CLI:
#  1. Python (Debian's /usr/bin/python3 with torch) scripts a small network and writes a stream
#     of fixed-size binary records (x: float32[8], y: int64).
#  2. `tensair run` trains it (1, 2 and 3 ranks under mpirun: DASGD replicas must end equal)
#     and exports a TorchScript file per rank.
#  3. A longer run stopped by SIGINT once its first checkpoint is complete, then resumed with
#     --resume latest, ends with the same weights as a run straight through.
#  4. The export, run by the operator (training = "never", predict port) and by Python's
#     torch.jit.load on the same records, gives the same predictions.
# Usage: torchscript_test.sh TENSAIR_BINARY REPO_ROOT
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=/usr/bin/python3

# torch.jit.script reads the class's source, so this script must be a file.
cat > "$work/make.py" <<'PY'
import struct, sys, torch
work = sys.argv[1]
torch.manual_seed(0)
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l0 = torch.nn.Linear(8, 16)
        self.l1 = torch.nn.Linear(16, 3)
    def forward(self, x):
        return self.l1(torch.relu(self.l0(x)))
torch.jit.script(Net()).save(f"{work}/net.pt")
g = torch.Generator().manual_seed(1)
x = torch.randn(960, 8, generator=g)
y = (x.sum(1) * 3).floor().remainder(3).long()
with open(f"{work}/train.bin", "wb") as f:
    for i in range(len(x)):
        f.write(struct.pack("<8f", *x[i].tolist()) + struct.pack("<q", int(y[i])))
x2 = torch.randn(100000, 8, generator=g)
y2 = (x2.sum(1) * 3).floor().remainder(3).long()
with open(f"{work}/long.bin", "wb") as f:
    for i in range(len(x2)):
        f.write(struct.pack("<8f", *x2[i].tolist()) + struct.pack("<q", int(y2[i])))
with open(f"{work}/predict.bin", "wb") as f:
    for i in range(100):
        f.write(struct.pack("<q", i) + struct.pack("<8f", *x[i].tolist()))
PY
$py "$work/make.py" "$work"

cat > "$work/train.toml" <<EOF
[job]
name = "ts_train"
[source]
type = "binary_source"
path = "$work/train.bin"
fields = ["x:float32[8]", "y:int64"]
batch_size = 16
placement = 0
[model]
type = "model"
from = "source"
network = "$work/net.pt"
features = ["x"]
label = "y"
lr = 0.05
threads = 1
export = "model_{rank}.pt"
[checkpoint]
every_s = 0.3
EOF

cat > "$work/predict.toml" <<EOF
[job]
name = "ts_predict"
[source]
type = "binary_source"
path = "$work/predict.bin"
fields = ["id:int64", "x:float32[8]"]
batch_size = 32
[model]
type = "model"
network = "$work/model_0.pt"
features = ["x"]
label = "y"
training = "never"
threads = 1
mode = "local"
placement = 0
[model.inputs.predict]
from = "source"
routing = "to_rank"
rank = 0
[sink]
type = "jsonl_sink"
from = "model.predictions"
path = "predictions.jsonl"
sort_by = "id"
placement = 0
EOF

check_equal() {  # the exports of ranks 0..n-1 in $1 have equal weights
  $py - "$@" <<'PY'
import sys, torch
d, n = sys.argv[1], int(sys.argv[2])
ref = [p.detach() for p in torch.jit.load(f"{d}/model_0.pt").parameters()]
for r in range(1, n):
    for a, b in zip(ref, torch.jit.load(f"{d}/model_{r}.pt").parameters()):
        diff = (a - b.detach()).abs().max().item()
        assert diff < 1e-5, f"rank {r} differs from rank 0 by {diff}"
PY
}

for np in 1 2 3; do
  # Rank 0 reads the file and deals the batches round-robin to every replica.
  mpirun --oversubscribe -np "$np" "$bin" run "$work/train.toml" --no-progress --out "$work/np$np"
   
  check_equal "$work/np$np" "$np"
  grep -q '"kind":"model_summary".*"version":60' "$work/np$np/metrics.jsonl" ||
    { echo "FAIL: $np ranks: a replica's version is not 60 (960 records / 16)" >&2; grep model_summary "$work/np$np/metrics.jsonl" >&2; exit 1; }
done

# A longer stream: stopped by SIGINT once a checkpoint is complete, resumed, compared with the
# same stream straight through (one rank: the weights must be the same).
long=(run "$work/train.toml" --no-progress --set source.path="$work/long.bin" --set checkpoint.every_records=2000)
"$bin" "${long[@]}" --out "$work/long_straight" >/dev/null 2>&1
"$bin" "${long[@]}" --out "$work/long_part" >"$work/part.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  ls "$work"/long_part/checkpoints/ckpt-*/MANIFEST.json >/dev/null 2>&1 && break
  sleep 0.05
done
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 130 ] || { echo "FAIL: the stopped run exited $rc, not 130" >&2; cat "$work/part.log" >&2; exit 1; }
grep -q '"event":"end".*"status":"stopped"' "$work/long_part/metrics.jsonl" ||
  { echo "FAIL: no end line with status stopped" >&2; tail -3 "$work/long_part/metrics.jsonl" >&2; exit 1; }
# As if the run had been killed in the middle of a line: the resumed run starts a line of its own.
printf '{"t": 9.5, "kind": "mod' >> "$work/long_part/metrics.jsonl"
"$bin" "${long[@]}" --out "$work/long_part" --resume latest >/dev/null 2>&1
grep -qx '{"t": 9.5, "kind": "mod' "$work/long_part/metrics.jsonl" ||
  { echo "FAIL: the resumed run's first line was appended to the cut line" >&2; exit 1; }
grep -q '^{.*"event":"start".*"resumed_from"' "$work/long_part/metrics.jsonl" ||
  { echo "FAIL: the second run did not resume" >&2; exit 1; }
"$bin" report "$work/long_part" >/dev/null 2>&1 ||
  { echo "FAIL: no report of a job whose metrics have a cut line" >&2; exit 1; }
$py - "$work/long_straight/model_0.pt" "$work/long_part/model_0.pt" <<'PY'
import sys, torch
full, resumed = (list(torch.jit.load(p).parameters()) for p in sys.argv[1:])
diff = max((a - b).abs().max().item() for a, b in zip(full, resumed))
assert diff < 1e-6, f"the resumed run differs from the straight run by {diff}"
PY

# Predictions of the exported model: the operator's and Python's.
cp "$work/np1/model_0.pt" "$work/model_0.pt"
"$bin" run "$work/predict.toml" --no-progress --out "$work/pred" >/dev/null
$py - "$work" <<'PY'
import json, struct, sys, torch
work = sys.argv[1]
m = torch.jit.load(f"{work}/model_0.pt")
rows = [json.loads(l) for l in open(f"{work}/pred/predictions.jsonl")]
assert len(rows) == 100, len(rows)
data = open(f"{work}/predict.bin", "rb").read()
for i, row in enumerate(rows):
    rid, *x = struct.unpack_from("<q8f", data, i * 40)
    assert row["id"] == rid == i
    want = m(torch.tensor([x])).squeeze(0)
    got = torch.tensor(row["output"])
    assert (want - got).abs().max().item() < 1e-5, (i, want, got)
PY
echo "torchscript: trained on 1/2/3 ranks with equal replicas, resumed identically, predictions equal Python's"
