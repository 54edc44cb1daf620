#!/usr/bin/python3
"""Checks that `tensair drift-eval --run OUT`, scripts/drift_summary.py and `tensair report` show
the same drift matches of the run in OUT (each change: the detection that found it and its
delay, or missed; and the number of false alarms).

Usage: check_agreement.py TENSAIR ROOT OUT [EXPECTED]
EXPECTED, optional: "change:detection,..." (detection "missed") that the matches must be.
Exit 0 when they agree, 1 with the differences."""
import json
import re
import subprocess
import sys


def main():
    tensair, root, out = sys.argv[1:4]
    expected = sys.argv[4] if len(sys.argv) > 4 else None
    problems = []
    evaluated = subprocess.run([tensair, "drift-eval", "--run", out], capture_output=True, text=True)
    if evaluated.returncode != 0:
        sys.exit(f"drift-eval --run failed: {evaluated.stderr.strip()}")
    summary = subprocess.run(["/usr/bin/python3", f"{root}/scripts/drift_summary.py", out],
                             capture_output=True, text=True)
    if summary.returncode != 0:
        sys.exit(f"drift_summary.py failed: {summary.stderr.strip()}")
    reported = subprocess.run([tensair, "report", out], capture_output=True, text=True)
    if reported.returncode != 0:
        sys.exit(f"report failed: {reported.stderr.strip()}")
    report = open(f"{out}/report.md").read()
    m = json.load(open(f"{out}/drift_matches.json"))
    pos = m["rule"]["position"]
    assert pos == "index", "the demo's lines all carry an index"
    changes = m["changes"]
    if len(m["detectors"]) > 1:
        sys.exit(f"expected one detector, drift_matches.json has {len(m['detectors'])}")
    none = not m["detectors"]  # the run detected nothing: every change is missed
    d = m["detectors"][0] if m["detectors"] else {
        "detections": [], "false_alarms": [], "repeats": [],
        "matches": [{"change": i, "detection": None, "delay": None} for i in range(len(changes))]}
    got = []
    for x in d["matches"]:
        c = changes[x["change"]]["index"]
        det = d["detections"][x["detection"]]["index"] if x["detection"] is not None else None
        got.append(f"{c}:{det if det is not None else 'missed'}")
        delay = f"{x['delay']:.0f}" if det is not None else None
        # drift-eval's table row
        row = f"| {c} | {det if det is not None else 'missed'} | {delay if delay else '-'} |"
        if not none and row not in evaluated.stdout:
            problems.append(f"drift-eval does not show {row!r}")
        # the terminal summary's row
        pattern = rf"^\s*{c}\s+{det if det is not None else 'missed'}\s+{re.escape(delay) if delay else '–'}\s"
        if not re.search(pattern, summary.stdout, re.M):
            problems.append(f"the summary has no row {c} {det} {delay}")
        # the report's row
        det_text = f"{det:,}" if det is not None else ("–" if none else "missed")
        if not re.search(rf"^\| {x['change'] + 1} \| {c:,} \|.*\| {re.escape(det_text)} \|", report, re.M):
            problems.append(f"report.md has no row for change {c:,} found at {det_text}")
    false = len(d["false_alarms"]) + len(d["repeats"])
    if none:
        if f"false alarms: 0" not in summary.stdout or "0 detector(s)" not in evaluated.stdout:
            problems.append("no detections, but the summary or drift-eval does not say so")
        false = None
    if false is not None and f"false alarms: {false}" not in summary.stdout:
        problems.append(f"the summary does not say 'false alarms: {false}'")
    if false is not None and f"{false} false alarm" not in report:
        problems.append(f"report.md does not say '{false} false alarm(s)'")
    if not none and f"{len(d['repeats'])} repeat(s), {len(d['false_alarms'])} false alarm(s)" not in evaluated.stdout:
        problems.append("drift-eval does not count the same repeats and false alarms")
    if expected is not None and ",".join(got) != expected:
        problems.append(f"matches {','.join(got)}, expected {expected}")
    if problems:
        print("\n".join(problems))
        print("--- drift-eval\n" + evaluated.stdout + "--- summary\n" + summary.stdout)
        sys.exit(1)
    print(f"drift-eval, summary and report agree: {', '.join(got)}; "
          f"{'no detections' if none else str(false) + ' false alarm(s)'}")


if __name__ == "__main__":
    main()
