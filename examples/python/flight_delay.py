"""Flight delays, the original TensAIR's regression use case: an online regression of the arrival
delay with learned embeddings, evaluated prequentially against a running mean.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/flight_delay.py
    PYTHONPATH=build/python /usr/bin/python3 examples/python/flight_delay.py --data tensair
    mpirun -np 2 --oversubscribe --bind-to none -x PYTHONPATH=build/python \\
        /usr/bin/python3 examples/python/flight_delay.py        # the same job on two ranks

Data (`${TENSAIR_DATA}`, default `../shared/data` beside the repository; nothing is downloaded):

* `--data bts` (the default): `airline_delay/Airline_Delay_Cause_2022-2023.csv.gz`, the BTS
  "Airline On-Time Statistics and Delay Causes" table that the original use case was built
  from: one row per (month, carrier, arrival airport), Jul 2022 - Jun 2023. The target is the
  mean arrival delay per arriving flight in **minutes**, `arr_delay / arr_flights`; the inputs
  are the carrier and the airport (embeddings), the calendar month (an embedding) and
  log(arr_flights) (standardised online). The table is per arrival airport: it has no origin
  airport and no single flights. The columns that are parts of the delay (`arr_del15`,
  `*_ct`, `*_delay`) and the month's outcomes (`arr_cancelled`, `arr_diverted`) are not used.
  The file lists the newest month first; the stream is in time order (months ascending, the
  file's order within a month). Rows without a delay or without flights (21) are left out.
* `--data tensair`: `tensair/flight/test_data.bin`, the original system's preprocessed stream
  (102,734 records in time order, about 63 months; carrier, airport and month label-encoded,
  arr_flights standardised over the whole table by the original preprocessing). Its label is
  `arr_del15`, the **number of flights 15 minutes late or more** (integers, 0-4142), not
  minutes: the error is reported in flights.

Test-then-train, by construction. The source's batches go to the model's `predict` input and
to a `python_map` "join". The model's predictions come back to the join, which pairs each
prediction with its batch's labels, scores it, and only then sends the batch on to the model's
`train` input (the join closes a cycle model -> join -> model, which the engine allows through
a model). So every batch is predicted before it is trained on, like a deployment where the
delay is known only after the flight. The predictions may be made some batches before the
previous ones were trained on (the "lag" printed at the end); the edge into `predict` has a
small credit so that the source cannot run far ahead of training.

The baseline predicts, for every record of a batch, the mean of all delays of the earlier
batches of the stream, in the same order (computed in the source, before the batch is yielded).
A second, stronger baseline ("pair mean") predicts the mean of the earlier delays of the same
carrier at the same airport, shrunk towards the running mean with 5 pseudo-records. The
network sees these means as inputs (unless --no-history), so the pair-mean column shows what
the network adds to them. MAE is the mean absolute error over records.

On N ranks every rank runs the source, takes every N-th batch and trains its replica on them
(DASGD exchanges the updates); predictions and scores are per rank (each rank scores its own
batches with its own replica), and rank 0 gathers them (mpi4py) into one table over the
whole stream.
"""
import argparse
import csv
import gzip
import math
import os
import time

import numpy as np
import torch

import tensair

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("TENSAIR_DATA", os.path.join(REPO, "..", "shared", "data"))

# Embedding table sizes; a category seen after a table is full shares its last row.
MAX_CARRIERS, MAX_AIRPORTS, MONTHS = 64, 1024, 12


class DelayNet(torch.nn.Module):
    """Embeddings of carrier, airport and month, concatenated with the numeric inputs, and an
    MLP with one output: the predicted delay (`scale` sets its unit, a fixed constant)."""

    def __init__(self, numeric, scale, carrier_dim=8, airport_dim=16, month_dim=4, hidden=64):
        super().__init__()
        self.carrier = torch.nn.Embedding(MAX_CARRIERS, carrier_dim)
        self.airport = torch.nn.Embedding(MAX_AIRPORTS, airport_dim)
        self.month = torch.nn.Embedding(MONTHS, month_dim)
        width = carrier_dim + airport_dim + month_dim + numeric
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 1))
        self.scale = scale

    def forward(self, carrier, airport, month, num):
        h = torch.cat([self.carrier(carrier), self.airport(airport), self.month(month), num], 1)
        return self.mlp(h).squeeze(1) * self.scale


