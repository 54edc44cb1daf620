#!/usr/bin/env python3
"""Summary of the Kafka sentiment demo (scripts/demo_kafka.sh): reads the predictions topic with
read_committed, joins them with the stream's truth (OUT/truth.jsonl) by id, and prints how many
predictions arrived (each id once?), the accuracy per phase and per window of records, and the
drift detections of OUT/metrics.jsonl. Exits 1 unless every record has exactly one prediction
and a detection follows the label flip within 5,000 records."""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

ap = argparse.ArgumentParser()
ap.add_argument("--brokers", required=True)
ap.add_argument("--topic", default="sentiment")
ap.add_argument("--out", required=True)
ap.add_argument("--window", type=int, default=3000)
a = ap.parse_args()

truth = {}
for line in open(f"{a.out}/truth.jsonl"):
    r = json.loads(line)
    truth[r["id"]] = (r["y"], r["phase"])
starts = {}
for i in sorted(truth):
    starts.setdefault(truth[i][1], i)

c = Consumer({"bootstrap.servers": a.brokers, "group.id": "summary", "enable.partition.eof": True,
              "isolation.level": "read_committed", "enable.auto.commit": False})
md = c.list_topics(a.topic, timeout=10)
parts = list(md.topics[a.topic].partitions)
c.assign([TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in parts])
pred, dup, ended = {}, 0, set()
deadline = time.time() + 60
while len(ended) < len(parts) and time.time() < deadline:
    for m in c.consume(num_messages=10000, timeout=0.2):
        if m.error():
            if m.error().code() == -191:
                ended.add(m.partition())
            continue
        r = json.loads(m.value())
        o = r["output"]
        dup += r["id"] in pred
        pred[r["id"]] = 1 if o[1] > o[0] else 0
c.close()

names = {0: "Sentiment140", 1: "US-airline tweets (new domain)", 2: "Sentiment140, labels flipped"}
print(f"kafka summary: {len(pred)} predictions read with read_committed from topic {a.topic} "
      f"for {len(truth)} records ({dup} duplicates)")
for ph in sorted(starts):
    ids = [i for i in pred if truth[i][1] == ph]
    acc = sum(pred[i] == truth[i][0] for i in ids) / max(1, len(ids))
    print(f"  phase {ph} from record {starts[ph]:>6}: {names.get(ph, ph):<32} accuracy {acc:.3f} ({len(ids)} predictions)")
print(f"  accuracy per {a.window} records:")
n = max(truth) + 1
for lo in range(0, n, a.window):
    ids = [i for i in range(lo, min(n, lo + a.window)) if i in pred]
    if ids:
        acc = sum(pred[i] == truth[i][0] for i in ids) / len(ids)
        print(f"    {lo:>6}-{min(n, lo + a.window) - 1:<6} {acc:.3f} {'#' * int(acc * 40)}")
drifts = []
for line in open(f"{a.out}/metrics.jsonl"):
    j = json.loads(line)
    if j.get("kind") == "drift":
        # `index` is the model's record count at the detection; every record of this job is
        # trained and predicted (two ports), so the stream position is half of it (to a batch).
        drifts.append(j["index"] // 2)
print(f"  OPTWIN detections at stream records: {drifts}")
ok = len(pred) == len(truth) and dup == 0
for ph in (1, 2):
    if ph not in starts:
        continue
    after = [d for d in drifts if starts[ph] <= d < starts[ph] + 5000]
    print(f"  change at {starts[ph]} ({names[ph]}): " +
          (f"found {after[0] - starts[ph]} records later" if after else "not found within 5,000 records"))
    if ph == 2 and not after:
        ok = False
if not ok:
    print("kafka summary: FAILED (a prediction missing or doubled, or the label flip not found)")
sys.exit(0 if ok else 1)
