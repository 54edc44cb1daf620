#include "dataflow/termination.hpp"

#include <algorithm>

namespace tensair::dataflow::detail {

CycleTermination::CycleTermination(int cycles, int world)
    : world_(world),
      waves_(static_cast<size_t>(cycles)),
      terminated_(static_cast<size_t>(cycles), false) {
  for (Wave& w : waves_) w.ready.assign(static_cast<size_t>(world), false);
}

void CycleTermination::ready(int cycle, int rank) {
  Wave& w = waves_[static_cast<size_t>(cycle)];
  if (w.ready[static_cast<size_t>(rank)]) return;
  w.ready[static_cast<size_t>(rank)] = true;
  w.ready_count++;
}

std::vector<std::pair<int, uint64_t>> CycleTermination::waves_to_start(Clock::time_point now) {
  std::vector<std::pair<int, uint64_t>> out;
  for (size_t s = 0; s < waves_.size(); ++s) {
    Wave& w = waves_[s];
    if (terminated_[s] || w.open || w.ready_count < world_ || now < w.next_at) continue;
    w.open = true;
    w.id++;
    w.reports = 0;
    w.sent = w.processed = 0;
    out.emplace_back(static_cast<int>(s), w.id);
  }
  return out;
}

bool CycleTermination::report(int cycle, uint64_t wave, uint64_t sent, uint64_t processed,
                              Clock::time_point now) {
  Wave& w = waves_[static_cast<size_t>(cycle)];
  if (!w.open || wave != w.id) return false;
  w.sent += sent;
  w.processed += processed;
  if (++w.reports < world_) return false;
  w.open = false;
  auto counts = std::make_pair(w.sent, w.processed);
  if (w.sent == w.processed && w.previous == counts) {
    // Decided: no further wave may start, even before this rank receives its own decision.
    terminated_[static_cast<size_t>(cycle)] = true;
    return true;
  }
  // Counts still moving: look again soon, backing off while the cycle is busy.
  if (w.previous && w.previous != counts) w.delay_us = std::min(w.delay_us * 2, 50000);
  w.previous = counts;
  w.next_at = now + std::chrono::microseconds(w.delay_us);
  return false;
}

void CycleTermination::mark_terminated(int cycle) {
  terminated_[static_cast<size_t>(cycle)] = true;
}

bool CycleTermination::all_terminated() const {
  return std::all_of(terminated_.begin(), terminated_.end(), [](bool b) { return b; });
}

std::optional<CycleTermination::Clock::time_point> CycleTermination::next_wave_at() const {
  std::optional<Clock::time_point> at;
  for (size_t s = 0; s < waves_.size(); ++s) {
    const Wave& w = waves_[s];
    if (terminated_[s] || w.open || w.ready_count < world_) continue;
    if (!at || w.next_at < *at) at = w.next_at;
  }
  return at;
}

}  // namespace tensair::dataflow::detail
