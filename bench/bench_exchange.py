#!/usr/bin/python3
"""What replicas should send each other: CIFAR-10 accuracy of the two exchange payloads.

The work: examples/cifar10.toml (the reference CNN, Adam lr 7e-4, batch 32, evaluated on the
10,000 test images), PASSES passes over the training images, started with `tensair launch`:

  - 1 process (one replica: the payload does not matter);
  - 2 ranks under DASGD with `exchange = "update"` (a replica's applied parameter change, added
    to the receiver's weights);
  - 2 ranks with `exchange = "gradient"` (the gradient, through the receiver's optimizer: the
    original system).

Each with seeds 1, 2, 3 (`model.seed` and `train.seed`), interleaved seed by seed. Figures: the
final test accuracy (median of the seeds, spread in the note), and for 2 ranks the largest
difference between the two replicas' final weights (from their TorchScript exports).

Checks (exit 1 when one fails): every run ends with status ok, trains on every image of the
stream once, and its final accuracy is better than chance; with `update` the replicas end
equal (max |w0 - w1| <= 1e-4, float rounding).

  build/bench/bench_exchange [--quick] [--json PATH]          (bench/run.sh runs it)
  /usr/bin/python3 bench/bench_exchange.py --tensair build/bin/tensair [--passes N]
"""
import os
import shutil
import subprocess
import sys
import tempfile

from bench_script import (Failed, allocator, end_line, kind, load_average, main_guard,
                          parse_args, read_metrics, report, result)

TRAIN = 50000
EQUAL_WITHIN = 1e-4


def max_weight_difference(a, b):
    """Largest |a - b| over the parameters of two TorchScript files (Debian's python3-torch)."""
    code = ("import sys, torch\n"
            "a, b = (dict(torch.jit.load(p).named_parameters()) for p in sys.argv[1:3])\n"
            "print(max(float((a[k] - b[k]).abs().max()) for k in a))\n")
    out = subprocess.run(["/usr/bin/python3", "-c", code, a, b], capture_output=True, text=True)
    if out.returncode != 0:
        raise Failed(f"cannot compare {a} and {b}: {out.stderr.strip().splitlines()[-1:]}")
    return float(out.stdout)


def run(a, work, name, ranks, exchange, seed, passes, limit):
    out = os.path.join(work, name)
    job = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples",
                       "cifar10.toml")
    cmd = [a.tensair, "launch", "-n", str(ranks), job, "--out", out,
           "--set", f"train.replay={passes}", "--set", f"model.seed={seed}",
           "--set", f"train.seed={seed}", "--set", f"model.exchange={exchange}",
           "--set", "model.threads=1"]
    if limit:
        cmd += ["--set", f"train.limit={limit}", "--set", "test.limit=1000",
                "--set", "model.eval_every=100"]
    log = os.path.join(work, name + ".log")
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        raise Failed(f"{name}: exit {rc}: {' '.join(cmd)} (log: {log})")
    lines = read_metrics(out)
    end = end_line(lines, name)
    if end.get("status") != "ok":
        raise Failed(f"{name}: status {end.get('status')}")
    stream = limit if limit else TRAIN * passes
    trained = sum(s["samples"] for s in kind(lines, "model_summary"))
    if trained != stream:
        raise Failed(f"{name}: trained on {trained} samples, the stream has {stream}")
    evals = kind(lines, "eval")
    if not evals:
        raise Failed(f"{name}: no eval line")
    accuracy = evals[-1]["accuracy"]
    if not accuracy > 0.15:
        raise Failed(f"{name}: final test accuracy {accuracy}, not better than chance")
    diff = None
    if ranks == 2:
        diff = max_weight_difference(os.path.join(out, "cifar_cnn_0.pt"),
                                     os.path.join(out, "cifar_cnn_1.pt"))
        if exchange == "update" and not diff <= EQUAL_WITHIN:
            raise Failed(f"{name}: replicas differ by {diff:.3g} with exchange = update")
    res = {"accuracy": accuracy, "diff": diff, "elapsed": end["elapsed_s"],
           "allocator": allocator(lines)}
    shutil.rmtree(out, ignore_errors=True)
    return res


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    a = parse_args(__doc__.split("\n")[0], here, lambda ap: ap.add_argument(
        "--passes", type=int, default=3, help="passes over the training images (default 3)"))
    passes = a.passes
    seeds = [1] if a.quick else [1, 2, 3]
    limit = 4000 if a.quick else 0
    configs = [("1 process", 1, "update"), ("2 ranks update", 2, "update"),
               ("2 ranks gradient", 2, "gradient")]
    load_before = load_average()
    runs = {c[0]: [] for c in configs}
    work = tempfile.mkdtemp(prefix="bench_exchange.")
    try:
        for seed in seeds:
            for label, ranks, exchange in configs:
                name = f"{label.replace(' ', '_')}_seed{seed}"
                res = run(a, work, name, ranks, exchange, seed, passes, limit)
                runs[label].append(res)
                diff = "" if res["diff"] is None else f", max |w0 - w1| {res['diff']:.3g}"
                print(f"  {label}, seed {seed}: accuracy {res['accuracy']:.4f}{diff}, "
                      f"{res['elapsed']:.0f} s (load {load_average()})", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    single = [r["accuracy"] for r in runs["1 process"]]
    results = [result("accuracy_1_process", single, "accuracy", True,
                      f"seeds {seeds}")]
    for label in ("2 ranks update", "2 ranks gradient"):
        key = label.replace(" ", "_")
        results.append(result(f"accuracy_{key}", [r["accuracy"] for r in runs[label]],
                              "accuracy", True, f"seeds {seeds}", "1 process", single))
        results.append(result(f"replica_difference_{key}", [r["diff"] for r in runs[label]],
                              "max abs weight difference", False,
                              "final weights of the two replicas"))
    stream = limit if limit else f"{passes} x {TRAIN}"
    settings = {"allocator": runs["1 process"][0]["allocator"], "torch_threads_per_rank": 1,
                "launcher": "tensair launch (mpirun --bind-to none)",
                "job": "examples/cifar10.toml",
                "stream": stream, "seeds": seeds, "quick": a.quick,
                "load_before": load_before, "load_after": load_average()}
    report("exchange", f"Exchange payload: CIFAR-10 test accuracy after {stream} images",
           settings, results, a.json)


if __name__ == "__main__":
    main_guard("bench_exchange", main)
