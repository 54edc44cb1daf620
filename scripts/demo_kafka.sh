#!/usr/bin/env bash
# `make demo-kafka`: the sentiment use case through Kafka, end to end on a local broker.
#   1. tensair kafka-mock starts a Kafka-protocol broker with the topics tweets and sentiment;
#   2. examples/kafka/produce_tweets.py produces the tweet stream at RATE messages/s (Sentiment140,
#      then US-airline tweets, then Sentiment140 with flipped labels);
#   3. tensair runs examples/kafka/sentiment.toml while the stream arrives: hashed bag of words ->
#      logistic regression learnt online, predictions to the sentiment topic (exactly once), OPTWIN
#      on the loss; the model also serves its live replica (serve_port = 0), and
#      examples/kafka/ask_sentiment.py asks it about four sentences at 5 s and 12 s into the run;
#   4. scripts/kafka_summary.py reads the predictions back (read_committed) and prints accuracy per
#      phase and window and the detections; it exits non-zero unless the label flip was found.
# Usage: demo_kafka.sh TENSAIR_BINARY [OUT]   (RATE=4000 by default)
set -euo pipefail
bin=$1
out=${2:-out/sentiment}
rate=${RATE:-4000}
here=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
mkdir -p "$out"
rm -f "$out/bootstrap"
"$bin" kafka-mock --topic tweets:2 --topic sentiment:2 --bootstrap-file "$out/bootstrap" > "$out/kafka-mock.log" 2>&1 &
mock=$!
producer=""
trap 'kill $mock $producer 2>/dev/null || true' EXIT
for _ in $(seq 200); do [ -s "$out/bootstrap" ] && break; sleep 0.05; done
[ -s "$out/bootstrap" ] || { cat "$out/kafka-mock.log" >&2; exit 1; }
brokers=$(cat "$out/bootstrap")
echo "demo-kafka: broker at $brokers (tensair kafka-mock)"
total=$($py - "${TENSAIR_DATA:-$here/../shared/data}" <<'PY'
import csv, gzip, os, sys
with gzip.open(os.path.join(sys.argv[1], "sentiment", "us_airline_tweets.csv.gz"), "rt", encoding="utf-8") as f:
    print(30000 + 15000 + sum(1 for r in csv.DictReader(f) if r["airline_sentiment"] != "neutral"))
PY
)
$py "$here/examples/kafka/produce_tweets.py" --brokers "$brokers" --topic tweets --rate "$rate" \
  --truth "$out/truth.jsonl" &
producer=$!
"$bin" run "$here/examples/kafka/sentiment.toml" --out "$out" \
  --set "tweets.brokers=$brokers" --set "predictions.brokers=$brokers" --set "tweets.limit=$total" \
  2> >(tee "$out/run.log" >&2) &
job=$!
# The endpoint, while the model learns: its address is in the job's log.
url=""
for _ in $(seq 300); do
  url=$(grep -o "serving at http://[0-9.]*:[0-9]*" "$out/run.log" 2>/dev/null | head -1 | sed 's/.* at //') || true
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "demo-kafka: the model did not start serving" >&2; exit 1; }
for at in 5 12; do
  sleep $((at - ${last:-0})); last=$at
  $py "$here/examples/kafka/ask_sentiment.py" "$url"
done
wait "$job"
wait "$producer"
producer=""
$py "$here/scripts/kafka_summary.py" --brokers "$brokers" --topic sentiment --out "$out"
