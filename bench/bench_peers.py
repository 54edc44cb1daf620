"""TensAIR against its peers on the same work, in one sitting, interleaved and repeated.

    make bench-peers                  # installs the peers if missing, runs this, writes
                                      # build/bench/peers.json, the table and build/bench/peers.png
    build/bench/bench_peers [--quick] [--only cifar1,threads2,cifar2,straggler,tta,w2v]
                            [--rounds N] [--json PATH] [--plot PATH]

Sections (each a pair of runs per round, the two sides one after the other, the order of the
sides alternating from round to round):

  cifar1     CIFAR CNN, 1 process, 1 torch thread: `tensair run examples/cifar10.toml` vs a
             plain PyTorch loop (bench/peers/torch_cifar.py), samples/s.
  threads2   the same with 2 torch threads on both sides.
  cifar2     2 ranks under mpirun: TensAIR DASGD (the example as shipped: the source on rank 0,
             least_loaded routing) vs PyTorch DistributedDataParallel (gloo).
  straggler  cifar2 with rank 1 slowed 2x on both sides by the same external mechanism:
             bench/peers/straggle.py stops its process (SIGSTOP) for 20 ms of every 40 ms.
  tta        samples to 60 % CIFAR-10 test accuracy on 2 ranks (test set evaluated every 16,000
             samples of the job, interpolated between evaluations); the time to it is those
             samples over the job's median samples/s in cifar2 (so evaluation is not timed on
             either side).
  w2v        Word2Vec (examples/word2vec.toml, one pass) on 1 and 2 ranks vs gensim 4
             (bench/peers/gensim_w2v.py, one epoch) with 1 and 2 workers: words/s and the probe
             score (bench/peers/w2v_probe.py) of the vectors.

Throughput is measured alike on both sides: per rank, the samples (words) trained between the
first logged step and the last over the time between them, summed over ranks; start-up
(loading, MPI, the peers' decoding of the images before their clock starts, the corpus build)
is outside. Checked: every TensAIR run trained exactly the samples it was given (sum over the
replicas), every peer run the steps it should, the probe of every model is above its random
floor, and a time to accuracy is only reported when the accuracy was reached.

Settings of both sides, in the JSON: glibc malloc with mmap_threshold 4 MiB and trim_threshold
2 GiB (TensAIR sets them itself with mallopt; the peers get MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_), OMP_NUM_THREADS and torch threads equal, batch 32, Adam lr 0.0007,
the same CNN and initialisation bounds (PyTorch's defaults), mpirun --bind-to none.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
sys.path.insert(0, HERE)
sys.path.insert(0, PEERS)
import bench_script as bs  # noqa: E402

PY = "/usr/bin/python3"
SECTIONS = ["cifar1", "threads2", "cifar2", "straggler", "tta", "w2v"]
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4194304", "MALLOC_TRIM_THRESHOLD_": "2147483648"}
ALLOCATOR = "glibc malloc, mmap_threshold=4MiB trim_threshold=2GiB (both sides)"
BATCH = 32
TARGET = 0.60
LOG_EVERY = 10  # steps between timing points, both sides
EVAL_SAMPLES = 16000  # samples of the job between test-set evaluations (both sides)


def mpirun(ranks):
    return ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none"] if ranks > 1 \
        else []


def straggled(cmd):
    return [PY, os.path.join(PEERS, "straggle.py"), "--rank", "1", "--stop-ms", "20",
            "--run-ms", "20", "--"] + cmd


def env(threads):
    e = dict(os.environ)
    e.update(MALLOC)
    e["OMP_NUM_THREADS"] = str(threads)
    return e


def run(cmd, threads, where, timeout=3600):
    p = subprocess.run(cmd, env=env(threads), capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise bs.Failed(f"{where}: exit {p.returncode}: {' | '.join(tail)}")
    return p


def per_rank_rate(lines, count):
    """Sum over ranks of (count at the last model line - at the first) / (t between them)."""
    by_rank = {}
    for m in bs.kind(lines, "model"):
        if m.get("phase") == "train":
            by_rank.setdefault(m["rank"], []).append(m)
    rate = 0.0
    for ms in by_rank.values():
        if len(ms) >= 2 and ms[-1]["t"] > ms[0]["t"]:
            rate += (count(ms[-1]) - count(ms[0])) / (ms[-1]["t"] - ms[0]["t"])
    return rate, len(by_rank)


class Bench:
    def __init__(self, a):
        self.a = a
        self.out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(a.tensair))),
                                "bench", "peers_out")
        os.makedirs(self.out, exist_ok=True)

    # CIFAR-10 -----------------------------------------------------------------------------

    def tensair_cifar(self, ranks, samples, threads, slow=False, extra=()):
        out = os.path.join(self.out, f"tensair_cifar_{ranks}")
        cmd = mpirun(ranks) + [self.a.tensair, "run", os.path.join(REPO, "examples",
                                                                   "cifar10.toml"),
                               "--no-progress", "--out", out,
                               "--set", "train.replay=1", "--set", f"train.limit={samples}",
                               "--set", "test.limit=500", "--set", "model.eval_every=0",
                               "--set", f"model.threads={threads}",
                               "--set", f"model.log_every={LOG_EVERY}", *extra]
        where = f"tensair cifar10 on {ranks} rank(s)" + (" with a straggler" if slow else "")
        run(straggled(cmd) if slow else cmd, threads, where)
        lines = bs.read_metrics(out)
        trained = sum(m["samples"] for m in bs.kind(lines, "model_summary"))
        if trained != samples:
            raise bs.Failed(f"{where}: trained {trained} samples, expected {samples}")
        rate, nranks = per_rank_rate(lines, lambda m: m["records"])
        if nranks != ranks or rate <= 0:
            raise bs.Failed(f"{where}: model lines from {nranks} rank(s), rate {rate}")
        return rate

    def torch_cifar(self, ranks, samples, threads, slow=False, extra=()):
        js = os.path.join(self.out, f"torch_cifar_{ranks}.json")
        cmd = mpirun(ranks) + [PY, os.path.join(PEERS, "torch_cifar.py"), "--samples",
                               str(samples), "--threads", str(threads), "--log-every", str(LOG_EVERY),
                               "--json", js, *extra]
        where = f"pytorch cifar10 on {ranks} process(es)" + (" with a straggler" if slow else "")
        run(straggled(cmd) if slow else cmd, threads, where)
        with open(js) as f:
            r = json.load(f)
        want = samples // (BATCH * ranks)
        if "--passes" not in extra and r["steps"] != want:
            raise bs.Failed(f"{where}: {r['steps']} steps per rank, expected {want}")
        return r

    def throughput(self, name, ranks, threads, samples, slow, peer_name):
        ours, theirs = [], []
        for k in range(self.a.rounds):
            sides = [("t", self.tensair_cifar), ("p", self.torch_cifar)]
            for side, fn in (sides if k % 2 == 0 else sides[::-1]):
                v = fn(ranks, samples, threads, slow)
                (ours if side == "t" else theirs).append(
                    v if side == "t" else v["samples_per_s"])
            print(f"  {name} round {k + 1}: TensAIR {ours[-1]:.0f}, {peer_name} "
                  f"{theirs[-1]:.0f} samples/s", file=sys.stderr)
        note = (f"{samples:,} CIFAR-10 images, batch {BATCH}, {ranks} rank(s), {threads} "
                f"torch thread(s) per rank" + ("; rank 1 stopped 20 ms of every 40 ms on both "
                                                 "sides" if slow else ""))
        return bs.result(f"cifar_cnn_samples_per_s_{name}", ours, "samples/s", True, note,
                         peer_name, theirs), ours, theirs

    # Time to accuracy --------------------------------------------------------------------

    @staticmethod
    def samples_to(evals, target):
        """Samples at which the accuracy first reaches target, interpolated linearly between
        the evaluation before and the one that reached it; None if never."""
        prev = (0, 0.1)
        for s, acc in evals:
            if acc >= target:
                s0, a0 = prev
                return s0 + (s - s0) * (target - a0) / (acc - a0) if acc > a0 else s
            prev = (s, acc)
        return None

    def tensair_tta(self, passes):
        out = os.path.join(self.out, "tensair_tta")
        own = EVAL_SAMPLES // (BATCH * 2)  # eval_every counts rank 0's own steps
        cmd = mpirun(2) + [self.a.tensair, "run", os.path.join(REPO, "examples", "cifar10.toml"),
                           "--no-progress", "--out", out, "--set", f"train.replay={passes}",
                           "--set", f"model.eval_every={own}", "--set", "model.threads=1"]
        proc = subprocess.Popen(cmd, env=env(1), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        metrics = os.path.join(out, "metrics.jsonl")
        evals, reached = [], False
        try:
            while proc.poll() is None and not reached:
                time.sleep(1)
                if os.path.exists(metrics):
                    evals = [(m["version"] * BATCH, m["accuracy"])
                             for m in bs.kind(bs.read_metrics_partial(metrics), "eval")]
                    reached = any(acc >= TARGET for _, acc in evals)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # the job's clean stop
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if not reached and proc.returncode != 0:
            raise bs.Failed(f"tensair time to accuracy: exit {proc.returncode}: "
                            f"{proc.stderr.read().strip()[-300:]}")
        return evals

    def torch_tta(self, passes):
        r = self.torch_cifar(2, 50000, 1, extra=("--passes", str(passes), "--eval-every",
                                                 str(EVAL_SAMPLES), "--target", str(TARGET)))
        return [(e["samples"], e["accuracy"]) for e in r["evals"]]

    def tta(self, rate_ours, rate_theirs):
        passes = 10
        ours = self.samples_to(self.tensair_tta(passes), TARGET)
        theirs = self.samples_to(self.torch_tta(passes), TARGET)
        if ours is None or theirs is None:
            raise bs.Failed(f"time to accuracy: {TARGET:.0%} not reached in {passes} passes "
                            f"(TensAIR {ours}, DDP {theirs} samples)")
        note = (f"2 ranks; samples to {TARGET:.0%} test accuracy (TensAIR {ours:,.0f}, DDP "
                f"{theirs:,.0f}; evaluated every {EVAL_SAMPLES:,} samples, interpolated) over "
                "the median samples/s of cifar2")
        rs = [bs.result("cifar_cnn_samples_to_60pct_2_ranks", [ours], "samples", False,
                        "one run per side", "PyTorch DDP (gloo)", [theirs]),
              bs.result("cifar_cnn_seconds_to_60pct_2_ranks",
                        [ours / statistics.median(rate_ours)], "s", False, note,
                        "PyTorch DDP (gloo)", [theirs / statistics.median(rate_theirs)])]
        return rs

    # Word2Vec ----------------------------------------------------------------------------

    def training_words(self, vocab_path):
        """Tokens of the training lines that are in TensAIR's vocabulary (vocab.txt)."""
        from gensim_w2v import sentences
        with open(vocab_path) as f:
            vocab = {line.split()[0] for line in f if line.strip()}
        return sum(1 for s in sentences() for w in s if w in vocab)

    def tensair_w2v(self, ranks):
        out = os.path.join(self.out, f"tensair_w2v_{ranks}")
        cmd = mpirun(ranks) + [self.a.tensair, "run", os.path.join(REPO, "examples",
                                                                   "word2vec.toml"),
                               "--no-progress", "--out", out, "--set", "model.eval_every=0",
                               "--set", "model.threads=1"]
        where = f"tensair word2vec on {ranks} rank(s)"
        run(cmd, 1, where)
        lines = bs.read_metrics(out)
        if not hasattr(self, "_words"):
            self._words = self.training_words(os.path.join(out, "vocab.txt"))
        steps = sum(m["steps"] for m in bs.kind(lines, "model_summary"))
        rate, nranks = per_rank_rate(lines, lambda m: m["step"] * self._words / steps)
        if nranks != ranks or rate <= 0:
            raise bs.Failed(f"{where}: model lines from {nranks} rank(s), rate {rate}")
        from w2v_probe import probe, read_vectors
        score, floor, _ = probe(*read_vectors(os.path.join(out, "vectors.txt")))
        if score <= floor:
            raise bs.Failed(f"{where}: probe {score:.3f} not above random pairs' {floor:.3f}")
        return rate, score

    def gensim_w2v(self, workers):
        js = os.path.join(self.out, f"gensim_w2v_{workers}.json")
        run([PY, os.path.join(PEERS, "gensim_w2v.py"), "--workers", str(workers), "--epochs",
             "1", "--json", js], workers, f"gensim with {workers} worker(s)")
        with open(js) as f:
            r = json.load(f)
        if r["probe"] <= r["probe_random"]:
            raise bs.Failed(f"gensim: probe {r['probe']:.3f} not above random pairs'")
        return r["words_per_s"], r["probe"]

    def w2v(self):
        results = []
        for n in (1, 2):
            ours, theirs = [], []
            for k in range(self.a.w2v_rounds):
                sides = [("t", lambda: self.tensair_w2v(n)), ("p", lambda: self.gensim_w2v(n))]
                for side, fn in (sides if k % 2 == 0 else sides[::-1]):
                    (ours if side == "t" else theirs).append(fn())
                print(f"  w2v {n} round {k + 1}: TensAIR {ours[-1][0]:,.0f} words/s probe "
                      f"{ours[-1][1]:.3f}; gensim {theirs[-1][0]:,.0f} probe {theirs[-1][1]:.3f}",
                      file=sys.stderr)
            peer = f"gensim 4, {n} worker(s)"
            note = (f"one pass over the 4 corpora ({self._words:,} training words), dim 100, "
                    f"window 5, 5 negatives; TensAIR on {n} rank(s)")
            results.append(bs.result(f"word2vec_words_per_s_{n}", [r for r, _ in ours],
                                     "words/s", True, note, peer, [r for r, _ in theirs]))
            results.append(bs.result(f"word2vec_probe_{n}", [p for _, p in ours], "score", True,
                                     "mean-centred cosine of 36 related word pairs", peer,
                                     [p for _, p in theirs]))
        return results


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in results if r["ratio"]]
    names = [r["name"].replace("cifar_cnn_", "").replace("_", " ") for r in rows]
    gain = [r["ratio"] if r["higher_is_better"] else 1 / r["ratio"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    ax.barh(names, gain, color=["tab:green" if g >= 1 else "tab:red" for g in gain])
    ax.axvline(1.0, color="black", lw=1)
    for i, g in enumerate(gain):
        ax.text(g, i, f" {g:.2f}", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("TensAIR / peer (> 1: TensAIR better; times and samples inverted)")
    ax.set_title("TensAIR vs its peers, same work, interleaved (bench_peers)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    def extra(ap):
        ap.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections: " + ", ".join(SECTIONS))
        ap.add_argument("--rounds", type=int, default=0, help="rounds of each CIFAR section")
        ap.add_argument("--plot", default="", help="write the plot (PNG) here")
    a = bs.parse_args(__doc__.splitlines()[0], HERE, extra)
    only = [s for s in a.only.split(",") if s]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        print(f"bench_peers.py: unknown section {bad[0]!r} (known: {', '.join(SECTIONS)})",
              file=sys.stderr)
        sys.exit(2)
    if a.quick:  # a smoke run: small sizes, no time to accuracy, no Word2Vec
        only = [s for s in only if s not in ("tta", "w2v")]
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.w2v_rounds = 1 if a.quick else 2
    one, two = (1600, 3200) if a.quick else (12800, 25600)
    b = Bench(a)
    load_before = bs.load_average()
    results, cifar2 = [], None
    if "cifar1" in only:
        results.append(b.throughput("1_process", 1, 1, one, False, "PyTorch loop")[0])
    if "threads2" in only:
        results.append(b.throughput("1_process_2_threads", 1, 2, one, False,
                                    "PyTorch loop, 2 threads")[0])
    if "cifar2" in only or "tta" in only:
        r, ours, theirs = b.throughput("2_ranks", 2, 1, two, False, "PyTorch DDP (gloo)")
        results.append(r)
        cifar2 = (ours, theirs)
    if "straggler" in only:
        results.append(b.throughput("2_ranks_straggler", 2, 1, two, True,
                                    "PyTorch DDP (gloo), same straggler")[0])
    if "tta" in only:
        results += b.tta(*cifar2)
    if "w2v" in only:
        results += b.w2v()
    import torch
    settings = {"rounds": a.rounds, "sections": only, "allocator": ALLOCATOR,
                "torch": torch.__version__, "mpirun": "--oversubscribe --bind-to none",
                "batch": BATCH, "optimizer": "adam lr 0.0007 (CIFAR), sgd lr 20 / gensim "
                "alpha 0.025 decaying (Word2Vec)", "load_before": load_before,
                "load_after": bs.load_average(), "machine": bs.machine(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    bs.report("peers", "TensAIR and its peers on the same work", settings, results, a.json)
    if a.plot:
        plot(results, a.plot)
        print(f"plot: {a.plot}")


if __name__ == "__main__":
    bs.main_guard("bench_peers", main)
