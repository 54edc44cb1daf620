#!/usr/bin/python3
"""Turns a run's OUT/metrics.jsonl into OUT/report.md and PNG plots in OUT/report/.

    /usr/bin/python3 scripts/report.py OUT [--x time|step]

`tensair report OUT` runs this script (docs/report.md). Plots (matplotlib, Agg backend):
  loss_accuracy.png  loss and accuracy of the Model operator over the stream, one colour per
                     rank, train phase solid, predict phase dotted, held-out evaluations as
                     diamonds, drift detections as red lines, true concept changes as dashed
                     black lines, training off shaded
  throughput.png     samples/s per rank over time
  staleness.png      staleness (mean, max) of the deltas each rank applied
The x axis is seconds since the job started (default: the only axis that advances while a model
predicts without training) or, with --x step, the rank's training step.

The drift section shows OUT/drift_matches.json, which `tensair report` writes before it runs
this script (the one matching rule of docs/drift.md; this script does not match on its own).

Every section whose lines are missing says "no data" instead of failing. A line cut off by a
run killed while writing it is noted on stderr and skipped. Errors are one line on stderr
("error: OUT/metrics.jsonl:17: not JSON (...)", or a field the report needs that is not a
number); exit code 2 when OUT or its
metrics.jsonl does not exist or the arguments are wrong, 1 for a bad line or a failure while
writing. Standard library, numpy and matplotlib only.
"""

import datetime
import json
import math
import os
import sys

EXIT_FAILURE = 1
EXIT_MISSING = 2
PLOTS = ("loss_accuracy.png", "throughput.png", "staleness.png")


class ReportError(Exception):
    def __init__(self, message, code=EXIT_FAILURE):
        super().__init__(message)
        self.code = code


# ---- reading ------------------------------------------------------------------------------


