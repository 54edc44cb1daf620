#!/usr/bin/env bash
# Word count end to end, as a user runs it: `tensair run examples/wordcount.toml` on 1, 2 and 3
# ranks must write byte-identical CSVs, equal to an independent count of the same corpus
# (Python, over the same bytes: ASCII letters lowered, runs of [a-z]).
# Usage: wordcount_test.sh TENSAIR_BINARY REPO_ROOT
set -euo pipefail
bin=$1
root=$2
corpus=${TENSAIR_DATA:-$root/../shared/data}/text/tinyshakespeare.txt.gz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 - "$corpus" "$work/expected.csv" <<'PY'
import collections, gzip, re, sys
data = gzip.open(sys.argv[1]).read()
data = data.translate(bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz"))
counts = collections.Counter(re.findall(rb"[a-z]+", data))
with open(sys.argv[2], "wb") as out:
    out.write(b"word,count\n")
    for word in sorted(counts):
        out.write(word + b"," + str(counts[word]).encode() + b"\n")
PY

for np in 1 2 3; do
  mpirun --oversubscribe -np "$np" "$bin" run "$root/examples/wordcount.toml" --no-progress \
    --out "$work/np$np" --set "source.path=$corpus"
  if ! cmp -s "$work/expected.csv" "$work/np$np/wordcount.csv"; then
    echo "FAIL: $np ranks: output differs from the independent count" >&2
    diff "$work/expected.csv" "$work/np$np/wordcount.csv" | head -20 >&2
    exit 1
  fi
  # The metrics file exists and ends with the job's end line.
  tail -n 1 "$work/np$np/metrics.jsonl" | grep -q '"event":"end"' || { echo "FAIL: metrics.jsonl incomplete" >&2; exit 1; }
done
# Also without mpirun: an MPI singleton is a complete one-rank deployment.
"$bin" run "$root/examples/wordcount.toml" --no-progress --out "$work/single" --set "source.path=$corpus"
cmp "$work/expected.csv" "$work/single/wordcount.csv"
echo "word count: $(($(wc -l < "$work/expected.csv") - 1)) distinct words, identical on 1, 2, 3 ranks and in one process"
