"""Checks a live TensAIR model endpoint while the job trains (tests/e2e/serving_test.sh).

Usage: serving_check.py URL MODEL SNAPSHOT_DIR CLIENTS REQUESTS

1. health, server and model metadata;
2. parity: predictions of the endpoint at version V equal those of the snapshot file
   <model>_v<V>.pt loaded with torch.jit.load, on the same inputs (within 1e-5), at 3 versions;
3. CLIENTS threads x REQUESTS requests while training: every answer 200 with the right shape;
4. malformed requests (bad JSON, wrong shape, wrong datatype, unknown model, unknown input,
   100 MB body) get a 4xx with a JSON {"error": ...}; the server answers afterwards;
5. /metrics parses with the strict parser (prometheus_text.py) and holds the engine's, the
   model's and the server's families;
all while a thread loads the newest snapshot (via `latest`) in a loop: every load must succeed
(a file named by `latest` is always whole).
Prints one line per check; exits 1 on the first failure.
"""
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prometheus_text  # noqa: E402

url, model, snap_dir, clients, requests = sys.argv[1:6]
clients, requests = int(clients), int(requests)
host, port = urllib.parse.urlparse(url).hostname, urllib.parse.urlparse(url).port


def fail(msg):
    print(f"serving_check: FAIL: {msg}", flush=True)
    os._exit(1)


def call(conn, method, path, body=None):
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def infer_body(rows):
    return json.dumps({"inputs": [{"name": "x", "shape": [len(rows), 8], "datatype": "FP32",
                                   "data": rows}]})


# Snapshot loader, in the background for the whole check.
loads = {"ok": 0, "versions": set()}
stop_loading = threading.Event()


def load_loop():
    x = torch.ones(2, 8)
    while not stop_loading.is_set():
        try:
            with open(os.path.join(snap_dir, "latest")) as f:
                name = f.read().strip()
        except FileNotFoundError:
            time.sleep(0.01)
            continue
        try:
            m = torch.jit.load(os.path.join(snap_dir, name))
            m(x)
        except Exception as e:  # a partial or damaged file
            fail(f"loading snapshot {name} named by latest: {type(e).__name__}: {e}")
        loads["ok"] += 1
        loads["versions"].add(name)


loader = threading.Thread(target=load_loop, daemon=True)
loader.start()

conn = http.client.HTTPConnection(host, port, timeout=30)
# 1. Health and metadata.
for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{model}/ready"):
    status, _ = call(conn, "GET", path)
    if status != 200:
        fail(f"GET {path}: {status}")
status, body = call(conn, "GET", f"/v2/models/{model}")
meta = json.loads(body)
if status != 200 or meta["name"] != model or meta["inputs"][0]["shape"] != [-1, 8] or \
        meta["outputs"][0]["shape"] != [-1, 2]:
    fail(f"metadata: {status} {body!r}")
print(f"health and metadata: ok (version {meta['versions'][0]})", flush=True)

# 2. Parity with the snapshot files.
g = torch.Generator().manual_seed(3)
x = torch.randn(5, 8, generator=g)
rows = x.tolist()
body = infer_body(rows)
matched, deadline = [], time.time() + 60
while len(matched) < 3:
    if time.time() > deadline:
        fail(f"only {len(matched)} served versions had a snapshot file within 60 s")
    status, data = call(conn, "POST", f"/v2/models/{model}/infer", body)
    if status != 200:
        fail(f"infer: {status} {data!r}")
    r = json.loads(data)
    version = int(r["model_version"])
    if version in [v for v, _ in matched]:
        time.sleep(0.05)
        continue
    path = os.path.join(snap_dir, f"{model}_v{version}.pt")
    for _ in range(100):  # the writer thread may still be writing it
        if os.path.exists(path):
            break
        time.sleep(0.01)
    if not os.path.exists(path):
        continue  # this version's snapshot was replaced by a newer one before it was written
    served = torch.tensor(r["outputs"][0]["data"]).reshape(r["outputs"][0]["shape"])
    with torch.no_grad():
        local = torch.jit.load(path)(x)
    diff = (served - local).abs().max().item()
    if diff > 1e-5:
        fail(f"version {version}: endpoint and {path} differ by {diff}")
    matched.append((version, diff))
print("parity with snapshots: " + ", ".join(f"v{v} max |diff| {d:.1e}" for v, d in matched),
      flush=True)

# 3. Concurrent clients while training.
errors, latencies, versions = [], [], set()
lock = threading.Lock()


