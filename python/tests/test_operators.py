"""The python_* operators: sources, sinks, maps, filters, zero-copy views, dead letters, the GIL,
errors raised by user functions, Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tensair

from conftest import script_env


def collect_job(source, sink_rows, **source_keys):
    job = tensair.Job("collect")
    job.add("src", "python_source", fn=source, **source_keys)
    job.add("sink", "python_sink", fn=sink_rows.append, inputs="src")
    return job


def test_batch_items_arrive_in_order_with_their_dtypes(out):
    def batches():
        for i in range(5):
            yield {"x": np.full((4, 3), i, np.float32), "y": np.arange(4) + 4 * i,
                   "w": [f"w{4 * i + j}" for j in range(4)]}
    got = []
    result = collect_job(batches, got).run(out=out)
    assert result.summary["operators"]["src"]["records_out"] == 20
    assert [b["y"].tolist() for b in got] == [list(range(4 * i, 4 * i + 4)) for i in range(5)]
    assert got[2]["x"].dtype == np.float32 and got[2]["x"].shape == (4, 3)
    assert got[2]["y"].dtype == np.int64
    assert got[4]["w"] == ["w16", "w17", "w18", "w19"]
    assert "columns = [\"x:float32[3]\", \"y:int64\", \"w:string\"]" in \
        open(os.path.join(out, "job.toml")).read()


def test_records_are_batched_by_batch_size_and_the_schema_can_be_declared(out):
    records = [{"a": i, "b": float(i) / 2, "v": np.array([i, -i], np.int32)} for i in range(25)]
    got = []
    collect_job(records, got, batch_size=10,
                schema={"a": "int64", "b": "float64", "v": "int32[2]"}).run(out=out)
    assert [len(b["a"]) for b in got] == [10, 10, 5]
    a = np.concatenate([b["a"] for b in got])
    assert a.tolist() == list(range(25))
    assert np.concatenate([b["b"] for b in got]).dtype == np.float64
    assert np.concatenate([b["v"] for b in got]).tolist() == [[i, -i] for i in range(25)]


def test_sink_arrays_are_read_only_zero_copy_views_that_outlive_the_run(out):
    got = []
    collect_job(lambda: iter([{"x": np.arange(12, dtype=np.float32).reshape(3, 4)}]),
                got).run(out=out)
    x = got[0]["x"]
    assert not x.flags.writeable and not x.flags.owndata
    with pytest.raises(ValueError):
        x[0, 0] = 1
    # The view keeps the engine's batch alive after the job ended.
    assert x.tolist() == np.arange(12, dtype=np.float32).reshape(3, 4).tolist()


def test_items_that_do_not_fit_the_schema_are_dead_letters(out):
    items = [{"x": np.zeros((2, 3), np.float32)}, {"x": np.zeros((2, 4), np.float32)},
             {"z": np.zeros((2, 3), np.float32)}, "not a dict", {"x": np.ones((1, 3))}]
    got = []
    result = collect_job(items, got).run(out=out)
    assert sum(len(b["x"]) for b in got) == 3
    assert result.summary["operators"]["src"]["dead_letters"] == 3
    letters = [json.loads(l) for l in open(os.path.join(out, "dead_letters.jsonl"))]
    reasons = [l["reason"] for l in letters]
    assert "python_source item 1" in reasons[0] and "shape [rows,3], got [2,4]" in reasons[0]
    assert 'column "x": missing' in reasons[1]
    assert "expected a dict of columns, got str" in reasons[2]


def test_map_and_filter(out):
    def batches():
        for i in range(4):
            yield {"n": np.arange(5) + 5 * i}
    got = []
    job = tensair.Job("mapfilter")
    job.add("src", "python_source", fn=batches)
    job.add("even", "python_filter", fn=lambda b: b["n"] % 2 == 0, inputs="src")
    job.add("sq", "python_map", fn=lambda b: {"n": b["n"], "sq": (b["n"] ** 2).astype(np.float32)},
            inputs="even", schema={"n": "int64", "sq": "float32"})
    job.add("sink", "python_sink", fn=got.append, inputs="sq")
    text = job.validate()
    assert "sq: float32" in text and "<locals>.<lambda>" in text, text
    job.run(out=out)
    n = np.concatenate([b["n"] for b in got])
    assert n.tolist() == list(range(0, 20, 2))
    assert np.concatenate([b["sq"] for b in got]).tolist() == [float(v * v) for v in n]


def test_a_map_without_a_schema_infers_it_per_batch(out):
    got = []
    job = tensair.Job("infer")
    job.add("src", "python_source", fn=[{"n": np.arange(3)}])
    job.add("m", "python_map", fn=lambda b: {"s": [str(v) for v in b["n"]]}, inputs="src")
    job.add("sink", "python_sink", fn=got.append, inputs="m")
    job.run(out=out)
    assert got[0]["s"] == ["0", "1", "2"]


def test_an_exception_in_a_function_ends_the_job_with_one_line(out):
    def bad(batch):
        raise ValueError("no good\nat all")
    job = tensair.Job("raises")
    job.add("src", "python_source", fn=[{"n": np.arange(3)}])
    job.add("sink", "python_sink", fn=bad, inputs="src")
    with pytest.raises(tensair.Error) as info:
        job.run(out=out)
    message = str(info.value)
    assert "\n" not in message
    assert 'operator "sink"' in message
    assert "fn raised ValueError: no good at all (at " in message
    assert "test_operators.py:" in message and " in bad)" in message


def test_the_gil_is_held_only_around_python_calls(out):
    # A Python map waits (its thread blocked, GIL released) for a sink on another branch, fed
    # by a C++ source, to see every row, while the Python source before the map runs out of
    # credit and blocks in emit. If any engine thread held the GIL while waiting (or run() kept
    # it), the sink could not run and the map would time out.
    seen = []
    done = threading.Event()

    def sink(batch):
        seen.append(len(batch["k"]))
        if sum(seen) == 2000:
            done.set()

    def wait_for_other_branch(batch):
        if not done.wait(timeout=60):
            raise RuntimeError("the other branch never finished")
        return batch

    # And the script's own Python threads run while run() waits: the source's first item
    # waits for a plain Python thread, which needs the GIL that run() was called with.
    source_started = threading.Event()
    thread_ran = threading.Event()

    def helper_thread():
        if source_started.wait(timeout=60):
            thread_ran.set()

    def python_source():
        source_started.set()
        if not thread_ran.wait(timeout=60):
            raise RuntimeError("the script's thread never ran during the job")
        for _ in range(40):
            yield {"x": np.zeros((256, 256), np.float32)}

    job = tensair.Job("gil", credit_bytes=1 << 20)
    job.add("py", "python_source", fn=python_source, schema={"x": "float32[256]"})
    job.add("wait", "python_map", fn=lambda b: wait_for_other_branch(dict(b)), inputs="py",
            schema={"x": "float32[256]"})
    job.add("sink_py", "python_sink", fn=lambda b: None, inputs="wait")
    job.add("cpp", "generator", count=2000, batch_size=100, columns={"k": "sequence"})
    job.add("sink_cpp", "python_sink", fn=sink, inputs="cpp")
    t = threading.Thread(target=helper_thread)
    t.start()
    result = job.run(out=out)
    t.join()
    assert result.status == "finished"
    assert sum(seen) == 2000
    assert result.summary["operators"]["sink_py"]["records_in"] == 40 * 256
    assert thread_ran.is_set()


def test_an_unscriptable_module_needs_example_input(out):
    import torch

    class Dyn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x) * len(str(type(x)))  # str(type) does not script

    job = tensair.Job("dyn")
    job.add("src", "python_source", fn=[{"x": np.zeros((2, 2), np.float32), "y": np.zeros(2)}])
    job.add("model", "model", network=Dyn(), features="x", label="y", inputs={"train": "src"})
    with pytest.raises(tensair.ModelError, match=r"\[model\] network: torch.jit.script failed"):
        job.run(out=out)


def test_ctrl_c_stops_the_job_cleanly_and_raises_keyboard_interrupt(tmp_path):
    marker = tmp_path / "running"
    code = f"""
