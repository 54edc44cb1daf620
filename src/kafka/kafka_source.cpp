// The Kafka source (kafka.hpp): static partition assignment, decoding, offsets in checkpoints,
// commits after completion, stop_at_end, consumer lag.
#include <chrono>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kafka/client.hpp"
#include "kafka/message_codec.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/common/metrics_registry.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/kafka/kafka.hpp"
#include "tensair/ops/operator_state.hpp"

namespace tensair::kafka {
namespace {

using dataflow::BatchBuilder;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;
using dataflow::SourceState;
using dataflow::StateReader;
using dataflow::StateWriter;
using Clock = std::chrono::steady_clock;

constexpr int kMetadataTimeoutMs = 10000;
constexpr uint32_t kLayout = 1;

// The partitions instance `instance` of `instances` reads: every instances-th of `all`.
std::vector<TopicPartition> dealt(const std::vector<TopicPartition>& all, int instance,
                                  int instances) {
  std::vector<TopicPartition> mine;
  for (size_t j = static_cast<size_t>(instance); j < all.size(); j += static_cast<size_t>(instances))
    mine.push_back(all[j]);
  return mine;
}

struct PartitionState {
  TopicPartition tp;
  int64_t next = RD_KAFKA_OFFSET_INVALID;  // the offset after the last message read
  int64_t end = -1;                         // stop_at_end: the end offset seen at start
  bool done = false;                        // stop_at_end: reached `end`
  int64_t high = -1;                        // the latest high watermark known (lag)
  metrics::Gauge* lag = nullptr;            // tensair_kafka_consumer_lag of the partition
};

class KafkaSource final : public dataflow::Operator {
 public:
  KafkaSource(KafkaSourceOptions o, const dataflow::InstanceInfo& info)
      : o_(std::move(o)),
        who_("kafka_source \"" + info.name + "\""),
        decoder_(o_.format, o_.fields, o_.delimiter),
        bucket_(o_.source.rate, o_.source.burst) {
    schema_ = o_.fields;
    if (!o_.timestamp_column.empty()) schema_.push_back({o_.timestamp_column, DType::kInt64, {}});
    if (o_.source.limit > 0) {
      share_ = o_.source.limit / info.instances + (info.instance < o_.source.limit % info.instances);
    }
  }

  void restore(StateReader& state, Context& ctx) override {
    ops::expect_layout(state, "kafka_source", kLayout);
    const auto n = state.get<uint64_t>();
    if (n > 1'000'000) state.fail("holds " + std::to_string(n) + " partitions");
    for (uint64_t i = 0; i < n; ++i) {
      PartitionState p;
      p.tp.topic = state.get_string();
      p.tp.partition = state.get<int32_t>();
      p.next = state.get<int64_t>();
      p.end = state.get<int64_t>();
      p.done = ops::get_flag(state);
      restored_.push_back(p);
    }
    records_ = state.get<int64_t>();
  }

  void open(Context& ctx) override {
    const auto& info = ctx.info();
    std::vector<std::pair<std::string, std::string>> props = {
        {"group.id", o_.group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
        {"isolation.level", "read_committed"},
        {"auto.offset.reset", o_.start == Start::kLatest ? "latest" : "earliest"},
        {"client.id", "tensair." + info.name + "." + std::to_string(info.instance)}};
    props.insert(props.end(), o_.properties.begin(), o_.properties.end());
    rk_ = make_client(RD_KAFKA_CONSUMER, who_, o_.brokers, props);
    rd_kafka_poll_set_consumer(rk_.get());

    const std::vector<TopicPartition> mine =
        dealt(list_partitions(rk_.get(), who_, o_.topics, kMetadataTimeoutMs), info.instance,
              info.instances);
    for (const TopicPartition& tp : mine) {
      PartitionState p;
      p.tp = tp;
      for (const PartitionState& r : restored_) {
        if (r.tp == tp) p = r;
      }
      parts_.push_back(p);
    }
    for (const PartitionState& r : restored_) {
      bool found = false;
      for (const PartitionState& p : parts_) found = found || p.tp == r.tp;
      if (!found) {
        throw DataError(who_ + ": the checkpoint holds partition " + to_string(r.tp) +
                        ", which is not among this instance's partitions now (" +
                        std::to_string(mine.size()) + "): was the topic or the instance count "
                        "changed?");
      }
    }
    if (o_.stop_at_end) {
      for (PartitionState& p : parts_) {
        if (p.end >= 0) continue;  // restored: the end seen by the first run
        int64_t low = 0, high = 0;
        check(rd_kafka_query_watermark_offsets(rk_.get(), p.tp.topic.c_str(), p.tp.partition,
                                               &low, &high, kMetadataTimeoutMs),
              who_, "cannot read the end offset of " + to_string(p.tp));
        p.end = high;
        if (o_.start == Start::kLatest && p.next < 0) p.done = true;  // nothing to read
      }
    }
    assign(ctx);
    ctx.log_event({{"event", "kafka_assignment"}, {"partitions", partition_names()}});
  }

  SourceState produce(Context& ctx) override {
    if (finished()) return SourceState::kDone;
    int64_t want = bucket_.take(o_.source.batch_size, ctx);
    if (share_ > 0) want = std::min(want, share_ - records_);
    BatchBuilder out(schema_);
    const auto deadline = Clock::now() + std::chrono::milliseconds(100);
    while (out.rows() < want && !finished()) {
      if (ctx.cancelled()) throw Cancelled();
      if (ctx.yield_requested() || Clock::now() >= deadline) break;
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_.get(), 50);
      if (!m) continue;
      std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> hold(
          m, rd_kafka_message_destroy);
      take(*m, out, ctx);
    }
    if (out.rows() > 0) ctx.emit(0, out.finish());
    report_lag(ctx, false);
    return finished() ? SourceState::kDone : SourceState::kMore;
  }

