// The Kafka sink (kafka.hpp): exactly-once through a write-ahead spool and one transaction per
// completed checkpoint, or at-least-once through an idempotent producer.
//
// Exactly-once, precisely. Segment n holds what arrived after the previous snapshot; snapshot
// k (checkpoint k) closes it as pending (n, k) and the engine fsyncs it before k can complete.
// When k completes, every pending segment of a checkpoint <= k is produced in one transaction
// that also commits offset k on partition 0 of the topic for the marker group; then the files
// are deleted. A restore from checkpoint k finds the segments pending at snapshot k in its state
// and on disk, reads the marker m, and produces in one transaction those of a checkpoint > m
// (the marker says the others are in the topic). init_transactions() with the same
// transactional id first fences the previous incarnation and aborts its open transaction, so a
// transaction cut by a crash is never seen by read_committed readers.
#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "kafka/client.hpp"
#include "kafka/message_codec.hpp"
#include "kafka/spool.hpp"
#include "ops/row_format.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/kafka/kafka.hpp"
#include "tensair/ops/operator_state.hpp"

namespace tensair::kafka {
namespace {

namespace fs = std::filesystem;
using dataflow::BatchPtr;
using dataflow::Column;
using dataflow::Context;
using dataflow::DType;
using dataflow::StateReader;
using dataflow::StateWriter;

constexpr uint32_t kLayout = 1;
constexpr int kTxnTimeoutMs = 60000;
constexpr int kMetadataTimeoutMs = 10000;

struct Segment {
  uint64_t seq = 0;
  uint64_t checkpoint = 0;
  uint64_t bytes = 0;
  uint64_t messages = 0;
};

class KafkaSink final : public dataflow::Operator {
 public:
  KafkaSink(KafkaSinkOptions o, const dataflow::InstanceInfo& info)
      : o_(std::move(o)), who_("kafka_sink \"" + info.name + "\"") {}

  void restore(StateReader& state, Context&) override {
    ops::expect_layout(state, "kafka_sink", kLayout);
    next_seq_ = state.get<uint64_t>();
    const auto n = state.get<uint64_t>();
    if (n > 1'000'000) state.fail("holds " + std::to_string(n) + " spool segments");
    for (uint64_t i = 0; i < n; ++i) {
      Segment s;
      s.seq = state.get<uint64_t>();
      s.checkpoint = state.get<uint64_t>();
      s.bytes = state.get<uint64_t>();
      s.messages = state.get<uint64_t>();
      pending_.push_back(s);
    }
  }

  void open(Context& ctx) override {
    const auto& info = ctx.info();
    std::string base = o_.transactional_id;
    if (base.empty()) base = "tensair." + info.out_dir.filename().string() + "." + info.name;
    tid_ = base + "-" + std::to_string(info.instance);
    std::vector<std::pair<std::string, std::string>> props = {
        {"client.id", "tensair." + info.name + "." + std::to_string(info.instance)},
        {"linger.ms", "5"}};
    if (o_.exactly_once) {
      props.push_back({"transactional.id", tid_});
      props.push_back({"transaction.timeout.ms", std::to_string(kTxnTimeoutMs)});
    } else {
      props.push_back({"enable.idempotence", "true"});
    }
    props.insert(props.end(), o_.properties.begin(), o_.properties.end());
    producer_ = make_client(RD_KAFKA_PRODUCER, who_, o_.brokers, props, [this](rd_kafka_conf_t* c) {
      rd_kafka_conf_set_opaque(c, this);
      rd_kafka_conf_set_dr_msg_cb(c, &KafkaSink::on_delivery);
    });
    list_partitions(producer_.get(), who_, {o_.topic}, kMetadataTimeoutMs);  // the topic exists
    if (!o_.exactly_once) return;

    check(rd_kafka_init_transactions(producer_.get(), kTxnTimeoutMs), who_,
          "cannot start transactions (transactional id \"" + tid_ + "\")");
    marker_group_ = "tensair-sink." + tid_;
    marker_ = make_client(RD_KAFKA_CONSUMER, who_, o_.brokers,
                          {{"group.id", marker_group_}, {"enable.auto.commit", "false"}});
    dir_ = info.out_dir / "kafka-spool" / (info.name + "-" + std::to_string(info.instance));
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) throw IoError(who_ + ": cannot create the spool folder " + dir_.string() + ": " + ec.message());
    remove_leftover_segments();
    const int64_t marker = read_marker();
    marker_value_ = static_cast<uint64_t>(marker);
    if (!pending_.empty()) {
      // Restored: produce what the marker says is not in the topic yet.
      std::vector<Segment> todo;
      for (const Segment& s : pending_) {
        if (static_cast<int64_t>(s.checkpoint) > marker) todo.push_back(s);
      }
      log().info("{}: restored with {} spooled segments, {} not yet in the topic (marker {})", who_,
                 pending_.size(), todo.size(), marker);
      commit(todo, std::max<uint64_t>(pending_.back().checkpoint, marker_value_));
      for (const Segment& s : pending_) fs::remove(segment_path(s.seq), ec);
      pending_.clear();
    }
  }

