#include "dataflow/checkpoint_coordinator.hpp"

#include <algorithm>

#include "tensair/common/error.hpp"

namespace tensair::dataflow::detail {

CheckpointCoordinator::CheckpointCoordinator(const CheckpointOptions& options, int world,
                                             uint64_t first_id, Clock::time_point start)
    : options_(options),
      world_(world),
      next_id_(std::max<uint64_t>(1, first_id)),
      last_start_(start) {}

std::optional<CheckpointCoordinator::Trigger> CheckpointCoordinator::due(Clock::time_point now) {
  if (in_flight_ || stop_started_) return std::nullopt;
  Trigger t;
  if (stop_requested_) {
    t.stop = true;
    t.reason = "stop";
    stop_started_ = true;
  } else if (closed_) {
    return std::nullopt;
  } else if (requested_) {
    t.reason = "records";
  } else if (options_.every_s > 0 &&
             now - last_start_ >= std::chrono::duration<double>(options_.every_s)) {
    t.reason = "interval";
  } else {
    return std::nullopt;
  }
  requested_ = false;
  t.id = next_id_++;
  last_start_ = now;
  InFlight f;
  f.trigger = t;
  f.started = now;
  f.reported.assign(static_cast<size_t>(world_), false);
  in_flight_ = std::move(f);
  return t;
}

bool CheckpointCoordinator::rank_done(uint64_t id, int rank, std::vector<CheckpointFileEntry> files,
                                      const std::string& error) {
  if (!in_flight_ || in_flight_->trigger.id != id) return false;  // a stale answer
  TENSAIR_ASSERT(rank >= 0 && rank < world_, "checkpoint report from rank " + std::to_string(rank));
  InFlight& f = *in_flight_;
  if (f.reported[static_cast<size_t>(rank)]) return false;
  f.reported[static_cast<size_t>(rank)] = true;
  for (auto& e : files) f.files.push_back(std::move(e));
  if (!error.empty() && f.error.empty()) f.error = error;
  return ++f.reports == world_;
}

void CheckpointCoordinator::settled(Clock::time_point now) {
  in_flight_.reset();
  // The interval counts from the start of a checkpoint, but never leaves less than a tenth of
  // it between the end of one and the start of the next.
  if (options_.every_s > 0) {
    auto min_gap = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(options_.every_s / 10));
    last_start_ = std::max(last_start_, now -
                                            std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(options_.every_s)) +
                                            min_gap);
  }
}

std::optional<CheckpointCoordinator::Clock::time_point> CheckpointCoordinator::next_due() const {
  if (in_flight_ || closed_ || stop_started_ || options_.every_s <= 0) return std::nullopt;
  return last_start_ + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(options_.every_s));
}

}  // namespace tensair::dataflow::detail
