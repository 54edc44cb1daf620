// CheckpointCoordinator: rank 0's schedule and bookkeeping of job-wide checkpoints.
//
// Rank 0 starts checkpoint k (a trigger to every rank) when one is due: every_s seconds after
// the previous one started, a source asked for one (every_records), or the job is stopping.
// Every rank answers once all its instances have reported their snapshot (or that they had
// finished) and its file is durable; when every rank has answered, rank 0 writes the manifest
// and the checkpoint is complete. One checkpoint is in flight at a time: the next is started
// only after the previous completed or failed, so an instance never sees two at once
// (SnapshotTracker relies on it). A stop waits for the checkpoint in flight, then is the next.
//
// Pure bookkeeping (no threads, no files, no transport); the executor calls it under its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tensair/dataflow/checkpoint.hpp"

namespace tensair::dataflow::detail {

class CheckpointCoordinator {
 public:
  using Clock = std::chrono::steady_clock;

  struct Trigger {
    uint64_t id = 0;
    bool stop = false;   // the sources end after this checkpoint's barrier
    std::string reason;  // "interval", "records", "stop"
  };

  // `first_id`: the id of the first checkpoint this run takes (higher than any folder on disk).
  CheckpointCoordinator(const CheckpointOptions& options, int world, uint64_t first_id,
                        Clock::time_point start);

  // The checkpoint to start now, if one is due. Once returned it is in flight.
  std::optional<Trigger> due(Clock::time_point now);
  // A source asked for a checkpoint (every_records).
  void request() { requested_ = true; }
  // The job is stopping: the next checkpoint is the last and stops the sources.
  void request_stop() { stop_requested_ = true; }
  // No checkpoint is to start any more (every rank finished); one in flight still completes.
  void close() { closed_ = true; }

  // Rank `rank` has written its file for checkpoint `id` (ok), or failed to (error). Returns
  // true when this was the last rank: the checkpoint can be completed (or reported failed).
  bool rank_done(uint64_t id, int rank, std::vector<CheckpointFileEntry> files,
                 const std::string& error);

  // The checkpoint in flight is complete or has failed: the next may be started.
  void settled(Clock::time_point now);

  bool in_flight() const { return in_flight_.has_value(); }
  // Nothing in flight and no stop waiting to be started: the job may end.
  bool idle() const { return !in_flight_ && !(stop_requested_ && !stop_started_); }
  // The checkpoint in flight (valid while in_flight()).
  struct InFlight {
    Trigger trigger;
    Clock::time_point started;
    std::vector<bool> reported;
    int reports = 0;
    std::vector<CheckpointFileEntry> files;
    std::string error;  // the first rank's error, if any
  };
  const InFlight& current() const { return *in_flight_; }
  // When the next checkpoint is due by time (nullopt: not by time).
  std::optional<Clock::time_point> next_due() const;
  bool stop_started() const { return stop_started_; }

 private:
  CheckpointOptions options_;
  int world_;
  uint64_t next_id_;
  Clock::time_point last_start_;
  bool requested_ = false;
  bool stop_requested_ = false;
  bool stop_started_ = false;
  bool closed_ = false;
  std::optional<InFlight> in_flight_;
};

}  // namespace tensair::dataflow::detail