  void process(int, const BatchPtr& batch, Context& ctx) override {
    if (o_.format == Format::kTensair) {
      write(std::nullopt, encode_tensair(batch));
      return;
    }
    std::vector<const Column*> cols;
    if (o_.columns.empty()) {
      for (const Column& c : batch->columns()) cols.push_back(&c);
    } else {
      for (const std::string& name : o_.columns) {
        const Column* c = batch->find(name);
        if (!c) throw DataError(who_ + ": the batch has no column \"" + name + "\"");
        cols.push_back(c);
      }
    }
    const Column* key = o_.key.empty() ? nullptr : batch->find(o_.key);
    if (!o_.key.empty() && !key) throw DataError(who_ + ": the batch has no key column \"" + o_.key + "\"");
    std::string k;
    for (int64_t r = 0; r < batch->rows(); ++r) {
      if (key) {
        k.clear();
        if (key->dtype() == DType::kString) k = key->str(r);
        else ops::append_value(k, *key, r, ops::Format::kCsv, ',');
      }
      write(key ? std::optional<std::string_view>(k) : std::nullopt, encode_json_row(cols, r));
    }
  }

  void snapshot(StateWriter& state, Context& ctx) override {
    if (o_.exactly_once) {
      if (writer_) {
        const int fd = writer_->flush();
        ctx.sync_at_checkpoint(fd);
        pending_.push_back({next_seq_, ctx.checkpoints().snapshot_id, writer_->bytes(), writer_->messages()});
        writer_.reset();
        next_seq_++;
      }
    } else {
      flush_producer(ctx);
    }
    ops::put_layout(state, "kafka_sink", kLayout);
    state.put<uint64_t>(next_seq_);
    state.put<uint64_t>(pending_.size());
    for (const Segment& s : pending_) {
      state.put<uint64_t>(s.seq);
      state.put<uint64_t>(s.checkpoint);
      state.put<uint64_t>(s.bytes);
      state.put<uint64_t>(s.messages);
    }
  }

  void on_checkpoint_complete(uint64_t id, Context&) override {
    if (o_.exactly_once) commit_through(id);
  }