# Reading the stream ---------------------------------------------------------------------------

def bts_records(path):
    """(carrier, airport, month 0-11, arr_flights, delay in minutes per flight, period), in time
    order; period counts the months from the first."""
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = [r for r in rows if r["arr_delay"] and r["arr_flights"] and float(r["arr_flights"]) > 0]
    rows.sort(key=lambda r: (int(r["year"]), int(r["month"])))  # stable: file order in a month
    first = int(rows[0]["year"]) * 12 + int(rows[0]["month"]) if rows else 0
    for r in rows:
        flights = float(r["arr_flights"])
        yield (r["carrier"], r["airport"], int(r["month"]) - 1, math.log1p(flights),
               float(r["arr_delay"]) / flights, int(r["year"]) * 12 + int(r["month"]) - first)


def tensair_records(path):
    """The original stream's records in file order: (carrier, airport, month, standardised
    arr_flights, arr_del15, period), period counting the changes of month."""
    rec = np.fromfile(path, dtype=np.dtype([("carrier", "<i4"), ("airport", "<i4"),
                                            ("month", "<i4"), ("num", "<f4"), ("label", "<f4")]))
    period = 0
    for i, r in enumerate(rec):
        if i and r["month"] != rec[i - 1]["month"]:
            period += 1
        yield (int(r["carrier"]), int(r["airport"]), int(r["month"]), float(r["num"]),
               float(r["label"]), period)


class Vocabulary:
    """Category -> row of an embedding table, assigned in order of first appearance."""

    def __init__(self, size):
        self.size, self.rows = size, {}

    def __call__(self, key):
        if key not in self.rows:
            self.rows[key] = min(len(self.rows), self.size - 1)
        return self.rows[key]


class Standardiser:
    """Running mean and variance (Welford): a value is scaled with the statistics of the
    values before it."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def __call__(self, x):
        std = math.sqrt(self.m2 / self.n) if self.n > 1 else 1.0
        z = (x - self.mean) / (std if std > 0 else 1.0)
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)
        return z


class History:
    """Mean delays of the earlier batches, per key: the carrier in the current month, the
    carrier at this airport, the airport. Means are shrunk towards the running mean of all
    delays with `prior` pseudo-records. Only labels of batches already yielded are in here."""

    KEYS = (lambda r: ("carrier-month", r[0], r[5]), lambda r: ("pair", r[0], r[1]),
            lambda r: ("airport", r[1]))

    def __init__(self, prior=5.0):
        self.prior, self.sums, self.counts = prior, {}, {}
        self.n, self.total = 0, 0.0

    def mean(self):
        return self.total / self.n if self.n else 0.0

    def key_mean(self, r, key):
        """The shrunk mean of the earlier delays of r's group under `key`."""
        g, k = self.mean(), key(r)
        return (self.sums.get(k, 0.0) + self.prior * g) / (self.counts.get(k, 0) + self.prior)

    def features(self, r, scale):
        g = self.mean()
        out = [g / scale]
        for key in self.KEYS:
            out.append((self.key_mean(r, key) - g) / scale)
        return out

    def add(self, rows):
        for r in rows:
            for key in self.KEYS:
                k = key(r)
                self.sums[k] = self.sums.get(k, 0.0) + r[4]
                self.counts[k] = self.counts.get(k, 0) + 1
            self.n += 1
            self.total += r[4]


