"""The gensim peer of TensAIR's Word2Vec job (examples/word2vec.toml): skip-gram with negative
sampling on the same corpora, tokens, vocabulary rule and hyper-parameters.

    /usr/bin/python3 bench/peers/gensim_w2v.py --workers 2 --epochs 3 --json out.json

Same as TensAIR's skipgram_source + skipgram model: the four corpora of ${TENSAIR_DATA}/text
in the same order, one sentence per line, words = runs of letters and apostrophes, lowercased,
apostrophes trimmed at both ends (io/vocab.cpp's tokenize_words); min_count 5, at most 20,000
words (the most frequent), window 5 shrunk at random (as word2vec.c), 5 negatives, sample
1e-3, dim 100, the last 2 % of each file's lines held out. Different: gensim's learning rate
decays linearly from 0.025 per pair (TensAIR: constant lr 20 on the batch mean, about 0.02 per
pair), and it trains with --workers Hogwild threads in one process (TensAIR: replicas).

Words/s: the in-vocabulary tokens of the corpora times the epochs over the training time (the
vocabulary scan is not timed; TensAIR's corpus build is not timed either, bench_peers.py).
"""
import argparse
import gzip
import json
import logging
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from w2v_probe import probe  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("TENSAIR_DATA", os.path.join(REPO, "..", "shared", "data"))
CORPORA = ["austen_6novels.txt.gz", "kjv_bible.txt.gz", "mobydick.txt.gz",
           "tinyshakespeare.txt.gz"]
WORD = re.compile(r"[a-z']+")


def sentences(holdout_fraction=0.02):
    """The training lines as word lists: each file's last holdout_fraction of lines is left
    out, as skipgram_source holds them out for its held-out loss."""
    out = []
    for name in CORPORA:
        with gzip.open(os.path.join(DATA, "text", name), "rt", encoding="utf-8",
                       errors="replace") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        cut = int(len(lines) * (1.0 - holdout_fraction))
        for line in lines[:cut]:
            words = [w.strip("'") for w in WORD.findall(line.lower())]
            words = [w for w in words if w]
            if words:
                out.append(words)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--vectors", default="", help="write the vectors here (word2vec text)")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    logging.disable(logging.WARNING)
    from gensim.models import Word2Vec
    text = sentences()
    m = Word2Vec(vector_size=100, window=5, min_count=5, max_final_vocab=20000, sample=1e-3,
                 negative=5, sg=1, workers=a.workers, seed=a.seed)
    m.build_vocab(text)
    words = int(sum(m.wv.get_vecattr(w, "count") for w in m.wv.index_to_key))
    t0 = time.perf_counter()
    m.train(text, total_examples=m.corpus_count, epochs=a.epochs)
    seconds = time.perf_counter() - t0
    score, floor, n = probe(list(m.wv.index_to_key), m.wv.vectors.astype("float64"))
    if a.vectors:
        m.wv.save_word2vec_format(a.vectors)
    out = {"words_per_s": words * a.epochs / seconds, "seconds": seconds, "words": words,
           "epochs": a.epochs, "workers": a.workers, "vocab": len(m.wv.index_to_key),
           "probe": float(score), "probe_random": float(floor), "probe_pairs": int(n)}
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
