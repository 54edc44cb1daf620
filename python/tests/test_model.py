"""Networks as torch.nn.Module: trained online from Python sources on 1 and 2 ranks, equal to
the TorchScript-file path of the CLI, exported and read back."""
import json
import os
import subprocess

import numpy as np
import pytest
import torch

import tensair

from conftest import run_script


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


GENERATED = """
[job]
name = "parity"

[gen]
type = "generator"
count = 640
batch_size = 32
seed = 5
columns = { x = "normal[4]", y = "randint(2)" }

[model]
type = "model"
from = "gen"
network = "net.pt"
features = "x"
label = "y"
lr = 0.05
log_every = 5
export = "trained_{rank}.pt"
"""


def test_a_module_trains_as_its_torchscript_file_does_through_the_cli(tmp_path, cli):
    torch.manual_seed(3)
    net = Net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.jit.script(net).save(str(tmp_path / "net.pt"))
    job_file = tmp_path / "parity.toml"
    job_file.write_text(GENERATED)
    subprocess.run([cli, "run", str(job_file), "--out", str(tmp_path / "cli")], check=True,
                   capture_output=True)
    by_cli = torch.jit.load(str(tmp_path / "cli" / "trained_0.pt")).state_dict()

    job = tensair.Job.from_toml(job_file, set={"model.network": net})
    result = job.run(out=str(tmp_path / "py"))
    assert result.status == "finished"
    assert result.summary["models"]["model"][0]["steps"] == 20
    changed = False
    for k, v in net.state_dict().items():  # the trained weights are back in the module
        assert torch.equal(v, by_cli[k]), k
        changed |= not torch.equal(v, before[k])
    assert changed


def xor_batches(n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
        x = rng.normal(size=(32, 4)).astype(np.float32)
        yield {"id": np.arange(32 * i, 32 * i + 32), "x": x,
               "y": ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)}


def test_predictions_come_back_and_the_export_predicts_as_the_live_model(out):
    torch.manual_seed(4)
    net = Net()
    train = tensair.Job("xor")
    train.add("src", "python_source", fn=lambda: xor_batches(150, 0))
    train.add("model", "model", network=net, features="x", label="y", lr=0.1,
              optimizer="adam", inputs={"train": "src"})
    train.run(out=out)

    # The trained module predicts a held-out stream; what reaches the sink is what
    # torch.jit.load of the export computes.
    predictions = {}

    def sink(batch):
        for i, o in zip(batch["id"], batch["output"]):
            predictions[int(i)] = o.copy()
    ask = tensair.Job("ask")
    ask.add("src", "python_source", fn=lambda: ({"id": b["id"], "x": b["x"]}
                                               for b in xor_batches(10, 9)))
    ask.add("model", "model", network=net, features="x", training="never",
            inputs={"predict": "src"})
    ask.add("sink", "python_sink", fn=sink, inputs="model.predictions")
    ask.run(out=out + "_ask")
    exported = torch.jit.load(os.path.join(out, "python", "model_trained_0.pt"))
    held = list(xor_batches(10, 9))
    x = torch.from_numpy(np.concatenate([b["x"] for b in held]))
    y = np.concatenate([b["y"] for b in held])
    with torch.no_grad():
        expected = exported(x).numpy()
        live = net(x).numpy()
    got = np.stack([predictions[i] for i in range(len(x))])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(live, expected, rtol=1e-5, atol=1e-6)
    assert (got.argmax(1) == y).mean() > 0.8  # it learnt xor


TWO_RANKS = """
import json, sys
import numpy as np, torch, tensair

class Mine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(3, 16)
        self.l2 = torch.nn.Linear(16, 3)
    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))

def stream():
    rng = np.random.default_rng(1)
    for i in range(120):
        x = rng.normal(size=(16, 3)).astype(np.float32)
        yield {"x": x, "y": x.argmax(1).astype(np.int64), "id": np.arange(16 * i, 16 * i + 16)}

torch.manual_seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
net = Mine()
rows = []
job = tensair.Job("two")
job.add("src", "python_source", fn=stream)
job.add("model", "model", network=net, features="x", label="y", lr=0.05,
        inputs={"train": "src", "predict": {"from": "src", "routing": "forward"}})
job.add("sink", "python_sink", fn=lambda b: rows.append(len(b["id"])),
        inputs={"in": {"from": "model.predictions", "routing": "forward"}})
result = job.run(out="out")
x = torch.from_numpy(np.random.default_rng(7).normal(size=(500, 3)).astype(np.float32))
with torch.no_grad():
    acc = float((net(x).argmax(1) == x.argmax(1)).float().mean())
    exported = torch.jit.load(f"out/python/model_trained_{result.rank}.pt")
    same = bool(torch.allclose(exported(x), net(x)))
# One file per rank: mpirun interleaves the ranks' stdout without regard to lines.
with open(f"result_{result.rank}.json", "w") as f:
    json.dump({"rank": result.rank, "ranks": result.world_size, "status": result.status,
               "predicted": sum(rows), "accuracy": acc, "same": same}, f)
"""


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_user_module_trains_on_one_and_two_ranks(tmp_path, ranks):
    p = run_script(TWO_RANKS, tmp_path, ranks=ranks)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(f.read_text()) for f in sorted(tmp_path.glob("result_*.json"))]
    assert sorted(l["rank"] for l in lines) == list(range(ranks))
    for l in lines:
        assert l["status"] == "finished" and l["ranks"] == ranks and l["same"]
        assert l["accuracy"] > 0.9
    # Every record of the stream is predicted once, by the rank that read it.
    assert sum(l["predicted"] for l in lines) == 120 * 16
    metrics = [json.loads(l) for l in open(tmp_path / "out" / "metrics.jsonl")]
    summaries = [m for m in metrics if m.get("kind") == "model_summary"]
    assert len(summaries) == ranks
    if ranks == 2:
        assert all(s["deltas_applied"] > 0 for s in summaries)  # the replicas exchanged
