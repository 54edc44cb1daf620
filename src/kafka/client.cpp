#include "kafka/client.hpp"

#include <algorithm>

#include "tensair/common/error.hpp"

namespace tensair::kafka {

void HandleDeleter::operator()(rd_kafka_t* rk) const {
  if (!rk) return;
  // A consumer leaves cleanly (no group membership is used, so this returns at once).
  if (rd_kafka_type(rk) == RD_KAFKA_CONSUMER) rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

std::string to_string(const TopicPartition& tp) {
  return tp.topic + "/" + std::to_string(tp.partition);
}

Handle make_client(rd_kafka_type_t type, const std::string& who, const std::string& brokers,
                   const std::vector<std::pair<std::string, std::string>>& properties,
                   const std::function<void(rd_kafka_conf_t*)>& setup) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  auto set = [&](const std::string& k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw ConfigError(who + ": Kafka property \"" + k + "\": " + errstr);
    }
  };
  set("bootstrap.servers", brokers);
  // librdkafka logs to stderr by default; its connection retries are expected while a broker
  // starts, so only errors are shown.
  set("log_level", "3");
  for (const auto& [k, v] : properties) set(k, v);
  if (setup) setup(conf);
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof errstr);  // takes conf on success
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw ConfigError(who + ": cannot create a Kafka client: " + errstr);
  }
  return Handle(rk);
}

std::vector<TopicPartition> list_partitions(rd_kafka_t* rk, const std::string& who,
                                            const std::vector<std::string>& topics,
                                            int timeout_ms) {
  std::vector<TopicPartition> out;
  for (const std::string& topic : topics) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    rd_kafka_topic_destroy(t);
    if (err) {
      throw IoError(who + ": cannot read the metadata of topic \"" + topic + "\" from the brokers: " +
                    rd_kafka_err2str(err));
    }
    std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> hold(
        md, rd_kafka_metadata_destroy);
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
      const std::string why = md->topic_cnt == 1 && md->topics[0].err
                                  ? rd_kafka_err2str(md->topics[0].err)
                                  : "no partitions";
      throw IoError(who + ": topic \"" + topic + "\": " + why);
    }
    for (int i = 0; i < md->topics[0].partition_cnt; ++i)
      out.push_back({topic, md->topics[0].partitions[i].id});
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void check(rd_kafka_resp_err_t err, const std::string& who, const std::string& what) {
  if (err) throw IoError(who + ": " + what + ": " + rd_kafka_err2str(err));
}

void check(rd_kafka_error_t* error, const std::string& who, const std::string& what) {
  if (!error) return;
  const std::string text = rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  throw IoError(who + ": " + what + ": " + text);
}

}  // namespace tensair::kafka
