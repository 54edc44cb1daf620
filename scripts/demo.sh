#!/usr/bin/env bash
# `make demo`: the drift demo in one process (examples/drift_demo.toml), its terminal summary and
# its report. Pass extra `tensair run` arguments through DEMO_ARGS, e.g.
#   make demo DEMO_ARGS="--set stream.limit=60000"
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin/tensair
out=out/drift_demo
echo "== TensAIR demo: a CNN learns CIFAR-10 online; the labels change twice; OPTWIN notices"
echo "   $bin run examples/drift_demo.toml --out $out ${DEMO_ARGS:-}"
# shellcheck disable=SC2086  # DEMO_ARGS is a list of arguments
"$bin" run examples/drift_demo.toml --out "$out" ${DEMO_ARGS:-}  # progress line on a terminal
"$bin" drift-eval --run "$out" > /dev/null  # writes $out/drift_matches.json
/usr/bin/python3 scripts/drift_summary.py "$out"
echo
"$bin" report "$out"
echo
echo "Open $out/report.md (plots in $out/report/). On 2 ranks:"
echo "   mpirun -np 2 $bin run examples/drift_demo.toml"