  void on_finish(Context& ctx) override {
    if (!o_.exactly_once) {
      flush_producer(ctx);
      return;
    }
    const Context::CheckpointView v = ctx.checkpoints();
    if (v.enabled && v.stopping) {
      // Stopping on a signal: what came after the last snapshot will be produced again by the
      // resumed run, so only completed checkpoints' segments are committed. The last snapshot's
      // checkpoint completes without this instance (it has reported); wait for it a while.
      const uint64_t last = pending_.empty() ? 0 : pending_.back().checkpoint;
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      uint64_t done = v.last_complete;
      while (done < last && std::chrono::steady_clock::now() < give_up && !ctx.cancelled()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        done = ctx.checkpoints().last_complete;
      }
      commit_through(done);
      if (!pending_.empty()) {
        log().warn("{}: {} spooled segments wait for a checkpoint that did not complete; a resumed "
                   "run writes them", who_, pending_.size());
      }
      discard_open_segment();
      return;
    }
    // The end of the stream: everything goes out now, in one last transaction.
    // Its marker is above every checkpoint's (the marker never goes back).
    uint64_t last = std::max(v.last_complete, marker_value_);
    for (const Segment& s : pending_) last = std::max(last, s.checkpoint);
    if (writer_) {
      writer_->flush();
      pending_.push_back({next_seq_, last + 1, writer_->bytes(), writer_->messages()});
      writer_.reset();
      next_seq_++;
    }
    commit_through(UINT64_MAX);
  }

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<KafkaSink*>(opaque);
    if (m->err && self->delivery_error_.empty()) self->delivery_error_ = rd_kafka_err2str(m->err);
  }

  fs::path segment_path(uint64_t seq) const { return dir_ / fmt::format("segment-{:08}.spool", seq); }

  void write(std::optional<std::string_view> key, const std::string& value) {
    if (!o_.exactly_once) {
      produce(key, value);
      rd_kafka_poll(producer_.get(), 0);
      if (!delivery_error_.empty()) throw IoError(who_ + ": a message was not delivered: " + delivery_error_);
      return;
    }
    if (!writer_) writer_ = std::make_unique<SegmentWriter>(segment_path(next_seq_));
    writer_->append(key, value);
  }

