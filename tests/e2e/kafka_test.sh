#!/usr/bin/env bash
# Kafka end to end, with a real Kafka-protocol broker (`tensair kafka-mock`, librdkafka's mock
# cluster) and a Python client (confluent-kafka):
#   - a Python producer writes 100,000 JSON records to a 4-partition topic;
#   - `mpirun -np 2` runs kafka_source (stop_at_end) -> model (trains and predicts every record)
#     -> kafka_sink (exactly_once, on rank 0), with checkpoints every 0.5 s;
#   - a Python consumer reads the predictions topic with isolation.level = read_committed: each
#     of the 100,000 ids once, and per input partition the count and the sum of ids the producer
#     wrote (each input consumed exactly once);
#   - the same with a kill -9 of rank 1 after a checkpoint and `--resume latest`: still each id
#     exactly once.
# Usage: kafka_test.sh TENSAIR_BINARY
set -euo pipefail
bin=$1
work=$(mktemp -d)
mock_pid=""
cleanup() {
  pkill -KILL -f "$work/" 2>/dev/null || true
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
py=/usr/bin/python3
mpi=(mpirun --oversubscribe --bind-to none)
RANDOM=$$
records=100000
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$bin" kafka-mock --topic in1:4 --topic preds1:4 --topic in2:4 --topic preds2:4 \
  --bootstrap-file "$work/bootstrap" > "$work/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 200); do [ -s "$work/bootstrap" ] && break; sleep 0.05; done
[ -s "$work/bootstrap" ] || { cat "$work/mock.log" >&2; fail "kafka-mock printed no bootstrap address"; }
brokers=$(cat "$work/bootstrap")
grep -q "kafka-mock: bootstrap $brokers" "$work/mock.log" || fail "kafka-mock did not print its address"
echo "mock broker at $brokers"

produce() {  # topic -> writes $work/<topic>.expected (per partition: count, sum of ids)
  $py - "$brokers" "$1" "$records" "$work/$1.expected" <<'PY'
import json, sys
from confluent_kafka import Producer
brokers, topic, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
p = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
count, total = [0] * 4, [0] * 4
for i in range(n):
    part = i % 4
    x = [((i * 7 + k * 13) % 17) / 17.0 for k in range(8)]
    p.produce(topic, json.dumps({"id": i, "x": x, "y": i % 3}), partition=part)
    count[part] += 1
    total[part] += i
    if i % 10000 == 0:
        p.poll(0)
assert p.flush(30) == 0, "undelivered messages"
json.dump({"count": count, "sum": total}, open(out, "w"))
PY
}

write_job() {  # file in preds [rate]
  cat > "$1" <<EOF
[job]
name = "kafka_e2e"
[checkpoint]
every_s = 0.5
[in]
type = "kafka_source"
brokers = "$brokers"
topic = "$2"
group = "e2e"
format = "json"
fields = ["id:int64", "x:float32[8]", "y:int64"]
stop_at_end = true
batch_size = 200
rate = ${4:-0}
[model]
type = "model"
network = "mlp"
layers = [8, 32, 3]
features = ["x"]
label = "y"
lr = 0.05
threads = 1
[model.inputs.train]
from = "in"
routing = "forward"
[model.inputs.predict]
from = "in"
routing = "forward"
[preds]
type = "kafka_sink"
from = "model.predictions"
brokers = "$brokers"
topic = "$3"
key_column = "id"
placement = 0
EOF
}

# Reads the predictions topic (read_committed) and checks each id once, and per input partition
# (id % 4) the producer's count and sum.
check_predictions() {  # topic expected label
  $py - "$brokers" "$1" "$records" "$2" "$3" <<'PY'
import json, sys, time
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
brokers, topic, n, expected, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
exp = json.load(open(expected))
c = Consumer({"bootstrap.servers": brokers, "group.id": "checker", "enable.partition.eof": True,
              "isolation.level": "read_committed", "enable.auto.commit": False})
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
seen, ended = {}, set()
deadline = time.time() + 120
while len(ended) < 4 and time.time() < deadline:
  for m in c.consume(num_messages=10000, timeout=0.2):
    if m.error():
        if m.error().code() == -191:  # _PARTITION_EOF
            ended.add(m.partition())
            continue
        raise SystemExit(f"{label}: consumer error {m.error()}")
    rec = json.loads(m.value())
    assert m.key().decode() == str(rec["id"]), f"{label}: key {m.key()} for id {rec['id']}"
    assert len(rec["output"]) == 3, f"{label}: output {rec['output']}"
    seen[rec["id"]] = seen.get(rec["id"], 0) + 1
c.close()
dups = sum(1 for v in seen.values() if v > 1)
total = sum(seen.values())
assert len(ended) == 4, f"{label}: only partitions {sorted(ended)} read to the end"
assert dups == 0, f"{label}: {dups} ids predicted more than once ({total} predictions)"
assert len(seen) == n and total == n, f"{label}: {len(seen)} distinct ids, {total} predictions, expected {n}"
count, sums = [0] * 4, [0] * 4
for i in seen:
    count[i % 4] += 1
    sums[i % 4] += i
assert count == exp["count"] and sums == exp["sum"], f"{label}: per partition {count} {sums}, produced {exp}"
print(f"{label}: {total} predictions read with read_committed, each id once; per partition "
      f"counts {count} and id sums equal the producer's")
PY
}

# 1. Uninterrupted.
produce in1
write_job "$work/job1.toml" in1 preds1
"${mpi[@]}" -np 2 "$bin" run "$work/job1.toml" --no-progress --out "$work/out1" > "$work/run1.log" 2>&1 ||
  { cat "$work/run1.log" >&2; fail "the uninterrupted run failed"; }
check_predictions preds1 "$work/in1.expected" "uninterrupted"
grep -q '"event":"kafka_lag"' "$work/out1/metrics.jsonl" || fail "no consumer lag in metrics.jsonl"
grep -q '"event":"kafka_assignment"' "$work/out1/metrics.jsonl" || fail "no partition assignment logged"

# 2. kill -9 of rank 1 once a checkpoint is complete, then --resume latest.
produce in2
# A rate (per instance) keeps the run a few seconds long, so the kill lands in its middle.
write_job "$work/job2.toml" in2 preds2 6000
out="$work/out2"
"${mpi[@]}" -np 2 "$bin" run "$work/job2.toml" --no-progress --out "$out" > "$work/run2.log" 2>&1 &
mpid=$!
killed=0
for _ in $(seq 1200); do
  if ls "$out"/checkpoints/ckpt-*/MANIFEST.json > /dev/null 2>&1; then
    sleep "0.$((RANDOM % 4 + 1))"
    for p in $(pgrep -P "$mpid"); do
      if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then
        echo "kill -9 rank 1 (pid $p)"
        kill -KILL "$p" && killed=1
      fi
    done
    break
  fi
  kill -0 "$mpid" 2>/dev/null || break
  sleep 0.05
done
rc=0
wait "$mpid" || rc=$?
[ "$killed" -eq 1 ] && [ "$rc" -ne 0 ] || { cat "$work/run2.log" >&2; fail "the job ended before the kill (rc $rc): make it longer"; }
"${mpi[@]}" -np 2 "$bin" run "$work/job2.toml" --no-progress --out "$out" --resume latest > "$work/run3.log" 2>&1 ||
  { cat "$work/run3.log" >&2; fail "the resumed run failed"; }
grep -q '"resumed_from"' "$out/metrics.jsonl" || fail "the second run did not resume"
check_predictions preds2 "$work/in2.expected" "killed and resumed"
echo "kafka e2e: passed"
