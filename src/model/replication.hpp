// Replication: how one model replica shares its training with the others.
//
// Every replica of a Model trains on its own share of the stream. What it sends the others,
// when, and what it does with what they send is this unit's business; the Model operator keeps
// the network, the optimizer, the ports and the metrics, and implements ReplicaLink.
//
// Modes (ModelOptions::mode):
//   dasgd  decentralised asynchronous SGD. After each own optimizer step the replica sends its
//          update to every peer, which applies it on arrival. `version` counts the updates
//          folded into the weights (own and remote); the staleness of a remote update is the
//          receiver's version minus the version the sender made it at. With max_staleness = k
//          (SSP) a replica computes its c-th update only once it has folded, from every peer,
//          all updates numbered up to c - 1 - s, where s is the largest clock gap whose bound
//          (2s + 1) + (N - 2)(3s + 2) is at most k (docs/model.md derives it).
//   sync   every step, each replica with data contributes its gradient (times its samples); once
//          every unfinished replica's contribution for the step is in, each applies the
//          sample-weighted mean, summed in replica order, so all take identical steps.
//   local  no exchange.
//
// What travels (ModelOptions::exchange):
//   update    the applied parameter update, delta w = w after - w before the sender's own
//             optimizer step; receivers add it to their weights. Additive, so folding several
//             into one is exact, and replicas end equal (to float rounding) whatever the
//             optimizer: every replica's weights are w0 + the sum of every replica's updates.
//   gradient  the raw gradient, applied through the receiver's optimizer (the original
//             system's semantics); folding sums gradients into one optimizer step.
//
// Bounded memory: the exchange has credit like any channel, but a replica never waits for it.
// When a peer's credit is used up (ReplicaLink::offer refuses), further updates for that peer
// fold into one pending update, offered again when credit comes back (on_credit). So what one
// replica holds for a peer is at most one model-sized pending update, and what is in flight or
// queued is bounded by the credit, whatever the speed ratio of the replicas and also while a
// peer is paused, to the end of the stream: the last pending updates wait for credit too (a
// refused offer keeps the cycle from terminating), then, in SSP mode, a "finished" message with
// the sender's total follows them (in sync mode it goes when the stream ends).
//
// Devices: own updates are tensors on the replica's device (ReplicationOptions::device), folded
// there; what is encoded (messages, and the state of a snapshot) is copied to host memory
// first, through pinned staging buffers when the device is a GPU; received messages are host
// tensors, summed on the host when coalesced, which ReplicaLink::apply moves to the device.
// Sums of tensors on two devices are taken on the first one's.
//
// No threads, no MPI: the Model operator calls it on its instance thread; tests drive several
// Replications through a fake link. Not thread-safe.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "model/delta.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/model/model.hpp"

namespace tensair::model {

// One replica's update (or gradient), possibly folded from several steps.
struct Update {
  std::vector<at::Tensor> values;  // per parameter: undefined (none), dense, or sparse COO
  int64_t steps = 0;               // steps folded in
  int64_t samples = 0;
  double loss_sum = 0, acc_sum = 0;  // sums over samples
  int64_t version = 0;               // the sender's version at its first step in it

  // The values are this update's own memory (made by an earlier fold), so they may be added
  // to in place. Otherwise they may be shared: with a message in flight to another peer, or a
  // received batch.
  bool owned = false;

  bool empty() const { return steps == 0; }
  // Adds `later` to this update: out of place the first time, in place once the values are
  // its own (so a pending update costs one model-sized allocation, however many it folds).
  void fold(const Update& later);
};

// What a Replication needs from its replica.
class ReplicaLink {
 public:
  virtual ~ReplicaLink() = default;
  // Sends `message` to peer `peer` if that channel has credit now; false: nothing was sent, and
  // Replication::on_credit(peer) is called once credit is back.
  virtual bool offer(int peer, const dataflow::BatchPtr& message) = 0;
  // Sends `message` to `peer` now, whatever the credit (small messages, the last update).
  virtual void send(int peer, const dataflow::BatchPtr& message) = 0;
  // Applies remote values to the weights: added (update payload), or as gradients through the
  // optimizer (gradient payload).
  virtual void apply(const std::vector<at::Tensor>& values, Exchange payload) = 0;
  // sync: applies the mean gradient of a completed step through the optimizer.
  virtual void apply_mean_gradient(const std::vector<at::Tensor>& mean) = 0;
  // Remote updates of `steps` steps with these mean loss and accuracy were folded in (for the
  // epoch and convergence accounting).
  virtual void folded(double loss_mean, double accuracy_mean, int64_t steps) = 0;
  // sync: a step of `steps` contributions completed; `own` when this replica contributed.
  virtual void sync_step_done(bool own, double loss_mean, double accuracy_mean, int64_t samples,
                              int64_t steps) = 0;
  // A peer found convergence.
  virtual void peer_converged() = 0;
  // Coalescing: more exchange messages wait in the inbox, so folding should wait for them.
  virtual bool more_exchange_queued() const = 0;
};

struct ReplicationOptions {
  Mode mode = Mode::kDasgd;
  Exchange exchange = Exchange::kUpdate;
  int broadcast_every = 1;
  std::optional<int64_t> max_staleness;
  bool fp16 = false;
  bool sparse = true;
  bool coalesce = false;
  at::Device device = at::kCPU;  // the replica's: restored pending updates go back onto it
};

struct ReplicationStats {
  int64_t deltas_sent = 0;  // messages with updates sent (counting each peer)
  uint64_t delta_bytes_sent = 0;
  uint64_t delta_bytes_max = 0;
  int64_t deltas_applied = 0;    // remote updates applied
  int64_t deltas_folded = 0;     // updates folded into a pending one for lack of credit
  int64_t deltas_coalesced = 0;  // received updates summed with others before applying
  int64_t credit_refusals = 0;   // offers refused
  double staleness_sum = 0;
  int64_t staleness_n = 0, staleness_max = 0;
};

class Replication {
 public:
  // `self`: this replica's instance index among `replicas`; `shapes`: the parameters' shapes.
  // Throws ModelError when max_staleness cannot be guaranteed with this many replicas.
  Replication(ReplicationOptions options, int self, int replicas,
              std::vector<std::vector<int64_t>> shapes);

