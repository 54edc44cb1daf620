"""The probe score of a set of word vectors: the mean cosine, after mean-centring, of pairs of
related words of the four corpora in ${TENSAIR_DATA}/text (kin, opposites, numbers, the sea).

    /usr/bin/python3 bench/peers/w2v_probe.py out/word2vec/vectors.txt

Mean-centring (subtracting the mean of every vector first) removes the common direction all
skip-gram vectors share, so that unrelated words score near 0 and the score compares models
trained differently (TensAIR, gensim). The score of random pairs is printed beside it as the
floor. Vectors are read in word2vec text format (a header "count dim", then "word v1 v2 ...").
"""
import sys

import numpy as np

PAIRS = [
    ("king", "queen"), ("man", "woman"), ("father", "mother"), ("son", "daughter"),
    ("brother", "sister"), ("husband", "wife"), ("he", "she"), ("his", "her"),
    ("mr", "mrs"), ("sir", "madam"), ("lord", "god"), ("heaven", "earth"), ("day", "night"),
    ("morning", "evening"), ("sun", "moon"), ("life", "death"), ("good", "evil"),
    ("love", "hate"), ("east", "west"), ("north", "south"), ("gold", "silver"),
    ("bread", "wine"), ("two", "three"), ("four", "five"), ("six", "seven"),
    ("first", "second"), ("ship", "boat"), ("sea", "ocean"), ("whale", "whales"),
    ("captain", "mate"), ("hand", "hands"), ("eyes", "face"), ("came", "went"),
    ("said", "answered"), ("sister", "sisters"), ("house", "home"),
]


def read_vectors(path):
    """{word: vector} from a word2vec text file."""
    words, rows = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().split()
        dim = int(header[1])
        for line in f:
            parts = line.rstrip("\n").split(" ")
            if len(parts) < dim + 1:
                continue
            words.append(parts[0])
            rows.append(np.asarray(parts[1:dim + 1], dtype=np.float64))
    if not rows:
        raise SystemExit(f"w2v_probe.py: no vectors in {path}")
    return words, np.vstack(rows)


def probe(words, matrix, pairs=PAIRS, seed=0):
    """(score of the related pairs, score of as many random pairs, pairs found)."""
    centred = matrix - matrix.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = centred / np.where(norms == 0, 1, norms)
    index = {w: i for i, w in enumerate(words)}
    found = [(index[a], index[b]) for a, b in pairs if a in index and b in index]
    if not found:
        raise SystemExit("w2v_probe.py: none of the probe pairs is in the vocabulary")
    score = float(np.mean([unit[i] @ unit[j] for i, j in found]))
    rng = np.random.default_rng(seed)
    # Random pairs among the 2,000 most frequent words (the probe words are frequent ones).
    top = min(len(words), 2000)
    r = rng.integers(0, top, size=(len(found), 2))
    floor = float(np.mean([unit[i] @ unit[j] for i, j in r if i != j]))
    return score, floor, len(found)


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: w2v_probe.py VECTORS.txt")
    score, floor, n = probe(*read_vectors(sys.argv[1]))
    print(f"probe {score:.3f} over {n} pairs (random pairs {floor:.3f})")


if __name__ == "__main__":
    main()
