#!/usr/bin/env bash
# Bad input tried as a new user would: each case must end quickly with exit code 2 and exactly
# one line from tensair on stderr ("tensair: error: ..."), no crash, no stack dump, no hang,
# both in one process and under mpirun.
# Usage: cli_errors_test.sh TENSAIR_BINARY REPO_ROOT
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../testing/expect_error.sh"
bin=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
printf '[job\nname = "x"\n' > malformed.toml
printf '[src]\ntype = "text_sauce"\npath = "a.txt"\n' > unknown_op.toml
cp "$root/examples/wordcount.toml" wc.toml
printf '[gen]\ntype = "generator"\ncount = 10\ncolumns = { x = "normal[8]", y = "randint(2)" }\n[model]\ntype = "model"\nfrom = "gen"\nnetwork = "mlp"\nlayers = [8, 2]\n' > model.toml
# Two filters feeding each other, no model on the cycle.
printf '[a]\ntype = "generator"\ncolumns = { x = "sequence" }\n[b]\ntype = "filter"\nfrom = ["a", "c"]\ncolumn = "x"\nop = ">"\nvalue = 0\n[c]\ntype = "filter"\nfrom = "b"\ncolumn = "x"\nop = ">"\nvalue = 0\n' > cycle.toml
printf '[src]\ntype = "csv_source"\npath = "/dev/zero"\n[out]\ntype = "stdout_sink"\nfrom = "src"\n' > zero.toml
failures=0

for launch in "" "mpirun --oversubscribe -np 2"; do
  tag=${launch:+mpi2 }
  expect_error "${tag}missing job file" 2 "job file nope.toml does not exist" $launch "$bin" run nope.toml
  expect_error "${tag}malformed TOML" 2 "malformed.toml:1:5:" $launch "$bin" run malformed.toml
  expect_error "${tag}unknown operator" 2 'unknown operator type "text_sauce" (did you mean "text_source"?)' $launch "$bin" run unknown_op.toml
  expect_error "${tag}missing input file" 2 "input file $work/missing.txt.gz does not exist" $launch "$bin" run wc.toml --set source.path=missing.txt.gz
  expect_error "${tag}too few ranks" 2 'placement on rank 7 needs at least 8 ranks' $launch "$bin" run wc.toml --set source.placement=7
  expect_error "${tag}unknown key" 2 'unknown key "pth" in [source]' $launch "$bin" run wc.toml --set source.pth=x
  expect_error "${tag}wrong type" 2 '--set source.batch_size: expected an integer, got a string' $launch "$bin" run wc.toml --set source.batch_size=lots
