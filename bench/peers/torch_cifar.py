"""The PyTorch peer of TensAIR's CIFAR-10 job: the same CNN (examples/cifar10.toml's
cifar_cnn), batch, optimizer and data, as a plain training loop in one process or with
DistributedDataParallel (gloo) under mpirun.

    /usr/bin/python3 bench/peers/torch_cifar.py --samples 6400 --json out.json
    mpirun -np 2 --bind-to none /usr/bin/python3 bench/peers/torch_cifar.py --samples 12800

Under mpirun each rank trains on its share of the stream (batch b goes to rank b mod N, as
TensAIR's round_robin deals them) and DDP averages the gradients at every step (allreduce). The
images are decoded into memory before the clock starts (TensAIR's source decodes while the model
trains, on its own thread). Throughput is measured as TensAIR's is (bench_peers.py): samples
trained between the first logged step and the last, over the time between them.

Settings: torch threads --threads per rank (default 1), glibc malloc with M_MMAP_THRESHOLD and
M_TRIM_THRESHOLD as TensAIR sets them (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ from
bench_peers.py's environment), the same initialisation bounds as TensAIR's (PyTorch's default).
With --eval-every the 10,000 test images are evaluated on rank 0 every that many samples of the
whole job, with the clock stopped meanwhile (so the time to an accuracy counts training only;
bench_peers.py takes TensAIR's time to it from its eval lines' training time the same way);
--target stops at the first evaluation that reaches it.
"""
import argparse
import gzip
import json
import lzma
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("TENSAIR_DATA", os.path.join(REPO, "..", "shared", "data"))
RECORD = 3073
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32).reshape(1, 3, 1, 1)


def read_cifar(names, limit=0):
    """Images (float32 N x 3 x 32 x 32, normalised per channel as cifar10_source) and labels."""
    chunks = []
    for name in names:
        base = os.path.join(DATA, "cifar10", name)
        for ext, opener in ((".gz", gzip.open), (".xz", lzma.open), ("", open)):
            if os.path.exists(base + ext):
                with opener(base + ext, "rb") as f:
                    chunks.append(f.read())
                break
        else:
            raise SystemExit(f"torch_cifar.py: no {base}(.gz|.xz)")
        if limit and sum(len(c) for c in chunks) // RECORD >= limit:
            break
    raw = np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(-1, RECORD)
    if limit:
        raw = raw[:limit]
    labels = raw[:, 0].astype(np.int64)
    images = (raw[:, 1:].astype(np.float32) / 255.0).reshape(-1, 3, 32, 32)
    images = (images - MEAN) / STD  # as cifar10_source's normalize = true (its default)
    return torch.from_numpy(images), torch.from_numpy(labels)


class CifarCNN(torch.nn.Module):
    """TensAIR's cifar_cnn: conv(32) pool conv(64) pool conv(64) dense(64) dense(10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 32, 3)
        self.conv2 = torch.nn.Conv2d(32, 64, 3)
        self.conv3 = torch.nn.Conv2d(64, 64, 3)
        self.fc1 = torch.nn.Linear(1024, 64)
        self.fc2 = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def world():
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("RANK", "0")))
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return rank, size


def evaluate(net, images, labels):
    net.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(images), 500):
            right += int((net(images[i:i + 500]).argmax(1) == labels[i:i + 500]).sum())
    net.train()
    return right / len(images)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=6400, help="images of the whole job")
    ap.add_argument("--passes", type=int, default=1, help="passes over --samples images")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.0007)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=50, help="steps between timing points")
    ap.add_argument("--eval-every", type=int, default=0, help="samples of the job between evals")
    ap.add_argument("--target", type=float, default=0.0,
                    help="stop once the test accuracy reaches this (with --eval-every)")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    rank, size = world()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)]
    images, labels = read_cifar(names, a.samples)
    test = read_cifar(["test_batch.bin"]) if a.eval_every and rank == 0 else None
    net = CifarCNN()
    model = net
    if size > 1:
        import torch.distributed as dist
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getppid() % 1000))
        dist.init_process_group("gloo", rank=rank, world_size=size)
        model = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    b = a.batch_size
    batches = [(i, min(i + b, len(images))) for i in range(0, len(images), b)]
    mine = [s for k, s in enumerate(batches) if k % size == rank]
    if size > 1:  # DDP needs the same number of steps on every rank
        mine = mine[:len(batches) // size]
    points, evals, step, seen_job, eval_time = [], [], 0, 0, 0.0
    start = time.perf_counter()
    done = False
    for _ in range(a.passes):
        for lo, hi in mine:
            opt.zero_grad()
            loss = F.cross_entropy(model(images[lo:hi]), labels[lo:hi])
            loss.backward()
            opt.step()
            step += 1
            seen_job += (hi - lo) * size
            if step % a.log_every == 0:
                points.append((time.perf_counter() - start - eval_time, step * b))
            if a.eval_every and seen_job % a.eval_every < b * size:
                t0 = time.perf_counter()
                acc = evaluate(net, *test) if rank == 0 else 0.0
                if size > 1:
                    flag = torch.tensor([acc])
                    dist.broadcast(flag, 0)
                    acc = float(flag[0])
                eval_time += time.perf_counter() - t0
                evals.append({"samples": seen_job, "t": time.perf_counter() - start - eval_time,
                              "accuracy": acc})
                if a.target and acc >= a.target:
                    done = True
                    break
        if done:
            break
    end = time.perf_counter() - start - eval_time
    points.append((end, step * b))
    (t0, s0), (t1, s1) = points[0], points[-1]
    rate = (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0
    if size > 1:
        r = torch.tensor([rate])
        dist.all_reduce(r)  # the job's rate: the sum over ranks
        rate = float(r[0])
    out = {"samples_per_s": rate, "ranks": size, "steps": step, "threads": a.threads,
           "loss": float(loss), "evals": evals, "seconds": end}
    if rank == 0:
        print(json.dumps(out))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f)
    if size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