import itertools, numpy as np, tensair
def endless():
    for i in itertools.count():
        yield {{"n": np.arange(10) + 10 * i}}
def sink(b):
    open({str(marker)!r}, "w").close()
job = tensair.Job("endless")
job.add("src", "python_source", fn=endless)
job.add("sink", "python_sink", fn=sink, inputs="src")
try:
    job.run(out="out")
except KeyboardInterrupt as e:
    print("KeyboardInterrupt:", e)
    raise SystemExit(3)
"""
    script = tmp_path / "endless.py"
    script.write_text(code)
    p = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=script_env())
    deadline = time.monotonic() + 60
    while not marker.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 3, stderr
    assert 'KeyboardInterrupt: job "endless" stopped cleanly' in stdout
    lines = [json.loads(l) for l in open(tmp_path / "out" / "metrics.jsonl")]
    assert lines[-1]["event"] == "end" and lines[-1]["status"] == "stopped"


RESUMABLE = """
import sys, time, numpy as np, tensair
def items():
    for i in range(3000):
        if sys.argv[1] == "slow":
            time.sleep(0.002)
            if i == 300:
                open("reached", "w").close()
        yield {"k": i % 7, "v": i}
job = tensair.Job("resumable")
job.checkpoint(every_records=200)
job.add("src", "python_source", fn=items, batch_size=50)
job.add("count", "reduce", inputs="src", group_by="k", aggregate={"n": "count", "s": "sum(v)"})
job.add("sink", "csv_sink", inputs="count", path="counts.csv", sort_by="k")
try:
    job.run(out=sys.argv[2], resume=sys.argv[3] if len(sys.argv) > 3 else None)
except KeyboardInterrupt:
    raise SystemExit(130)
"""


def test_a_python_source_resumes_where_it_stopped(tmp_path):
    # Stopped by Ctrl-C part-way and resumed, the job counts every item exactly once: what an
    # uninterrupted run counts.
    script = tmp_path / "resumable.py"
    script.write_text(RESUMABLE)
    env = script_env()
    subprocess.run([sys.executable, str(script), "fast", "whole"], cwd=tmp_path, env=env,
                   check=True, timeout=120)
    p = subprocess.Popen([sys.executable, str(script), "slow", "parts"], cwd=tmp_path, env=env)
    deadline = time.monotonic() + 60
    while not (tmp_path / "reached").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 130
    assert not (tmp_path / "parts" / "counts.csv").exists() or \
        (tmp_path / "parts" / "counts.csv").read_text() != \
        (tmp_path / "whole" / "counts.csv").read_text()
    subprocess.run([sys.executable, str(script), "fast", "parts", "latest"], cwd=tmp_path,
                   env=env, check=True, timeout=120)
    whole = (tmp_path / "whole" / "counts.csv").read_text()
    assert whole.splitlines()[1] == "0,429,642642"  # k=0: 429 items, sum 0+7+...+2996
    assert (tmp_path / "parts" / "counts.csv").read_text() == whole
    lines = [json.loads(l) for l in open(tmp_path / "parts" / "metrics.jsonl")]
    assert any(l.get("event") == "start" and l.get("resumed_from") for l in lines)
