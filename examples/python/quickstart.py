"""The README's first Python job: a small torch.nn.Module learns y = 1 when x0 + x1 > 0 online
from a Python generator, and its predictions come back to Python as they are made.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/quickstart.py
    mpirun -np 2 --oversubscribe --bind-to none -x PYTHONPATH=build/python \\
        /usr/bin/python3 examples/python/quickstart.py        # the same job on two ranks
"""
import numpy as np
import torch

import tensair


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(2, 16)
        self.out = torch.nn.Linear(16, 2)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def batches(n=200, size=32, seed=0):
    """A stream of labelled batches: dicts of numpy arrays, one batch each."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        x = rng.normal(size=(size, 2)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        yield {"id": np.arange(i * size, (i + 1) * size), "x": x, "y": y}


def main():
    torch.manual_seed(1)
    net = Net()
    asked = {}  # id -> true label of the records the model is asked about
    for b in batches(n=20, seed=7):
        asked.update(zip(b["id"].tolist(), b["y"].tolist()))
    right = []

    def on_predictions(batch):
        """Every batch of predictions, as numpy views of the columns id and output."""
        for i, out in zip(batch["id"], batch["output"]):
            right.append(int(out.argmax()) == asked[int(i)])

    job = tensair.Job("quickstart")
    job.add("train", "python_source", fn=batches)
    job.add("ask", "python_source", fn=lambda: ({"id": b["id"], "x": b["x"]}
                                                for b in batches(n=20, seed=7)))
    job.add("model", "model", network=net, features="x", label="y", lr=0.1,
            inputs={"train": "train", "predict": "ask"})
    job.add("seen", "python_sink", fn=on_predictions, inputs="model.predictions")
    result = job.run()

    # The trained weights are back in `net`.
    test = next(batches(n=1, size=1000, seed=99))
    with torch.no_grad():
        accuracy = (net(torch.from_numpy(test["x"])).argmax(1).numpy() == test["y"]).mean()
    print(f"{result.status}: {len(right)} predictions while training, "
          f"{sum(right) / max(len(right), 1):.2f} right; trained model on 1,000 new records: "
          f"{accuracy:.3f}; output in {result.out}")


if __name__ == "__main__":
    main()
