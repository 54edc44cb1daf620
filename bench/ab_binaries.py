#!/usr/bin/python3
"""Two tensair binaries on the same training job, interleaved: is a slowdown the code or the
machine? The job is bench_checkpoint's without checkpoints (the reference CIFAR-10 CNN by DASGD
on 2 ranks, `tensair launch -n 2`, one LibTorch thread per rank); the pairs alternate their
order (A B, B A, ...). Prints each run's training throughput (bench_checkpoint's measure), the
medians with min and max, the ratio B / A and the load. Checks as bench_checkpoint does: every
run ends ok and trains on every image once.

  /usr/bin/python3 bench/ab_binaries.py A_TENSAIR B_TENSAIR [--images N] [--pairs K]

An older binary: `git worktree add /tmp/old REV`, then in it `cmake -S . -B /tmp/bold -G Ninja
-DCMAKE_BUILD_TYPE=Release -DTENSAIR_BUILD_TESTS=OFF -DTENSAIR_BUILD_BENCH=OFF` and
`ninja -C /tmp/bold tensair`.
"""
import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_checkpoint  # noqa: E402
from bench_script import load_average  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    bins = {"A": args.a, "B": args.b}
    work = tempfile.mkdtemp(prefix="tensair_ab_")
    rates = {k: [] for k in bins}
    print(f"A = {args.a}\nB = {args.b}\nload before: {load_average()}", flush=True)
    for i in range(args.pairs):
        for k in (["A", "B"] if i % 2 == 0 else ["B", "A"]):
            runner = bench_checkpoint.Runner(bins[k], os.path.join(work, k), 2)
            os.makedirs(runner.work, exist_ok=True)
            runner.n = i
            res = runner.run(args.images, None)
            rates[k].append(res["rate"])
            print(f"pair {i + 1} {k}: {res['rate']:.0f} samples/s, allocator {res['allocator']}, "
                  f"load {load_average()}", flush=True)
    for k, v in rates.items():
        print(f"{k}: median {statistics.median(v):.0f} samples/s (min {min(v):.0f}, "
              f"max {max(v):.0f})")
    print(f"ratio B / A: {statistics.median(rates['B']) / statistics.median(rates['A']):.3f}")


if __name__ == "__main__":
    try:
        main()
    except bench_checkpoint.Failed as e:
        print(f"ab_binaries: {e}", file=sys.stderr)
        sys.exit(1)
