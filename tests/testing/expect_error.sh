# Sourced by the shell tests: the contract for bad input, checked in one place.
#
# expect_error NAME CODE EXPECTED COMMAND...
#   Runs COMMAND (at most 120 s) and expects exit code CODE and exactly one line from tensair on
#   stderr ("tensair: ...") that contains EXPECTED, and nothing else there: no crash, traceback or
#   stack dump. Under mpirun (COMMAND starts with it) Open MPI's own notice of a non-zero exit
#   may follow. Prints "ok" or "FAIL" with the name and adds failures to $failures.
#   Safe under `set -e`.
expect_error() {
  local name=$1 code=$2 expect=$3
  shift 3
  local err rc lines total
  err=$(timeout 120 "$@" 2>&1 >/dev/null) && rc=0 || rc=$?
  lines=$(printf '%s\n' "$err" | grep -c '^tensair: ' || true)
  total=$(printf '%s\n' "$err" | grep -c . || true)
  if [ "$1" = mpirun ]; then total=1; fi
  if [ "$rc" -ne "$code" ] || [ "$lines" -ne 1 ] || [ "$total" -ne 1 ] ||
     ! printf '%s' "$err" | grep -qF -- "$expect" ||
     printf '%s' "$err" | grep -qE 'terminate called|Aborted|Segmentation fault|core dumped|Process received signal|stack trace'; then
    echo "FAIL [$name]: exit $rc (want $code), $lines tensair line(s) of $total; stderr:" >&2
    printf '%s\n' "$err" | sed 's/^/    /' >&2
    failures=$((failures + 1))
  else
    echo "ok   [$name]: $(printf '%s\n' "$err" | grep '^tensair: ')"
  fi
}
