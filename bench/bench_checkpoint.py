#!/usr/bin/python3
"""What job-wide checkpoints cost a training job, and how long a restore takes.

The work: the reference CIFAR-10 CNN (examples/cifar10.toml without the test set) trained
online by DASGD on 2 ranks started with `tensair launch -n 2` (one LibTorch thread per rank),
one pass over the 50,000 training images, with a checkpoint every 10 s. Measured,
interleaved in one sitting:

  - training throughput without checkpoints and with `[checkpoint] every_s` (samples per
    second of all ranks, between each rank's first and last `model` line, so that start-up and
    reading the data are not counted; both runs read the same files the same way);
  - the checkpoints' duration (trigger to manifest) and size;
  - a stop and a restore: SIGINT to the launcher mid-run (exit 130 after a last checkpoint),
    then `--resume latest`: the `restored` event's restore_s, and the time from the signal to
    the exit.

Checks (exit 1 when one fails): every run ends with status ok and trains on every image of the
stream exactly once (the ranks' samples add up to the stream; after the stop and the resume,
too), and the checkpointed runs took checkpoints.

  build/bench/bench_checkpoint [--quick] [--json PATH]        (bench/run.sh runs it)
  /usr/bin/python3 bench/bench_checkpoint.py --tensair build/bin/tensair [--quick] [--json PATH]
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_script import (Failed, allocator, end_line, job_events, kind, load_average,
                          main_guard, parse_args, read_metrics, report, result)

STREAM = 50000  # CIFAR-10 training images


def job_text(limit, every_s):
    text = """[job]
name = "bench_checkpoint"
metrics_interval = 5
"""
    if every_s is not None:
        text += f"[checkpoint]\nevery_s = {every_s}\n"
    return text + f"""[train]
type = "cifar10_source"
replay = 1
limit = {limit}
shuffle_buffer = 10000
batch_size = 32
placement = 0
[model]
type = "model"
from = "train"
routing = "round_robin"
network = "cifar_cnn"
optimizer = "adam"
lr = 0.0007
threads = 1
log_every = 10
"""


def train_rate(lines, where):
    """Samples per second of all ranks together, from each rank's first to last model line."""
    by_rank = {}
    for m in kind(lines, "model"):
        if m.get("phase") == "train":
            by_rank.setdefault(m["rank"], []).append((m["t"], m["records"]))
    if not by_rank:
        raise Failed(f"{where}: no model lines in metrics.jsonl")
    rate = 0.0
    for points in by_rank.values():
        (t0, r0), (t1, r1) = points[0], points[-1]
        if t1 <= t0:
            raise Failed(f"{where}: a rank logged only one model line (stream too short)")
        rate += (r1 - r0) / (t1 - t0)
    return rate


def samples(lines):
    return sum(s["samples"] for s in kind(lines, "model_summary"))


def first_manifest(ckdir):
    return os.path.isdir(ckdir) and any(
        os.path.exists(os.path.join(ckdir, d, "MANIFEST.json")) for d in os.listdir(ckdir))


