// CycleTermination: when the operators on a cycle have finished, decided by rank 0.
//
// Operators on a cycle (a strongly connected component of the graph, e.g. model replicas and
// their exchange edge) cannot finish by end-of-stream markers alone: each waits for the others.
// They finish together once rank 0 has established that all their inputs from outside the
// cycle ended and no message is in flight inside it, with Mattern's four-counter method:
//   1. every rank reports "ready" for a cycle once all its instances of that cycle ended their
//      outside inputs (a rank without instances of it is ready from the start);
//   2. rank 0 then runs counting waves: every rank reports how many messages its instances sent
//      on the cycle's edges and how many they processed (counters that only grow);
//   3. two consecutive waves with sent == processed and the same counts mean the cycle is
//      quiet for good: no message was in flight and none was sent between the waves.
// Messages include everything sent on a cycle edge: batches and checkpoint barriers.
//
// This class is rank 0's bookkeeping only (no threads, no transport): the executor feeds it the
// frames that arrive and sends the probes and decisions it returns. Not thread-safe: the
// executor calls it under its own mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace tensair::dataflow::detail {

class CycleTermination {
 public:
  using Clock = std::chrono::steady_clock;

  CycleTermination(int cycles, int world);

  // Rank `rank` reports its instances of `cycle` ready (idempotent).
  void ready(int cycle, int rank);
  // The waves to start now: (cycle, wave id) pairs; probe every rank with each.
  std::vector<std::pair<int, uint64_t>> waves_to_start(Clock::time_point now);
  // One rank's counts for wave `wave` of `cycle`. Returns true exactly once per cycle: when this
  // report completes the wave that decides termination (then tell every rank).
  bool report(int cycle, uint64_t wave, uint64_t sent, uint64_t processed, Clock::time_point now);

  // Records that `cycle` has terminated (on every rank, from the decision message).
  void mark_terminated(int cycle);
  bool terminated(int cycle) const { return terminated_[static_cast<size_t>(cycle)]; }
  bool all_terminated() const;
  // When the next wave is due, if one is waiting for its time.
  std::optional<Clock::time_point> next_wave_at() const;

  int cycles() const { return static_cast<int>(waves_.size()); }

 private:
  struct Wave {
    std::vector<bool> ready;
    int ready_count = 0;
    uint64_t id = 0;
    bool open = false;
    int reports = 0;
    uint64_t sent = 0, processed = 0;
    std::optional<std::pair<uint64_t, uint64_t>> previous;
    Clock::time_point next_at{};
    int delay_us = 500;
  };
  int world_;
  std::vector<Wave> waves_;
  std::vector<bool> terminated_;
};

}  // namespace tensair::dataflow::detail
