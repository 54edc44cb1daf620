#!/usr/bin/python3
"""The peer of bench_kafka: a Python consumer-trainer loop (confluent-kafka + PyTorch).

What a Python user writes to train online from Kafka: a consumer reads the topic, decodes the
messages, builds a batch, and the model trains on it (the loss and accuracy of each batch are
measured before its update, as TensAIR's model does: one forward pass serves both). The same
work as the TensAIR side of bench_kafka.py:

  sentiment  JSON {"id", "text", "y"} -> hashed bag of words (4,096 floats, unigrams and
             bigrams, the tokens of [a-z0-9']+ after lower-casing, signed, unit length; the
             hashing trick as TensAIR's hash_features does it, with Python's string hash)
             -> logistic regression (Linear(4096, 2)), Adam lr 0.01, batch 32
  cifar      raw records as the CIFAR-10 binary files hold them (label uint8, image
             uint8[3,32,32]: 3,073 bytes) -> CifarCNN below: the per-channel normalisation,
             then the reference CNN (TensAIR's cifar_cnn, 122,570 parameters); Adam lr 0.0007,
             batch 32. The TensAIR side runs the same module, scripted (save_cifar_network),
             from the same initial weights

One process, or N under `mpirun -np N` (rank from OMPI_COMM_WORLD_RANK): rank r takes the
partitions p with p % N == r, and the N replicas are kept equal with DistributedDataParallel
(gloo), the PyTorch way. Offsets are committed to the group (asynchronously) every 2 s.

It reads `--records` records in all (each rank an equal share, whole batches). Every LOG_EVERY batches it writes a progress line {"t", "records"} (records
trained so far; t in seconds since the Unix epoch, the harness's clock) to --log, and at the
end a line {"summary": {"rank", "records", "accuracy" (prequential, of the second half),
"loss"}}.

  /usr/bin/python3 bench/kafka_peer.py --work sentiment --brokers HOST:PORT --topic T \\
      --partitions 4 --records 40960 --log peer.jsonl
"""
import argparse
import json
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

BATCH = 32
LOG_EVERY = 5
DIM = 4096
TOKEN = re.compile(r"[a-z0-9']+")
CIFAR_RECORD = np.dtype([("label", "u1"), ("image", "u1", (3, 32, 32))])


def hashed_bag(texts):
    """The batch's texts as float32[n, DIM]: signed unigram and bigram hashes, unit rows."""
    rows, cols, vals = [], [], []
    for r, text in enumerate(texts):
        prev = None
        for tok in TOKEN.findall(text.lower()):
            h = hash(tok) & 0xFFFFFFFFFFFFFFFF
            rows.append(r)
            cols.append((h >> 1) % DIM)
            vals.append(1.0 if h & 1 else -1.0)
            if prev is not None:
                b = hash((prev, h)) & 0xFFFFFFFFFFFFFFFF
                rows.append(r)
                cols.append((b >> 1) % DIM)
                vals.append(1.0 if b & 1 else -1.0)
            prev = h
    x = np.zeros((len(texts), DIM), dtype=np.float32)
    np.add.at(x, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)),
              np.asarray(vals, dtype=np.float32))
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norm, out=x, where=norm > 0)
    return torch.from_numpy(x)


def decode_sentiment(values):
    recs = [json.loads(v) for v in values]
    return hashed_bag([r["text"] for r in recs]), torch.tensor([r["y"] for r in recs])


def decode_cifar(values):
    a = np.frombuffer(b"".join(values), dtype=CIFAR_RECORD)
    return torch.from_numpy(a["image"].copy()), torch.from_numpy(a["label"].astype(np.int64))


class CifarCNN(torch.nn.Module):
    """uint8 images in, normalised per channel (as cifar10_source does), then the reference CNN
    of TensAIR's cifar_cnn (src/model/network.cpp)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1))
        self.conv1 = torch.nn.Conv2d(3, 32, 3)
        self.conv2 = torch.nn.Conv2d(32, 64, 3)
        self.conv3 = torch.nn.Conv2d(64, 64, 3)
        self.fc1 = torch.nn.Linear(1024, 64)
        self.fc2 = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = (x.float() / 255.0 - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def save_cifar_network(path):
    """The TensAIR side's network: CifarCNN scripted, with the initial weights main() uses."""
    torch.manual_seed(1)
    torch.jit.script(CifarCNN()).save(path)


WORK = {
    "sentiment": (lambda: torch.nn.Linear(DIM, 2), 0.01, decode_sentiment),
    "cifar": (CifarCNN, 0.0007, decode_cifar),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", choices=sorted(WORK), required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--records", type=int, required=True, help="records to read, all ranks together")
    ap.add_argument("--group", default="bench-kafka-peer")
    ap.add_argument("--log", required=True, help="progress lines (JSON), {rank} replaced")
    ap.add_argument("--ready", default="", help="touch this file once consuming ({rank} replaced)")
    a = ap.parse_args()

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    ranks = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    torch.set_num_threads(1)
    torch.manual_seed(1)
    make, lr, decode = WORK[a.work]
    model = make()
    if ranks > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", os.environ.get("BENCH_PEER_PORT", "29517"))
        torch.distributed.init_process_group("gloo", rank=rank, world_size=ranks)
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    if a.records % (ranks * BATCH):
        sys.exit(f"kafka_peer: --records {a.records} is not a multiple of {ranks} x {BATCH}")
    share = a.records // ranks
    mine = [TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in range(a.partitions) if p % ranks == rank]
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": a.group, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    c.assign(mine)
    log = open(a.log.replace("{rank}", str(rank)), "w")
    if a.ready:
        open(a.ready.replace("{rank}", str(rank)), "w").close()

    done, batches, correct, counted, loss_sum = 0, 0, 0, 0, 0.0
    pending = []
    next_commit = time.time()
    while done < share:
        for m in c.consume(num_messages=BATCH - len(pending), timeout=0.5):
            if m.error():
                sys.exit(f"kafka_peer: {m.error()}")
            pending.append(m.value())
        now = time.time()
        if now >= next_commit and batches:
            c.commit(asynchronous=True)
            next_commit = now + 2.0
        if len(pending) < BATCH:
            continue
        x, y = decode(pending)
        pending = []
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if done >= share // 2:  # the prequential accuracy of the second half
            correct += int((out.argmax(1) == y).sum())
            counted += BATCH
        loss_sum += float(loss)
        done += BATCH
        batches += 1
        if batches % LOG_EVERY == 0 or done == share:
            log.write(json.dumps({"t": time.time(), "records": done}) + "\n")
    log.write(json.dumps({"summary": {"rank": rank, "records": done, "accuracy": correct / counted,
                                      "loss": loss_sum / batches}}) + "\n")
    log.close()
    c.commit(offsets=c.position([TopicPartition(t.topic, t.partition) for t in mine]),
             asynchronous=False)
    c.close()
    if ranks > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
