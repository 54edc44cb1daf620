#!/usr/bin/env bash
# The CUDA path of the model's `device` key (docs/model.md#devices), checked where there is a
# GPU: what CI cannot run (CI and the machine this was written on have no GPU; the CPU side of
# the device code is tested by `make test`).
#
#   TORCH_DIR=/path/to/libtorch make BUILD=build-cuda     # a build against a CUDA LibTorch
#   bash bench/gpu_check.sh build-cuda                    # default BUILD_DIR: build
#
# 1. Parity: one replica of a small MLP (plain SGD, 100 steps of 32 records, fixed seeds) trained
#    with device = "cpu" and with device = "cuda"; the exported weights must agree within
#    rtol 1e-4, atol 1e-5 (compared with /usr/bin/python3 and torch). Why that tolerance: both
#    runs see the same batches in the same order from the same initial weights (drawn on the
#    CPU), so they differ only by float32 rounding in kernels that sum in another order (GEMM
#    blocking, reductions; cuBLAS uses no TF32 unless asked); that is ~1e-6 relative per step,
#    and SGD at this learning rate does not amplify it over 100 steps. A broken device path
#    (a lost or doubled update, a stale copy, parameters that never reached the device) shows
#    as differences of lr * |gradient|, ~1e-2, far above it.
# 2. Mixed devices in one DASGD job: two ranks (mpirun MPMD), rank 0 with the GPU and rank 1
#    with CUDA_VISIBLE_DEVICES="" (so device = "auto" puts it on the CPU); their updates cross
#    the wire from host memory. Each rank's model_summary must name its device, and the two
#    replicas must end equal within the same tolerance.
# 3. Throughput: a larger MLP ([784, 1024, 1024, 10], batches of 256) on each device, one
#    warm-up and REPEATS (default 3) timed runs: samples per second of training (model_start to
#    model_summary in metrics.jsonl, so process start and CUDA initialisation are left out),
#    mean ± stddev, as a markdown table.
#
# Without a GPU (no nvidia-smi, no device listed, or a LibTorch without CUDA) it prints one line
# "gpu_check: skipped: no CUDA device (...)" and exits 0. It has not been run past that skip
# where it was written. Exit code 1: a check failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
bin="$build/bin/tensair"
python=/usr/bin/python3
repeats=${REPEATS:-3}

skip() {
  echo "gpu_check: skipped: no CUDA device ($1)"
  exit 0
}

if ! command -v nvidia-smi >/dev/null 2>&1; then skip "nvidia-smi not found"; fi
if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then skip "nvidia-smi lists no GPU"; fi
if [ ! -x "$bin" ]; then
  echo "gpu_check: $bin does not exist: build first (TORCH_DIR=<a CUDA LibTorch> make)" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# job NAME COUNT BATCH WIDTH LAYERS: a generator feeding an mlp that exports model_{rank}.pt.
job() {
  cat >"$1.toml" <<EOF
[job]
name = "$1"
[gen]
type = "generator"
count = $2
batch_size = $3
seed = 5
columns = { x = "normal[$4]", y = "randint(4)" }
[model]
type = "model"
from = "gen"
network = "mlp"
layers = $5
lr = 0.05
seed = 3
threads = 1
log_every = 1000000
export = "model_{rank}.pt"
EOF
}
job parity 3200 32 32 "[32, 64, 4]"
job speed 51200 256 784 "[784, 1024, 1024, 10]"

if ! cuda_err=$("$bin" validate parity.toml --set model.device=cuda 2>&1 >/dev/null); then
  skip "${cuda_err#tensair: error: }"
fi
"$python" -c 'import torch' 2>/dev/null || {
  echo "gpu_check: $python cannot import torch (apt-get install python3-torch)" >&2
  exit 1
}

echo "gpu_check: $(nvidia-smi -L | head -n 1); build $build; commit" \
  "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"

# run OUT ARGS...: one run of `tensair run`, quiet unless it fails.
run() {
  local out=$1
  shift
  if ! "$@" --out "$out" >"$out.log" 2>&1; then
    echo "gpu_check: FAIL: $* (log follows)" >&2
    cat "$out.log" >&2
    exit 1
  fi
}

