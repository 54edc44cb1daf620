"""What every Python benchmark (bench/bench_*.py, those that drive the tensair CLI) needs.

The same contract as bench/bench_common.hpp: --quick, --json PATH, one markdown table on
stdout, the JSON format of bench/README.md, exit 1 with one line when a result is wrong, exit 2
for a bad command line.
"""
import argparse
import json
import os
import statistics
import sys


def parse_args(description, here, extra=None):
    """--quick, --json, --tensair, and what extra(parser) adds."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--json", default="", help="write the figures here")
    ap.add_argument("--tensair", default=os.environ.get(
        "TENSAIR_BIN", os.path.join(here, "..", "build", "bin", "tensair")),
        help="the tensair CLI to run (build/bench/<name> passes its build's)")
    if extra:
        extra(ap)
    a = ap.parse_args()
    if not os.access(a.tensair, os.X_OK):
        print(f"{os.path.basename(sys.argv[0])}: no tensair binary at {a.tensair} "
              "(--tensair PATH)", file=sys.stderr)
        sys.exit(2)
    if os.geteuid() == 0:
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return a


class Failed(Exception):
    """A result was wrong or a run failed: the benchmark prints it and exits 1."""


def read_metrics(out):
    """The lines of OUT/metrics.jsonl, parsed."""
    lines = []
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                lines.append(json.loads(line))
    return lines


def read_metrics_partial(path):
    """The complete lines of a metrics.jsonl that a running job is still writing."""
    lines = []
    with open(path) as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pass
    return lines


def job_events(lines, name):
    return [m for m in lines if m.get("type") == "job" and m.get("event") == name]


def kind(lines, name):
    return [m for m in lines if m.get("kind") == name]


def end_line(lines, where):
    ends = job_events(lines, "end")
    if not ends:
        raise Failed(f"{where}: no end line in metrics.jsonl")
    return ends[-1]


def allocator(lines):
    starts = job_events(lines, "start")
    return starts[0].get("allocator", "") if starts else ""


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    text = f"{os.cpu_count()} cores"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return text + ", " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return text


def spread(xs):
    return f"median of {len(xs)} (min {min(xs):.4g}, max {max(xs):.4g})"


def result(name, values, unit, higher_is_better, note="", baseline=None, baseline_values=None):
    """One figure: the median of `values`, the spread in the note, and a baseline's median."""
    value = statistics.median(values)
    r = {"name": name, "value": value, "unit": unit, "higher_is_better": higher_is_better,
         "baseline": None, "baseline_value": None, "ratio": None,
         "note": spread(values) + (f"; {note}" if note else "")}
    if baseline is not None:
        b = statistics.median(baseline_values)
        r.update(baseline=baseline, baseline_value=b, ratio=value / b if b else None)
    return r


def report(bench, title, settings, results, json_path):
    """Prints the table (and the settings) and writes the JSON when json_path is set."""
    print(f"## {title}")
    print()
    print("| figure | value | unit | baseline | ratio | note |")
    print("|---|---:|---|---|---:|---|")
    for r in results:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else ""
        print(f"| {r['name']} | {r['value']:.4g} | {r['unit']} | {r['baseline'] or ''} | "
              f"{ratio} | {r['note']} |")
    print()
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"bench": bench, "machine": machine(), "settings": settings,
                       "results": results}, f, indent=2)
            f.write("\n")


def main_guard(name, main):
    try:
        main()
    except Failed as e:
        print(f"{name}: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
