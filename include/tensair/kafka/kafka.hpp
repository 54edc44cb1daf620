// Kafka in and out (librdkafka): a source that reads topics into batches and a sink that writes
// a stream to a topic, both part of the job's checkpoints (docs/kafka.md).
//
// Source. The partitions of `topics` (sorted by topic, then partition) are dealt to the source's
// instances statically: instance i of n takes entries i, i + n, i + 2n, ... (so with more
// instances than partitions some instances read nothing and end at once when `stop_at_end`).
// No consumer-group rebalancing happens: the offsets a checkpoint holds belong to an instance.
// Every message is decoded by `format` into the declared `fields`; one that does not decode is a
// dead letter naming topic/partition/offset. The message timestamp (milliseconds since the
// epoch) becomes the int64 column `timestamp_column` (empty: none). A checkpoint saves the next
// offset of every assigned partition (and the end offsets of `stop_at_end`); restored, the
// source seeks there. Offsets are committed to `group` only after a checkpoint completes
// (what `start = "committed"` and lag monitoring read), never as messages are read.
//
// Sink. format "json": one message per row (a JSON object of the columns, as jsonl_sink writes
// it), keyed by the value of `key_column` when given; "tensair": one message per batch (the batch codec). With
// `exactly_once` (the default) the sink writes what arrives between two checkpoint barriers to a
// spool file (OUT/kafka-spool/<operator>-<instance>/), and when checkpoint k completes it
// produces the spooled records of every segment up to k in one Kafka transaction that also
// commits the marker offset k for group "tensair-sink.<transactional id>"; restored, it reads the
// marker and produces the segments the marker does not cover, so each record is in the topic once
// for `read_committed` readers, across kill -9 and restore. Without exactly_once the records are
// produced at once by an idempotent producer and flushed at every checkpoint (at-least-once).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensair/dataflow/operator.hpp"
#include "tensair/ops/sources.hpp"

namespace tensair::kafka {

enum class Format { kJson, kCsv, kRaw, kTensair };
// "json", "csv", "raw", "tensair"; nullopt for another name.
std::optional<Format> parse_format(const std::string& name);
const char* format_name(Format f);

enum class Start { kEarliest, kLatest, kCommitted };

struct KafkaSourceOptions {
  std::string brokers;              // bootstrap servers, "host:port[,host:port...]"
  std::vector<std::string> topics;  // at least one
  std::string group;                // consumer group for committed offsets
  Format format = Format::kJson;
  dataflow::Schema fields;          // the columns of every message
  char delimiter = ',';             // csv
  Start start = Start::kEarliest;
  bool stop_at_end = false;         // end once every partition reached its end offset at start
  std::string timestamp_column = "timestamp";
  // batch_size, rate, burst, limit. limit counts records over all instances (each takes an
  // equal share); replay and shard do not apply to Kafka.
  ops::SourceOptions source;
  // librdkafka properties added to the consumer's configuration (e.g. security settings).
  std::vector<std::pair<std::string, std::string>> properties;
};
std::shared_ptr<const dataflow::OperatorDef> kafka_source(KafkaSourceOptions options);

struct KafkaSinkOptions {
  std::string brokers;
  std::string topic;
  Format format = Format::kJson;     // json or tensair
  std::vector<std::string> columns;  // json: the columns written, in order (empty: all)
  std::string key;                   // json: the column whose value keys each message (key_column)
  bool exactly_once = true;
  // The transactional id is "<transactional_id>-<instance>"; empty: "tensair.<job>.<operator>".
  std::string transactional_id;
  std::vector<std::pair<std::string, std::string>> properties;
};
std::shared_ptr<const dataflow::OperatorDef> kafka_sink(KafkaSinkOptions options);

// Registers the job-file types kafka_source and kafka_sink.
void register_job_types();

// A Kafka-protocol broker in this process (librdkafka's mock cluster) for tests and demos; its
// bootstrap address is on loopback. Topics are created with create_topic (auto-creation makes
// one partition).
class MockCluster {
 public:
  explicit MockCluster(int brokers = 1);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;
  const std::string& bootstrap() const { return bootstrap_; }
  void create_topic(const std::string& topic, int partitions);

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
  std::string bootstrap_;
};

}  // namespace tensair::kafka