def num(value, default=math.nan):
    """A finite-or-not float from a JSON value; `default` for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


class Run:
    """Everything report.md needs, read from one metrics.jsonl."""

    def __init__(self):
        self.lines = 0
        self.job_start = None
        self.job_end = None
        self.max_t = 0.0
        self.operators = {}       # (operator, instance) -> last line, final one preferred
        self.transport = {}       # rank -> last line
        self.model = {}           # (operator, instance) -> [model lines]
        self.evals = {}           # (operator, instance) -> [eval lines]
        self.events = []          # model_control and converged lines
        self.summaries = {}       # (operator, instance) -> model_summary line
        self.starts = {}          # (operator, instance) -> model_start line
        self.drifts = []          # kind == drift
        self.changes = []         # kind == concept_change

    def add(self, line):
        self.lines += 1
        t = num(line.get("t"))
        if math.isfinite(t):
            self.max_t = max(self.max_t, t)
        kind, typ = line.get("kind"), line.get("type")
        key = (str(line.get("operator", "?")), line.get("instance", line.get("rank", 0)))
        if typ == "job":
            if line.get("event") == "start":
                self.job_start = line
            elif line.get("event") == "end":
                self.job_end = line
        elif typ == "operator":
            old = self.operators.get(key)
            if old is None or line.get("final") or not old.get("final"):
                self.operators[key] = line
        elif typ == "transport":
            self.transport[line.get("rank", 0)] = line
        elif kind == "model":
            self.model.setdefault(key, []).append(line)
        elif kind == "eval":
            self.evals.setdefault(key, []).append(line)
        elif kind in ("model_control", "converged"):
            self.events.append(line)
        elif kind == "model_summary":
            self.summaries[key] = line
        elif kind == "model_start":
            self.starts[key] = line
        elif kind == "drift":
            self.drifts.append(line)
        elif kind == "concept_change":
            self.changes.append(line)

    def finish(self):
        by_t = lambda line: num(line.get("t"), 0.0)
        for lines in list(self.model.values()) + list(self.evals.values()):
            lines.sort(key=by_t)
        self.events.sort(key=by_t)
        self.drifts.sort(key=by_t)
        # A change may be announced by several source instances: one per index.
        seen = {}
        for c in sorted(self.changes, key=by_t):
            index = num(c.get("index"))
            seen.setdefault(index if math.isfinite(index) else ("t", num(c.get("t"))), c)
        self.changes = sorted(seen.values(), key=lambda c: (num(c.get("index"), 0.0), by_t(c)))

    def series_keys(self):
        keys = set(self.model) | set(self.evals) | set(self.summaries)
        return sorted(keys, key=lambda k: (k[0], str(k[1])))

    def rank_of(self, key):
        for source in (self.model, self.evals):
            if source.get(key):
                return source[key][0].get("rank", key[1])
        if key in self.summaries:
            return self.summaries[key].get("rank", key[1])
        return key[1]

    def label(self, key):
        names = {k[0] for k in self.series_keys()}
        rank = self.rank_of(key)
        if len(names) <= 1 and key[1] == rank:
            return f"rank {rank}"
        return f"{key[0]} #{key[1]} (rank {rank})"


# Fields the report computes with: a line that has one must give a number (or null).
NUMERIC_FIELDS = ("t", "loss", "accuracy", "step", "version", "records", "samples_per_s",
                  "samples_seen", "staleness_mean", "staleness_max", "index", "elapsed_s",
                  "records_in", "records_out", "busy_s", "queue_depth")


def cut_off(text, next_text):
    """A line a run killed mid-write left: the start of an object, last in the file or followed
    by the start line of the run that resumed the job."""
    if not text.startswith("{") or text.endswith("}"):
        return False
    if next_text is None:
        return True
    try:
        following = json.loads(next_text)
    except ValueError:
        return False
    return isinstance(following, dict) and following.get("event") == "start"


def read_run(out_dir):
    if not os.path.exists(out_dir):
        raise ReportError(f"output folder {out_dir} does not exist", EXIT_MISSING)
    if not os.path.isdir(out_dir):
        raise ReportError(f"{out_dir} is not a folder (expected a run's output folder)", EXIT_MISSING)
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise ReportError(f"{path} does not exist (write it with `tensair run JOB --out {out_dir}`)",
                          EXIT_MISSING)
    run = Run()
    try:
        with open(path, "rb") as f:
            raws = f.readlines()
    except OSError as e:
        raise ReportError(f"cannot read {path}: {e.strerror}")
    texts = [(n, r.decode("utf-8", errors="replace").strip()) for n, r in enumerate(raws, 1)]
    texts = [(n, t) for n, t in texts if t]
    for i, (number, text) in enumerate(texts):
        try:
            line = json.loads(text)
        except ValueError as e:
            if cut_off(text, texts[i + 1][1] if i + 1 < len(texts) else None):
                print(f"note: {path}:{number}: a line cut off (a killed run?); skipped",
                      file=sys.stderr)
                continue
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise ReportError(f"{path}:{number}: not JSON ({getattr(e, 'msg', e)}): {shown}")
        if not isinstance(line, dict):
            raise ReportError(f"{path}:{number}: not a JSON object")
        for key in NUMERIC_FIELDS:
            v = line.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ReportError(f"{path}:{number}: \"{key}\" is not a number: "
                                  f"{json.dumps(v)[:40]}")
        run.add(line)
    run.finish()
    return run


# ---- formatting ---------------------------------------------------------------------------


def fmt_int(v):
    v = num(v)
    return f"{int(v):,}" if math.isfinite(v) else "–"


def fmt_float(v, digits=4):
    v = num(v)
    return f"{v:.{digits}f}" if math.isfinite(v) else "–"


def fmt_bytes(v):
    v = num(v)
    if not math.isfinite(v):
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= size:
            return f"{v / size:.2f} {unit}"
    return f"{int(v)} B"


def fmt_duration(s):
    s = num(s)
    if not math.isfinite(s):
        return "–"
    if s < 120:
        return f"{s:.2f} s"
    return f"{s:.0f} s ({int(s // 60)} min {s % 60:.0f} s)"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ---- drift matching ------------------------------------------------------------------------


class NoMatches(Exception):
    pass


def load_matches(out_dir):
    """OUT/drift_matches.json, written by `tensair report` (and `tensair drift-eval --run OUT`)
    by the one matching rule of docs/drift.md: this script does not match on its own, so that the
    report, the terminal summary and drift-eval agree."""
    path = os.path.join(out_dir, "drift_matches.json")
    metrics = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise NoMatches(f"no `{path}`: run this script through `tensair report {out_dir}`, which "
                        "writes it (or `tensair drift-eval --run {out_dir}`)")
    if os.path.getmtime(path) < os.path.getmtime(metrics):
        raise NoMatches(f"`{path}` is older than metrics.jsonl: `tensair report {out_dir}` "
                        "writes it again")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise NoMatches(f"cannot read `{path}`: {e}")


def match_drift(out_dir):
    """Per detector (name, operator, instance), from drift_matches.json: each true change with
    the detection that found it (or None) and the false alarms."""
    m = load_matches(out_dir)
    use_index = m["rule"]["position"] == "index"
    changes = m["changes"]
    results = []
    for d in m["detectors"]:
        dets = d["detections"]
        matches = [(changes[x["change"]], dets[x["detection"]] if x["detection"] is not None else None)
                   for x in d["matches"]]
        results.append({"key": (d["detector"], d["operator"], d["instance"]), "rank": d["rank"],
                        "detections": dets, "matches": matches,
                        "false_alarms": [dets[k] for k in d["false_alarms"]],
                        "repeats": [dets[k] for k in d["repeats"]]})
    for r in results:
        key, rank = r["key"], r["rank"]
        r["name"] = (f"{key[0]} (rank {rank})" if len(results) > 1 or key[2] == rank
                     else f"{key[0]} ({key[1]} #{key[2]})")
    return results, use_index, m["rule"]


# ---- plots --------------------------------------------------------------------------------


def load_matplotlib():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError as e:
        raise ReportError(f"{e.name or 'matplotlib'} is not installed for {sys.executable} "
                          f"(install python3-matplotlib and python3-numpy, or run scripts/bootstrap.sh)")
    return plt, np


def moving_average(np, y, window):
    """NaN-aware centred moving average over `window` points (O(n), cumulative sums)."""
    if window <= 1 or len(y) < 3:
        return y
    valid = np.isfinite(y)
    c = np.concatenate(([0.0], np.cumsum(np.where(valid, y, 0.0))))
    cn = np.concatenate(([0], np.cumsum(valid)))
    i = np.arange(len(y))
    lo = np.clip(i - window // 2, 0, len(y))
    hi = np.clip(i - window // 2 + window, 0, len(y))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (c[hi] - c[lo]) / (cn[hi] - cn[lo])
    out[~valid] = np.nan
    return out


def thin(np, max_points, *arrays):
    """Every k-th point so that at most about `max_points` are drawn (a 1,300-pixel-wide plot
    shows no more); the moving averages are computed before thinning, on every point."""
    n = len(arrays[0])
    k = max(1, -(-n // max_points))
    return arrays if k == 1 else tuple(a[::k] for a in arrays)


def break_gaps(np, x, *ys):
    """Inserts a NaN row where x jumps by more than 10 times its median step, so that lines do
    not bridge pauses (a rank waiting, a gap in the log) with a straight segment."""
    if len(x) < 3:
        return (x,) + ys
    dx = np.diff(x)
    finite = dx[np.isfinite(dx) & (dx > 0)]
    if len(finite) == 0:
        return (x,) + ys
    gaps = np.nonzero(dx > 10 * np.median(finite))[0] + 1
    if len(gaps) == 0:
        return (x,) + ys
    x = np.insert(x.astype(float), gaps, np.nan)
    return (x,) + tuple(np.insert(y.astype(float) if y.dtype.kind == "f" else y, gaps,
                                  np.nan if y.dtype.kind == "f" else "") for y in ys)


class Plotter:
    def __init__(self, run, out_dir, x_mode):
        self.plt, self.np = load_matplotlib()
        self.run = run
        self.dir = os.path.join(out_dir, "report")
        self.x_mode = x_mode
        self.keys = [k for k in run.series_keys() if run.model.get(k) or run.evals.get(k)]
        cmap = self.plt.get_cmap("tab10")
        self.colors = {k: cmap(i % 10) for i, k in enumerate(self.keys)}
        self.x_label = "seconds since the job started" if x_mode == "time" else "training step of the rank"

    # x of a line: its t, or its step (lines without one are placed by interpolating t over
    # the model lines of the same rank, or of the first series).
    def x_of(self, line):
        np = self.np
        if self.x_mode == "time":
            return num(line.get("t"))
        step = num(line.get("step"))
        if math.isfinite(step):
            return step
        t = num(line.get("t"))
        series = None
        for k in self.keys:
            if self.run.rank_of(k) == line.get("rank") and self.run.model.get(k):
                series = self.run.model[k]
                break
        if series is None and self.keys and self.run.model.get(self.keys[0]):
            series = self.run.model[self.keys[0]]
        if not series or not math.isfinite(t):
            return math.nan
        ts = np.array([num(l.get("t")) for l in series])
        steps = np.array([num(l.get("step")) for l in series])
        ok = np.isfinite(ts) & np.isfinite(steps)
        return float(np.interp(t, ts[ok], steps[ok])) if ok.any() else math.nan

    def arrays(self, lines, field):
        return self.np.array([num(l.get(field)) for l in lines], dtype=float)

    def save(self, fig, name):
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, name)
        try:
            fig.savefig(path, dpi=110)
        except OSError as e:
            raise ReportError(f"cannot write {path}: {e.strerror}")
        finally:
            self.plt.close(fig)
        return path

    def off_intervals(self, key):
        """[(x0, x1)] where training was off on this series: from the model lines' `training`
        field, sharpened by model_control / converged events."""
        run = self.run
        points = [(self.x_of(l), bool(l.get("training"))) for l in run.model.get(key, []) if "training" in l]
        for e in run.events:
            if (str(e.get("operator", "?")), e.get("instance", e.get("rank", 0))) != key:
                continue
            state = False if e.get("kind") == "converged" else e.get("training")
            if isinstance(state, bool):
                points.append((self.x_of(e), state))
        points = sorted((p for p in points if math.isfinite(p[0])), key=lambda p: p[0])
        if not points:
            return []
        end = points[-1][0]
        summary = run.summaries.get(key)
        if summary is not None and math.isfinite(self.x_of(summary)):
            end = max(end, self.x_of(summary))
        out, start = [], None
        for x, training in points:
            if not training and start is None:
                start = x
            elif training and start is not None:
                out.append((start, x))
                start = None
        if start is not None:
            out.append((start, end))
        return out

    def markers(self, axes):
        """Drift detections (red) and true concept changes (dashed black) on every axis."""
        for ax in axes:
            for c in self.run.changes:
                x = self.x_of(c)
                if math.isfinite(x):
                    ax.axvline(x, color="black", linestyle="--", linewidth=1.2, alpha=0.8, zorder=1)
            for d in self.run.drifts:
                x = self.x_of(d)
                if math.isfinite(x):
                    ax.axvline(x, color="tab:red", linestyle="-", linewidth=1.0, alpha=0.75, zorder=1)

    def loss_accuracy(self):
        run, np, plt = self.run, self.np, self.plt
        if not any(run.model.get(k) for k in self.keys) and not any(run.evals.get(k) for k in self.keys):
            return None
        fig, (ax_loss, ax_acc) = plt.subplots(2, 1, sharex=True, figsize=(11, 7))
        has_predict = has_off = has_eval = False
        for key in self.keys:
            color = self.colors[key]
            lines = run.model.get(key, [])
            if lines:
                x_raw = np.array([self.x_of(l) for l in lines], dtype=float)
                phase_raw = np.array([str(l.get("phase", "train")) for l in lines])
                window = max(1, len(lines) // 60)
                for ax, field in ((ax_loss, "loss"), (ax_acc, "accuracy")):
                    y = self.arrays(lines, field)
                    x, y, smooth, phase = break_gaps(np, *thin(np, 4000, x_raw, y, moving_average(np, y, window),
                                                                phase_raw))
                    for ph, style in (("train", "-"), ("predict", ":")):
                        mask = phase == ph
                        if not mask.any():
                            continue
                        has_predict |= ph == "predict"
                        ax.plot(x, np.where(mask, y, np.nan), linestyle=style, color=color, linewidth=0.6, alpha=0.3)
                        ax.plot(x, np.where(mask, smooth, np.nan), linestyle=style, color=color, linewidth=1.8)
            for x0, x1 in self.off_intervals(key):
                has_off |= x1 > x0  # zero width on the step axis: steps stand still while off
                for ax in (ax_loss, ax_acc):
                    ax.axvspan(x0, x1, color=color, alpha=0.10, linewidth=0, zorder=0)
            evals = run.evals.get(key, [])
            if evals:
                has_eval = True
                ex = np.array([self.x_of(e) for e in evals], dtype=float)
                ax_loss.scatter(ex, self.arrays(evals, "loss"), marker="D", s=36, color=color,
                                edgecolors="black", linewidths=0.8, zorder=5)
                ax_acc.scatter(ex, self.arrays(evals, "accuracy"), marker="D", s=36, color=color,
                               edgecolors="black", linewidths=0.8, zorder=5)
        self.markers((ax_loss, ax_acc))
        ax_loss.set_ylabel("loss")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_xlabel(self.x_label)
        for ax in (ax_loss, ax_acc):
            ax.grid(True, alpha=0.3)
        name = run.job_start.get("job", "job") if run.job_start else "job"
        ax_loss.set_title(f"{name}: loss and accuracy over the stream")
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        handles = [Line2D([], [], color=self.colors[k], linewidth=2, label=run.label(k)) for k in self.keys]
        handles.append(Line2D([], [], color="gray", linestyle="-", label="train phase"))
        if has_predict:
            handles.append(Line2D([], [], color="gray", linestyle=":", linewidth=1.8, label="predict phase"))
        if has_eval:
            handles.append(Line2D([], [], color="gray", marker="D", markeredgecolor="black", linestyle="",
                                  label="held-out eval"))
        if run.drifts:
            handles.append(Line2D([], [], color="tab:red", label="drift detected"))
        if run.changes:
            handles.append(Line2D([], [], color="black", linestyle="--", label="true concept change"))
        if has_off:
            handles.append(Patch(color="gray", alpha=0.25, label="training off"))
        fig.legend(handles=handles, loc="center right", fontsize=9, frameon=False)
        fig.text(0.01, 0.005, "faint: logged values; bold: moving average", fontsize=8, color="gray")
        fig.tight_layout(rect=(0, 0.02, 0.82, 1))
        return self.save(fig, "loss_accuracy.png")

    def throughput(self):
        run, np, plt = self.run, self.np, self.plt
        series = []
        for key in self.keys:
            lines = run.model.get(key, [])
            t = self.arrays(lines, "t")
            rate = self.arrays(lines, "samples_per_s")
            ok = np.isfinite(t) & np.isfinite(rate)
            t, rate = t[ok], rate[ok]
            # The rate is measured over >= 1 s windows: 0 until the first window closes.
            nonzero = np.nonzero(rate > 0)[0]
            if len(nonzero) == 0:
                continue
            series.append((key, t[nonzero[0]:], rate[nonzero[0]:]))
        if not series:
            return None
        fig, ax = plt.subplots(figsize=(11, 4.5))
        for key, t, rate in series:
            ax.step(t, rate, where="post", color=self.colors[key], linewidth=1.5,
                    label=f"{run.label(key)} (median {np.median(rate):,.0f}/s)")
        ax.set_xlabel("seconds since the job started")
        ax.set_ylabel("samples / s")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(self.plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9)
        ax.set_title("model throughput per rank (train and predict records, 1 s windows)")
        fig.tight_layout()
        return self.save(fig, "throughput.png")

    def staleness(self):
        run, np, plt = self.run, self.np, self.plt
        keys = [k for k in self.keys if run.model.get(k)]
        if not keys:
            return None
        fig, (ax_mean, ax_max) = plt.subplots(2, 1, sharex=True, figsize=(11, 6))
        all_zero = True
        for key in keys:
            lines = run.model[key]
            x = np.array([self.x_of(l) for l in lines], dtype=float)
            mean, mx = self.arrays(lines, "staleness_mean"), self.arrays(lines, "staleness_max")
            all_zero &= not (np.nan_to_num(mean) > 0).any() and not (np.nan_to_num(mx) > 0).any()
            # Each value covers the logging window that ends at its line: steps, not slopes. Faint:
            # the logged windows; bold: their moving average; dashed: the run's overall value.
            window = max(1, len(lines) // 40)
            x, mean, mx, mean_s, mx_s = break_gaps(np, *thin(np, 4000, x, mean, mx, moving_average(np, mean, window),
                                                              moving_average(np, mx, window)))
            color = self.colors[key]
            for ax, raw, smooth, field in ((ax_mean, mean, mean_s, "staleness_mean"), (ax_max, mx, mx_s, "staleness_max")):
                ax.step(x, raw, where="pre", color=color, linewidth=0.6, alpha=0.3)
                ax.plot(x, smooth, color=color, linewidth=1.8, label=run.label(key))
                overall = num(run.summaries.get(key, {}).get(field))
                if math.isfinite(overall):
                    ax.axhline(overall, color=color, linestyle="--", linewidth=1.0, alpha=0.9)
        self.markers((ax_mean, ax_max))
        ax_mean.set_ylabel("mean staleness\n(versions)")
        ax_max.set_ylabel("max staleness\n(versions)")
        ax_max.set_xlabel(self.x_label)
        for ax in (ax_mean, ax_max):
            ax.grid(True, alpha=0.3)
            ax.set_ylim(bottom=0)
        from matplotlib.lines import Line2D
        handles, _ = ax_mean.get_legend_handles_labels()
        handles.append(Line2D([], [], color="gray", linestyle="--", label="whole run (model_summary)"))
        ax_mean.legend(handles=handles, fontsize=9, loc="upper right")
        fig.text(0.01, 0.005, "faint: logging windows; bold: moving average", fontsize=8, color="gray")
        ax_mean.set_title("staleness of applied deltas (receiver's version − sender's), per logging window")
        if all_zero:
            ax_mean.text(0.5, 0.5, "no stale deltas applied (one rank, or sync mode)", transform=ax_mean.transAxes,
                         ha="center", va="center", color="gray")
            for ax in (ax_mean, ax_max):
                ax.set_ylim(0, 1)
        fig.tight_layout(rect=(0, 0.02, 1, 1))
        return self.save(fig, "staleness.png")


# ---- report.md ----------------------------------------------------------------------------


def summary_section(run):
    job = run.job_start or {}
    rows = [("job", job.get("job", "–")),
            ("status", run.job_end.get("status", "–") if run.job_end else "no end line: the run did not finish"),
            ("ranks", job.get("ranks", "–")),
            ("duration", fmt_duration(run.job_end.get("elapsed_s")) if run.job_end
             else f"at least {fmt_duration(run.max_t)} (last line)")]
    for key, start in sorted(run.starts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if key[1] != min(k[1] for k in run.starts if k[0] == key[0]):
            continue  # one row per model operator
        rows.append((f"model `{key[0]}`", f"{start.get('network', '?')}, {fmt_int(start.get('parameters'))} parameters, "
                     f"mode {start.get('mode', '?')}"))
    for key in run.series_keys():
        evals = run.evals.get(key)
        if evals:
            e = evals[-1]
            rows.append((f"final eval accuracy ({run.label(key)})", fmt_float(e.get("accuracy"))))
            rows.append((f"final eval loss ({run.label(key)})", fmt_float(e.get("loss"))))
    if not any(run.evals.values()):
        rows.append(("final eval accuracy / loss", "no data (no held-out evaluation in this run)"))
    if run.drifts or run.changes:
        rows.append(("drift detections / true concept changes", f"{len(run.drifts)} / {len(run.changes)}"))
    rows.append(("metrics lines read", fmt_int(run.lines)))
    return "| | |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def operators_section(run):
    if not run.operators:
        return "no data (no operator lines)"
    ops = {}
    for (name, _), line in run.operators.items():
        o = ops.setdefault(name, {"type": line.get("op_type", "?"), "n": 0, "in": 0, "out": 0, "dead": 0,
                                  "busy": 0.0, "waits": 0})
        o["n"] += 1
        o["in"] += int(num(line.get("records_in"), 0))
        o["out"] += int(num(line.get("records_out"), 0))
        o["dead"] += int(num(line.get("dead_letters"), 0))
        o["busy"] += num(line.get("busy_s"), 0.0)
        o["waits"] += int(num(line.get("credit_waits"), 0))
    rows = [(f"`{name}`", o["type"], o["n"], fmt_int(o["in"]), fmt_int(o["out"]), fmt_int(o["dead"]),
             f"{o['busy']:.2f}", fmt_int(o["waits"])) for name, o in ops.items()]
    text = table(["operator", "type", "instances", "records in", "records out", "dead letters", "busy s (sum)",
                  "credit waits"], rows)
    if not all(l.get("final") for l in run.operators.values()):
        text += "\n\nSome operators have no final line (the run did not finish): their last counts are shown."
    if run.transport:
        trows = [(r, fmt_int(l.get("frames_sent")), fmt_bytes(l.get("bytes_sent")), fmt_int(l.get("frames_received")),
                  fmt_bytes(l.get("bytes_received"))) for r, l in sorted(run.transport.items(), key=lambda kv: str(kv[0]))]
        text += "\n\nTransport per rank:\n\n" + table(["rank", "frames sent", "bytes sent", "frames received",
                                                        "bytes received"], trows)
    return text


def eval_section(run):
    rows = []
    for key in run.series_keys():
        for e in run.evals.get(key, [])[-1:]:
            rows.append((run.label(key), fmt_int(e.get("step")), fmt_int(e.get("version")), fmt_int(e.get("samples_seen")),
                         fmt_int(e.get("records")), fmt_float(e.get("loss")), fmt_float(e.get("accuracy")),
                         fmt_float(e.get("t"), 2)))
    if not rows:
        return "no data (no `eval` lines: give the model an `evaluate` input and `eval_every`)"
    n = sum(len(v) for v in run.evals.values())
    return (table(["series", "step", "version", "samples seen", "records", "loss", "accuracy", "t (s)"], rows)
            + f"\n\nLast of {n} evaluation{'s' if n != 1 else ''}; all are the diamonds in the loss/accuracy plot.")


def drift_section(run, out_dir):
    if not run.drifts and not run.changes:
        return "no data (no `drift` or `concept_change` lines)"
    try:
        results, use_index, rule = match_drift(out_dir)
    except NoMatches as e:
        return f"not matched: {e}"
    unit_text = "(index positions)" if use_index else "s"
    parts = []
    if run.changes:
        rows = []
        for r in results:
            for i, (c, d) in enumerate(r["matches"]):
                rows.append((i + 1, fmt_int(c.get("index")), fmt_float(c.get("t"), 2), r["name"],
                             fmt_int(d.get("index")) if d else "missed",
                             fmt_float(d.get("t"), 2) if d else "–",
                             (fmt_int(num(d.get("index")) - num(c.get("index"))) if use_index else "–") if d else "–",
                             fmt_float(num(d.get("t")) - num(c.get("t")), 2) if d else "–"))
        if not results:
            rows = [(i + 1, fmt_int(c.get("index")), fmt_float(c.get("t"), 2), "no detector", "–", "–", "–", "–")
                    for i, c in enumerate(run.changes)]
        parts.append(table(["change", "index", "t (s)", "detector", "detected at index", "t (s)",
                            "delay (index)", "delay (s)"], rows))
        bullets = []
        for r in results:
            found = [d for _, d in r["matches"] if d]
            delays = [num(d.get("index" if use_index else "t")) - num(c.get("index" if use_index else "t"))
                      for c, d in r["matches"] if d]
            mean = f", mean delay {sum(delays) / len(delays):,.1f} {unit_text}" if delays else ""
            fa = sorted(r["false_alarms"] + r["repeats"], key=lambda d: num(d.get("index" if use_index else "t")))
            fa_text = (": at " + ", ".join(fmt_int(d.get("index")) if use_index else fmt_float(d.get("t"), 2)
                                           for d in fa[:20]) + (" …" if len(fa) > 20 else "")) if fa else ""
            bullets.append(f"- {r['name']}: {len(found)} of {len(r['matches'])} changes detected{mean}; "
                           f"{len(fa)} false alarm{'s' if len(fa) != 1 else ''}{fa_text}")
        if bullets:
            parts.append("\n".join(bullets))
        tol = rule.get("tolerance") or 0
        parts.append("A change is found by the first detection from "
                     + (f"{fmt_int(tol)} positions before it (the sources' shuffle buffers) "
                        if tol else "it ")
                     + "up to the next change's window; every other detection is a false alarm "
                     "(docs/drift.md, the rule `tensair drift-eval --run` applies).")
        if not use_index:
            parts.append("Positions are matched by time: some lines carry no `index`.")
    else:
        rows = [(r["name"], fmt_int(d.get("index")), fmt_int(d.get("step")), fmt_int(d.get("version")),
                 fmt_float(d.get("t"), 2)) for r in results for d in r["detections"]]
        parts.append("No true change points in this run (no `concept_change` lines); detections:\n\n"
                     + table(["detector", "index", "step", "version", "t (s)"], rows))
    return "\n\n".join(parts)


def model_section(run):
    if not run.summaries:
        return "no data (no `model_summary` lines: no model, or the run did not finish)"
    rows = []
    for key in run.series_keys():
        s = run.summaries.get(key)
        if s is None:
            continue
        sent = num(s.get("deltas_sent"), 0)
        mean_bytes = num(s.get("delta_bytes_sent")) / sent if sent > 0 else math.nan
        rows.append((run.label(key), fmt_int(s.get("steps")), fmt_int(s.get("version")), fmt_int(s.get("samples")),
                     fmt_int(s.get("predictions")), fmt_int(s.get("deltas_sent")), fmt_int(s.get("deltas_applied")),
                     fmt_bytes(s.get("delta_bytes_sent")), fmt_bytes(mean_bytes), fmt_bytes(s.get("dense_delta_bytes")),
                     fmt_float(s.get("staleness_mean"), 2), fmt_int(s.get("staleness_max")),
                     fmt_int(s.get("nonfinite_losses")), "on" if s.get("training") else "off"))
    return table(["series", "steps", "version", "samples trained", "predictions", "deltas sent", "deltas applied",
                  "delta bytes sent", "bytes/delta", "dense delta", "staleness mean", "staleness max",
                  "non-finite losses", "training at end"], rows)


def events_section(run):
    if not run.events:
        return "no data (training was never started, stopped or converged by a command)"
    rows = []
    for e in run.events[:200]:
        what = f"converged ({e.get('by', '?')})" if e.get("kind") == "converged" else f"command `{e.get('command', '?')}`"
        key = (str(e.get("operator", "?")), e.get("instance", e.get("rank", 0)))
        rows.append((fmt_float(e.get("t"), 2), run.label(key), what, fmt_int(e.get("step")), fmt_int(e.get("version"))))
    more = f"\n\n… and {len(run.events) - 200} more." if len(run.events) > 200 else ""
    return table(["t (s)", "series", "event", "step", "version"], rows) + more


def write_report(out_dir, x_mode):
    run = read_run(out_dir)
    plot_dir = os.path.join(out_dir, "report")
    for name in PLOTS:  # no stale plots from an earlier report
        try:
            os.remove(os.path.join(plot_dir, name))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ReportError(f"cannot replace {os.path.join(plot_dir, name)}: {e.strerror}")
    plots = {}
    if any(run.model.values()) or any(run.evals.values()):
        p = Plotter(run, out_dir, x_mode)
        plots = {"loss_accuracy": p.loss_accuracy(), "throughput": p.throughput(), "staleness": p.staleness()}

    def image(name, alt, caption):
        path = plots.get(name)
        if not path:
            return None
        return f"![{alt}](report/{os.path.basename(path)})\n\n{caption}"

    x_text = "seconds since the job started" if x_mode == "time" else "the rank's training step"
    name = (run.job_start or {}).get("job", os.path.basename(os.path.abspath(out_dir)))
    sections = [
        f"# Run report: {name}",
        f"Made by `tensair report` from `{os.path.join(out_dir, 'metrics.jsonl')}` on "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. Plots are in `report/`.",
        "## Summary", summary_section(run),
        "## Loss and accuracy",
        image("loss_accuracy", "loss and accuracy over the stream",
              f"x: {x_text}. One colour per rank; solid: training steps, dotted: records predicted "
              "while training was off (loss before any update); diamonds: held-out evaluations; red lines: drift "
              "detections; dashed black lines: true concept changes; shaded: training off.")
        or "no data (no `model` or `eval` lines)",
        "## Final held-out evaluation", eval_section(run),
        "## Drift: detections vs concept changes", drift_section(run, out_dir),
        "## Throughput",
        image("throughput", "samples per second per rank",
              "Records the model processed per second (training and prediction), measured over windows of at "
              "least 1 s, as logged every `log_every` steps.")
        or ("no data (no `samples_per_s` measured: a model measures it over windows of at least 1 s)"
            if any(run.model.values()) else "no data (no `model` lines)"),
        "## Staleness of applied deltas",
        image("staleness", "staleness of applied deltas",
              "Per logging window: mean and max of (this rank's version − the version the sender computed the "
              "delta at) over the deltas this rank applied. Zero on one rank.") or "no data (no `model` lines)",
        "## Model summary per rank", model_section(run),
        "## Training on/off events", events_section(run),
        "## Operators", operators_section(run),
    ]
    text = "\n\n".join(sections) + "\n"
    path = os.path.join(out_dir, "report.md")
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    except OSError as e:
        raise ReportError(f"cannot write {path}: {e.strerror}")
    return path, [p for p in plots.values() if p]


def main(argv):
    args = argv[1:]
    x_mode = "time"
    if "--x" in args:
        i = args.index("--x")
        if i + 1 >= len(args) or args[i + 1] not in ("time", "step"):
            raise ReportError("--x expects time or step", EXIT_MISSING)
        x_mode = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1 or args[0].startswith("-"):
        raise ReportError("usage: report.py OUT [--x time|step]", EXIT_MISSING)
    path, pngs = write_report(args[0], x_mode)
    print(path)
    for p in pngs:
        print(p)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    except Exception as e:  # a bug here must still be one line; TENSAIR_REPORT_DEBUG=1 shows the trace
        if os.environ.get("TENSAIR_REPORT_DEBUG"):
            raise
        print(f"error: the report script failed: {type(e).__name__}: {e} (TENSAIR_REPORT_DEBUG=1 shows where)",
              file=sys.stderr)
        sys.exit(EXIT_FAILURE)