  // Between produce() calls every message read has been emitted, so the next offsets are the
  // whole position.
  void snapshot(StateWriter& state, Context& ctx) override {
    ops::put_layout(state, "kafka_source", kLayout);
    state.put<uint64_t>(parts_.size());
    for (const PartitionState& p : parts_) {
      state.put_string(p.tp.topic);
      state.put<int32_t>(p.tp.partition);
      state.put<int64_t>(p.next);
      state.put<int64_t>(p.end);
      ops::put_flag(state, p.done);
    }
    state.put<int64_t>(records_);
    std::vector<std::pair<TopicPartition, int64_t>> offsets;
    for (const PartitionState& p : parts_) {
      if (p.next >= 0) offsets.push_back({p.tp, p.next});
    }
    const uint64_t id = ctx.checkpoints().snapshot_id;
    if (id) saved_[id] = std::move(offsets);
  }

  // The group's committed offsets follow completed checkpoints only (Flink's rule): a restore
  // and a reader of the group then agree.
  void on_checkpoint_complete(uint64_t id, Context& ctx) override {
    auto it = saved_.find(id);
    if (it == saved_.end()) return;
    if (!it->second.empty()) {
      PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(it->second.size())));
      for (const auto& [tp, off] : it->second)
        rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = off;
      const rd_kafka_resp_err_t err = rd_kafka_commit(rk_.get(), list.get(), /*async=*/1);
      if (err) log().warn("{}: committing the offsets of checkpoint {}: {}", who_, id, rd_kafka_err2str(err));
    }
    saved_.erase(saved_.begin(), std::next(it));
  }

  void on_finish(Context& ctx) override { report_lag(ctx, true); }

 private:
  bool finished() const {
    if (share_ > 0 && records_ >= share_) return true;
    if (!o_.stop_at_end) return false;
    for (const PartitionState& p : parts_) {
      if (!p.done) return false;
    }
    return true;
  }

