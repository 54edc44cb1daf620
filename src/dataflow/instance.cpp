// One operator instance on its rank: its thread, its Context, its part of the checkpoint
// protocol. See executor_impl.hpp for the threads and invariants.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "common/hash.hpp"
#include "dataflow/executor_impl.hpp"
#include "tensair/common/log.hpp"

namespace tensair::dataflow::detail {

namespace {

uint64_t key_hash(const Column& key, int64_t row) {
  switch (key.dtype()) {
    case DType::kString:
      return hash_bytes(key.str(row));
    case DType::kInt32:
    case DType::kInt64:
    case DType::kUInt8:
      return hash_u64(static_cast<uint64_t>(key.as_int64(row)));
    case DType::kFloat32:
    case DType::kFloat64: {
      double v = key.as_double(row);
      if (v == 0) v = 0;  // -0.0 and 0.0 are one key
      uint64_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      return hash_u64(bits);
    }
  }
  return 0;
}

constexpr uint32_t kInstanceStateFormat = 1;

}  // namespace

Instance::Instance(Impl& i, int gid, int op_index, int cycle, InstanceInfo info,
                   std::vector<int> priorities, size_t outputs_count, size_t inputs_count)
    : impl(i),
      id(gid),
      op(op_index),
      scc(cycle),
      inbox(std::make_unique<Inbox>(std::move(priorities))),
      info_(std::move(info)) {
  outputs.resize(outputs_count);
  port_open.assign(inputs_count, 0);
  port_has_cycle.assign(inputs_count, false);
  port_done.assign(inputs_count, false);
  is_source_ = inputs_count == 0;
}

bool Instance::cancelled() const { return impl.cancelled.load(); }

void Instance::sync_at_checkpoint(int fd) {
  const int copy = ::dup(fd);
  if (copy < 0) throw IoError(std::string("cannot keep a file to sync at the checkpoint: ") + std::strerror(errno));
  snap_fds_.push_back(copy);
}

bool Instance::yield_requested() const {
  if (!is_source_) return false;
  return impl.sources_stop.load() || impl.cancelled.load() ||
         (tracker && source_trigger_.load() > tracker->done());
}

Context::CheckpointView Instance::checkpoints() const {
  CheckpointView v;
  v.enabled = impl.checkpoints_on();
  v.periodic = v.enabled && (impl.opt.checkpoint.every_s > 0 || impl.opt.checkpoint.every_records > 0);
  v.snapshot_id = snapshot_id_;
  {
    std::lock_guard lock(impl.mu);
    v.last_complete = impl.last_complete;
  }
  v.stopping = impl.sources_stop.load();
  return v;
}

std::string Instance::graph_port(int port) const {
  return impl.graph.operators()[static_cast<size_t>(op)].outputs[static_cast<size_t>(port)].name;
}

std::string Instance::context() const {
  std::string s;
  if (impl.world > 1) s = "[rank " + std::to_string(impl.rank) + "] ";
  s += "operator \"" + info_.name + "\"";
  if (info_.instances > 1) s += " (instance " + std::to_string(info_.instance) + ")";
  return s;
}

// Sending --------------------------------------------------------------------------------------

void Instance::emit(int port, BatchPtr batch) {
  if (finished) throw Error("emitted on output port \"" + graph_port(port) + "\" after finishing");
  TENSAIR_ASSERT(port >= 0 && port < static_cast<int>(outputs.size()),
                 "emit on output port " + std::to_string(port));
  if (!batch || batch->rows() == 0) return;
  c.records_out += static_cast<uint64_t>(batch->rows());
  c.bytes_out += batch->byte_size();
  c.batches_out++;
  if (is_source_) records_since_request_ += static_cast<uint64_t>(batch->rows());
  for (OutEdge& e : outputs[static_cast<size_t>(port)]) route(e, batch);
  // every_records: a source that has read its share asks rank 0 for a checkpoint, once.
  const int64_t every = impl.opt.checkpoint.every_records;
  if (is_source_ && every > 0 && !records_request_sent_ && impl.checkpoints_on() &&
      records_since_request_ >=
          static_cast<uint64_t>(std::max<int64_t>(1, every / std::max(1, info_.instances)))) {
    records_request_sent_ = true;
    impl.request_checkpoint();
  }
}

OutEdge& Instance::single_edge(int port, const char* what) {
  TENSAIR_ASSERT(port >= 0 && port < static_cast<int>(outputs.size()),
                 std::string(what) + " on output port " + std::to_string(port));
  auto& edges = outputs[static_cast<size_t>(port)];
  TENSAIR_ASSERT(edges.size() == 1, std::string(what) + " on output port \"" + graph_port(port) +
                                        "\", which has " + std::to_string(edges.size()) +
                                        " edges (one is needed)");
  return edges[0];
}

Channel& Instance::target_channel(OutEdge& e, int target) {
  for (size_t i = 0; i < e.targets.size(); ++i) {
    if (e.targets[i] == target) return *impl.channels[e.channels[i]];
  }
  TENSAIR_ASSERT(false, "no channel to instance " + std::to_string(target));
  __builtin_unreachable();
}

bool Instance::offer(int port, int target, BatchPtr batch) {
  if (finished) throw Error("offered on output port \"" + graph_port(port) + "\" after finishing");
  OutEdge& e = single_edge(port, "offer");
  if (!batch || batch->rows() == 0) return true;
  if (!impl.offer(*this, target_channel(e, target), batch)) {
    c.offers_refused++;
    // On a cycle, a refused offer is a message still to come: it counts as sent until its
    // credit is back (kCredit), so the cycle cannot be found quiet while it waits.
    if (e.cycle) c.cycle_sent++;
    return false;
  }
  c.records_out += static_cast<uint64_t>(batch->rows());
  c.bytes_out += batch->byte_size();
  c.batches_out++;
  return true;
}

void Instance::send_to(int port, int target, BatchPtr batch) {
  if (finished) throw Error("sent on output port \"" + graph_port(port) + "\" after finishing");
  OutEdge& e = single_edge(port, "send_to");
  if (!batch || batch->rows() == 0) return;
  c.records_out += static_cast<uint64_t>(batch->rows());
  c.bytes_out += batch->byte_size();
  c.batches_out++;
  impl.send(*this, target_channel(e, target), batch, /*wait_for_credit=*/!e.cycle);
}

std::vector<int> Instance::targets(int port) const {
  TENSAIR_ASSERT(port >= 0 && port < static_cast<int>(outputs.size()),
                 "targets of output port " + std::to_string(port));
  const auto& edges = outputs[static_cast<size_t>(port)];
  if (edges.empty()) return {};
  TENSAIR_ASSERT(edges.size() == 1,
                 "targets of output port \"" + graph_port(port) + "\", which has several edges");
  return edges[0].targets;
}

void Instance::route(OutEdge& e, const BatchPtr& batch) {
  if (e.channels.empty()) return;
  auto channel = [&](size_t i) -> Channel& { return *impl.channels[e.channels[i]]; };
  switch (e.routing.kind()) {
    case Routing::Kind::kForward:
    case Routing::Kind::kToRank:
      impl.send(*this, channel(0), batch, true);
      return;
    case Routing::Kind::kRoundRobin:
      impl.send(*this, channel(e.next++ % e.channels.size()), batch, true);
      return;
    case Routing::Kind::kBroadcast:
      for (size_t i = 0; i < e.channels.size(); ++i) impl.send(*this, channel(i), batch, true);
      return;
    case Routing::Kind::kKeyHash:
      route_by_key(e, batch);
      return;
    case Routing::Kind::kLeastLoaded:
      route_least_loaded(e, batch);
      return;
  }
}

// Only this instance acquires credit on its channels, so a channel that admits the batch when
// it is chosen still admits it in send(), which then does not wait. Reading the listener's
// generation before the gates means a release that lands after the scan wakes the wait.
// On a cycle nothing waits (as in every routing): the emptiest channel takes the batch.
void Instance::route_least_loaded(OutEdge& e, const BatchPtr& batch) {
  const size_t charge = credit_charge(batch->byte_size());
  const size_t n = e.channels.size();
  auto gate = [&](size_t i) -> runtime::CreditGate& { return *impl.channels[e.channels[i]]->gate; };
  std::chrono::steady_clock::time_point wait_start{};
  for (;;) {
    const uint64_t seen = e.credit_listener->generation();
    size_t best = n, best_free = 0;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (e.next + k) % n;
      runtime::CreditGate& g = gate(i);
      if (g.cancelled()) throw Cancelled();
      if (!e.cycle && !g.fits(charge)) continue;
      const size_t free = g.free_bytes();
      if (best == n || free > best_free) best = i, best_free = free;
    }
    if (best < n) {
      if (wait_start != std::chrono::steady_clock::time_point{}) {
        c.credit_waits++;
        c.credit_wait_ns += static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                 wait_start)
                .count());
      }
      e.next = best + 1;
      impl.send(*this, *impl.channels[e.channels[best]], batch, true);
      return;
    }
    if (wait_start == std::chrono::steady_clock::time_point{}) {
      wait_start = std::chrono::steady_clock::now();
    }
    e.credit_listener->wait_past(seen);
  }
}

