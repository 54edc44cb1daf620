// librdkafka's mock cluster (rdkafka_mock.h): real Kafka-protocol brokers on loopback, inside
// this process. The rd_kafka_t it needs is a producer that sends nothing.
#include <librdkafka/rdkafka.h>
// (after rdkafka.h, which it needs)
#include <librdkafka/rdkafka_mock.h>

#include "kafka/client.hpp"
#include "tensair/common/error.hpp"
#include "tensair/kafka/kafka.hpp"

namespace tensair::kafka {

struct MockCluster::Handle {
  kafka::Handle owner;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Handle() {
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
  }
};

MockCluster::MockCluster(int brokers) : handle_(std::make_unique<Handle>()) {
  if (brokers < 1) throw ConfigError("a mock cluster needs at least one broker");
  // The owner needs no broker of its own: an unused bootstrap address keeps it from connecting.
  handle_->owner = make_client(RD_KAFKA_PRODUCER, "kafka mock cluster", "", {});
  handle_->cluster = rd_kafka_mock_cluster_new(handle_->owner.get(), brokers);
  if (!handle_->cluster) throw IoError("cannot start a Kafka mock cluster (librdkafka)");
  bootstrap_ = rd_kafka_mock_cluster_bootstraps(handle_->cluster);
}

MockCluster::~MockCluster() = default;

void MockCluster::create_topic(const std::string& topic, int partitions) {
  if (partitions < 1) throw ConfigError("topic \"" + topic + "\": at least one partition");
  check(rd_kafka_mock_topic_create(handle_->cluster, topic.c_str(), partitions, 1),
        "kafka mock cluster", "cannot create topic \"" + topic + "\"");
}

}  // namespace tensair::kafka
