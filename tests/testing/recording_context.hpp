// RecordingContext: a dataflow::Context without an engine, for driving one operator instance by
// hand in tests (OperatorDriver). It records what the instance does: the batches it emits per
// output port (offer() and send_to() count as emits on their port, and offer() always
// accepts), its dead letters, its logged events, its timer and the files it asked to have
// synced at a checkpoint (synced at once here). Input selection (pause, resume,
// queued) does nothing; the job is never cancelled and never asks a source to yield.
#pragma once

#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::testing {

struct DeadLetter {
  std::string reason;
  std::string record;
  bool operator==(const DeadLetter&) const = default;
};

class RecordingContext final : public dataflow::Context {
 public:
  explicit RecordingContext(dataflow::InstanceInfo info) : info_(std::move(info)) {}

  const dataflow::InstanceInfo& info() const override { return info_; }
  using Context::emit;
  // Records `batch` on `port`; a batch without rows is dropped, as the engine does.
  void emit(int port, dataflow::BatchPtr batch) override {
    if (batch && batch->rows() > 0) emitted_[port].push_back(std::move(batch));
  }
  bool offer(int port, int /*target*/, dataflow::BatchPtr batch) override {
    emit(port, std::move(batch));
    return true;
  }
  void send_to(int port, int /*target*/, dataflow::BatchPtr batch) override {
    emit(port, std::move(batch));
  }
  std::vector<int> targets(int /*port*/) const override { return {}; }
  void dead_letter(std::string_view reason, std::string_view record) override {
    dead_letters_.push_back({std::string(reason), std::string(record)});
  }
  void log_event(const nlohmann::json& event) override { events_.push_back(event); }
  void pause(int /*in_port*/) override {}
  void resume(int /*in_port*/) override {}
  size_t queued(int /*in_port*/) const override { return 0; }
  void set_timer(std::chrono::steady_clock::time_point when) override { timer_ = when; }
  void clear_timer() override { timer_.reset(); }
  // Syncs `fd` at once (the engine does it on its writer thread) and records that it was asked.
  void sync_at_checkpoint(int fd) override {
    ::fsync(fd);
    synced_.push_back(fd);
  }
  bool cancelled() const override { return false; }
  bool yield_requested() const override { return false; }
  // The checkpoints the operator sees (checkpoints off unless a test sets them).
  CheckpointView checkpoints() const override { return checkpoints_; }
  void set_checkpoints(const CheckpointView& v) { checkpoints_ = v; }

  // The batches emitted on `port` so far, in order (empty for a port never emitted on).
  const std::vector<dataflow::BatchPtr>& emitted(int port = 0) const {
    static const std::vector<dataflow::BatchPtr> kNone;
    auto it = emitted_.find(port);
    return it == emitted_.end() ? kNone : it->second;
  }
  // Every port emitted on, with its batches.
  const std::map<int, std::vector<dataflow::BatchPtr>>& all_emitted() const { return emitted_; }
  const std::vector<DeadLetter>& dead_letters() const { return dead_letters_; }
  const std::vector<nlohmann::json>& events() const { return events_; }
  // The file descriptors handed to sync_at_checkpoint, in order.
  const std::vector<int>& synced() const { return synced_; }
  // The armed timer, if any.
  std::optional<std::chrono::steady_clock::time_point> timer() const { return timer_; }
  // Forgets what was recorded (emits, dead letters, events), e.g. after a snapshot so that
  // what follows can be compared with another run's tail.
  void clear_records() {
    emitted_.clear();
    dead_letters_.clear();
    events_.clear();
  }

 private:
  dataflow::InstanceInfo info_;
  std::map<int, std::vector<dataflow::BatchPtr>> emitted_;
  std::vector<DeadLetter> dead_letters_;
  std::vector<nlohmann::json> events_;
  std::optional<std::chrono::steady_clock::time_point> timer_;
  std::vector<int> synced_;
  CheckpointView checkpoints_;
};

}  // namespace tensair::testing
