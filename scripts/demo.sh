#!/usr/bin/env bash
# `make demo`: runs the demo job in one process and shows where its results are.
# For now this is the word-count example; the model demo replaces it (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin/tensair
out=out/wordcount
echo "== TensAIR demo: word count over Tiny Shakespeare (one process)"
echo "   $bin run examples/wordcount.toml --out $out"
"$bin" run examples/wordcount.toml --out "$out"
echo
echo "== The 10 most frequent words (from $out/wordcount.csv):"
tail -n +2 "$out/wordcount.csv" | sort -t, -k2,2nr | head -10 | sed 's/^/   /'
echo
echo "== Files written:"
ls -l "$out" | tail -n +2 | sed 's/^/   /'
echo
echo "Run it on 3 ranks:  mpirun -np 3 $bin run examples/wordcount.toml"