void Instance::route_by_key(OutEdge& e, const BatchPtr& batch) {
  const Column& key = batch->column(e.routing.key());
  if (!key.record_shape().empty()) {
    throw DataError("key column \"" + key.name() + "\" must hold one value per record");
  }
  const size_t n = e.channels.size();
  const int64_t rows = batch->rows();
  std::vector<uint32_t> dst(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    dst[static_cast<size_t>(r)] = static_cast<uint32_t>(key_hash(key, r) % n);
  bool single = std::all_of(dst.begin(), dst.end(), [&](uint32_t d) { return d == dst[0]; });
  if (single) {
    impl.send(*this, *impl.channels[e.channels[dst[0]]], batch, true);
    return;
  }
  std::vector<std::vector<int64_t>> rows_of(n);
  for (int64_t r = 0; r < rows; ++r) rows_of[dst[static_cast<size_t>(r)]].push_back(r);
  for (size_t d = 0; d < n; ++d) {
    if (rows_of[d].empty()) continue;
    impl.send(*this, *impl.channels[e.channels[d]], share(batch->take(rows_of[d])), true);
  }
}

void Instance::dead_letter(std::string_view reason, std::string_view record) {
  c.dead_letters++;
  json line = {{"t", impl.elapsed()},           {"rank", info_.rank},
               {"operator", info_.name},        {"instance", info_.instance},
               {"reason", std::string(reason)}, {"record", std::string(record.substr(0, 1024))}};
  impl.add_log_line(LogStream::kDeadLetters,
                    line.dump(-1, ' ', false, json::error_handler_t::replace));
  const uint64_t dead = c.dead_letters.load();
  const uint64_t seen = std::max<uint64_t>(c.records_in.load(), c.records_out.load() + dead);
  const ExecutorOptions& o = impl.opt;
  const bool over_count = o.max_dead_letters > 0 && dead > o.max_dead_letters;
  const bool over_fraction = o.max_dead_letter_fraction > 0 && seen >= 100 &&
                             static_cast<double>(dead) >
                                 o.max_dead_letter_fraction * static_cast<double>(seen);
  if (over_count || over_fraction) {
    const std::string limit =
        over_count ? fmt::format("more than max_dead_letters = {}", o.max_dead_letters)
                   : fmt::format("more than max_dead_letters = {} of its {} records",
                                 o.max_dead_letter_fraction, seen);
    throw DataError(std::to_string(dead) + " dead letters, " + limit +
                    " (the last: " + std::string(reason) + "; see dead_letters.jsonl)");
  }
}

void Instance::log_event(const json& event) {
  json line = event;
  if (!line.is_object()) line = json{{"value", event}};
  if (!line.contains("t")) line["t"] = impl.elapsed();
  if (!line.contains("rank")) line["rank"] = info_.rank;
  if (!line.contains("operator")) line["operator"] = info_.name;
  if (!line.contains("instance")) line["instance"] = info_.instance;
  impl.add_log_line(LogStream::kMetrics, line.dump(-1, ' ', false, json::error_handler_t::replace));
}

InstanceStats Instance::stats() const {
  InstanceStats s;
  s.name = info_.name;
  s.instance = info_.instance;
  s.rank = info_.rank;
  s.records_in = c.records_in;
  s.records_out = c.records_out;
  s.bytes_in = c.bytes_in;
  s.bytes_out = c.bytes_out;
  s.batches_in = c.batches_in;
  s.batches_out = c.batches_out;
  s.credit_waits = c.credit_waits;
  s.credit_wait_s = static_cast<double>(c.credit_wait_ns.load()) * 1e-9;
  s.dead_letters = c.dead_letters;
  s.busy_s = static_cast<double>(c.busy_ns.load()) * 1e-9;
  s.queued_bytes_peak_by_port.assign(port_open.size(), 0);
  int64_t peak = 0;
  for (uint32_t ch : in_channels) {
    const Channel& channel = *impl.channels[ch];
    const int64_t p = channel.queued_peak.load();
    peak = std::max(peak, p);
    uint64_t& port_peak = s.queued_bytes_peak_by_port[static_cast<size_t>(channel.dst_port)];
    port_peak = std::max(port_peak, static_cast<uint64_t>(p));
  }
  s.queued_bytes_peak = static_cast<uint64_t>(peak);
  return s;
}

int64_t Instance::queued_bytes() const {
  int64_t q = 0;
  for (uint32_t ch : in_channels) q += impl.channels[ch]->queued_bytes.load();
  return q;
}

// Running --------------------------------------------------------------------------------------

void Instance::prepare(RestoredInstance* restored, uint64_t restored_id) {
  restored_ = restored;
  restored_id_ = restored_id;
  std::vector<bool> outside;
  for (uint32_t ch : in_channels) outside.push_back(!impl.channels[ch]->cycle);
  tracker.emplace(in_channels, outside, restored_id, /*unprompted=*/is_source_ || scc >= 0);
  if (!restored || restored->finished) return;
  StateReader r(restored->engine,
                "checkpoint " + checkpoint_folder_name(restored_id) + ", " + context());
  load_engine_state(r);
  // The items in flight at the checkpoint go into the inbox now, before any instance runs, so
  // that on each channel they come before everything sent after the restore.
  for (RecordedItem& item : restored->items) {
    if (std::find(in_channels.begin(), in_channels.end(), item.channel) == in_channels.end()) {
      r.fail("has a recorded item of channel " + std::to_string(item.channel) +
             ", which this instance does not have");
    }
    const Channel& ch = *impl.channels[item.channel];
    InboxItem in;
    in.kind = item.end_of_stream ? InboxItem::Kind::kEndOfStream : InboxItem::Kind::kData;
    in.port = ch.dst_port;
    in.channel = ch.id;
    in.batch = std::move(item.batch);
    in.bytes = in.batch ? in.batch->byte_size() : 0;
    in.restored = true;
    if (ch.cycle) c.cycle_sent++;  // in flight again: the termination counts balance
    inbox->push(std::move(in));
  }
  restored->items.clear();
}

void Instance::thread_main() {
  try {
    if (impl.cancelled.load()) throw Cancelled();
    if (restored_ && restored_->finished) {
      // Finished before the checkpoint: its end of stream has been delivered (or is among its
      // receivers' recorded items), and its cycle, if any, counts it as ended.
      finished = true;
      inputs_ended = true;
      if (scc >= 0) impl.instance_inputs_ended(*this);
      impl.instance_finished(*this);
    } else {
      // Instantiated here, not at build time, so that a failure on one rank reaches every rank
      // through the job's error path instead of leaving the others waiting.
      op_impl = impl.graph.operators()[static_cast<size_t>(op)].def->instantiate(info_);
      if (restored_) {
        StateReader r(
            restored_->operator_state,
            "checkpoint " + checkpoint_folder_name(restored_id_) + ", state of " + context());
        op_impl->restore(r, *this);
        r.expect_end();
        impl.instance_restored();
      }
      op_impl->open(*this);
      if (is_source_) {
        run_source();
      } else {
        run_operator();
      }
    }
  } catch (const Cancelled&) {
  } catch (const std::exception& e) {
    impl.fail(e, context());
  }
  std::lock_guard lock(impl.mu);
  impl.running--;
  impl.main_cv.notify_all();
}

void Instance::source_checkpoint_points() {
  const uint64_t t = source_trigger_.load();
  if (t > tracker->done()) apply_step(tracker->on_trigger(t));
  const uint64_t done = source_complete_.load();
  if (done > source_completed_) {
    source_completed_ = done;
    op_impl->on_checkpoint_complete(done, *this);
  }
}

void Instance::run_source() {
  for (;;) {
    if (impl.cancelled.load()) throw Cancelled();
    source_checkpoint_points();
    if (impl.sources_stop.load()) {
      // A stop: the last checkpoint's trigger is published before the stop, so it is taken
      // here if it was not above; then the source ends as if its input had.
      source_checkpoint_points();
      break;
    }
    auto t0 = Clock::now();
    SourceState state = op_impl->produce(*this);
    c.busy_ns += static_cast<uint64_t>((Clock::now() - t0).count());
    if (state == SourceState::kDone) break;
  }
  if (impl.cancelled.load()) throw Cancelled();
  finish();
}

void Instance::input_port_done(int port) {
  if (port_done[static_cast<size_t>(port)]) return;
  port_done[static_cast<size_t>(port)] = true;
  op_impl->on_input_done(port, *this);
}

void Instance::run_operator() {
  // A port that no channel reaches has ended from the start: the operator learns it at once.
  for (size_t p = 0; p < port_open.size(); ++p) {
    if (port_open[p] == 0 && !port_has_cycle[p]) input_port_done(static_cast<int>(p));
  }
  if (outside_open == 0) outside_inputs_ended();
  while (!finished) {
    InboxItem item;
    Inbox::Pop r = inbox->pop(item, timer);
    if (r == Inbox::Pop::kCancelled) throw Cancelled();
    if (r == Inbox::Pop::kTimeout) {
      timer.reset();
      op_impl->on_timer(*this);
      continue;
    }
    handle(item);
  }
}

void Instance::handle(InboxItem& item) {
  switch (item.kind) {
    case InboxItem::Kind::kData: {
      Channel& ch = *impl.channels[item.channel];
      if (tracker->records(ch.id)) recorded.push_back({ch.id, false, item.batch});
      auto t0 = Clock::now();
      op_impl->process(item.port, item.batch, *this);
      c.busy_ns += static_cast<uint64_t>((Clock::now() - t0).count());
      c.records_in += static_cast<uint64_t>(item.batch->rows());
      c.bytes_in += item.bytes;
      c.batches_in++;
      impl.consumed(ch, item.bytes, item.restored);
      if (ch.cycle) c.cycle_processed++;
      return;
    }
    case InboxItem::Kind::kEndOfStream: {
      Channel& ch = *impl.channels[item.channel];
      if (tracker->records(ch.id)) recorded.push_back({ch.id, true, nullptr});
      const SnapshotTracker::Step step = tracker->on_end_of_stream(ch.id);
      const int port = item.port;
      if (ch.cycle) {
        c.cycle_processed++;
      } else if (--port_open[static_cast<size_t>(port)] == 0 &&
                 !port_has_cycle[static_cast<size_t>(port)]) {
        input_port_done(port);
      }
      apply_step(step);
      if (!ch.cycle && --outside_open == 0) outside_inputs_ended();
      return;
    }
    case InboxItem::Kind::kBarrier: {
      Channel& ch = *impl.channels[item.channel];
      const SnapshotTracker::Step step = tracker->on_barrier(ch.id, item.id);
      if (step.snapshot) take_snapshot(step.snapshot);
      // The batches this barrier overtook in the inbox were in flight: they go with the
      // snapshot (and are still processed, after it, as they come).
      if (step.snapshot == item.id || step.complete == item.id || tracker->active() == item.id) {
        for (BatchPtr& b : item.overtaken) recorded.push_back({ch.id, false, std::move(b)});
        if (item.overtook_end) recorded.push_back({ch.id, true, nullptr});
      }
      if (step.complete) impl.report(*this, step.complete, snapshot_entry(), std::exchange(snap_fds_, {}));
      if (ch.cycle) c.cycle_processed++;
      return;
    }
    case InboxItem::Kind::kFinish:
      finish();
      return;
    case InboxItem::Kind::kTrigger:
      apply_step(tracker->on_trigger(item.id));
      return;
    case InboxItem::Kind::kCheckpointComplete:
      op_impl->on_checkpoint_complete(item.id, *this);
      return;
    case InboxItem::Kind::kCredit:
      op_impl->on_credit(item.port, static_cast<int>(item.id), *this);
      if (outputs[static_cast<size_t>(item.port)].front().cycle) c.cycle_processed++;
      return;
  }
}

// All channels from outside this instance's cycle (all channels, when not on a cycle) ended.
void Instance::outside_inputs_ended() {
  if (inputs_ended) return;
  inputs_ended = true;
  if (scc < 0) {
    finish();
  } else {
    impl.instance_inputs_ended(*this);
  }
}

void Instance::finish() {
  op_impl->on_finish(*this);
  for (auto& port : outputs) {
    for (OutEdge& e : port) {
      if (e.cycle) continue;
      for (uint32_t ch : e.channels) impl.send_end_of_stream(*impl.channels[ch]);
    }
  }
  finished = true;
  impl.instance_finished(*this);
}

void Instance::deliver_trigger(uint64_t checkpoint) {
  if (is_source_) {
    uint64_t cur = source_trigger_.load();
    while (checkpoint > cur && !source_trigger_.compare_exchange_weak(cur, checkpoint)) {
    }
    return;
  }
  InboxItem item;
  item.kind = InboxItem::Kind::kTrigger;
  item.id = checkpoint;
  inbox->push(std::move(item));
}

void Instance::deliver_completion(uint64_t checkpoint) {
  if (is_source_) {
    uint64_t cur = source_complete_.load();
    while (checkpoint > cur && !source_complete_.compare_exchange_weak(cur, checkpoint)) {
    }
    return;
  }
  InboxItem item;
  item.kind = InboxItem::Kind::kCheckpointComplete;
  item.id = checkpoint;
  inbox->push(std::move(item));
}

// Checkpoints -----------------------------------------------------------------------------------

void Instance::apply_step(const SnapshotTracker::Step& s) {
  if (s.snapshot) take_snapshot(s.snapshot);
  if (s.complete) impl.report(*this, s.complete, snapshot_entry(), std::exchange(snap_fds_, {}));
}

// The snapshot: the engine's state of the instance now and the operator's own; the barrier goes
// out on every output right after, so everything this instance emits later follows the barrier
// on every channel.
void Instance::take_snapshot(uint64_t checkpoint) {
  log().debug("{:.3f} s: checkpoint {}: {} takes its snapshot", impl.elapsed(), checkpoint, context());
  snap_engine_ = save_engine_state();
  StateWriter w;
  const double t0 = impl.elapsed();
  snapshot_id_ = checkpoint;
  op_impl->snapshot(w, *this);
  snapshot_id_ = 0;
  snap_operator_ = w.take();
  log().debug("{:.3f} s: checkpoint {}: {} wrote {} bytes of operator state in {:.3f} s",
              impl.elapsed(), checkpoint, context(), snap_operator_.size(), impl.elapsed() - t0);
  recorded.clear();
  for (auto& port : outputs) {
    for (OutEdge& e : port) {
      for (uint32_t ch : e.channels) impl.send_barrier(*this, *impl.channels[ch], checkpoint);
    }
  }
  records_since_request_ = 0;
  records_request_sent_ = false;
}

std::string Instance::snapshot_entry() {
  std::string entry = encode_instance_entry(snap_engine_, recorded, snap_operator_);
  recorded.clear();
  snap_engine_.clear();
  snap_operator_.clear();
  return entry;
}

void Instance::finish_checkpoints() {
  const SnapshotTracker::FinishStep f = tracker->on_finish();
  if (f.complete) {
    impl.report_locked(*this, f.complete, snapshot_entry(), std::exchange(snap_fds_, {}));
  }
  ckpt_finished = true;
  impl.report_finished_everywhere_locked(*this);
}

// A finished instance is finished in every later checkpoint; it still forwards each one's
// barrier, after its end of stream, so that its receivers need not wait for its channels to
// drain (the rank calls this under Impl::ckpt_mu, once the instance's thread no longer sends).
void Instance::forward_barriers_finished(uint64_t checkpoint) {
  for (auto& port : outputs) {
    for (OutEdge& e : port) {
      for (uint32_t ch : e.channels) impl.send_barrier(*this, *impl.channels[ch], checkpoint);
    }
  }
}

// The engine's part of an instance's state: its counters, round-robin positions, which input
// ports the operator was told had ended, and which input channels had ended.
std::string Instance::save_engine_state() const {
  StateWriter w;
  w.put<uint32_t>(kInstanceStateFormat);
  c.save(w);
  std::vector<uint64_t> next;
  for (const auto& port : outputs) {
    for (const OutEdge& e : port) next.push_back(e.next);
  }
  w.put_vector(next);
  std::vector<uint8_t> done(port_done.begin(), port_done.end());
  w.put_vector(done);
  std::vector<uint32_t> ended;
  for (uint32_t ch : in_channels) {
    if (!tracker->live(ch)) ended.push_back(ch);
  }
  w.put_vector(ended);
  return w.take();
}

void Instance::load_engine_state(StateReader& r) {
  if (r.get<uint32_t>() != kInstanceStateFormat) r.fail("is of another format version");
  c.load(r);
  std::vector<uint64_t> next = r.get_vector<uint64_t>();
  size_t k = 0;
  for (auto& port : outputs) {
    for (OutEdge& e : port) {
      if (k >= next.size()) r.fail("has fewer output edges than the job");
      e.next = next[k++];
    }
  }
  if (k != next.size()) r.fail("has more output edges than the job");
  std::vector<uint8_t> done = r.get_vector<uint8_t>();
  if (done.size() != port_done.size()) r.fail("has another number of input ports than the job");
  for (size_t p = 0; p < done.size(); ++p) port_done[p] = done[p] != 0;
  for (uint32_t ch : r.get_vector<uint32_t>()) {
    if (std::find(in_channels.begin(), in_channels.end(), ch) == in_channels.end()) {
      r.fail("names input channel " + std::to_string(ch) + ", which this instance does not have");
    }
    const Channel& channel = *impl.channels[ch];
    tracker->ended(ch);
    if (!channel.cycle) {
      --port_open[static_cast<size_t>(channel.dst_port)];
      --outside_open;
    }
  }
  r.expect_end();
}

std::string encode_instance_entry(const std::string& engine, const std::vector<RecordedItem>& items,
                                  const std::string& operator_state) {
  StateWriter w;
  w.put<uint32_t>(kInstanceStateFormat);
  w.put_string(engine);
  w.put<uint64_t>(items.size());
  for (const RecordedItem& item : items) {
    w.put<uint32_t>(item.channel);
    w.put<uint8_t>(item.end_of_stream ? 1 : 0);
    if (!item.end_of_stream) w.put_batch(item.batch);
  }
  w.put_string(operator_state);
  return w.take();
}

RestoredInstance decode_instance_entry(std::string_view entry, const std::string& what) {
  StateReader r(entry, what);
  if (r.get<uint32_t>() != kInstanceStateFormat) r.fail("is of another format version");
  RestoredInstance out;
  out.engine = r.get_string();
  const uint64_t n = r.get_count(5);
  for (uint64_t i = 0; i < n; ++i) {
    RecordedItem item;
    item.channel = r.get<uint32_t>();
    item.end_of_stream = r.get<uint8_t>() != 0;
    if (!item.end_of_stream) {
      item.batch = r.get_batch();
      if (!item.batch) r.fail("holds an empty recorded batch");
    }
    out.items.push_back(std::move(item));
  }
  out.operator_state = r.get_string();
  r.expect_end();
  return out;
}

}  // namespace tensair::dataflow::detail
