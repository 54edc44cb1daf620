#!/usr/bin/python3
"""Terminal summary of a drift run: true change points vs detections, delays, and the model's
accuracy before each change, right after it, and once it recovered.

Usage: drift_summary.py OUT [--tolerance N]
Reads OUT/metrics.jsonl: "concept_change" lines (index = record id of the change), "drift"
lines (index = the stream position, in records, of the loss that triggered the detection) and
"model" lines (accuracy and records seen). A detection matches a change when it falls in
[change - tolerance, next change); the tolerance absorbs a source's shuffle buffer, which
mixes records of both concepts around the change."""
import json
import sys


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: drift_summary.py OUT [--tolerance N]")
    out = args[0]
    tolerance = int(args[args.index("--tolerance") + 1]) if "--tolerance" in args else 1000
    changes, drifts, model = [], [], []
    path = f"{out}/metrics.jsonl"
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit(f"drift_summary: error: cannot read {path}: {e.strerror}")
    for n, line in enumerate(lines, 1):
        try:
            j = json.loads(line)
        except ValueError:
            sys.exit(f"drift_summary: error: {path}:{n}: not JSON")
        kind = j.get("kind")
        if kind == "concept_change" and j["index"] not in [c["index"] for c in changes]:
            changes.append(j)
        elif kind == "drift":
            drifts.append(j)
        elif kind == "model" and j.get("rank", 0) == 0 and "accuracy" in j:
            model.append(j)
    changes.sort(key=lambda c: c["index"])
    drifts.sort(key=lambda d: d["index"])
    model.sort(key=lambda m: m["records"])

    def accuracy(lo, hi):
        vals = [m["accuracy"] for m in model if lo <= m["records"] < hi]
        return f"{100 * sum(vals) / len(vals):5.1f} %" if vals else "   – "

    end = model[-1]["records"] if model else 0
    print(f"\nDrift summary ({out}): {len(changes)} true change(s), {len(drifts)} detection(s)")
    print(f"{'change at':>10}  {'detected at':>11}  {'delay':>7}  {'acc. before':>11}  {'just after':>10}  {'recovered':>9}")
    used = set()
    window = 3000
    for i, c in enumerate(changes):
        at = c["index"]
        nxt = changes[i + 1]["index"] if i + 1 < len(changes) else float("inf")
        hit = next((k for k, d in enumerate(drifts) if k not in used and at - tolerance <= d["index"] < nxt), None)
        if hit is not None:
            used.add(hit)
        det = drifts[hit]["index"] if hit is not None else None
        stop = min(nxt, end + 1)
        print(f"{at:>10}  {det if det is not None else 'missed':>11}  {det - at if det is not None else '–':>7}  "
              f"{accuracy(at - window, at):>11}  {accuracy(at, at + 1000):>10}  {accuracy(stop - window, stop):>9}")
    false = [d["index"] for k, d in enumerate(drifts) if k not in used]
    print(f"false alarms: {len(false)}" + (f" (at {', '.join(map(str, false))})" if false else ""))
    print("(positions and delays in records of the stream; accuracy: the model's on the stream, "
          f"over {window} records before the change, the first 1000 after it, and the last {window} before the next)")


if __name__ == "__main__":
    main()
