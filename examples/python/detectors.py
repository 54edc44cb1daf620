"""Drift detectors outside a job, River-style: a classifier deployed on the SEA stream that
is trained again only when a detector (OPTWIN, ADWIN or Page-Hinkley) reports a drift of its
error, as TensAIR's model is; the detections are checked against `tensair detect` on the same
values.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/detectors.py

Data: `${TENSAIR_DATA}/drift/sea` (default `../shared/data` beside the repository), the SEA
concepts of Street & Kim (2001): 50,000 records of 3 features, label f1 + f2 <= theta, theta
changing abruptly every 12,500 records (8, 9, 7, 9.5), 10 % label noise.

The classifier is a logistic regression in numpy, test-then-train: each record is predicted
and its error (0/1) recorded before it may be trained on. It trains on the first `--train`
records (SGD, one step per record) and is then frozen, like a deployed model. Its errors go
to a detector (`input = "error"`: a rise of the error rate); at each detection the classifier
trains again on the next `--train` records. One run per detector, and two references: never
retrained, and trained on every record.

The check: each run's 0/1 errors are written to a file and `tensair detect` (the CLI, from
TENSAIR_CLI or build/bin/tensair) is run on it with the same parameters; the positions it
prints must equal the Python detector's (exit 1 when they do not). Without the CLI the check
is skipped with a line saying so.
"""
import argparse
import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np

from tensair.drift import ADWIN, OPTWIN, PageHinkley

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("TENSAIR_DATA", os.path.join(REPO, "..", "shared", "data"))
CLI = os.environ.get("TENSAIR_CLI", os.path.join(REPO, "build", "bin", "tensair"))
TRUE_DRIFTS = (12_500, 25_000, 37_500)

# name for `tensair detect`, Python class, parameters (docs/drift.md)
DETECTORS = [("optwin", OPTWIN, {"input": "error", "rho": 0.1}),
             ("adwin", ADWIN, {"input": "error", "delta": 0.002}),
             ("page-hinkley", PageHinkley, {"input": "error", "threshold": 50})]


def sea():
    """Features (standardised by the generator's known range 0-10) and labels of SEA."""
    with gzip.open(os.path.join(DATA, "drift", "sea", "SEA_training_data.csv.gz"), "rt") as f:
        x = np.loadtxt(f, delimiter=",", dtype=np.float64)
    y = np.loadtxt(os.path.join(DATA, "drift", "sea", "SEA_training_class.csv"), dtype=np.int64)
    if len(x) != len(y):
        sys.exit(f"detectors.py: {len(x)} SEA records but {len(y)} labels")
    return (x - 5.0) / 5.0, y


class OnlineLogistic:
    """Logistic regression with a bias, one SGD step per record."""

    def __init__(self, features, lr):
        self.w, self.b, self.lr = np.zeros(features), 0.0, lr

    def predict(self, x):
        return 1 if x @ self.w + self.b > 0 else 0

    def learn(self, x, y):
        p = 1.0 / (1.0 + np.exp(-(x @ self.w + self.b)))
        self.w -= self.lr * (p - y) * x
        self.b -= self.lr * (p - y)


def deploy(x, y, lr, train, detector):
    """The classifier's 0/1 errors and the detections, test-then-train: it learns on the first
    `train` records and on the `train` records after each detection (every record when
    train is 0); detector None: never retrained."""
    model, out, found = OnlineLogistic(x.shape[1], lr), [], []
    learn_until = train if train else len(x)
    for i, (xi, yi) in enumerate(zip(x, y)):
        e = int(model.predict(xi) != yi)
        out.append(e)
        if detector is not None and detector.update(e):
            found.append(i)
            learn_until = i + 1 + train
        if i < learn_until:
            model.learn(xi, yi)
    return out, found


def score(found, n):
    """Per true drift the delay of the first detection after it (before the next drift), and
    the detections that follow no drift within that span (false alarms)."""
    bounds = (0,) + TRUE_DRIFTS + (n,)
    delays, false = [], 0
    for lo, hi in zip(bounds, bounds[1:]):
        inside = [i for i in found if lo <= i < hi]
        if lo == 0:
            false += len(inside)
            continue
        delays.append(inside[0] - lo if inside else None)
        false += max(0, len(inside) - 1)
    return delays, false


def cli_detections(values, name, params):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("".join(f"{v}\n" for v in values))
    try:
        cmd = [CLI, "detect", "--detector", name, f.name]
        for k, v in params.items():
            cmd += ["--param", f"{k}={v}"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return [int(line) for line in out.split()]
    finally:
        os.unlink(f.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=0.05, help="the classifier's SGD rate")
    ap.add_argument("--train", type=int, default=2000,
                    help="records trained on at the start and after each detection")
    args = ap.parse_args()

    x, y = sea()
    have_cli, mismatch = os.access(CLI, os.X_OK), False
    print(f"SEA, {len(y):,} records, drifts at {', '.join(map(str, TRUE_DRIFTS))}; a logistic "
          f"regression trained on {args.train:,} records at the start and after each detection")
    print(f"{'retrained':<13} {'parameters':<14} {'error per concept':<24} {'all':>6} "
          f"{'detections':>10}  {'delay after each drift':<23} {'false alarms':>12}")
    runs = [("never", None, None, {}, args.train)] + \
        [(name, name, cls, params, args.train) for name, cls, params in DETECTORS] + \
        [("every record", None, None, {}, 0)]
    for label, name, cls, params, train in runs:
        err, found = deploy(x, y, args.lr, train, cls(**params) if cls else None)
        per = " ".join(f"{q.mean():.3f}" for q in np.array_split(np.array(err), 4))
        text = " ".join(f"{k}={v}" for k, v in params.items() if k != "input")
        line = f"{label:<13} {text:<14} {per:<24} {np.mean(err):6.3f}"
        if name:
            delays, false = score(found, len(err))
            shown = ", ".join("missed" if v is None else str(v) for v in delays)
            line += f" {len(found):>10}  {shown:<23} {false:>12}"
            if have_cli and cli_detections(err, name, params) != found:
                line += f"\n  MISMATCH: `tensair detect --detector {name}` reports other positions"
                mismatch = True
        print(line)
    if not have_cli:
        print(f"(not checked against the CLI: {CLI} not found; set TENSAIR_CLI)")
    elif not mismatch:
        print(f"each detector's positions equal `{os.path.relpath(CLI)} detect` on the same "
              f"{len(y):,} errors")
    return 1 if mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
