#!/usr/bin/env bash
# `tensair drift-eval --run OUT`, the terminal summary (scripts/drift_summary.py) and
# `tensair report` agree on a run's drift matches: the demo's own lines (changes at 60,000 and
# 105,000 with a 1,000-record shuffle buffer; OPTWIN fired at 59,776 and 104,800, just before
# each change, on its first shuffled records), a run with a false alarm, a repeat and a missed
# change, and the errors of drift-eval --run.
# Usage: matching_cli_test.sh TENSAIR_BINARY
set -euo pipefail
bin=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3
export TENSAIR_REPORT_SCRIPT="$root/scripts/report.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
source "$root/tests/testing/expect_error.sh"

# A drift run's metrics.jsonl as the demo writes it: model lines every 1,000 records, the
# sources' concept_change lines and the detector's drift lines. DETECTIONS: records positions.
write_run() {
  local dir=$1 detections=$2
  mkdir -p "$dir"
  $py - "$dir/metrics.jsonl" "$detections" <<'PY'
import json, sys
path, detections = sys.argv[1], [int(x) for x in sys.argv[2].split(",") if x]
out = [dict(t=0.0, type="job", event="start", job="drift_demo", ranks=1, operators=3)]
for i in range(1, 151):
    rec, t = i * 1000, i * 0.5
    out.append(dict(t=t, rank=0, operator="model", instance=0, kind="model", records=rec, step=i * 31,
                    version=i * 31, loss=1.0, accuracy=0.6, phase="predict"))
    for change in (60000, 105000):
        if rec == change - 1000:
            out.append(dict(t=t + 0.1, rank=0, operator="stream", instance=0, kind="concept_change",
                            index=change, tolerance=1000))
    for d in detections:
        if rec - 1000 < d <= rec:
            out.append(dict(t=t + 0.2, rank=0, operator="detector", instance=0, kind="drift",
                            detector="optwin", index=d, step=i * 31, version=i * 31, model_rank=0))
out.append(dict(t=80.0, type="job", event="end", status="finished"))
open(path, "w").write("\n".join(json.dumps(x) for x in out) + "\n")
PY
}

agree() {
  local name=$1 dir=$2 expected=$3
  if out=$($py "$root/tests/drift/check_agreement.py" "$bin" "$root" "$dir" "$expected" 2>&1); then
    echo "ok   [$name]: $out"
  else
    echo "FAIL [$name]: $out" >&2
    failures=$((failures + 1))
  fi
}

write_run "$work/demo" 59776,104800
agree "the demo's detections" "$work/demo" "60000:59776,105000:104800"
# 30,000: far from any change (a false alarm); 61,500 and 103,900: later detections in the first
# change's window [59,000, 104,000) (repeats); the second change's window holds none (missed).
write_run "$work/mixed" 30000,59500,61500,103900
agree "false alarm, repeats, miss" "$work/mixed" "60000:59500,105000:missed"
"$bin" drift-eval --run "$work/mixed" | grep -qF "2 repeat(s), 1 false alarm(s) at 30000" ||
  { echo "FAIL [mixed]: not 2 repeats and 1 false alarm" >&2; failures=$((failures + 1)); }
write_run "$work/none" ""
agree "no detections" "$work/none" "60000:missed,105000:missed"
# --tolerance overrides the sources': with 0, 59,776 comes before the first change's window.
"$bin" drift-eval --run "$work/demo" --tolerance 0 | grep -qF "| 60000 | 104800 | 44800 |" ||
  { echo "FAIL [--tolerance 0]" >&2; failures=$((failures + 1)); }

# Errors: one line, the exit code of the kind.
expect_error "no such run" 2 "tensair: error: output folder $work/nope does not exist" \
  "$bin" drift-eval --run "$work/nope"
mkdir -p "$work/empty"
expect_error "no metrics.jsonl" 2 "$work/empty/metrics.jsonl does not exist" \
  "$bin" drift-eval --run "$work/empty"
expect_error "--tolerance alone" 2 "--tolerance goes with --run OUT" "$bin" drift-eval --tolerance 5
expect_error "negative tolerance" 2 "drift-eval: --tolerance must be a number >= 0, not -5" "$bin" drift-eval --run "$work/demo" --tolerance -5
mkdir -p "$work/bad" && printf '{}\n{"kind":"drift","index":"x"}\n{}\n' > "$work/bad/metrics.jsonl"
expect_error "bad index" 1 "$work/bad/metrics.jsonl:2: \"index\" is not a number: \"x\"" \
  "$bin" drift-eval --run "$work/bad"
# The summary without drift_matches.json says how to make it.
set +e
err=$($py "$root/scripts/drift_summary.py" "$work/empty" 2>&1 >/dev/null); rc=$?
set -e
[ "$rc" -eq 1 ] && grep -qF "tensair drift-eval --run $work/empty" <<< "$err" ||
  { echo "FAIL [summary without matches]: exit $rc: $err" >&2; failures=$((failures + 1)); }

[ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "drift matching: drift-eval --run, the summary and the report agree; errors are one line"
