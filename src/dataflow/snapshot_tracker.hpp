// SnapshotTracker: one operator instance's side of the checkpoint barrier protocol.
//
// Checkpoints are consistent cuts taken the way Chandy and Lamport take them, in the unaligned
// form that stream processors use on cycles: barriers enter at the sources and travel with the
// data; an instance takes its snapshot at the FIRST barrier of a checkpoint that reaches it, on
// any input, forwards the barrier on every output at once, and from then on records every item
// that its other input channels still deliver until that channel's barrier (or end of stream)
// arrives. Those recorded items are "in flight" in the cut: they are saved with the snapshot and
// delivered again, in order, after a restore. A barrier also overtakes the batches of its
// channel already queued in the inbox (inbox.hpp): they were sent before it, so they are in
// flight too, and the instance saves them with its snapshot. Nothing waits for alignment or for
// a queue to drain, so a checkpoint can never block training or deadlock a cycle (the model
// exchange), and what is recorded is bounded by the credit of each channel.
//
// An instance whose non-cycle inputs have all ended (a source has none) snapshots when its rank
// learns of the checkpoint (the trigger), since no barrier can reach it from upstream any more.
// At most one checkpoint is in progress at a time (the coordinator triggers the next only after
// the previous completed everywhere).
//
// Pure bookkeeping: the instance thread asks what to do and does it (snapshot, record, report).
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "tensair/common/error.hpp"

namespace tensair::dataflow::detail {

class SnapshotTracker {
 public:
  // `inputs`: every input channel of the instance; `outside`: which of them come from outside
  // the instance's cycle (all of them for an instance on no cycle). `done`: the checkpoint the
  // instance was restored from (0: none); barriers of it or older are ignored. `unprompted`:
  // the instance may snapshot without a barrier once no outside input is live (sources, and
  // instances on a cycle); an instance on no cycle whose inputs all ended finishes instead.
  SnapshotTracker(const std::vector<uint32_t>& inputs, const std::vector<bool>& outside,
                  uint64_t done, bool unprompted);

  // What the instance must do after an event, in this order: take the snapshot for
  // `snapshot` (and forward its barriers), then report checkpoint `complete` as done.
  struct Step {
    uint64_t snapshot = 0;  // 0: none
    uint64_t complete = 0;  // 0: none
  };

  // A barrier of checkpoint `id` was popped from `channel`. When it overtook queued batches,
  // they belong to the checkpoint if `taken(id)` afterwards.
  Step on_barrier(uint32_t channel, uint64_t id);
  // The rank learned of checkpoint `id`.
  Step on_trigger(uint64_t id);
  // End of stream was popped from `channel`. Call records(channel) first: when it is true the
  // end of stream belongs to the recorded items.
  Step on_end_of_stream(uint32_t channel);
  // Should an item popped from `channel` be recorded for the checkpoint in progress?
  bool records(uint32_t channel) const { return active_ != 0 && awaiting_.count(channel) > 0; }

  // The instance finishes (its inputs ended, or its cycle terminated: no channel delivers more).
  // `complete`: the checkpoint in progress, whose recording is now whole (report the snapshot);
  // `finished`: a checkpoint the rank announced that the instance has not snapshotted (report
  // the instance as finished in it). Each is 0 when there is none.
  struct FinishStep {
    uint64_t complete = 0;
    uint64_t finished = 0;
  };
  FinishStep on_finish();

  // A channel ended before the tracker was built (restored state).
  void ended(uint32_t channel);
  bool live(uint32_t channel) const { return live_.count(channel) > 0; }
  uint64_t done() const { return done_; }
  uint64_t active() const { return active_; }
  bool outside_inputs_live() const { return outside_live_ > 0; }

 private:
  Step start(uint64_t id, int64_t except_channel);
  Step maybe_complete(Step s);

  std::set<uint32_t> live_;     // input channels that have not ended
  std::set<uint32_t> outside_;  // of all inputs, those from outside the cycle
  int outside_live_ = 0;
  bool unprompted_ = false;
  uint64_t done_ = 0;            // checkpoints up to this one are reported
  uint64_t active_ = 0;          // the checkpoint being recorded (0: none)
  uint64_t triggered_ = 0;       // the newest checkpoint the rank announced
  std::set<uint32_t> awaiting_;  // channels whose barrier for active_ has not arrived
};

}  // namespace tensair::dataflow::detail