# compare.py A.pt B.pt LABEL: allclose of the parameters, with the largest difference.
cat >compare.py <<'EOF'
import sys, torch
a, b, label = torch.jit.load(sys.argv[1]), torch.jit.load(sys.argv[2]), sys.argv[3]
pa, pb = list(a.parameters()), list(b.parameters())
assert len(pa) == len(pb), "different networks"
diff = max((x - y).abs().max().item() for x, y in zip(pa, pb))
p0 = list(torch.jit.load(sys.argv[4]).parameters())
moved = max((x - y).abs().max().item() for x, y in zip(pa, p0))
ok = all(torch.allclose(x, y, rtol=1e-4, atol=1e-5) for x, y in zip(pa, pb))
print(f"gpu_check: {label}: max |difference| {diff:.3g} (weights moved {moved:.3g} from the "
      f"start): {'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
EOF
failed=0

# The initial weights, for scale: a run that only predicts.
run init "$bin" run parity.toml --set model.training=never
# 1. Parity, one replica.
run p_cpu "$bin" run parity.toml --set model.device=cpu
run p_cuda "$bin" run parity.toml --set model.device=cuda
"$python" compare.py p_cpu/model_0.pt p_cuda/model_0.pt "cpu vs cuda, 100 steps" \
  init/model_0.pt || failed=1

# 2. Mixed devices in one DASGD job (MPMD: the second rank sees no GPU).
if command -v mpirun >/dev/null 2>&1; then
  run mixed mpirun --oversubscribe --bind-to none \
    -np 1 -x CUDA_VISIBLE_DEVICES=0 "$bin" run parity.toml --set model.device=auto --out mixed : \
    -np 1 -x CUDA_VISIBLE_DEVICES= "$bin" run parity.toml --set model.device=auto  # run adds --out
  "$python" - mixed/metrics.jsonl <<'EOF' || failed=1
import json, sys
dev = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("kind") == "model_summary":
        dev[e["rank"]] = e["device"]
ok = dev == {0: "cuda:0", 1: "cpu"}
print(f"gpu_check: mixed job devices {dev}: {'ok' if ok else 'FAIL (want rank 0 cuda:0, 1 cpu)'}")
sys.exit(0 if ok else 1)
EOF
  "$python" compare.py mixed/model_0.pt mixed/model_1.pt \
    "mixed job, cuda replica vs cpu replica" init/model_0.pt || failed=1
else
  echo "gpu_check: mixed-device job skipped: no mpirun"
fi

# 3. Throughput.
cat >rate.py <<'EOF'
import json, statistics, sys
rates = []
for path in sys.argv[2:]:
    ev = [json.loads(l) for l in open(path)]
    start = min(e["t"] for e in ev if e.get("kind") == "model_start")
    end = [e for e in ev if e.get("kind") == "model_summary"][0]
    assert end["steps"] == 200, f"{path}: {end['steps']} steps, expected 200"
    rates.append(end["samples"] / (end["t"] - start))
sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
print(f"| {sys.argv[1]} | {statistics.mean(rates):,.0f} ± {sd:,.0f} | {len(rates)} |")
EOF
echo
echo "mlp [784, 1024, 1024, 10], batches of 256, 200 steps, one replica, threads = 1"
echo
echo "| device | samples/s (mean ± stddev) | runs |"
echo "|---|---|---|"
for device in cpu cuda; do
  run "s_${device}_warm" "$bin" run speed.toml --set model.device=$device
  files=()
  for i in $(seq "$repeats"); do
    run "s_${device}_$i" "$bin" run speed.toml --set model.device=$device
    files+=("s_${device}_$i/metrics.jsonl")
  done
  "$python" rate.py "$device" "${files[@]}" || failed=1
done
echo
if [ "$failed" -ne 0 ]; then
  echo "gpu_check: FAILED"
  exit 1
fi
echo "gpu_check: ok"