  void assign(Context& ctx) {
    PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(parts_.size())));
    for (PartitionState& p : parts_) {
      if (p.done) continue;
      auto* e = rd_kafka_topic_partition_list_add(list.get(), p.tp.topic.c_str(), p.tp.partition);
      if (p.next >= 0) e->offset = p.next;
      else if (o_.start == Start::kEarliest) e->offset = RD_KAFKA_OFFSET_BEGINNING;
      else if (o_.start == Start::kLatest) e->offset = RD_KAFKA_OFFSET_END;
      else e->offset = RD_KAFKA_OFFSET_STORED;  // the group's committed offset, else earliest
    }
    check(rd_kafka_assign(rk_.get(), list.get()), who_, "cannot assign its partitions");
  }

  PartitionState* find(const char* topic, int32_t partition) {
    for (PartitionState& p : parts_) {
      if (p.tp.partition == partition && p.tp.topic == topic) return &p;
    }
    return nullptr;
  }

  void mark_done(PartitionState& p) {
    p.done = true;
    PartitionList list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), p.tp.topic.c_str(), p.tp.partition);
    rd_kafka_pause_partitions(rk_.get(), list.get());  // fetch nothing past the end
  }

  void take(const rd_kafka_message_t& m, BatchBuilder& out, Context& ctx) {
    PartitionState* p = m.rkt ? find(rd_kafka_topic_name(m.rkt), m.partition) : nullptr;
    if (m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (p) {
        p->next = std::max(p->next, m.offset);
        if (o_.stop_at_end && !p->done && m.offset >= p->end) mark_done(*p);
      }
      return;
    }
    if (m.err) {
      const std::string text = rd_kafka_message_errstr(&m);
      if (m.err == RD_KAFKA_RESP_ERR__TRANSPORT || m.err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
          m.err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
        // librdkafka reconnects by itself: a broker that is away is waited for, not an error.
        log().warn("{}: {}", who_, text);
        return;
      }
      throw IoError(who_ + ": " + (p ? to_string(p->tp) + ": " : std::string()) + text);
    }
    if (!p || p->done) return;
    if (o_.stop_at_end && m.offset >= p->end) {
      mark_done(*p);
      return;
    }
    p->next = m.offset + 1;
    std::string why;
    const std::string_view payload(static_cast<const char*>(m.payload), m.len);
    const int64_t n = decoder_.decode(payload, out, why);
    if (n < 0) {
      ctx.dead_letter(fmt::format("{}@{}: {}", to_string(p->tp), m.offset, why),
                      std::string(payload.substr(0, 200)));
    } else if (!o_.timestamp_column.empty()) {
      rd_kafka_timestamp_type_t type;
      const int64_t ts = rd_kafka_message_timestamp(&m, &type);
      auto& col = out.column(o_.fields.size());
      for (int64_t i = 0; i < n; ++i) col.append<int64_t>(ts);
    }
    if (n > 0) records_ += n;
    if (o_.stop_at_end && p->next >= p->end) mark_done(*p);
  }

  std::vector<std::string> partition_names() const {
    std::vector<std::string> names;
    for (const PartitionState& p : parts_) names.push_back(to_string(p.tp));
    return names;
  }

  // Consumer lag per partition (high watermark - next offset), from librdkafka's cached
  // watermarks (no request), at most once a second, to metrics.jsonl.
  void report_lag(Context& ctx, bool final) {
    const auto now = Clock::now();
    if (!final && now < next_lag_) return;
    next_lag_ = now + std::chrono::seconds(1);
    nlohmann::json lag = nlohmann::json::object();
    int64_t total = 0;
    for (PartitionState& p : parts_) {
      int64_t low = 0, high = 0;
      if (rd_kafka_get_watermark_offsets(rk_.get(), p.tp.topic.c_str(), p.tp.partition, &low,
                                         &high) == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0) {
        p.high = high;
      }
      if (p.high < 0) continue;
      const int64_t l = std::max<int64_t>(0, p.high - std::max<int64_t>(p.next, 0));
      lag[to_string(p.tp)] = l;
      if (!p.lag) {
        p.lag = &metrics::registry().gauge(
            "tensair_kafka_consumer_lag",
            "Messages of the partition not yet read by the source (high watermark - position)",
            {{"operator", ctx.info().name}, {"topic", p.tp.topic},
             {"partition", std::to_string(p.tp.partition)}});
      }
      p.lag->set(static_cast<double>(l));
      total += l;
    }
    ctx.log_event({{"event", "kafka_lag"}, {"lag", lag}, {"total", total}, {"records", records_}});
  }

  KafkaSourceOptions o_;
  std::string who_;
  Schema schema_;
  MessageDecoder decoder_;
  ops::TokenBucket bucket_;
  Handle rk_;
  std::vector<PartitionState> parts_;
  std::vector<PartitionState> restored_;
  int64_t records_ = 0;  // records emitted by this instance (limit)
  int64_t share_ = 0;    // this instance's part of the limit (0: none)
  std::map<uint64_t, std::vector<std::pair<TopicPartition, int64_t>>> saved_;  // by checkpoint
  Clock::time_point next_lag_{};
};

class KafkaSourceDef final : public dataflow::OperatorDef {
 public:
  explicit KafkaSourceDef(KafkaSourceOptions o) : o_(std::move(o)) {
    if (o_.brokers.empty()) throw ConfigError("brokers: name the bootstrap servers, e.g. \"127.0.0.1:9092\"");
    if (o_.topics.empty()) throw ConfigError("topic: name the topic (or topics) to read");
    if (o_.group.empty()) throw ConfigError("group: name the consumer group");
    ops::check_source_options(o_.source);
    MessageDecoder check(o_.format, o_.fields, o_.delimiter);  // throws for impossible fields
    schema_ = o_.fields;
    if (!o_.timestamp_column.empty()) {
      if (dataflow::find_column(schema_, o_.timestamp_column)) {
        throw ConfigError("timestamp_column \"" + o_.timestamp_column +
                          "\" is also a field: name another (or \"\" for none)");
      }
      schema_.push_back({o_.timestamp_column, DType::kInt64, {}});
    }
  }
  std::string type() const override { return "kafka_source"; }
  std::vector<dataflow::PortSpec> outputs() const override { return {{"out", schema_}}; }
  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo& info) const override {
    return std::make_unique<KafkaSource>(o_, info);
  }
  std::string describe() const override {
    std::string topics;
    for (const auto& t : o_.topics) topics += (topics.empty() ? "" : ",") + t;
    return fmt::format("brokers={} topics={} group={} format={} stop_at_end={} {}", o_.brokers,
                       topics, o_.group, format_name(o_.format), o_.stop_at_end,
                       ops::source_options_text(o_.source));
  }

 private:
  KafkaSourceOptions o_;
  Schema schema_;
};

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> kafka_source(KafkaSourceOptions options) {
  return std::make_shared<KafkaSourceDef>(std::move(options));
}

}  // namespace tensair::kafka
