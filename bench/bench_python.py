"""The Python package's costs on the CIFAR-10 stream (issue: the Python API).

Three jobs train the CIFAR CNN (batch 32, Adam) on the first N training images, interleaved
and repeated in one sitting:

  cpp      cifar10_source -> model                          (the job without Python)
  map      cifar10_source -> python_map -> model            (a numpy augmentation per batch:
                                                             random horizontal flips)
  source   python_source -> model                           (a Python generator decoding the
                                                             CIFAR binary batches itself)

Figures: samples/s of the model (trained samples over the job's elapsed time), `map` and
`source` against `cpp` as the baseline. Both sides run in this process's tensair package
(build/python), one rank, the model's default torch threads, the allocator TensAIR sets.
Checked: every job trained exactly N samples, and the python_source's images equal the C++
source's (same normalisation) on the first batch.
"""
import gzip
import lzma
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_script as bs  # noqa: E402

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32).reshape(1, 3, 1, 1)
RECORD = 3073


def data_dir():
    return os.path.join(os.environ.get("TENSAIR_DATA", os.path.join(HERE, "..", "..", "shared",
                                                                      "data")), "cifar10")


def read_raw(path):
    opener = gzip.open if path.endswith(".gz") else lzma.open if path.endswith(".xz") else open
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8).reshape(-1, RECORD)


def python_cifar(limit, batch=32):
    """The CIFAR-10 training stream as a Python generator: batches of normalised CHW images."""
    def gen():
        done = 0
        for i in range(1, 6):
            name = os.path.join(data_dir(), f"data_batch_{i}.bin")
            path = next(p for p in (name, name + ".gz", name + ".xz") if os.path.exists(p))
            raw = read_raw(path)
            for start in range(0, len(raw), batch):
                rows = raw[start:start + min(batch, limit - done)]
                image = rows[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
                yield {"id": np.arange(done, done + len(rows)),
                       "image": (image - MEAN) / STD,
                       "label": rows[:, 0].astype(np.int64)}
                done += len(rows)
                if done >= limit:
                    return
    return gen


def flip(batch, rng=np.random.default_rng(0)):
    """A random horizontal flip of half the images: a typical augmentation step."""
    image = np.array(batch["image"])
    which = rng.random(len(image)) < 0.5
    image[which] = image[which][:, :, :, ::-1]
    return {"id": batch["id"], "image": image, "label": batch["label"]}


def job(tensair, variant, limit):
    j = tensair.Job(f"bench_python_{variant}", metrics_interval=60)
    model_keys = dict(network="cifar_cnn", optimizer="adam", lr=0.0007, log_every=1000)
    schema = {"id": "int64", "image": "float32[3,32,32]", "label": "int64"}
    if variant == "source":
        j.add("train", "python_source", fn=python_cifar(limit), schema=schema)
        upstream = "train"
    else:
        j.add("train", "cifar10_source", batch_size=32, limit=limit)
        upstream = "train"
        if variant == "map":
            j.add("aug", "python_map", fn=flip, inputs="train", schema=schema)
            upstream = "aug"
    j.add("model", "model", inputs={"train": upstream}, **model_keys)
    return j


def check_same_images(tensair, out):
    got = []
    j = tensair.Job("bench_python_check")
    j.add("cpp", "cifar10_source", batch_size=32, limit=32)
    j.add("sink", "python_sink", fn=lambda b: got.append(np.array(b["image"])), inputs="cpp")
    j.run(out=out)
    first = next(python_cifar(32)())["image"]
    if not np.allclose(got[0], first, atol=1e-5):
        raise bs.Failed("python_source images differ from cifar10_source's")


def main():
    a = bs.parse_args(__doc__.splitlines()[0], HERE, lambda ap: ap.add_argument(
        "--records", type=int, default=0, help="training images per job"))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        a.tensair))), "python"))
    import tensair
    limit = a.records or (640 if a.quick else 6400)
    repeats = 1 if a.quick else 3
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(a.tensair))), "bench",
                       "python_out")
    check_same_images(tensair, os.path.join(out, "check"))
    rates = {"cpp": [], "map": [], "source": []}
    load_before = bs.load_average()
    for r in range(repeats + 1):  # the first round warms up (page cache, allocator)
        for variant in rates:
            res = job(tensair, variant, limit).run(out=os.path.join(out, variant))
            samples = res.summary["models"]["model"][0]["samples"]
            if samples != limit:
                raise bs.Failed(f"{variant}: trained {samples} samples, expected {limit}")
            if r > 0:
                rates[variant].append(samples / res.summary["end"]["elapsed_s"])
    note = f"{limit} CIFAR-10 images, batch 32, 1 rank"
    results = [
        bs.result("cifar_cnn_samples_per_s_cpp_source", rates["cpp"], "samples/s", True, note),
        bs.result("cifar_cnn_samples_per_s_with_python_map", rates["map"], "samples/s", True,
                  note + "; random flips in numpy", "the same job without the map", rates["cpp"]),
        bs.result("cifar_cnn_samples_per_s_python_source", rates["source"], "samples/s", True,
                  note + "; a generator decoding the files", "cifar10_source (C++)",
                  rates["cpp"]),
    ]
    bs.report("python", "The Python package on the CIFAR-10 stream",
              {"repeats": repeats, "records": limit, "allocator": "TensAIR's (tune_allocator)",
               "torch_threads": "the model's default", "load_before": load_before,
               "load_after": bs.load_average(), "machine": bs.machine()},
              results, a.json)


if __name__ == "__main__":
    bs.main_guard("bench_python", main)
