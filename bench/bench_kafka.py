#!/usr/bin/python3
"""Sustainable throughput from Kafka: TensAIR against a Python consumer-trainer loop.

The paper's headline metric: the highest input rate a job sustains with bounded lag.
Two works, each at 1 and 2 ranks, each run by both sides on the same topic contents:

  sentiment  tweets (Sentiment140) as JSON -> hashed bag of words (4,096, bigrams) ->
             logistic regression, Adam lr 0.01
  cifar      CIFAR-10 images as raw records, as the CIFAR-10 files hold them (label uint8,
             image uint8[3,32,32]: 3,073 bytes) -> a TorchScript module (the per-channel
             normalisation, then the reference CNN; bench/kafka_peer.py), Adam lr 0.0007

TensAIR: kafka_source -> (hash_features) -> model, one instance of each per rank (`forward`
routing), DASGD between the replicas, checkpoints every 2 s (offsets + model + optimizer, the
exactly-once state), `tensair run` under `mpirun -np N`. Python (bench/kafka_peer.py):
confluent-kafka Consumer -> decode -> torch, offsets committed every 2 s, DDP (gloo) under
`mpirun -np N`. Both: batch 32, one torch thread per rank, read_committed, the partitions
split statically between the ranks; every batch's loss and accuracy measured before its
update. The broker is `tensair kafka-mock` (librdkafka's mock cluster, 8 partitions per topic)
on the same 2 cores, and so is the producer.

Two steps per work, side and rank count:
  1. drain: the topic holds N records; the consumer-trainer reads them as fast as it can. Its
     rate D is the slope of records trained over time (after the first 15 %, summed over the
     ranks): the most it could sustain. REPEATS rounds, the two sides taking turns.
  2. live: a paced producer writes at rate r = f x D (the side's median D) for WINDOW seconds to
     a fresh topic while the consumer runs. The lag at time t is what was produced and is not
     trained yet: the Kafka consumer lag plus what waits inside the consumer (TensAIR's
     channels, librdkafka's prefetch queue), from the progress lines of both sides (records
     trained, every 5 batches) sampled every 0.25 s. The rate is sustained when, over the
     second half of the window, the lag does not grow (its least-squares slope is at most
     5 % of r: falling behind by less than 1 record in 20) and stays small (mean at most
     r x 2 s: less than 2 seconds of input waiting).
     The window is 10 s (4 s with --quick), shorter when the records would not fit in the
     mock broker (below).
     f is tried at 1.2; when that is sustained, at 1.5 and 2.0 until one is not; otherwise at
     0.9, 0.7, 0.5 until one is. The sustainable throughput is the highest rate sustained (a
     lower bound: the true limit lies below the next step up).

Checks (exit 1 when one fails): every run trains exactly the records it was given (TensAIR:
the model_summary samples; Python: each rank's count) and ends ok; the prequential accuracy
over the second half is above chance (sentiment > 0.55, cifar > 0.15; not with --quick, too
few records to learn from); the producer kept its rate (within 5 %).

  build/bench/bench_kafka [--quick] [--json PATH]
  /usr/bin/python3 bench/bench_kafka.py --tensair build/bin/tensair [--works sentiment,cifar]
"""
import bisect
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_script import (Failed, allocator, kind, load_average, main_guard, parse_args,
                          read_metrics, report, result)

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
# 16 partitions a topic: the mock keeps only the newest 5 MiB (and 100,000 messages) of a
# partition (rdkafka_mock.c v2.0.2), so a topic holds 80 MiB; a live run writes at most
# CAPACITY of that, and Bench.check_retention verifies that nothing was dropped.
PARTITIONS = 16
CAPACITY = 0.75 * PARTITIONS * 5 * 2**20
BATCH = 32
LADDER_DOWN = (1.2, 0.9, 0.7, 0.5)  # x the drain rate: first 1.2, then down to the first kept
LADDER_UP = (1.5, 2.0)              # when 1.2 is kept: up to the first missed
GROWTH = 0.05    # sustained: the lag grows by at most this x the rate, per second
BACKLOG_S = 2.0  # ... and its mean is at most this many seconds of input
MPI = ["mpirun", "--oversubscribe", "--bind-to", "none"]

