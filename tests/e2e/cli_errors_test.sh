#!/usr/bin/env bash
# Bad input tried as a new user would: each case must end quickly with exit code 2 and exactly
# one line from tensair on stderr ("tensair: error: ..."), no crash, no stack dump, no hang,
# both in one process and under mpirun.
# Usage: cli_errors_test.sh TENSAIR_BINARY REPO_ROOT
set -uo pipefail
bin=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
printf '[job\nname = "x"\n' > malformed.toml
printf '[src]\ntype = "text_sauce"\npath = "a.txt"\n' > unknown_op.toml
cp "$root/examples/wordcount.toml" wc.toml
printf '[gen]\ntype = "generator"\ncount = 10\ncolumns = { x = "normal[8]", y = "randint(2)" }\n[model]\ntype = "model"\nfrom = "gen"\nnetwork = "mlp"\nlayers = [8, 2]\n' > model.toml
failures=0

# check NAME EXPECTED_SUBSTRING COMMAND...
check() {
  local name=$1 expect=$2
  shift 2
  local err rc lines
  err=$(timeout 120 "$@" 2>&1 >/dev/null)
  rc=$?
  lines=$(printf '%s\n' "$err" | grep -c '^tensair: ')
  if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || ! printf '%s' "$err" | grep -qF -- "$expect" ||
     printf '%s' "$err" | grep -qE 'terminate called|Aborted \(core|Segmentation fault|core dumped|Process received signal|stack trace'; then
    echo "FAIL [$name]: exit $rc, $lines tensair line(s); stderr:" >&2
    printf '%s\n' "$err" | sed 's/^/    /' >&2
    failures=$((failures + 1))
  else
    echo "ok   [$name]: $(printf '%s\n' "$err" | grep '^tensair: ')"
  fi
}

for launch in "" "mpirun --oversubscribe -np 2"; do
  tag=${launch:+mpi2 }
  check "${tag}missing job file" "job file nope.toml does not exist" $launch "$bin" run nope.toml
  check "${tag}malformed TOML" "malformed.toml:1:5:" $launch "$bin" run malformed.toml
  check "${tag}unknown operator" 'unknown operator type "text_sauce" (did you mean "text_source"?)' $launch "$bin" run unknown_op.toml
  check "${tag}missing input file" "input file $work/missing.txt.gz does not exist" $launch "$bin" run wc.toml --set source.path=missing.txt.gz
  check "${tag}too few ranks" 'placement on rank 7 needs at least 8 ranks' $launch "$bin" run wc.toml --set source.placement=7
  check "${tag}unknown key" 'unknown key "pth" in [source]' $launch "$bin" run wc.toml --set source.pth=x
  check "${tag}wrong type" '--set source.batch_size: expected an integer, got a string' $launch "$bin" run wc.toml --set source.batch_size=lots
done
check "unknown network" '--set model.network: unknown network "mlpp" (known: cifar_cnn, mlp, skipgram' "$bin" validate model.toml --set model.network=mlpp
check "missing model file" 'gone/m.pt does not exist' "$bin" run model.toml --set model.network=gone/m.pt
check "unknown command" 'unknown command "rnu"' "$bin" rnu wc.toml
check "missing argument" 'job is required' "$bin" run
exit $((failures > 0))
