#!/usr/bin/env bash
# `tensair detect` as a user runs it: a small file, the same data on stdin, --json, and bad
# input (one line on stderr, exit code 2, no crash).
# Usage: detect_cli_test.sh TENSAIR_BINARY
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../testing/expect_error.sh"
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
fail() {
  echo "FAIL [$1]: $2" >&2
  failures=$((failures + 1))
}

# 300 losses around 1.0 (a fixed +-0.1 pattern), then 300 around 2.0: one upward change at 300.
awk 'BEGIN { for (i = 0; i < 600; i++) printf "%.3f\n", (i < 300 ? 1.0 : 2.0) + ((i * 7) % 5 - 2) * 0.05 }' > loss.txt
gzip -c loss.txt > loss.txt.gz

for det in optwin adwin page-hinkley; do
  out=$(timeout 60 "$bin" detect --detector "$det" loss.txt 2>err.txt)
  rc=$?
  if [ "$rc" -ne 0 ] || [ -s err.txt ]; then
    fail "$det file" "exit $rc, stderr: $(cat err.txt)"
    continue
  fi
  n=$(printf '%s\n' "$out" | grep -c .)
  first=$(printf '%s\n' "$out" | head -1)
  if [ "$n" -ne 1 ] || [ "$first" -lt 300 ] || [ "$first" -gt 400 ]; then
    fail "$det file" "expected one detection in [300, 400], got: $(echo $out)"
  else
    echo "ok   [$det file]: detection at $first"
  fi
  # The same numbers on stdin, and gzip-compressed: the same answer.
  same=$(timeout 60 "$bin" detect --detector "$det" - < loss.txt)
  [ "$same" = "$out" ] || fail "$det stdin" "stdin gave '$same', file gave '$out'"
  same=$(timeout 60 "$bin" detect --detector "$det" loss.txt.gz)
  [ "$same" = "$out" ] || fail "$det gzip" "gzip gave '$same', file gave '$out'"
done

# Parameters change the answer: watching decreases, nothing is found.
out=$(timeout 60 "$bin" detect --detector optwin --param direction=decrease --param w_length=1000 loss.txt)
[ -z "$out" ] && echo "ok   [direction=decrease]: no detection" || fail "direction=decrease" "got '$out'"

# --json: one object with the detections, the parameters and a rate.
json=$(timeout 60 "$bin" detect --detector optwin --param rho=0.5 --json loss.txt)
if printf '%s' "$json" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["detector"] == "optwin", j
assert j["values"] == 600, j
assert len(j["detections"]) == 1 and 300 <= j["detections"][0] <= 400, j
assert j["parameters"]["rho"] == 0.5 and j["parameters"]["confidence"] == 0.999, j
assert j["updates_per_s"] > 0, j
assert "window" in j["state"], j
'; then echo "ok   [--json]"; else fail "--json" "$json"; fi

# Bad input: exit 2 and exactly one line on stderr (expect_error).
printf '1.0\n2.0\nabc\n4.0\n' > bad.txt
expect_error "not a number" 2 "tensair: error: bad.txt:3: not a number: abc" "$bin" detect --detector optwin bad.txt
expect_error "not a number on stdin" 2 "tensair: error: <stdin>:3: not a number: abc" sh -c "\"$bin\" detect --detector adwin - < bad.txt"
printf '0\n1\n0.5\n' > errors.txt
expect_error "not an indicator" 2 "errors.txt:3: page-hinkley: input value is 0.5 (input = \"error\" takes only 0 or 1)" \
  "$bin" detect --detector page-hinkley --param input=error errors.txt
expect_error "unknown parameter" 2 'unknown parameter "rhoo" for optwin (known: confidence, rho' \
  "$bin" detect --detector optwin --param rhoo=0.5 loss.txt
expect_error "bad parameter value" 2 'optwin parameter "confidence": must be in (0, 1), got 2' \
  "$bin" detect --detector optwin --param confidence=2 loss.txt
expect_error "param without =" 2 '--param "rho": expected KEY=VALUE' "$bin" detect --detector optwin --param rho loss.txt
expect_error "unknown detector" 2 'unknown detector "kswin" (known: optwin, adwin, page-hinkley)' \
  "$bin" detect --detector kswin loss.txt
expect_error "missing file" 2 "input file nope.txt does not exist" "$bin" detect --detector optwin nope.txt
expect_error "missing detector" 2 "--detector is required" "$bin" detect loss.txt

exit $((failures > 0))