def client(k):
    c = http.client.HTTPConnection(host, port, timeout=30)
    b = infer_body(rows[: 1 + k % 5])
    mine, seen = [], set()
    for _ in range(requests):
        t0 = time.perf_counter()
        try:
            status, data = call(c, "POST", f"/v2/models/{model}/infer", b)
        except Exception as e:
            with lock:
                errors.append(f"{type(e).__name__}: {e}")
            c = http.client.HTTPConnection(host, port, timeout=30)
            continue
        mine.append(time.perf_counter() - t0)
        if status != 200:
            with lock:
                errors.append(f"{status} {data[:200]!r}")
            continue
        out = json.loads(data)["outputs"][0]
        if out["shape"] != [1 + k % 5, 2] or len(out["data"]) != 2 * (1 + k % 5):
            with lock:
                errors.append(f"shape {out['shape']}")
        seen.add(json.loads(data)["model_version"])
    with lock:
        latencies.extend(mine)
        versions.update(seen)


t0 = time.perf_counter()
threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - t0
if errors:
    fail(f"{len(errors)} of {clients * requests} concurrent requests failed, first: {errors[0]}")
if len(versions) < 2:
    fail(f"the concurrent requests all saw one version ({versions}): is the model training?")
latencies.sort()
print(f"concurrent: {clients} clients x {requests} requests, no error, "
      f"{len(versions)} versions seen, {clients * requests / elapsed:.0f} requests/s, "
      f"p50 {latencies[len(latencies) // 2] * 1e3:.2f} ms, "
      f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms", flush=True)

# 4. Malformed requests, on a new connection: the server closes a keep-alive connection idle
# for 5 s (cpp-httplib's keep-alive timeout), and the concurrent round may take that long.
conn.close()
conn = http.client.HTTPConnection(host, port, timeout=30)
good = {"name": "x", "shape": [1, 8], "datatype": "FP32", "data": [0.0] * 8}
cases = [
    ("bad JSON", f"/v2/models/{model}/infer", "{\"inputs\": [", 400),
    ("wrong shape", f"/v2/models/{model}/infer",
     json.dumps({"inputs": [dict(good, shape=[1, 7], data=[0.0] * 7)]}), 400),
    ("shape and data disagree", f"/v2/models/{model}/infer",
     json.dumps({"inputs": [dict(good, shape=[2, 8])]}), 400),
    ("wrong datatype", f"/v2/models/{model}/infer",
     json.dumps({"inputs": [dict(good, datatype="INT64", data=[0] * 8)]}), 400),
    ("unknown input", f"/v2/models/{model}/infer",
     json.dumps({"inputs": [good, dict(good, name="z")]}), 400),
    ("unknown model", "/v2/models/no_such_model/infer", json.dumps({"inputs": [good]}), 404),
]
for what, path, payload, want in cases:
    status, data = call(conn, "POST", path, payload)
    try:
        err = json.loads(data)["error"]
    except Exception:
        fail(f"{what}: the answer is not a JSON error: {status} {data[:200]!r}")
    if status != want:
        fail(f"{what}: status {status}, expected {want} ({err})")
    print(f"{what}: {status} {err}", flush=True)
big = http.client.HTTPConnection(host, port, timeout=60)
try:
    status, data = call(big, "POST", f"/v2/models/{model}/infer", b" " * (100 << 20))
except (BrokenPipeError, ConnectionResetError) as e:
    fail(f"100 MB body: the connection broke ({e}) instead of a 413")
if status != 413 or "error" not in json.loads(data):
    fail(f"100 MB body: {status} {data[:200]!r}")
print(f"100 MB body: {status} {json.loads(data)['error']}", flush=True)
conn = http.client.HTTPConnection(host, port, timeout=30)
status, _ = call(conn, "GET", "/v2/health/live")
if status != 200:
    fail(f"the server does not answer after the malformed requests ({status})")

# 5. /metrics through the strict parser.
status, data = call(conn, "GET", "/metrics")
try:
    families = prometheus_text.parse(data.decode())
except ValueError as e:
    fail(f"/metrics: {e}")
want = ["tensair_operator_records_in_total", "tensair_operator_queue_depth",
        "tensair_operator_credit_waits_total", "tensair_operator_dead_letters_total",
        "tensair_model_loss", "tensair_model_version", "tensair_model_steps_per_second",
        "tensair_model_staleness_mean", "tensair_serve_requests_total",
        "tensair_checkpoint_age_seconds", "tensair_checkpoint_last_duration_seconds"]
missing = [w for w in want if w not in families]
if missing:
    fail(f"/metrics lacks {missing}")
ok = [s for s in families["tensair_serve_requests_total"].samples if s[1].get("code") == "200"]
if not ok or ok[0][2] < clients * requests:
    fail(f"tensair_serve_requests_total{{code=200}} is {ok}")
print(f"/metrics: {len(families)} families parsed strictly", flush=True)

stop_loading.set()
loader.join()
if loads["ok"] < 5 or len(loads["versions"]) < 2:
    fail(f"the snapshot loader loaded {loads['ok']} files of {len(loads['versions'])} versions")
print(f"snapshot loader: {loads['ok']} loads of {len(loads['versions'])} versions, none partial",
      flush=True)
print("serving_check: ok", flush=True)