  // dasgd/local: the replica applied its own optimizer step; `u` is that step's update (delta w
  // or gradient, per the exchange) with steps = 1.
  void own_step(Update u, ReplicaLink& link);
  // sync: the replica's contribution to the current step: gradients times its samples (or no
  // values when its loss was not finite: it then counts with 0 samples).
  void contribute(Update sum, ReplicaLink& link);
  // A message from a peer (the exchange input).
  void on_message(const dataflow::BatchPtr& batch, ReplicaLink& link);
  // Credit is back on the channel to `peer`.
  void on_credit(int peer, ReplicaLink& link);
  // The replica's train stream ended.
  void train_ended(ReplicaLink& link);
  // This replica found convergence: tell the others, after what it has still to send.
  void announce_converged(ReplicaLink& link);
  // The job ends (the cycle is quiet): fold whatever still waits.
  void finish(ReplicaLink& link);
  // After a restore, credit is fresh: offer what was pending.
  void resume(ReplicaLink& link);

  // SSP: may the replica compute its next own update?
  bool may_step() const;
  // sync: has the replica contributed to the current step, which is not complete yet?
  bool sync_waiting() const { return sync_waiting_; }

  int64_t version() const { return version_; }
  // Steps folded into the update waiting for credit towards `peer` (0: none).
  int64_t pending_steps(int peer) const { return peers_[static_cast<size_t>(peer)].pending.steps; }
  int64_t own_steps() const { return own_steps_; }
  int peers() const { return peer_count_; }
  int64_t clock_gap() const { return gap_; }
  const ReplicationStats& stats() const { return stats_; }
  // Staleness since the last reset_window(): mean and max (for the metrics lines).
  double window_staleness_mean() const;
  int64_t window_staleness_max() const { return window_max_; }
  void reset_window();

  void snapshot(dataflow::StateWriter& w) const;
  void restore(dataflow::StateReader& r);

 private:
  struct Peer {
    int64_t folded_steps = 0;  // its steps folded into this replica
    int64_t total_steps = -1;  // the steps it made in all, once it finished
    bool finished = false;
    int64_t sync_finished_at = -1;  // sync: the steps it contributed to, once finished
    // Outgoing: an update waiting for credit (folded from the refused ones), and whether an
    // offer was refused (on_credit will follow).
    Update pending;
    bool blocked = false;
  };

  dataflow::BatchPtr encode(const Message& m, bool for_state = false) const;
  Message delta_message(const Update& u) const;
  void broadcast(const Update& u, ReplicaLink& link);
  void flush_peer(int peer, ReplicaLink& link);
  void maybe_send_finished(ReplicaLink& link);
  void send_control(MessageKind kind, ReplicaLink& link);
  void fold_received(ReplicaLink& link, bool force);
  void apply_remote(std::vector<Message>& messages, ReplicaLink& link);
  void try_complete_sync(ReplicaLink& link);
  void note_staleness(int64_t s);
  void put_update(dataflow::StateWriter& w, const Update& u) const;

  ReplicationOptions o_;
  mutable HostStaging staging_;  // host copies of what is encoded (messages and state)
  int self_;
  int replicas_;
  int peer_count_ = 0;
  std::vector<std::vector<int64_t>> shapes_;
  int64_t gap_ = 0;

  int64_t version_ = 0;
  int64_t own_steps_ = 0;
  bool train_done_ = false;
  bool finished_sent_ = false;  // SSP: the "finished" message went
  Update outgoing_;  // dasgd: own updates since the last broadcast (broadcast_every > 1)
  std::vector<Peer> peers_;
  std::deque<Message> received_;  // dasgd: remote updates not yet applied (coalescing)

  // sync
  int64_t sync_step_ = 0;
  bool sync_waiting_ = false;
  std::map<int64_t, std::vector<Message>> sync_parts_;

  ReplicationStats stats_;
  double window_sum_ = 0;
  int64_t window_n_ = 0, window_max_ = 0;
};

}  // namespace tensair::model
