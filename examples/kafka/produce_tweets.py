#!/usr/bin/env python3
"""Produces the sentiment stream of the Kafka demo (docs/use-cases.md) to a topic, at a rate.

Phases (the `phase` field):
  0  Sentiment140: positive and negative tweets, mixed (seeded shuffle)
  1  US-airline tweets (positive and negative; neutral left out), in tweet-id (time) order:
     a new domain, with its own words and mostly complaints
  2  Sentiment140 again with every label flipped: the concept itself changes
Each message is JSON {"id", "text", "y" (0 negative, 1 positive), "phase"}; the record ids count
from 0 in stream order. Writes the stream's labels and phases to --truth (one JSON line per
record) for the summary.

  /usr/bin/python3 examples/kafka/produce_tweets.py --brokers HOST:PORT --topic tweets \
      --rate 4000 --truth out/truth.jsonl
"""
import argparse
import csv
import gzip
import io
import json
import os
import random
import sys
import time

from confluent_kafka import Producer


def sentiment140(data, seed):
    rows = []
    for name, label in (("sentiment140_negative_50k.txt.gz", 0), ("sentiment140_positive_50k.txt.gz", 1)):
        with gzip.open(os.path.join(data, "sentiment", name), "rt", encoding="utf-8", errors="replace") as f:
            rows += [(line.strip(), label) for line in f if line.strip()]
    random.Random(seed).shuffle(rows)
    return rows


def airline(data):
    with gzip.open(os.path.join(data, "sentiment", "us_airline_tweets.csv.gz"), "rt", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["airline_sentiment"] != "neutral"]
    rows.sort(key=lambda r: int(r["tweet_id"]))
    return [(r["text"].replace("\n", " "), 1 if r["airline_sentiment"] == "positive" else 0) for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", default="tweets")
    ap.add_argument("--rate", type=float, default=4000, help="messages per second (0: as fast as possible)")
    ap.add_argument("--first", type=int, default=30000, help="Sentiment140 tweets before the change")
    ap.add_argument("--flipped", type=int, default=15000, help="label-flipped tweets at the end")
    ap.add_argument("--truth", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=os.environ.get("TENSAIR_DATA", os.path.join(os.path.dirname(__file__), "../../../shared/data")))
    a = ap.parse_args()

    s140 = sentiment140(a.data, a.seed)
    need = a.first + a.flipped
    if len(s140) < need:
        sys.exit(f"produce_tweets: only {len(s140)} Sentiment140 tweets, {need} wanted")
    stream = [(t, y, 0) for t, y in s140[:a.first]]
    stream += [(t, y, 1) for t, y in airline(a.data)]
    stream += [(t, 1 - y, 2) for t, y in s140[a.first:need]]

    p = Producer({"bootstrap.servers": a.brokers, "linger.ms": 5, "acks": "all"})
    failed = []

    def delivered(err, msg):
        if err is not None:
            failed.append(str(err))
    start = time.monotonic()
    with open(a.truth, "w") as truth:
        for i, (text, y, phase) in enumerate(stream):
            if a.rate > 0:
                ahead = i / a.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            while True:
                try:
                    p.produce(a.topic, json.dumps({"id": i, "text": text, "y": y, "phase": phase}),
                              on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let it drain
                    p.poll(0.05)
            truth.write(json.dumps({"id": i, "y": y, "phase": phase}) + "\n")
            if i % 1000 == 0:
                p.poll(0)
    if p.flush(60) != 0 or failed:
        sys.exit(f"produce_tweets: {len(failed)} messages were not delivered ({failed[:1]})")
    changes = [a.first, a.first + len(stream) - need]
    print(f"produce_tweets: {len(stream)} tweets to {a.topic} in {time.monotonic() - start:.1f} s; "
          f"phases start at 0, {changes[0]} (airline tweets), {changes[1]} (labels flipped)")


if __name__ == "__main__":
    main()