SOURCE = """
[job]
name = "bench_kafka"
[checkpoint]
every_s = 2
[in]
type = "kafka_source"
brokers = "{brokers}"
topic = "{topic}"
group = "{group}"
start = "earliest"
batch_size = 32
limit = {records}
"""
SENTIMENT = SOURCE + """format = "json"
fields = ["id:int64", "text:string", "y:int64"]
[features]
type = "hash_features"
from = "in"
routing = "forward"
column = "text"
dim = 4096
ngrams = 2
[model]
type = "model"
from = "features"
routing = "forward"
network = "mlp"
layers = [4096, 2]
features = ["x"]
label = "y"
optimizer = "adam"
lr = 0.01
threads = 1
log_every = 5
"""
CIFAR = SOURCE + """format = "raw"
fields = ["label:uint8", "image:uint8[3,32,32]"]
[model]
type = "model"
from = "in"
routing = "forward"
network = "{network}"
features = ["image"]
label = "label"
optimizer = "adam"
lr = 0.0007
threads = 1
log_every = 5
"""
JOBS = {"sentiment": SENTIMENT, "cifar": CIFAR}
CHANCE = {"sentiment": 0.55, "cifar": 0.15}


def data_dir():
    d = os.environ.get("TENSAIR_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
    if not os.path.isdir(d):
        raise Failed(f"no data folder {d} (set TENSAIR_DATA)")
    return d


def sentiment_messages(n):
    """The first n tweets of the demo's shuffled Sentiment140 stream, as JSON messages."""
    sys.path.insert(0, os.path.join(HERE, "..", "examples", "kafka"))
    from produce_tweets import sentiment140
    rows = sentiment140(data_dir(), 1)
    return [json.dumps({"id": i, "text": t, "y": y}).encode() for i, (t, y) in enumerate(rows[:n])]


def cifar_messages(n):
    """The first n records of the CIFAR-10 training batches, as the files hold them."""
    raw = b""
    for name in ("data_batch_1.bin.gz", "data_batch_2.bin.gz"):
        if len(raw) < n * 3073:
            with gzip.open(os.path.join(data_dir(), "cifar10", name), "rb") as f:
                raw += f.read()
    if len(raw) < n * 3073:
        raise Failed(f"data_batch_1 and 2 hold {len(raw) // 3073} images, {n} wanted")
    return [raw[i * 3073:(i + 1) * 3073] for i in range(n)]


class Mock:
    """`tensair kafka-mock` with the given topics, PARTITIONS partitions each."""

    def __init__(self, tensair, topics, work):
        path = os.path.join(work, "bootstrap")
        cmd = [tensair, "kafka-mock", "--bootstrap-file", path]
        for t in topics:
            cmd += ["--topic", f"{t}:{PARTITIONS}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while not (os.path.exists(path) and open(path).read().strip()):
            if self.proc.poll() is not None or time.time() > deadline:
                raise Failed("kafka-mock did not start: " + self.proc.stderr.read().decode()[-300:])
            time.sleep(0.05)
        self.brokers = open(path).read().strip()

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def producer(brokers):
    from confluent_kafka import Producer
    return Producer({"bootstrap.servers": brokers, "linger.ms": 5, "acks": "all", "log_level": 3,
                     "queue.buffering.max.messages": 1000000,
                     "queue.buffering.max.kbytes": 1048576})


def produce(p, topic, messages, count, rate=0.0):
    """count messages (cycling through messages), message i to partition i % PARTITIONS; at `rate` per
    second when rate > 0. Returns the seconds it took (first to last produce call)."""
    start = time.monotonic()
    for i in range(count):
        if rate > 0 and i % 64 == 0:
            ahead = i / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                p.produce(topic, messages[i % len(messages)], partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1024 == 0:
            p.poll(0)
    took = time.monotonic() - start
    if p.flush(60) != 0:
        raise Failed(f"the producer could not deliver everything to {topic}")
    return took


def slope(points):
    """Records per second of one instance's (t, records) points after its first 15 %."""
    if not points:
        return 0.0
    final = points[-1][1]
    pts = [p for p in points if p[1] >= 0.15 * final]
    if len(pts) < 3 or pts[-1][0] <= pts[0][0]:
        raise Failed(f"too few progress points to measure a rate ({len(points)} points)")
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def spawn(cmd, stderr_path):
    """Starts cmd with its stderr to a file (a pipe nobody reads could fill and block it)."""
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    proc.stderr_path = stderr_path
    return proc


def wait_or_fail(proc, what, timeout):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise Failed(f"{what} did not finish within {timeout} s")
    if proc.returncode != 0:
        with open(proc.stderr_path, "rb") as f:
            tail = f.read()[-400:].decode(errors="replace")
        raise Failed(f"{what} exited {proc.returncode}: {tail}")


class TensAIR:
    name = "TensAIR"

    def __init__(self, a, work_dir):
        self.a, self.work_dir, self.runs = a, work_dir, 0
        self.network = os.path.join(work_dir, "cifar_cnn_uint8.pt")
        sys.path.insert(0, HERE)
        import kafka_peer
        kafka_peer.save_cifar_network(self.network)

    def start(self, work, ranks, brokers, topic, records):
        self.runs += 1
        self.out = os.path.join(self.work_dir, f"tensair-{self.runs}")
        job = os.path.join(self.work_dir, f"tensair-{self.runs}.toml")
        with open(job, "w") as f:
            f.write(JOBS[work].format(brokers=brokers, topic=topic, group=f"bench-{self.runs}",
                                      records=records, network=self.network))
        cmd = [self.a.tensair, "run", job, "--out", self.out]
        if ranks > 1:
            cmd = MPI + ["-np", str(ranks)] + cmd
        self.ranks, self.records, self.work = ranks, records, work
        self.proc = spawn(cmd, self.out + ".stderr")

    def ready(self):
        try:
            return len(kind(read_metrics(self.out), "model_start")) >= self.ranks
        except (OSError, ValueError):
            return False

    def finish(self):
        wait_or_fail(self.proc, "tensair run", 600)
        lines = read_metrics(self.out)
        self.allocator = allocator(lines)
        summaries = kind(lines, "model_summary")
        samples = sum(s["samples"] for s in summaries)
        if len(summaries) != self.ranks or samples != self.records:
            raise Failed(f"TensAIR {self.work} trained {samples} records on {len(summaries)} "
                         f"replicas, {self.records} were produced")
        t0 = [m for m in lines if m.get("event") == "start"][0]["unix_time"]
        progress = {}
        for m in kind(lines, "model"):
            progress.setdefault((m["rank"], m["instance"]), []).append((t0 + m["t"], m["records"]))
        accuracy = [m["accuracy"] for m in kind(lines, "model") if "accuracy" in m]
        return {"rate": sum(slope(p) for p in progress.values()),
                "progress": list(progress.values()),
                "accuracy": statistics.mean(accuracy[len(accuracy) // 2:])}


class Python:
    name = "Python"

    def __init__(self, a, work_dir):
        self.a, self.work_dir, self.runs = a, work_dir, 0

    def start(self, work, ranks, brokers, topic, records):
        self.runs += 1
        base = os.path.join(self.work_dir, f"python-{self.runs}")
        self.log, self.ready_file = base + "-{rank}.jsonl", base + "-{rank}.ready"
        cmd = [PY, os.path.join(HERE, "kafka_peer.py"), "--work", work, "--brokers", brokers,
               "--topic", topic, "--partitions", str(PARTITIONS), "--records", str(records),
               "--group", f"peer-{self.runs}", "--log", self.log, "--ready", self.ready_file]
        if ranks > 1:
            cmd = MPI + ["-np", str(ranks), "-x", f"BENCH_PEER_PORT={29500 + self.runs % 400}"] + cmd
        self.ranks, self.records, self.work = ranks, records, work
        self.proc = spawn(cmd, base + ".stderr")

    def ready(self):
        return all(os.path.exists(self.ready_file.replace("{rank}", str(r))) for r in range(self.ranks))

    def finish(self):
        wait_or_fail(self.proc, "kafka_peer.py", 600)
        progress, summaries = [], []
        for r in range(self.ranks):
            with open(self.log.replace("{rank}", str(r))) as f:
                lines = [json.loads(line) for line in f if line.strip()]
            progress.append([(m["t"], m["records"]) for m in lines if "records" in m])
            summaries += [m["summary"] for m in lines if "summary" in m]
        trained = sum(s["records"] for s in summaries)
        if len(summaries) != self.ranks or trained != self.records:
            raise Failed(f"Python {self.work} trained {trained} records on {len(summaries)} ranks, "
                         f"{self.records} were produced")
        return {"rate": sum(slope(p) for p in progress), "progress": progress,
                "accuracy": statistics.mean(s["accuracy"] for s in summaries)}


def lag_over_second_half(progress, begin, end, rate, count):
    """(mean, slope) over the second half of [begin, end] of the lag, produced - trained
    records, sampled every 0.25 s: produced(t) = rate x (t - begin) (the producer's pacing,
    checked), trained(t) the sum over the consumers of their last progress line at or before
    t; the slope is the least-squares fit, in records per second."""
    times = [[p[0] for p in points] for points in progress]
    ts, lags, t = [], [], begin + (end - begin) / 2
    while t <= end:
        trained = 0
        for points, at in zip(progress, times):
            i = bisect.bisect_right(at, t)
            trained += points[i - 1][1] if i else 0
        ts.append(t)
        lags.append(min(count, rate * (t - begin)) - trained)
        t += 0.25
    if len(ts) < 4:
        raise Failed("too few lag samples in the production window")
    return statistics.mean(lags), statistics.linear_regression(ts, lags).slope


def run_once(side, work, ranks, brokers, topic, records, ready_timeout=120):
    side.start(work, ranks, brokers, topic, records)
    deadline = time.time() + ready_timeout
    while not side.ready():
        if side.proc.poll() is not None:
            side.finish()  # raises with its error
        if time.time() > deadline:
            side.proc.kill()
            raise Failed(f"{side.name} {work} did not start consuming within {ready_timeout} s")
        time.sleep(0.05)


def round_records(n, ranks):
    unit = PARTITIONS * BATCH * ranks
    return max(unit, n // unit * unit)


class Bench:
    def __init__(self, a, works, work_dir):
        self.quick = a.quick
        self.repeats = 1 if a.quick else 3
        self.window = 4.0 if a.quick else 10.0
        self.drain_records = {"sentiment": 8192 if a.quick else 163840,
                              "cifar": 1024 if a.quick else 12288}
        self.sides = [TensAIR(a, work_dir), Python(a, work_dir)]
        live = [f"live{i}" for i in range(len(works) * 2 * len(self.sides) * len(LADDER_DOWN))]
        self.topics = iter(live)
        self.mock = Mock(a.tensair, works + live, work_dir)
        self.producer = producer(self.mock.brokers)
        self.messages = {}
        for w in works:
            n = self.drain_records[w]
            self.messages[w] = sentiment_messages(n) if w == "sentiment" else cifar_messages(n)
            produce(self.producer, w, self.messages[w], n)
            self.check_retention(w)

    def check_retention(self, topic):
        """Every partition of topic still starts at offset 0: the mock's retention (5 MiB a
        partition) dropped nothing, so each consumer had all of its records to read."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.mock.brokers, "group.id": "bench-check"})
        try:
            for p in range(PARTITIONS):
                low, _ = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if low != 0:
                    raise Failed(f"the mock broker dropped the first {low} messages of {topic}/{p} "
                                 "(its retention is 5 MiB a partition): fewer records or more partitions")
        finally:
            c.close()

    def drain(self, side, work, ranks):
        run_once(side, work, ranks, self.mock.brokers, work, round_records(self.drain_records[work], ranks))
        r = side.finish()
        if not self.quick and r["accuracy"] <= CHANCE[work]:  # --quick: too few to learn
            raise Failed(f"{side.name} {work} {ranks} rank(s): prequential accuracy "
                         f"{r['accuracy']:.3f}, not above chance")
        say(f"{work} {ranks} rank(s) {side.name} drain {r['rate']:.0f} records/s")
        return r

    def live(self, side, work, ranks, rate):
        """Whether `side` keeps up with `rate` records/s for the window, and its lag."""
        size = statistics.mean(len(m) for m in self.messages[work]) + 70  # + the mock's overhead
        count = round_records(int(min(rate * self.window, CAPACITY / size)), ranks)
        topic = next(self.topics)
        run_once(side, work, ranks, self.mock.brokers, topic, count)
        begin = time.time()
        took = produce(self.producer, topic, self.messages[work], count, rate)
        r = side.finish()
        self.check_retention(topic)
        if took > 1.05 * count / rate:
            raise Failed(f"the producer wrote {count / took:.0f}/s, {rate:.0f}/s wanted")
        lag, growth = lag_over_second_half(r["progress"], begin, begin + took, rate, count)
        ok = growth <= GROWTH * rate and lag <= BACKLOG_S * rate
        say(f"{work} {ranks} rank(s) {side.name} live {rate:.0f}/s: lag {lag:.0f}, "
            f"growing {growth:.0f}/s ({'sustained' if ok else 'not sustained'})")
        return ok, f"lag {lag:.0f} {growth:+.0f}/s"

    def sustainable(self, side, work, ranks, d):
        """The highest rate of the ladder (x the drain rate d) kept up with, and what was tried."""
        tried, best = [], 0.0
        ok, lag = self.live(side, work, ranks, LADDER_DOWN[0] * d)
        tried.append(f"{LADDER_DOWN[0]:.1f}D {lag}")
        ladder = LADDER_UP if ok else LADDER_DOWN[1:]
        if ok:
            best = LADDER_DOWN[0] * d
        for f in ladder:
            ok, lag = self.live(side, work, ranks, f * d)
            tried.append(f"{f:.1f}D {lag}")
            if ok:
                best = max(best, f * d)
            if ok != (ladder is LADDER_UP):  # going up: stop at the first miss; down: first hit
                break
        return best, tried

    def compare(self, work, ranks):
        t, py = (s.name for s in self.sides)
        drains = {s.name: [] for s in self.sides}
        accuracy = {s.name: [] for s in self.sides}
        for rep in range(self.repeats):
            for s in (self.sides if rep % 2 == 0 else self.sides[::-1]):
                r = self.drain(s, work, ranks)
                drains[s.name].append(r["rate"])
                accuracy[s.name].append(r["accuracy"])
        sustained = {s.name: self.sustainable(s, work, ranks, statistics.median(drains[s.name]))
                     for s in self.sides}
        baseline = "Python consumer-trainer"
        return [
            result(f"kafka_{work}_{ranks}rank_drain", drains[t], "records/s", True,
                   note=f"prequential accuracy {statistics.median(accuracy[t]):.3f} (Python "
                        f"{statistics.median(accuracy[py]):.3f})",
                   baseline=baseline, baseline_values=drains[py]),
            result(f"kafka_{work}_{ranks}rank_sustainable", [sustained[t][0]], "records/s", True,
                   note=f"window up to {self.window:.0f} s; TensAIR " + ", ".join(sustained[t][1]) +
                        "; Python " + ", ".join(sustained[py][1]),
                   baseline=baseline, baseline_values=[sustained[py][0]]),
        ]


def say(text):
    print(f"bench_kafka: {text} (load {load_average()})", file=sys.stderr, flush=True)


def main():
    a = parse_args(__doc__, HERE, lambda ap: ap.add_argument(
        "--works", default="sentiment,cifar", help="comma-separated: sentiment, cifar"))
    try:
        import confluent_kafka  # noqa: F401
        import numpy  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise Failed(f"the Python side needs {e.name} (Debian python3-confluent-kafka, "
                     "python3-torch, python3-numpy)")
    works = [w for w in a.works.split(",") if w]
    for w in works:
        if w not in JOBS:
            raise Failed(f"unknown work {w} (known: sentiment, cifar)")
    # The Python side gets TensAIR's malloc settings (src/common/process.cpp sets them with
    # mallopt unless MALLOC_* are set), so the allocator is not a difference between the sides.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(4 << 20))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(0x7fffffff))
    work_dir = tempfile.mkdtemp(prefix="bench_kafka.")
    load_before = load_average()
    bench = Bench(a, works, work_dir)
    results = []
    try:
        for w in works:
            for ranks in (1, 2):
                results += bench.compare(w, ranks)
    finally:
        bench.producer = None  # its threads reconnect (and complain) once the broker is gone
        bench.mock.close()
    settings = {
        "allocator": "both sides glibc malloc with MALLOC_MMAP_THRESHOLD_="
                     f"{os.environ['MALLOC_MMAP_THRESHOLD_']} MALLOC_TRIM_THRESHOLD_="
                     f"{os.environ['MALLOC_TRIM_THRESHOLD_']} (TensAIR's own values; its "
                     f"start line: {getattr(bench.sides[0], 'allocator', '')})",
        "threads": "one torch thread per rank on both sides",
        "batch": BATCH, "partitions": PARTITIONS, "repeats": bench.repeats,
        "window_s": bench.window, "drain_records": bench.drain_records,
        "broker": "tensair kafka-mock (librdkafka mock cluster), same machine",
        "load_before": load_before, "load_after": load_average(), "quick": a.quick,
    }
    report("kafka", "Sustainable throughput from Kafka: TensAIR vs a Python consumer-trainer loop",
           settings, results, a.json)
    shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main_guard("bench_kafka", main)