def stream(data, limit, batch_size, scale, history):
    """A generator function: the stream as batches (dicts of numpy arrays), in stream order.
    Every rank iterates all of it; the source instance of rank r keeps batches r, r+N, ..."""
    def batches():
        if data == "bts":
            records = bts_records(os.path.join(DATA, "airline_delay",
                                               "Airline_Delay_Cause_2022-2023.csv.gz"))
        else:
            records = tensair_records(os.path.join(DATA, "tensair", "flight", "test_data.bin"))
        carriers, airports = Vocabulary(MAX_CARRIERS), Vocabulary(MAX_AIRPORTS)
        size = Standardiser() if data == "bts" else (lambda x: x)
        past = History()  # also the running-mean baseline: the mean of the earlier batches

        def batch(rows, first):
            n = len(rows)
            num = [[size(r[3])] + (past.features(r, scale) if history else []) for r in rows]
            return {"id": np.arange(first, first + n, dtype=np.int64),
                    "carrier": np.array([carriers(r[0]) for r in rows], dtype=np.int64),
                    "airport": np.array([airports(r[1]) for r in rows], dtype=np.int64),
                    "month": np.array([r[2] for r in rows], dtype=np.int64),
                    "num": np.array(num, dtype=np.float32),
                    "delay": np.array([r[4] for r in rows], dtype=np.float32),
                    "baseline": np.full(n, past.mean(), dtype=np.float32),
                    "pair_mean": np.array([past.key_mean(r, History.KEYS[1]) for r in rows],
                                          dtype=np.float32)}

        rows, first = [], 0
        for i, rec in enumerate(records):
            if limit and i >= limit:
                break
            rows.append(rec)
            if len(rows) == batch_size:
                yield batch(rows, first)
                past.add(rows)  # the batch's labels count from the next batch on
                first += len(rows)
                rows = []
        if rows:
            yield batch(rows, first)
    return batches


class Join:
    """The python_map between predict and train: a batch from the source waits here until its
    prediction comes back; then the pair is scored and the batch goes on to `train`."""

    TRAIN = ("carrier", "airport", "month", "num", "delay")

    def __init__(self):
        self.waiting, self.predicted = {}, {}
        self.trained = 0          # batches sent on to train by this rank
        self.lags = []            # per prediction: this rank's batches before it not yet trained
        self.own = 0              # this rank's batches seen from the source
        self.order = {}           # first id -> this rank's batch number
        self.ids, self.err, self.base_err, self.pair_err = [], [], [], []

    def __call__(self, batch):
        key = int(batch["id"][0])
        if "output" in batch:     # a prediction (columns id, output)
            self.predicted[key] = np.array(batch["output"], dtype=np.float64).reshape(-1)
        else:                     # a batch from the source
            self.waiting[key] = {c: np.array(batch[c]) for c in batch}
            self.order[key] = self.own
            self.own += 1
        if key not in self.waiting or key not in self.predicted:
            return None
        b, out = self.waiting.pop(key), self.predicted.pop(key)
        self.lags.append(self.order.pop(key) - self.trained)
        y = b["delay"].astype(np.float64)
        self.ids.append(b["id"])
        self.err.append(np.abs(out - y))
        self.base_err.append(np.abs(b["baseline"].astype(np.float64) - y))
        self.pair_err.append(np.abs(b["pair_mean"].astype(np.float64) - y))
        self.trained += 1
        return {c: b[c] for c in self.TRAIN}


