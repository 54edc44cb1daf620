#!/usr/bin/python3
"""Terminal summary of a drift run: true change points vs detections, delays, and the model's
accuracy before each change, right after it, and once it recovered.

Usage: drift_summary.py OUT
Reads OUT/drift_matches.json, which `tensair drift-eval --run OUT` (and `tensair report OUT`)
writes by the one matching rule of docs/drift.md (a detection finds a change from `tolerance`
positions before it, the sources' shuffle buffers, up to the next change's window), and the
"model" lines of OUT/metrics.jsonl (accuracy and records seen). It does not match on its own,
so that it agrees with the report and with drift-eval."""
import json
import os
import sys


def fail(message):
    sys.exit(f"drift_summary: error: {message}")


def model_lines(path):
    model = []
    try:
        lines = open(path, "rb").read().decode("utf-8", errors="replace").splitlines()
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    for line in lines:
        try:
            j = json.loads(line)
        except ValueError:
            continue  # drift-eval --run has checked the file; a cut last line is skipped
        if isinstance(j, dict) and j.get("kind") == "model" and j.get("rank", 0) == 0 and "accuracy" in j:
            model.append(j)
    model.sort(key=lambda m: m["records"])
    return model


def main():
    args = sys.argv[1:]
    if len(args) != 1:
        sys.exit("usage: drift_summary.py OUT (after `tensair drift-eval --run OUT`)")
    out = args[0]
    path = f"{out}/drift_matches.json"
    metrics = f"{out}/metrics.jsonl"
    if not os.path.isfile(path):
        fail(f"{path} does not exist (write it with `tensair drift-eval --run {out}`)")
    if os.path.isfile(metrics) and os.path.getmtime(path) < os.path.getmtime(metrics):
        fail(f"{path} is older than {metrics} (write it again with `tensair drift-eval --run {out}`)")
    try:
        matches = json.load(open(path))
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")
    model = model_lines(metrics)
    rule, changes = matches["rule"], matches["changes"]
    pos = rule["position"]

    def shown(v):
        return f"{v:.0f}" if pos == "index" else f"{v:.2f}"

    def accuracy(lo, hi):
        vals = [m["accuracy"] for m in model if lo <= m["records"] < hi]
        return f"{100 * sum(vals) / len(vals):5.1f} %" if vals else "   – "

    end = model[-1]["records"] if model else 0
    window = 3000
    detectors = matches["detectors"]
    print(f"\nDrift summary ({out}): {len(changes)} true change(s), "
          f"{sum(len(d['detections']) for d in detectors)} detection(s)")
    if not detectors:
        detectors = [{"detector": "no detector", "detections": [], "repeats": [], "false_alarms": [],
                      "matches": [{"change": i, "detection": None, "delay": None} for i in range(len(changes))]}]
    for d in detectors:
        if len(matches["detectors"]) > 1:
            print(f"{d['detector']} ({d.get('operator', '?')} #{d.get('instance', 0)}, rank {d.get('rank', 0)})")
        print(f"{'change at':>10}  {'detected at':>11}  {'delay':>7}  {'acc. before':>11}  {'just after':>10}  {'recovered':>9}")
        for i, m in enumerate(d["matches"]):
            at = changes[m["change"]][pos]
            nxt = changes[i + 1][pos] if i + 1 < len(changes) else float("inf")
            det = d["detections"][m["detection"]][pos] if m["detection"] is not None else None
            stop = min(nxt, end + 1)
            print(f"{shown(at):>10}  {shown(det) if det is not None else 'missed':>11}  "
                  f"{shown(m['delay']) if det is not None else '–':>7}  "
                  f"{accuracy(at - window, at):>11}  {accuracy(at, at + 1000):>10}  {accuracy(stop - window, stop):>9}")
        false = sorted(d["detections"][k][pos] for k in d["false_alarms"] + d["repeats"])
        print(f"false alarms: {len(false)}" + (f" (at {', '.join(map(shown, false))})" if false else ""))
    print(f"(positions and delays in records of the stream; a detection finds a change from "
          f"{rule['tolerance']:g} records before it, the sources' shuffle buffers; accuracy: the model's on "
          f"the stream, over {window} records before the change, the first 1000 after it, and the last "
          f"{window} before the next)")


if __name__ == "__main__":
    main()