class Runner:
    """Runs jobs with `tensair launch -n RANKS` in a scratch folder, one job file each."""

    def __init__(self, tensair, work, ranks):
        self.tensair = tensair
        self.work = work
        self.ranks = ranks
        self.n = 0

    def new_job(self, limit, every_s):
        self.n += 1
        path = os.path.join(self.work, f"job{self.n}.toml")
        with open(path, "w") as f:
            f.write(job_text(limit, every_s))
        out, log = (os.path.join(self.work, f"{what}{self.n}") for what in ("out", "log"))
        return path, out, log

    def cmd(self, path, out, *extra):
        return [self.tensair, "launch", "-n", str(self.ranks), path, "--out", out, *extra]

    def check_ok(self, lines, where, limit):
        end = end_line(lines, where)
        if end.get("status") != "ok":
            raise Failed(f"{where}: status {end.get('status')}")
        if samples(lines) != limit:
            raise Failed(f"{where}: trained on {samples(lines)} samples, the stream has {limit}")
        return end

    def run(self, limit, every_s):
        path, out, log = self.new_job(limit, every_s)
        with open(log, "w") as f:
            rc = subprocess.call(self.cmd(path, out), stdout=f, stderr=subprocess.STDOUT)
        if rc != 0:
            raise Failed(f"{path} exited {rc} (log: {log})")
        lines = read_metrics(out)
        end = self.check_ok(lines, path, limit)
        ckpts = job_events(lines, "checkpoint")
        if every_s is not None and not ckpts:
            raise Failed(f"{path}: no checkpoint in {end['elapsed_s']:.0f} s, every_s = {every_s}")
        shutil.rmtree(out, ignore_errors=True)
        return {"rate": train_rate(lines, path), "checkpoints": ckpts,
                "allocator": allocator(lines)}

    def stop_and_resume(self, limit, every_s, stop_after_s):
        """SIGINT to the launcher stop_after_s after the first checkpoint, then --resume."""
        path, out, log = self.new_job(limit, every_s)
        with open(log, "w") as f:
            p = subprocess.Popen(self.cmd(path, out), stdout=f, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 600
            while not first_manifest(os.path.join(out, "checkpoints")):
                if p.poll() is not None:
                    raise Failed(f"{path}: the job ended (exit {p.returncode}) before its first "
                                 "checkpoint")
                if time.monotonic() > deadline:
                    p.kill()
                    raise Failed(f"{path}: no checkpoint within 600 s")
                time.sleep(0.05)
            time.sleep(stop_after_s)
            if p.poll() is not None:
                raise Failed(f"{path}: the job ended before the stop (stream too short)")
            t_signal = time.monotonic()
            p.send_signal(signal.SIGINT)
            rc = p.wait()
            stop_s = time.monotonic() - t_signal
            if rc != 130:
                raise Failed(f"{path}: exit {rc} after SIGINT, expected 130 (log: {log})")
            first = read_metrics(out)
            at_stop = [c for c in job_events(first, "checkpoint") if c.get("reason") == "stop"]
            if not at_stop:
                raise Failed(f"{path}: no checkpoint at the stop")
            rc = subprocess.call(self.cmd(path, out, "--resume", "latest"), stdout=f,
                                 stderr=subprocess.STDOUT)
        if rc != 0:
            raise Failed(f"{path} --resume latest exited {rc} (log: {log})")
        lines = read_metrics(out)[len(first):]
        self.check_ok(lines, f"{path} --resume latest", limit)
        restored = job_events(lines, "restored")
        if len(restored) != self.ranks:
            raise Failed(f"{path} --resume: {len(restored)} restored events, not {self.ranks}")
        return {"stop_s": stop_s, "stop_checkpoint_s": at_stop[-1]["duration_s"],
                "restore_s": max(r["restore_s"] for r in restored)}


def main():
    a = parse_args(__doc__.split("\n")[0], os.path.dirname(os.path.abspath(__file__)))
    ranks = 2
    limit = 6000 if a.quick else STREAM
    every_s = 2 if a.quick else 10
    repeats = 3 if a.quick else 5
    load_before = load_average()

    work = tempfile.mkdtemp(prefix="bench_checkpoint.")
    try:
        r = Runner(a.tensair, work, ranks)
        r.run(3200, None)  # warm-up: the data files and the binary in the page cache
        plain, ckpt = [], []
        for i in range(repeats):  # interleaved: A B, B A, A B, ...
            for e in ([None, every_s] if i % 2 == 0 else [every_s, None]):
                res = r.run(limit, e)
                (plain if e is None else ckpt).append(res)
                what = f"every_s={e}" if e else "no checkpoints"
                print(f"  round {i + 1}/{repeats}, {what}: {res['rate']:.0f} samples/s, "
                      f"{len(res['checkpoints'])} checkpoints (load {load_average()})",
                      file=sys.stderr)
        sr = r.stop_and_resume(15000 if a.quick else limit, every_s, 0.5 if a.quick else 5.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    durations = [c["duration_s"] for x in ckpt for c in x["checkpoints"]]
    sizes = [c["bytes"] / 2**20 for x in ckpt for c in x["checkpoints"]]
    per_run = statistics.median(len(x["checkpoints"]) for x in ckpt)
    results = [
        result("train_no_checkpoints", [x["rate"] for x in plain], "samples/s", True),
        result(f"train_checkpoint_every_{every_s}s", [x["rate"] for x in ckpt], "samples/s",
               True, f"{per_run:.0f} checkpoints per run", "no checkpoints",
               [x["rate"] for x in plain]),
        result("checkpoint_duration", durations, "s", False, "trigger to manifest"),
        result("checkpoint_size", sizes, "MiB", False, "all ranks' files"),
        result("stop_on_sigint", [sr["stop_s"]], "s", False,
               f"SIGINT to the launcher until exit 130, with a last checkpoint of "
               f"{sr['stop_checkpoint_s']:.3f} s"),
        result("restore", [sr["restore_s"]], "s", False,
               "--resume latest: run start until every instance has its state (slowest rank)"),
    ]
    settings = {"allocator": plain[0]["allocator"], "ranks": ranks,
                "torch_threads_per_rank": 1, "launcher": "tensair launch (mpirun --bind-to none)",
                "repeats": repeats, "quick": a.quick, "stream": limit, "every_s": every_s,
                "load_before": load_before, "load_after": load_average()}
    report("checkpoint", f"Checkpoints: CIFAR-10 CNN, DASGD on {ranks} ranks, {limit} images",
           settings, results, a.json)


if __name__ == "__main__":
    main_guard("bench_checkpoint", main)
