// librdkafka handles with ownership, configuration with errors that name the property, and the
// partition listing both the source and the sink use. Internal to src/kafka.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tensair::kafka {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const;
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  bool operator==(const TopicPartition&) const = default;
  auto operator<=>(const TopicPartition&) const = default;
};
std::string to_string(const TopicPartition& tp);  // "topic/3"

// Builds a client of `type` for `brokers` with `properties` set in order; a property librdkafka
// refuses is a ConfigError naming it and librdkafka's reason. `who` names the operator in errors.
// `setup` (optional) may set callbacks on the configuration before the client is made.
Handle make_client(rd_kafka_type_t type, const std::string& who, const std::string& brokers,
                   const std::vector<std::pair<std::string, std::string>>& properties,
                   const std::function<void(rd_kafka_conf_t*)>& setup = {});

// The partitions of `topics`, sorted, from the broker's metadata (waits up to `timeout_ms`). A
// topic the broker does not know, or one without partitions, is an IoError naming it.
std::vector<TopicPartition> list_partitions(rd_kafka_t* rk, const std::string& who,
                                            const std::vector<std::string>& topics,
                                            int timeout_ms);

// Throws IoError "<who>: <what>: <librdkafka's text>" unless `err` is NO_ERROR.
void check(rd_kafka_resp_err_t err, const std::string& who, const std::string& what);
// The same for an rd_kafka_error_t (destroyed here).
void check(rd_kafka_error_t* error, const std::string& who, const std::string& what);

}  // namespace tensair::kafka
