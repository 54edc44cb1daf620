#!/usr/bin/python3
"""Asks the sentiment job's live endpoint (examples/kafka/sentiment.toml, `serve_port`) about
sentences, while the model trains: the client side of docs/serving.md for a text model.

The model takes hashed bags of words, so the client hashes each sentence exactly as the job's
hash_features operator does (dim 4096, unigrams and bigrams, ASCII lower-casing, tokens of
[a-z0-9'], FNV-1a + splitmix64, signed, unit length; src/ops/functional.cpp) and sends the
vectors in one KServe v2 infer request. Prints one line per sentence: the predicted class, its
probability, and the model version that answered.

  /usr/bin/python3 examples/kafka/ask_sentiment.py http://127.0.0.1:PORT ["some text" ...]
"""
import json
import math
import sys
import urllib.request

DIM = 4096
MASK = (1 << 64) - 1
TOKEN_BYTES = set(b"abcdefghijklmnopqrstuvwxyz0123456789'")


def splitmix(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def fnv(token):
    h = 0xCBF29CE484222325
    for c in token:
        h = ((h ^ c) * 0x100000001B3) & MASK
    return splitmix(h)


def hashed_bag(text):
    v = [0.0] * DIM

    def add(h):
        v[(h >> 1) % DIM] += 1.0 if h & 1 else -1.0

    prev, token = None, bytearray()
    for c in text.encode() + b"\0":
        if ord("A") <= c <= ord("Z"):
            c += 32
        if c in TOKEN_BYTES:
            token.append(c)
        elif token:
            h = fnv(token)
            add(h)
            if prev is not None:
                add(splitmix((prev * 31 + h) & MASK))
            prev, token = h, bytearray()
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v] if norm > 0 else v


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    url = sys.argv[1].rstrip("/")
    texts = sys.argv[2:] or ["I love this, what a great day", "worst flight ever, so angry",
                             "thank you so much for the help", "my bag is lost again"]
    body = {"inputs": [{"name": "x", "shape": [len(texts), DIM], "datatype": "FP32",
                        "data": [hashed_bag(t) for t in texts]}]}
    req = urllib.request.Request(url + "/v2/models/model/infer", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read())
    logits = answer["outputs"][0]["data"]
    for i, text in enumerate(texts):
        neg, pos = logits[2 * i], logits[2 * i + 1]
        p_pos = 1 / (1 + math.exp(neg - pos))
        label = "positive" if p_pos >= 0.5 else "negative"
        print(f"ask_sentiment: version {answer['model_version']}: {label} "
              f"(p {max(p_pos, 1 - p_pos):.2f}): {text}")


if __name__ == "__main__":
    main()
