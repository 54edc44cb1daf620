#include "dataflow/snapshot_tracker.hpp"

#include <algorithm>
#include <string>

namespace tensair::dataflow::detail {

SnapshotTracker::SnapshotTracker(const std::vector<uint32_t>& inputs,
                                 const std::vector<bool>& outside, uint64_t done, bool unprompted)
    : unprompted_(unprompted), done_(done), triggered_(done) {
  TENSAIR_ASSERT(inputs.size() == outside.size(), "one outside flag per input channel");
  for (size_t i = 0; i < inputs.size(); ++i) {
    live_.insert(inputs[i]);
    if (outside[i]) {
      outside_.insert(inputs[i]);
      ++outside_live_;
    }
  }
}

void SnapshotTracker::ended(uint32_t channel) {
  if (live_.erase(channel) && outside_.count(channel)) --outside_live_;
}

SnapshotTracker::Step SnapshotTracker::start(uint64_t id, int64_t except_channel) {
  active_ = id;
  awaiting_.clear();
  for (uint32_t ch : live_) {
    if (static_cast<int64_t>(ch) != except_channel) awaiting_.insert(ch);
  }
  triggered_ = std::max(triggered_, id);
  Step s;
  s.snapshot = id;
  return maybe_complete(s);
}

SnapshotTracker::Step SnapshotTracker::maybe_complete(Step s) {
  if (active_ != 0 && awaiting_.empty()) {
    s.complete = active_;
    done_ = active_;
    active_ = 0;
  }
  return s;
}

SnapshotTracker::Step SnapshotTracker::on_barrier(uint32_t channel, uint64_t id) {
  if (id <= done_) return {};  // a checkpoint already reported (restored from, or finished)
  if (active_ == 0) return start(id, channel);
  TENSAIR_ASSERT(id == active_, "barrier of checkpoint " + std::to_string(id) +
                                    " while checkpoint " + std::to_string(active_) +
                                    " is in progress");
  awaiting_.erase(channel);
  return maybe_complete({});
}

SnapshotTracker::Step SnapshotTracker::on_trigger(uint64_t id) {
  if (id <= done_ || id == active_) return {};
  triggered_ = std::max(triggered_, id);
  if (active_ == 0 && outside_live_ == 0 && unprompted_) return start(id, -1);
  return {};
}

SnapshotTracker::Step SnapshotTracker::on_end_of_stream(uint32_t channel) {
  ended(channel);
  if (active_ != 0) {
    awaiting_.erase(channel);
    return maybe_complete({});
  }
  // The last outside input ended after the rank learned of a checkpoint: nothing from outside
  // can bring its barrier any more, so snapshot now.
  if (outside_live_ == 0 && unprompted_ && triggered_ > done_) return start(triggered_, -1);
  return {};
}

SnapshotTracker::FinishStep SnapshotTracker::on_finish() {
  FinishStep f;
  if (active_ != 0) {
    f.complete = active_;
    done_ = active_;
    active_ = 0;
    awaiting_.clear();
  } else if (triggered_ > done_) {
    f.finished = triggered_;
    done_ = triggered_;
  }
  return f;
}

}  // namespace tensair::dataflow::detail