done
expect_error "unknown network" 2 '--set model.network: unknown network "mlpp" (known: cifar_cnn, mlp, skipgram' "$bin" validate model.toml --set model.network=mlpp
# Numbers out of the range the run needs (these once crashed with a LibTorch stack dump, ran
# with non-finite losses, or never ended) are refused before anything runs.
expect_error "negative lr" 2 '--set model.lr: must be in (0, inf), got -1' "$bin" run model.toml --set model.lr=-1
expect_error "infinite lr" 2 '--set model.lr: must be a finite number, got inf' "$bin" validate model.toml --set model.lr=inf
expect_error "negative momentum" 2 '--set model.momentum: must be in [0, 1), got -5' "$bin" run model.toml --set model.momentum=-5
expect_error "beta1 above 1" 2 '--set model.beta1: must be in [0, 1), got 2' "$bin" run model.toml --set model.optimizer=adam --set model.beta1=2
expect_error "negative eps" 2 '--set model.eps: must be in (0, inf), got -1' "$bin" run model.toml --set model.eps=-1
expect_error "negative weight decay" 2 '--set model.weight_decay: must be in [0, inf), got -1' "$bin" run model.toml --set model.weight_decay=-1
expect_error "infinite rate" 2 '--set gen.rate: must be a finite number, got inf' "$bin" run model.toml --set gen.rate=inf
expect_error "nan rate" 2 '--set gen.rate: must be a finite number, got nan' "$bin" validate model.toml --set gen.rate=nan
expect_error "nan metrics interval" 2 '--set job.metrics_interval: must be a finite number, got nan' "$bin" run model.toml --set job.metrics_interval=nan
expect_error "missing model file" 2 'gone/m.pt does not exist' "$bin" run model.toml --set model.network=gone/m.pt
expect_error "zero ranks" 2 '--ranks: Value 0 not in range 1 to 1048576' "$bin" validate wc.toml --ranks 0
expect_error "launch on zero ranks" 2 '--np: Value 0 not in range 1 to 1048576' "$bin" launch -n 0 wc.toml
expect_error "unknown command" 2 'unknown command "rnu"' "$bin" rnu wc.toml
expect_error "missing argument" 2 'job is required' "$bin" run
# Sizes that cannot be allocated (these once grew until std::bad_alloc, or were reported as an
# input-shape problem) and a cycle that would never end: refused before anything runs.
expect_error "batch size too large" 2 '--set gen.batch_size: must be between 1 and 1048576, got 1000000000000' "$bin" validate model.toml --set gen.count=0 --set gen.batch_size=1000000000000
expect_error "record too large for a batch" 2 'a batch of 1024 records of 400000008 bytes is 409.6 GB, over the 2 GiB a batch may hold: lower batch_size or the record shape' "$bin" validate model.toml --set 'gen.columns={ x = "uniform[100000000]", y = "randint(2)" }' --set gen.batch_size=1024
expect_error "shape too large for a record" 2 'a record of more than 268435456 elements' "$bin" validate model.toml --set 'gen.columns={ x = "uniform[100000,100000]", y = "randint(2)" }'
expect_error "layer too large" 2 '--set model.layers: layer size 100000000 is too large: the mlp would have 1100000002 parameters' "$bin" validate model.toml --set 'model.layers=[8, 100000000, 2]'
expect_error "endless line at validate" 2 '/dev/zero: line 1 is longer than 268435456 bytes' "$bin" validate zero.toml
expect_error "endless line at run time" 1 '/dev/zero: line 1 is longer than 268435456 bytes' "$bin" run zero.toml --out out --set src.header=false --set 'src.columns=["x:float64"]'
expect_error "cycle without a model" 2 'operators "b" -> "c" -> "b" form a cycle, and none of them runs on a cycle' "$bin" validate cycle.toml
expect_error "feature width" 2 'input train: column "feat" arrives as feat: float32[8], but the mlp'"'"'s first layer takes 4 values per record (layers[0])' "$bin" validate model.toml --set 'gen.columns={ feat = "normal[8]", y = "randint(2)" }' --set 'model.features=["feat"]' --set 'model.layers=[4, 2]'
# The model's device: a CUDA value on a CPU-only LibTorch (CI's build) is refused at validate,
# one line naming the key; a build with CUDA but no visible GPU says so instead; a build with
# a GPU accepts it (bench/gpu_check.sh checks that path).
if cuda_err=$("$bin" validate model.toml --set model.device=cuda 2>&1 >/dev/null); then
  echo "skip [cuda device]: this build has CUDA and a GPU"
elif [[ $cuda_err == *"needs a CUDA device"* ]]; then
  expect_error "cuda without a GPU" 2 \
    '--set model.device: "cuda" needs a CUDA device, and none is visible' \
    "$bin" validate model.toml --set model.device=cuda
else
  cpu_only='--set model.device: "cuda" needs a LibTorch built with CUDA; this build is CPU-only'
  cpu_only+=' (TORCH_DIR=<a CUDA LibTorch> make, docs/model.md#devices)'
  expect_error "cuda on a CPU-only build" 2 "$cpu_only" \
    "$bin" validate model.toml --set model.device=cuda
  expect_error "cuda:local_rank on a CPU-only build" 2 \
    '--set model.device: "cuda:local_rank" needs a LibTorch built with CUDA' \
    "$bin" run model.toml --set model.device=cuda:local_rank
fi
expect_error "unknown device" 2 \
  '--set model.device: unknown device "gpu" (known: cpu, cuda, cuda:N, cuda:local_rank, auto)' \
  "$bin" validate model.toml --set model.device=gpu
exit $((failures > 0))