  void produce(std::optional<std::string_view> key, std::string_view value) {
    const void* key_data = key ? static_cast<const void*>(key->data()) : nullptr;
    const size_t key_size = key ? key->size() : 0;
    for (;;) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer_.get(), RD_KAFKA_V_TOPIC(o_.topic.c_str()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_KEY(key_data, key_size),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer_.get(), 50);  // the local queue drains as the broker acknowledges
        continue;
      }
      check(err, who_, "cannot produce to topic \"" + o_.topic + "\"");
      return;
    }
  }

  void flush_producer(Context& ctx) {
    while (rd_kafka_outq_len(producer_.get()) > 0) {
      if (ctx.cancelled()) throw Cancelled();
      rd_kafka_flush(producer_.get(), 100);
    }
    if (!delivery_error_.empty()) throw IoError(who_ + ": a message was not delivered: " + delivery_error_);
  }

  int64_t read_marker() {
    PartitionList list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), o_.topic.c_str(), 0);
    check(rd_kafka_committed(marker_.get(), list.get(), kMetadataTimeoutMs), who_,
          "cannot read the commit marker of group \"" + marker_group_ + "\"");
    const int64_t off = list->elems[0].offset;
    return off >= 0 ? off : 0;
  }

  void commit_through(uint64_t checkpoint) {
    std::vector<Segment> todo;
    std::vector<Segment> rest;
    for (const Segment& s : pending_) (s.checkpoint <= checkpoint ? todo : rest).push_back(s);
    if (todo.empty()) return;
    commit(todo, std::max(todo.back().checkpoint, marker_value_));
    std::error_code ec;
    for (const Segment& s : todo) fs::remove(segment_path(s.seq), ec);
    pending_ = std::move(rest);
  }

  // One transaction: the messages of `segments` and the marker offset `marker`.
  void commit(const std::vector<Segment>& segments, uint64_t marker) {
    if (segments.empty()) return;
    rd_kafka_t* rk = producer_.get();
    check(rd_kafka_begin_transaction(rk), who_, "cannot begin a transaction");
    uint64_t messages = 0;
    for (const Segment& s : segments) {
      read_segment(segment_path(s.seq), s.bytes, [&](auto key, std::string_view value) {
        produce(key, value);
        messages++;
      });
    }
    PartitionList offsets(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(offsets.get(), o_.topic.c_str(), 0)->offset =
        static_cast<int64_t>(marker);
    rd_kafka_consumer_group_metadata_t* group = rd_kafka_consumer_group_metadata_new(marker_group_.c_str());
    rd_kafka_error_t* e = rd_kafka_send_offsets_to_transaction(rk, offsets.get(), group, kTxnTimeoutMs);
    rd_kafka_consumer_group_metadata_destroy(group);
    if (e) {
      rd_kafka_abort_transaction(rk, kTxnTimeoutMs);
      check(e, who_, "cannot add the commit marker to the transaction");
    }
    e = rd_kafka_commit_transaction(rk, kTxnTimeoutMs);
    if (e) {
      if (rd_kafka_error_txn_requires_abort(e)) rd_kafka_abort_transaction(rk, kTxnTimeoutMs);
      check(e, who_, "cannot commit the transaction of checkpoint " + std::to_string(marker));
    }
    // The same marker outside the transaction: a broker without transactional offset commits
    // (librdkafka's mock cluster) then still has it; on a real broker it is already there.
    rd_kafka_resp_err_t err = rd_kafka_commit(marker_.get(), offsets.get(), /*async=*/0);
    if (!err) err = offsets->elems[0].err;
    check(err, who_, "cannot commit the marker of group \"" + marker_group_ + "\"");
    marker_value_ = marker;
    log().debug("{}: checkpoint {}: {} messages committed", who_, marker, messages);
  }

  void discard_open_segment() {
    if (!writer_) return;
    const fs::path p = writer_->path();
    writer_.reset();
    std::error_code ec;
    fs::remove(p, ec);
  }

  // Segments on disk that the state does not know (written after the checkpoint restored, or
  // by a run without one) are not part of this run's output.
  void remove_leftover_segments() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      bool known = false;
      for (const Segment& s : pending_) known = known || entry.path() == segment_path(s.seq);
      if (!known) fs::remove(entry.path(), ec);
    }
  }

  KafkaSinkOptions o_;
  std::string who_;
  std::string tid_;
  std::string marker_group_;
  Handle producer_;
  Handle marker_;
  fs::path dir_;
  std::unique_ptr<SegmentWriter> writer_;  // the open segment (seq next_seq_), when it has messages
  uint64_t next_seq_ = 0;
  std::vector<Segment> pending_;  // closed segments not yet in the topic, oldest first
  std::string delivery_error_;
  uint64_t marker_value_ = 0;  // the marker this sink last read or committed
};

class KafkaSinkDef final : public dataflow::OperatorDef {
 public:
  explicit KafkaSinkDef(KafkaSinkOptions o) : o_(std::move(o)) {
    if (o_.brokers.empty()) throw ConfigError("brokers: name the bootstrap servers, e.g. \"127.0.0.1:9092\"");
    if (o_.topic.empty()) throw ConfigError("topic: name the topic to write");
    if (o_.format != Format::kJson && o_.format != Format::kTensair)
      throw ConfigError(std::string("format \"") + format_name(o_.format) + "\": a sink writes json or tensair");
    if (o_.format == Format::kTensair && (!o_.key.empty() || !o_.columns.empty())) {
      throw ConfigError("key_column and columns need format = \"json\" (a tensair message holds a whole batch)");
    }
  }
  std::string type() const override { return "kafka_sink"; }
  std::vector<dataflow::PortSpec> inputs() const override { return {{"in"}}; }
  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo& info) const override {
    return std::make_unique<KafkaSink>(o_, info);
  }
  std::string describe() const override {
    return fmt::format("brokers={} topic={} format={} exactly_once={}{}", o_.brokers, o_.topic,
                       format_name(o_.format), o_.exactly_once, o_.key.empty() ? "" : " key=" + o_.key);
  }

 private:
  KafkaSinkOptions o_;
};

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> kafka_sink(KafkaSinkOptions options) {
  return std::make_shared<KafkaSinkDef>(std::move(options));
}

}  // namespace tensair::kafka