def table(ids, err, base_err, pair_err, unit, parts=10):
    """Prequential MAE per tenth of the stream and overall: the network, the running mean and
    the carrier-at-airport mean of the earlier batches."""
    order = np.argsort(ids)
    ids, err, base_err, pair_err = ids[order], err[order], base_err[order], pair_err[order]
    lines = [f"{'records':>17} {'TensAIR MAE':>12} {'running mean':>13} {'pair mean':>10}"
             f"  ({unit})"]
    for part in np.array_split(np.arange(len(ids)), parts):
        if len(part) == 0:
            continue
        lines.append(f"{ids[part[0]]:>8}-{ids[part[-1]]:<8} {err[part].mean():12.2f} "
                     f"{base_err[part].mean():13.2f} {pair_err[part].mean():10.2f}")
    lines.append(f"{'all ' + format(len(ids), ','):>17} {err.mean():12.2f} "
                 f"{base_err.mean():13.2f} {pair_err.mean():10.2f}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["bts", "tensair"], default="bts",
                    help="bts: delay in minutes per flight (default); tensair: the original "
                         "preprocessed stream, label arr_del15")
    ap.add_argument("--limit", type=int, default=0,
                    help="records of the stream to use (0: all; bts has 19,365, tensair 102,734)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help="Adam's learning rate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-history", action="store_true",
                    help="embeddings and arr_flights only, without the past-delay features")
    ap.add_argument("--out", default="out/flight_delay")
    args = ap.parse_args()
    # Defaults per data set: the output unit (a constant of the network) and Adam's rate.
    scale = {"bts": 10.0, "tensair": 50.0}[args.data]
    lr = args.lr or {"bts": 0.001, "tensair": 0.001}[args.data]
    unit = {"bts": "minutes per flight", "tensair": "flights 15+ min late"}[args.data]

    torch.manual_seed(args.seed)
    numeric = 1 if args.no_history else 1 + 1 + len(History.KEYS)
    net = DelayNet(numeric=numeric, scale=scale)
    join = Join()
    start = time.time()
    job = tensair.Job("flight_delay")
    # About two batches in flight into predict: the source stays close to training.
    job.add("flights", "python_source", fn=stream(args.data, args.limit, args.batch_size, scale,
                                                not args.no_history),
            schema={"id": "int64", "carrier": "int64", "airport": "int64", "month": "int64",
                    "num": f"float32[{numeric}]", "delay": "float32", "baseline": "float32",
                    "pair_mean": "float32"})
    job.add("join", "python_map", fn=join,
            schema={"carrier": "int64", "airport": "int64", "month": "int64",
                    "num": f"float32[{numeric}]", "delay": "float32"},
            inputs={"in": {"from": ["flights", "model.predictions"], "routing": "forward"}})
    job.add("model", "model", network=net, features=["carrier", "airport", "month", "num"],
            label="delay", loss="mse", optimizer="adam", lr=lr, seed=args.seed, log_every=100,
            inputs={"predict": {"from": "flights", "routing": "forward", "credit_bytes": 4096},
                    "train": {"from": "join", "routing": "forward"}})
    result = job.run(out=args.out)
    seconds = time.time() - start

    ids = np.concatenate(join.ids) if join.ids else np.zeros(0, np.int64)
    err = np.concatenate(join.err) if join.err else np.zeros(0)
    base = np.concatenate(join.base_err) if join.base_err else np.zeros(0)
    pair = np.concatenate(join.pair_err) if join.pair_err else np.zeros(0)
    lags = np.array(join.lags, dtype=np.int64)
    mine = f"rank {result.rank}: {len(ids):,} records scored, lag mean {lags.mean():.2f} " \
           f"max {lags.max()} batches" if len(lags) else f"rank {result.rank}: nothing scored"
    if result.world_size > 1:
        from mpi4py import MPI
        parts = MPI.COMM_WORLD.gather((ids, err, base, pair, mine), root=0)
        if result.rank != 0:
            return
        ids, err, base, pair = (np.concatenate([p[i] for p in parts]) for i in range(4))
        mine = "\n".join(p[4] for p in parts)
    print(f"flight_delay ({args.data}, {result.world_size} rank(s)): {result.status} in "
          f"{seconds:.1f} s ({result.elapsed_s:.1f} s in the job); {mine}")
    print(table(ids, err, base, pair, unit))
    print(f"prequential MAE over {len(ids):,} records: TensAIR {err.mean():.3f}, running mean "
          f"{base.mean():.3f}, pair mean {pair.mean():.3f} ({unit}); "
          f"TensAIR/running mean = {err.mean() / base.mean():.3f}")


if __name__ == "__main__":
    main()
