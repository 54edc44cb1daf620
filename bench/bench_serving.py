#!/usr/bin/python3
"""Serving while training: latency and throughput of the model endpoint (docs/serving.md).

The work: a job trains an mlp [8, 16, 2] online from a generator at 3,000 records/s with
`serve_port = 0` (the served copy refreshed every 200 versions); CLIENTS threads (default 8),
each with one keep-alive HTTP connection, send REQUESTS (default 1,000) KServe v2 JSON infer
requests of one record each. Figures: requests/s over the whole round, and the p50 and p99
latency of one request (client side: send to parsed answer). Baseline: the same round against
the same job with `training = "never"` (the model only predicts its stream).

One warm-up round, then 5 timed rounds (3 with --quick, which also sends 200 requests per
client) against one job each; the figure is the median of the rounds. The clients are Python
(standard library) threads on the same 2 cores as the job: they take a large share of the CPU,
so the figures are of the pair, not of the server alone.

Checks (exit 1 when one fails): every answer is 200 with an output of shape [1, 2] and finite
values; while training, the rounds see more than one model version; /metrics counts at least
as many answered requests as were sent.

  build/bench/bench_serving [--quick] [--json PATH]          (bench/run.sh runs it)
  /usr/bin/python3 bench/bench_serving.py --tensair build/bin/tensair [--clients N]
"""
import http.client
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

from bench_script import Failed, load_average, main_guard, parse_args, report, result

JOB = """
[job]
name = "bench_serving"
[gen]
type = "generator"
count = 1000000000
batch_size = 16
rate = 3000
columns = {{ x = "normal[8]", y = "randint(2)" }}
[model]
type = "model"
from = "gen"
network = "mlp"
layers = [8, 16, 2]
lr = 0.05
threads = 1
training = "{training}"
serve_port = 0
serve_every = 200
"""


def start_job(a, work, training):
    path = os.path.join(work, f"{training}.toml")
    with open(path, "w") as f:
        f.write(JOB.format(training=training))
    log = open(os.path.join(work, f"{training}.log"), "w")
    p = subprocess.Popen([a.tensair, "run", path, "--out", os.path.join(work, training)],
                         stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        with open(log.name) as f:
            m = re.search(r"serving at (http://127\.0\.0\.1:\d+)", f.read())
        if m:
            return p, m.group(1)
        if p.poll() is not None:
            raise Failed(f"the {training} job ended before serving (see {log.name})")
        time.sleep(0.1)
    p.kill()
    raise Failed("no 'serving at' line in 30 s")


def stop_job(p):
    p.send_signal(2)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise Failed("the job did not stop within 60 s of SIGINT")


def one_round(url, clients, requests):
    host, port = url[len("http://"):].split(":")
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32",
                                   "data": [0.1 * i for i in range(8)]}]})
    lat, versions, errors = [], set(), []
    lock = threading.Lock()

    def client():
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        mine, seen = [], set()
        for _ in range(requests):
            t0 = time.perf_counter()
            try:
                c.request("POST", "/v2/models/model/infer", body,
                          {"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                answer = json.loads(data)
            except Exception as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                c = http.client.HTTPConnection(host, int(port), timeout=30)
                continue
            mine.append(time.perf_counter() - t0)
            out = answer.get("outputs", [{}])[0] if r.status == 200 else {}
            if r.status != 200 or out.get("shape") != [1, 2] or \
                    not all(isinstance(v, float) and math.isfinite(v) for v in out["data"]):
                with lock:
                    errors.append(f"{r.status} {data[:200]!r}")
                continue
            seen.add(answer["model_version"])
        with lock:
            lat.extend(mine)
            versions.update(seen)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise Failed(f"{len(errors)} of {clients * requests} requests failed, first: {errors[0]}")
    lat.sort()
    return (clients * requests / elapsed, lat[len(lat) // 2] * 1e3,
            lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, versions)


def served_requests(url):
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    n = 0.0
    for line in text.splitlines():
        if line.startswith("tensair_serve_requests_total{") and 'code="200"' in line:
            n += float(line.split()[-1])
    forwards = sum(float(l.split()[-1]) for l in text.splitlines()
                   if l.startswith("tensair_serve_forward_total{"))
    return n, forwards


def main():
    def extra(ap):
        ap.add_argument("--clients", type=int, default=8)
        ap.add_argument("--requests", type=int, default=0, help="per client per round")
    a = parse_args(__doc__.splitlines()[0], os.path.dirname(os.path.abspath(__file__)), extra)
    requests = a.requests or (200 if a.quick else 1000)
    repeats = 3 if a.quick else 5
    work = tempfile.mkdtemp(prefix="bench_serving.")
    figures = {}
    try:
        for training in ("always", "never"):
            p, url = start_job(a, work, training)
            try:
                one_round(url, a.clients, max(50, requests // 10))  # warm-up
                rounds = [one_round(url, a.clients, requests) for _ in range(repeats)]
                served, forwards = served_requests(url)
            finally:
                stop_job(p)
            sent = a.clients * (max(50, requests // 10) + repeats * requests)
            if served < sent:
                raise Failed(f"/metrics counts {served:.0f} answered requests, {sent} were sent")
            versions = set().union(*(r[3] for r in rounds))
            if training == "always" and len(versions) < 2:
                raise Failed("the rounds while training saw one model version")
            figures[training] = (rounds, served / forwards if forwards else float("nan"),
                                 len(versions))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    train, idle = figures["always"], figures["never"]
    col = lambda f, i: [r[i] for r in f[0]]
    note = (f"{a.clients} clients x {requests} requests of 1 record; "
            f"{train[1]:.2f} requests per forward pass while training, {idle[1]:.2f} idle; "
            f"{train[2]} versions served")
    results = [
        result("requests_per_s_training", col(train, 0), "requests/s", True, note,
               "training off", col(idle, 0)),
        result("latency_p50_training", col(train, 1), "ms", False, "", "training off",
               col(idle, 1)),
        result("latency_p99_training", col(train, 2), "ms", False, "", "training off",
               col(idle, 2)),
    ]
    settings = {"clients": a.clients, "requests": requests, "repeats": repeats,
                "model": "mlp [8,16,2]", "stream": "3000 records/s", "quick": a.quick,
                "loadavg": load_average()}
    report("serving", "Serving while training (bench_serving)", settings, results, a.json)


if __name__ == "__main__":
    main_guard("bench_serving", main)
