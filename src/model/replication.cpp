#include "model/replication.hpp"

#include <algorithm>
#include <iterator>

#include "tensair/common/error.hpp"

namespace tensair::model {

namespace {

// `t` on `device` (itself when it is there already: no copy on a CPU-only job).
at::Tensor on(const at::Tensor& t, at::Device device) {
  return t.device() == device ? t : t.to(device);
}

// a + b for dense or sparse tensors (either may be undefined), never in place: either may view
// the memory of a received batch. On a's device when they are on two (a replica's own
// contribution on its GPU, a peer's from the host).
at::Tensor sum(const at::Tensor& a, const at::Tensor& b_any) {
  if (!a.defined()) return b_any;
  if (!b_any.defined()) return a;
  const at::Tensor b = on(b_any, a.device());
  if (a.is_sparse() && !b.is_sparse()) return b + a;
  return a + b;
}

constexpr uint32_t kStateFormat = 1;

}  // namespace

void Update::fold(const Update& later) {
  if (later.steps == 0) return;
  if (steps == 0) version = later.version;
  if (values.size() < later.values.size()) values.resize(later.values.size());
  for (size_t i = 0; i < later.values.size(); ++i) {
    at::Tensor& v = values[i];
    const at::Tensor& later_value = later.values[i];
    if (!later_value.defined()) continue;
    const at::Tensor w = v.defined() ? on(later_value, v.device()) : later_value;
    if (!v.defined()) {
      v = w.clone();  // its own copy: w may be shared
    } else if (owned && !v.is_sparse() && !w.is_sparse()) {
      v.add_(w);
    } else {
      v = sum(v, w);
    }
  }
  owned = true;
  steps += later.steps;
  samples += later.samples;
  loss_sum += later.loss_sum;
  acc_sum += later.acc_sum;
}

Replication::Replication(ReplicationOptions options, int self, int replicas,
                         std::vector<std::vector<int64_t>> shapes)
    : o_(options), self_(self), replicas_(replicas), shapes_(std::move(shapes)) {
  peers_.resize(static_cast<size_t>(replicas));
  if (o_.mode != Mode::kLocal) peer_count_ = replicas - 1;
  if (o_.max_staleness && replicas > 1) {
    // The largest clock gap s whose staleness bound (2s+1) + (N-2)(3s+2) is at most k.
    auto bound = [n = replicas](int64_t s) { return (2 * s + 1) + (n - 2) * (3 * s + 2); };
    if (bound(0) > *o_.max_staleness) {
      throw ModelError("max_staleness = " + std::to_string(*o_.max_staleness) +
                       " cannot be guaranteed with " + std::to_string(replicas) +
                       " replicas: the least bound is " + std::to_string(bound(0)) +
                       " (2N-3; see docs/model.md)");
    }
    while (bound(gap_ + 1) <= *o_.max_staleness) ++gap_;
  }
}

// Sending --------------------------------------------------------------------------------------

dataflow::BatchPtr Replication::encode(const Message& m, bool for_state) const {
  // State is saved exactly (no float16), whatever travels on the wire.
  return dataflow::share(encode_message(m, for_state ? false : o_.fp16, &staging_));
}

Message Replication::delta_message(const Update& u) const {
  Message m;
  m.kind = MessageKind::kDelta;
  m.sender = self_;
  m.version = u.version;
  m.steps = u.steps;
  m.samples = u.samples;
  m.loss_sum = u.loss_sum;
  m.acc_sum = u.acc_sum;
  m.grads = u.values;
  return m;
}

void Replication::own_step(Update u, ReplicaLink& link) {
  TENSAIR_ASSERT(o_.mode != Mode::kSync, "own_step in sync mode");
  u.version = version_;
  u.steps = 1;
  ++own_steps_;
  ++version_;
  if (peer_count_ == 0) return;
  if (o_.broadcast_every > 1) {
    outgoing_.fold(u);
    if (outgoing_.steps < o_.broadcast_every) return;
    broadcast(std::exchange(outgoing_, {}), link);
    return;
  }
  broadcast(u, link);
}

// Offers `u` to every peer; a peer out of credit (or already waiting) gets it folded into its
// pending update instead.
void Replication::broadcast(const Update& u, ReplicaLink& link) {
  dataflow::BatchPtr batch;  // encoded once, for every peer that takes it now
  for (int p = 0; p < replicas_; ++p) {
    if (p == self_) continue;
    Peer& peer = peers_[static_cast<size_t>(p)];
    if (peer.blocked || !peer.pending.empty()) {
      peer.pending.fold(u);
      ++stats_.deltas_folded;
      continue;
    }
    if (!batch) batch = encode(delta_message(u));
    if (link.offer(p, batch)) {
      ++stats_.deltas_sent;
      stats_.delta_bytes_sent += batch->byte_size();
      stats_.delta_bytes_max = std::max<uint64_t>(stats_.delta_bytes_max, batch->byte_size());
    } else {
      peer.pending = u;  // shares u's values with the other peers' messages
      peer.pending.owned = false;
      peer.blocked = true;
      ++stats_.credit_refusals;
    }
  }
}

void Replication::flush_peer(int p, ReplicaLink& link) {
  Peer& peer = peers_[static_cast<size_t>(p)];
  if (peer.pending.empty()) {
    peer.blocked = false;
    return;
  }
  dataflow::BatchPtr batch = encode(delta_message(peer.pending));
  if (!link.offer(p, batch)) {
    peer.blocked = true;
    ++stats_.credit_refusals;
    return;
  }
  ++stats_.deltas_sent;
  stats_.delta_bytes_sent += batch->byte_size();
  stats_.delta_bytes_max = std::max<uint64_t>(stats_.delta_bytes_max, batch->byte_size());
  peer.pending = {};
  peer.blocked = false;
}

void Replication::on_credit(int peer, ReplicaLink& link) {
  if (peer < 0 || peer >= replicas_ || peer == self_) return;
  peers_[static_cast<size_t>(peer)].blocked = false;
  flush_peer(peer, link);
  maybe_send_finished(link);
}

void Replication::resume(ReplicaLink& link) {
  for (int p = 0; p < replicas_; ++p) {
    if (p != self_ && peer_count_ > 0) flush_peer(p, link);
  }
  maybe_send_finished(link);
}

void Replication::send_control(MessageKind kind, ReplicaLink& link) {
  if (peer_count_ == 0) return;
  Message m;
  m.kind = kind;
  m.sender = self_;
  m.version = version_;
  m.steps = own_steps_;
  m.step = sync_step_;
  dataflow::BatchPtr batch = encode(m);
  for (int p = 0; p < replicas_; ++p) {
    if (p != self_) link.send(p, batch);
  }
}

void Replication::train_ended(ReplicaLink& link) {
  if (train_done_) return;
  train_done_ = true;
  if (peer_count_ == 0) return;
  if (o_.mode == Mode::kSync) {
    send_control(MessageKind::kFinished, link);
    try_complete_sync(link);
    return;
  }
  // The last updates go like the others: at once where there is credit, else when it is back
  // (a refused offer keeps the cycle from terminating meanwhile). The "finished" message of
  // SSP follows the last of them, on each channel.
  if (!outgoing_.empty()) broadcast(std::exchange(outgoing_, {}), link);
  maybe_send_finished(link);
}

// SSP: once the train stream ended and nothing waits for credit, tell the peers how many
// updates this replica made in all.
void Replication::maybe_send_finished(ReplicaLink& link) {
  if (!train_done_ || finished_sent_ || !o_.max_staleness || o_.mode != Mode::kDasgd) return;
  for (int p = 0; p < replicas_; ++p) {
    if (p != self_ && !peers_[static_cast<size_t>(p)].pending.empty()) return;
  }
  finished_sent_ = true;
  send_control(MessageKind::kFinished, link);
}

void Replication::announce_converged(ReplicaLink& link) {
  if (o_.mode == Mode::kDasgd && !outgoing_.empty()) broadcast(std::exchange(outgoing_, {}), link);
  send_control(MessageKind::kConverged, link);
}

// Receiving ------------------------------------------------------------------------------------

void Replication::on_message(const dataflow::BatchPtr& batch, ReplicaLink& link) {
  Message m = decode_message(batch, shapes_);
  if (m.sender < 0 || m.sender >= replicas_ || m.sender == self_) {
    throw DataError("model message from unknown replica " + std::to_string(m.sender));
  }
  Peer& peer = peers_[static_cast<size_t>(m.sender)];
  switch (m.kind) {
    case MessageKind::kDelta:
      received_.push_back(std::move(m));
      fold_received(link, false);
      return;
    case MessageKind::kFinished:
      peer.finished = true;
      peer.total_steps = m.steps;
      peer.sync_finished_at = m.step;
      if (o_.mode == Mode::kSync) {
        try_complete_sync(link);
      } else {
        fold_received(link, false);
      }
      return;
    case MessageKind::kConverged:
      link.peer_converged();
      return;
    case MessageKind::kSync:
      sync_parts_[m.step].push_back(std::move(m));
      try_complete_sync(link);
      return;
  }
  throw DataError("model message of unknown kind " + std::to_string(static_cast<int64_t>(m.kind)));
}

void Replication::finish(ReplicaLink& link) { fold_received(link, true); }

void Replication::fold_received(ReplicaLink& link, bool force) {
  if (received_.empty()) return;
  if (o_.coalesce && !force && link.more_exchange_queued()) return;  // more to sum first
  std::vector<Message> all(std::make_move_iterator(received_.begin()),
                           std::make_move_iterator(received_.end()));
  received_.clear();
  if (o_.coalesce) {
    apply_remote(all, link);
    return;
  }
  for (Message& m : all) {
    std::vector<Message> one;
    one.push_back(std::move(m));
    apply_remote(one, link);
  }
}

void Replication::note_staleness(int64_t s) {
  stats_.staleness_sum += static_cast<double>(s);
  ++stats_.staleness_n;
  stats_.staleness_max = std::max(stats_.staleness_max, s);
  window_sum_ += static_cast<double>(s);
  ++window_n_;
  window_max_ = std::max(window_max_, s);
}

// Applies remote updates as one (their values summed).
void Replication::apply_remote(std::vector<Message>& messages, ReplicaLink& link) {
  std::vector<at::Tensor> total(shapes_.size());
  int64_t steps = 0, samples = 0;
  double loss = 0, acc = 0;
  for (const Message& m : messages) {
    note_staleness(version_ - m.version);
    for (size_t i = 0; i < shapes_.size() && i < m.grads.size(); ++i)
      total[i] = sum(total[i], m.grads[i]);
    steps += m.steps;
    samples += m.samples;
    loss += m.loss_sum;
    acc += m.acc_sum;
    peers_[static_cast<size_t>(m.sender)].folded_steps += m.steps;
  }
  link.apply(total, o_.exchange);
  version_ += steps;
  stats_.deltas_applied += static_cast<int64_t>(messages.size());
  if (messages.size() > 1) stats_.deltas_coalesced += static_cast<int64_t>(messages.size());
  if (samples > 0) {
    link.folded(loss / static_cast<double>(samples), acc / static_cast<double>(samples), steps);
  }
}

bool Replication::may_step() const {
  if (!o_.max_staleness || o_.mode != Mode::kDasgd) return true;
  const int64_t need = own_steps_ - gap_;
  for (int q = 0; q < replicas_; ++q) {
    if (q == self_) continue;
    const Peer& p = peers_[static_cast<size_t>(q)];
    if (p.folded_steps >= need) continue;
    if (p.finished && p.folded_steps >= p.total_steps) continue;
    return false;
  }
  return true;
}

double Replication::window_staleness_mean() const {
  return window_n_ ? window_sum_ / static_cast<double>(window_n_) : 0.0;
}

void Replication::reset_window() {
  window_sum_ = 0;
  window_n_ = 0;
  window_max_ = 0;
}

// sync -----------------------------------------------------------------------------------------

void Replication::contribute(Update contribution, ReplicaLink& link) {
  TENSAIR_ASSERT(o_.mode == Mode::kSync, "contribute outside sync mode");
  Message m;
  m.kind = MessageKind::kSync;
  m.sender = self_;
  m.version = version_;
  m.step = sync_step_;
  m.samples = contribution.samples;
  m.loss_sum = contribution.loss_sum;
  m.acc_sum = contribution.acc_sum;
  m.grads = std::move(contribution.values);
  m.grads.resize(shapes_.size());
  if (peer_count_ > 0) {
    dataflow::BatchPtr batch = encode(m);
    for (int p = 0; p < replicas_; ++p) {
      if (p != self_) link.send(p, batch);
    }
  }
  sync_parts_[sync_step_].push_back(std::move(m));
  sync_waiting_ = true;
  try_complete_sync(link);
}

void Replication::try_complete_sync(ReplicaLink& link) {
  for (;;) {
    auto& parts = sync_parts_[sync_step_];
    std::vector<bool> have(static_cast<size_t>(replicas_), false);
    for (const Message& m : parts) have[static_cast<size_t>(m.sender)] = true;
    const bool own = have[static_cast<size_t>(self_)];
    if (!own && !train_done_) return;  // waiting for this replica's own data
    for (int q = 0; q < replicas_; ++q) {
      if (q == self_ || have[static_cast<size_t>(q)]) continue;
      const Peer& p = peers_[static_cast<size_t>(q)];
      if (!p.finished || p.sync_finished_at > sync_step_) return;  // still to come
    }
    if (parts.empty()) {  // every replica has finished
      sync_parts_.erase(sync_step_);
      return;
    }
    // The step's messages stay alive until it is applied: a sum of one part is a view of that
    // message's batch.
    std::vector<Message> step = std::move(parts);
    sync_parts_.erase(sync_step_);
    int64_t samples = 0;
    double loss = 0, acc = 0;
    std::vector<at::Tensor> total(shapes_.size());
    // Summed in replica order, so that every replica computes bit-identical steps.
    std::sort(step.begin(), step.end(),
              [](const Message& a, const Message& b) { return a.sender < b.sender; });
    for (const Message& m : step) {
      samples += m.samples;
      loss += m.loss_sum;
      acc += m.acc_sum;
      for (size_t i = 0; i < shapes_.size() && i < m.grads.size(); ++i)
        total[i] = sum(total[i], m.grads[i]);
    }
    const int64_t n = static_cast<int64_t>(step.size());
    ++sync_step_;
    if (own) {
      sync_waiting_ = false;
      ++own_steps_;
    }
    if (samples > 0) {
      for (auto& t : total) {
        if (t.defined()) t = t / static_cast<double>(samples);
      }
      link.apply_mean_gradient(total);
      version_ += n;
      link.sync_step_done(own, loss / static_cast<double>(samples),
                          acc / static_cast<double>(samples), samples, n);
    } else if (own) {
      link.sync_step_done(own, std::nan(""), std::nan(""), 0, 0);
    }
  }
}

// State ----------------------------------------------------------------------------------------

void Replication::put_update(dataflow::StateWriter& w, const Update& u) const {
  w.put_batch(u.empty() ? nullptr : encode(delta_message(u), /*for_state=*/true));
}

void Replication::snapshot(dataflow::StateWriter& w) const {
  auto enc = [this](const Message& m) { return encode(m, /*for_state=*/true); };
  w.put<uint32_t>(kStateFormat);
  w.put<int64_t>(version_);
  w.put<int64_t>(own_steps_);
  w.put<uint8_t>(train_done_ ? 1 : 0);
  w.put<uint8_t>(finished_sent_ ? 1 : 0);
  w.put<int64_t>(sync_step_);
  w.put<uint8_t>(sync_waiting_ ? 1 : 0);
  put_update(w, outgoing_);
  w.put<uint32_t>(static_cast<uint32_t>(peers_.size()));
  for (const Peer& p : peers_) {
    w.put<int64_t>(p.folded_steps);
    w.put<int64_t>(p.total_steps);
    w.put<uint8_t>(p.finished ? 1 : 0);
    w.put<int64_t>(p.sync_finished_at);
    put_update(w, p.pending);
  }
  w.put<uint64_t>(received_.size());
  for (const Message& m : received_) w.put_batch(enc(m));
  w.put<uint64_t>(sync_parts_.size());
  for (const auto& [step, parts] : sync_parts_) {
    w.put<int64_t>(step);
    w.put<uint64_t>(parts.size());
    for (const Message& m : parts) w.put_batch(enc(m));
  }
  w.put(stats_);
}

void Replication::restore(dataflow::StateReader& r) {
  if (r.get<uint32_t>() != kStateFormat) r.fail("replication state of another format version");
  auto message = [&](const dataflow::BatchPtr& b) {
    if (!b) r.fail("replication state holds an empty message");
    try {
      return decode_message(b, shapes_);
    } catch (const Error& e) {
      r.fail(std::string("replication state holds a damaged message: ") + e.what());
    }
  };
  // Pending updates are folded into later on: they get memory of their own.
  auto update = [&]() {
    Update u;
    dataflow::BatchPtr b = r.get_batch();
    if (!b) return u;
    Message m = message(b);
    u.version = m.version;
    u.steps = m.steps;
    u.samples = m.samples;
    u.loss_sum = m.loss_sum;
    u.acc_sum = m.acc_sum;
    for (auto& t : m.grads) {
      // Memory of its own, on the replica's device (the copy to a GPU is one).
      const at::Tensor own = !t.defined() ? t : o_.device.is_cpu() ? t.clone() : t.to(o_.device);
      u.values.push_back(own);
    }
    u.owned = true;
    return u;
  };
  version_ = r.get<int64_t>();
  own_steps_ = r.get<int64_t>();
  train_done_ = r.get<uint8_t>() != 0;
  finished_sent_ = r.get<uint8_t>() != 0;
  sync_step_ = r.get<int64_t>();
  sync_waiting_ = r.get<uint8_t>() != 0;
  outgoing_ = update();
  if (r.get<uint32_t>() != peers_.size()) r.fail("replication state of another number of replicas");
  for (Peer& p : peers_) {
    p.folded_steps = r.get<int64_t>();
    p.total_steps = r.get<int64_t>();
    p.finished = r.get<uint8_t>() != 0;
    p.sync_finished_at = r.get<int64_t>();
    p.pending = update();
    p.blocked = false;  // credit is fresh after a restore: resume() offers it again
  }
  received_.clear();
  for (uint64_t i = 0, n = r.get_count(); i < n; ++i) received_.push_back(message(r.get_batch()));
  sync_parts_.clear();
  for (uint64_t i = 0, n = r.get_count(); i < n; ++i) {
    const int64_t step = r.get<int64_t>();
    auto& parts = sync_parts_[step];
    for (uint64_t k = 0, m = r.get_count(); k < m; ++k) parts.push_back(message(r.get_batch()));
  }
  stats_ = r.get<ReplicationStats>();
  reset_window();
}

}  // namespace tensair::model
