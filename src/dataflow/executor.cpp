// Executor implementation. See executor.hpp for the contract.
//
// Threads on one rank:
//   main      run(): starts everything, coordinates cycle termination (rank 0), writes and ships
//             metrics, prints progress, then shuts down.
//   instance  one per local operator instance: pops its inbox and calls the operator.
//   progress  the transport's thread: on_frame() decodes batches into inboxes, applies credit,
//             answers termination probes, collects logs (rank 0) and errors.
//
// Invariants:
// - A channel is written by exactly one thread (its sending instance), so its sequence numbers
//   are assigned in send order; remote receivers check them (FIFO, no loss, no duplicate).
// - queued_bytes of a channel counts the credit charge (column bytes + kBatchCreditCharge) of
//   the batches pushed to the receiving inbox and not yet processed; it never exceeds the
//   channel's credit except for a single batch larger than the credit.
// - cycle_sent is incremented before a batch on a cycle edge is handed over; cycle_processed
//   after process() of such a batch returned (including everything it emitted). With all
//   outside inputs of a cycle ended, equal sums over two consecutive waves mean the cycle is
//   quiet for good.
#include "tensair/dataflow/executor.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/hash.hpp"
#include "dataflow/inbox.hpp"
#include "runtime/credit_gate.hpp"
#include "tensair/common/log.hpp"
#include "tensair/dataflow/batch_codec.hpp"

namespace tensair::dataflow {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

enum class FrameKind : uint8_t {
  kData = 1,         // channel, seq; payload: a batch
  kEndOfStream = 2,  // channel, seq
  kCredit = 3,       // channel; aux: bytes returned to the sender
  kTermReady = 10,   // channel: cycle id. "All my instances of this cycle ended their inputs."
  kTermProbe = 11,   // channel: cycle id, aux: wave. Rank 0 asks for counts.
  kTermReport = 12,  // channel: cycle id, aux: wave; meta: u64 sent, u64 processed
  kTermDone = 13,    // channel: cycle id. The cycle has terminated.
  kLog = 14,         // flags: 0 metrics, 1 dead letters; meta: JSON lines
  kError = 15,       // aux: exit code; meta: message
};

enum class LogStream : uint8_t { kMetrics = 0, kDeadLetters = 1 };

// What a batch of `bytes` column bytes counts against a channel's credit (and in its queued
// bytes); the sender and the receiver compute it alike from the batch.
size_t credit_charge(size_t bytes) { return bytes + kBatchCreditCharge; }

struct Counters {
  std::atomic<uint64_t> records_in{0}, records_out{0}, bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> batches_in{0}, batches_out{0}, credit_waits{0}, credit_wait_ns{0};
  std::atomic<uint64_t> dead_letters{0}, busy_ns{0}, cycle_sent{0}, cycle_processed{0};
};

void atomic_max(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load(std::memory_order_relaxed);
  while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

struct Channel {
  uint32_t id = 0;
  int edge = 0;
  int src = 0, dst = 0;  // global instance ids
  int src_rank = 0, dst_rank = 0;
  int dst_port = 0;
  bool cycle = false;
  size_t window = 0;
  // Sending side (src on this rank, not a cycle edge).
  std::unique_ptr<runtime::CreditGate> gate;
  uint64_t next_seq = 0;  // sending thread only
  // Receiving side (dst on this rank).
  uint64_t expected_seq = 0;  // progress thread only
  std::atomic<int64_t> queued_bytes{0};
  std::atomic<int64_t> queued_peak{0};
  std::atomic<uint64_t> pending_credit{0};  // to return to a remote sender
};

struct GlobalInstance {
  int op = 0;
  int index = 0;
  int rank = 0;
};

struct OutEdge {
  int edge = 0;
  Routing routing = Routing::round_robin();
  bool cycle = false;
  std::vector<uint32_t> channels;  // reachable receivers, in instance order
  uint64_t next = 0;               // round robin position
};

}  // namespace

struct Executor::Impl {
  struct Instance;

  Impl(const Graph& g, runtime::Transport& t, ExecutorOptions o)
      : graph(g), tp(t), opt(std::move(o)), rank(t.rank()), world(t.world_size()) {}

  // Set-up ------------------------------------------------------------------------------------

  void build();
  void build_channels();

  // Running -----------------------------------------------------------------------------------

  void run();
  void main_loop();
  void on_frame(runtime::InFrame&& f);
  void on_transport_error(const std::string& message);

  // Errors
  void fail(const std::string& message, ExitCode code, int origin);
  void cancel_all();

  // Data path
  void send(Instance& from, Channel& ch, const BatchPtr& batch);
  void deliver(Channel& ch, InboxItem item);
  void consumed(Channel& ch, size_t bytes);
  void send_end_of_stream(Channel& ch);
  void control(int dst, FrameKind kind, uint32_t channel, uint64_t aux,
               std::vector<std::byte> meta = {}, uint8_t flags = 0);

  // Cycles
  void instance_inputs_ended(Instance& in);
  void rank_ready(int scc);
  void coordinator_tick();
  void on_report(int scc, uint64_t wave, uint64_t sent, uint64_t processed);
  void cycle_done(int scc);

  // Metrics and logs
  void add_log_line(LogStream stream, std::string line);
  void flush_logs(bool final);
  void write_log(LogStream stream, const std::string& text);
  void snapshot_metrics(bool final);
  json instance_metrics(const Instance& in, bool final) const;
  void progress_line(bool final);
  double elapsed() const {
    return std::chrono::duration<double>(Clock::now() - start_time).count();
  }

  const Graph& graph;
  runtime::Transport& tp;
  ExecutorOptions opt;
  const int rank;
  const int world;

  std::vector<int> comp;  // cycle component per operator (-1: none)
  int cycles = 0;
  std::vector<std::vector<int>> op_ranks;
  std::vector<int> op_base;  // first global instance id of each operator
  std::vector<GlobalInstance> instances;
  std::vector<std::unique_ptr<Channel>> channels;
  std::vector<std::unique_ptr<Instance>> local;
  std::vector<Instance*> local_by_global;

  Clock::time_point start_time = Clock::now();
  std::atomic<bool> cancelled{false};
  std::atomic<bool> shutting_down{false};

  // Everything below is guarded by mu.
  std::mutex mu;
  std::condition_variable main_cv;
  int running = 0;  // instance threads not yet exited
  std::optional<std::string> error_message;
  ExitCode error_code = ExitCode::kFailure;
  int error_origin = -1;
  std::vector<int> cycle_local;        // local instances per cycle
  std::vector<int> cycle_inputs_ended;  // of which ended their outside inputs
  std::vector<bool> cycle_terminated;
  // Coordinator (rank 0).
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
  std::vector<Wave> waves;
  std::string log_metrics, log_dead;  // pending lines from this rank
  std::vector<std::pair<LogStream, std::string>> received_logs;  // rank 0: from other ranks
  std::map<std::string, json> remote_snapshots;  // rank 0: latest operator line per instance

  // Rank 0 output files (main thread only).
  std::ofstream metrics_file, dead_file;
  Clock::time_point next_metrics{}, next_flush{}, next_progress{};
  std::map<std::string, std::pair<double, uint64_t>> progress_prev;  // source -> (t, records)
};

// One operator instance on this rank: its thread, inbox, ports and the Context it offers.
struct Executor::Impl::Instance final : Context {
  Impl* impl = nullptr;
  int id = 0;  // global instance id
  int op = 0;
  int scc = -1;
  InstanceInfo info_;
  std::unique_ptr<Operator> op_impl;
  std::unique_ptr<Inbox> inbox;
  std::vector<std::vector<OutEdge>> outputs;  // per output port
  std::vector<int> port_open;                 // per input port: outside channels not yet ended
  std::vector<bool> port_has_cycle;           // per input port: fed by a cycle edge
  std::vector<uint32_t> in_channels;
  int outside_open = 0;
  bool inputs_ended = false;
  bool finished = false;
  std::optional<Clock::time_point> timer;
  Counters c;
  std::thread thread;

  // Context ------------------------------------------------------------------------------------
  const InstanceInfo& info() const override { return info_; }

  void emit(int port, BatchPtr batch) override {
    if (finished) {
      throw Error("emitted on output port \"" + graph_port(port) + "\" after finishing");
    }
    TENSAIR_ASSERT(port >= 0 && port < static_cast<int>(outputs.size()),
                   "emit on output port " + std::to_string(port));
    if (!batch || batch->rows() == 0) return;
    c.records_out += static_cast<uint64_t>(batch->rows());
    c.bytes_out += batch->byte_size();
    c.batches_out++;
    for (OutEdge& e : outputs[static_cast<size_t>(port)]) route(e, batch);
  }

  void dead_letter(std::string_view reason, std::string_view record) override {
    c.dead_letters++;
    json line = {{"t", impl->elapsed()}, {"rank", info_.rank}, {"operator", info_.name},
                 {"instance", info_.instance}, {"reason", std::string(reason)},
                 {"record", std::string(record.substr(0, 1024))}};
    impl->add_log_line(LogStream::kDeadLetters,
                       line.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void log_event(const json& event) override {
    json line = event;
    if (!line.is_object()) line = json{{"value", event}};
    if (!line.contains("t")) line["t"] = impl->elapsed();
    if (!line.contains("rank")) line["rank"] = info_.rank;
    if (!line.contains("operator")) line["operator"] = info_.name;
    if (!line.contains("instance")) line["instance"] = info_.instance;
    impl->add_log_line(LogStream::kMetrics,
                       line.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void pause(int in_port) override { inbox->pause(in_port); }
  void resume(int in_port) override { inbox->resume(in_port); }
  size_t queued(int in_port) const override { return inbox->queued(in_port); }
  void set_timer(Clock::time_point when) override { timer = when; }
  void clear_timer() override { timer.reset(); }
  bool cancelled() const override { return impl->cancelled.load(); }

  // Running ------------------------------------------------------------------------------------
  std::string graph_port(int port) const {
    return impl->graph.operators()[static_cast<size_t>(op)].outputs[static_cast<size_t>(port)].name;
  }

  void route(OutEdge& e, const BatchPtr& batch) {
    if (e.channels.empty()) return;
    auto channel = [&](size_t i) -> Channel& { return *impl->channels[e.channels[i]]; };
    switch (e.routing.kind()) {
      case Routing::Kind::kForward:
      case Routing::Kind::kToRank:
        impl->send(*this, channel(0), batch);
        return;
      case Routing::Kind::kRoundRobin:
        impl->send(*this, channel(e.next++ % e.channels.size()), batch);
        return;
      case Routing::Kind::kBroadcast:
        for (size_t i = 0; i < e.channels.size(); ++i) impl->send(*this, channel(i), batch);
        return;
      case Routing::Kind::kKeyHash:
        route_by_key(e, batch);
        return;
    }
  }

  void route_by_key(OutEdge& e, const BatchPtr& batch) {
    const Column& key = batch->column(e.routing.key());
    if (!key.record_shape().empty()) {
      throw DataError("key column \"" + key.name() + "\" must hold one value per record");
    }
    const size_t n = e.channels.size();
    const int64_t rows = batch->rows();
    std::vector<uint32_t> dst(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) dst[static_cast<size_t>(r)] = static_cast<uint32_t>(key_hash(key, r) % n);
    bool single = std::all_of(dst.begin(), dst.end(), [&](uint32_t d) { return d == dst[0]; });
    if (single) {
      impl->send(*this, *impl->channels[e.channels[dst[0]]], batch);
      return;
    }
    std::vector<std::vector<int64_t>> rows_of(n);
    for (int64_t r = 0; r < rows; ++r) rows_of[dst[static_cast<size_t>(r)]].push_back(r);
    for (size_t d = 0; d < n; ++d) {
      if (rows_of[d].empty()) continue;
      impl->send(*this, *impl->channels[e.channels[d]], share(batch->take(rows_of[d])));
    }
  }

  static uint64_t key_hash(const Column& key, int64_t row) {
    switch (key.dtype()) {
      case DType::kString: return hash_bytes(key.str(row));
      case DType::kInt32:
      case DType::kInt64:
      case DType::kUInt8: return hash_u64(static_cast<uint64_t>(key.as_int64(row)));
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

  void thread_main() {
    try {
      // Instantiated here, not at build time, so that a failure on one rank reaches every rank
      // through the job's error path instead of leaving the others waiting.
      if (impl->cancelled.load()) throw Cancelled();
      op_impl = impl->graph.operators()[static_cast<size_t>(op)].def->instantiate(info_);
      op_impl->open(*this);
      if (impl->graph.operators()[static_cast<size_t>(op)].inputs.empty()) {
        run_source();
      } else {
        run_operator();
      }
    } catch (const Cancelled&) {
    } catch (const Error& e) {
      impl->fail(context() + ": " + e.what(), e.exit_code(), impl->rank);
    } catch (const std::exception& e) {
      impl->fail(context() + ": " + e.what(), ExitCode::kFailure, impl->rank);
    }
    std::lock_guard lock(impl->mu);
    impl->running--;
    impl->main_cv.notify_all();
  }

  std::string context() const {
    std::string s;
    if (impl->world > 1) s = "[rank " + std::to_string(impl->rank) + "] ";
    s += "operator \"" + info_.name + "\"";
    if (info_.instances > 1) s += " (instance " + std::to_string(info_.instance) + ")";
    return s;
  }

  void run_source() {
    while (!impl->cancelled.load()) {
      auto t0 = Clock::now();
      SourceState state = op_impl->produce(*this);
      c.busy_ns += static_cast<uint64_t>((Clock::now() - t0).count());
      if (state == SourceState::kDone) break;
    }
    if (impl->cancelled.load()) throw Cancelled();
    finish();
  }

  void run_operator() {
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
      switch (item.kind) {
        case InboxItem::Kind::kData: {
          Channel& ch = *impl->channels[item.channel];
          auto t0 = Clock::now();
          op_impl->process(item.port, item.batch, *this);
          c.busy_ns += static_cast<uint64_t>((Clock::now() - t0).count());
          c.records_in += static_cast<uint64_t>(item.batch->rows());
          c.bytes_in += item.bytes;
          c.batches_in++;
          impl->consumed(ch, item.bytes);
          if (ch.cycle) c.cycle_processed++;
          break;
        }
        case InboxItem::Kind::kEndOfStream: {
          int port = item.port;
          if (--port_open[static_cast<size_t>(port)] == 0 &&
              !port_has_cycle[static_cast<size_t>(port)]) {
            op_impl->on_input_done(port, *this);
          }
          if (--outside_open == 0) outside_inputs_ended();
          break;
        }
        case InboxItem::Kind::kFinish:
          finish();
          break;
      }
    }
  }

  // All channels from outside this instance's cycle (all channels, when not on a cycle) ended.
  void outside_inputs_ended() {
    if (inputs_ended) return;
    inputs_ended = true;
    if (scc < 0) {
      finish();
    } else {
      impl->instance_inputs_ended(*this);
    }
  }

  void finish() {
    op_impl->on_finish(*this);
    for (auto& port : outputs) {
      for (OutEdge& e : port) {
        if (e.cycle) continue;
        for (uint32_t ch : e.channels) impl->send_end_of_stream(*impl->channels[ch]);
      }
    }
    finished = true;
  }

  InstanceStats stats() const {
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
    int64_t peak = 0;
    for (uint32_t ch : in_channels) peak = std::max(peak, impl->channels[ch]->queued_peak.load());
    s.queued_bytes_peak = static_cast<uint64_t>(peak);
    return s;
  }

  int64_t queued_bytes() const {
    int64_t q = 0;
    for (uint32_t ch : in_channels) q += impl->channels[ch]->queued_bytes.load();
    return q;
  }
};

// Set-up ----------------------------------------------------------------------------------------

void Executor::Impl::build() {
  graph.validate(world);
  comp = graph.cycle_components();
  for (int c : comp) cycles = std::max(cycles, c + 1);
  const auto& ops = graph.operators();
  for (size_t op = 0; op < ops.size(); ++op) {
    op_base.push_back(static_cast<int>(instances.size()));
    op_ranks.push_back(ops[op].placement.resolve(world));
    for (size_t i = 0; i < op_ranks.back().size(); ++i) {
      instances.push_back({static_cast<int>(op), static_cast<int>(i), op_ranks.back()[i]});
    }
  }
  local_by_global.assign(instances.size(), nullptr);
  cycle_local.assign(static_cast<size_t>(cycles), 0);
  cycle_inputs_ended.assign(static_cast<size_t>(cycles), 0);
  cycle_terminated.assign(static_cast<size_t>(cycles), false);
  waves.resize(static_cast<size_t>(cycles));
  for (Wave& w : waves) w.ready.assign(static_cast<size_t>(world), false);

  for (size_t g = 0; g < instances.size(); ++g) {
    const GlobalInstance& gi = instances[g];
    if (gi.rank != rank) continue;
    const OperatorNode& node = ops[static_cast<size_t>(gi.op)];
    auto in = std::make_unique<Instance>();
    in->impl = this;
    in->id = static_cast<int>(g);
    in->op = gi.op;
    in->scc = comp[static_cast<size_t>(gi.op)];
    in->info_ = {node.name, node.def->type(), rank, world, gi.index,
                 static_cast<int>(op_ranks[static_cast<size_t>(gi.op)].size()), opt.out_dir};
    std::vector<int> priorities;
    for (const PortSpec& p : node.inputs) priorities.push_back(p.priority);
    in->inbox = std::make_unique<Inbox>(priorities);
    in->outputs.resize(node.outputs.size());
    in->port_open.assign(node.inputs.size(), 0);
    in->port_has_cycle.assign(node.inputs.size(), false);
    if (in->scc >= 0) cycle_local[static_cast<size_t>(in->scc)]++;
    local_by_global[g] = in.get();
    local.push_back(std::move(in));
  }
  build_channels();
}

void Executor::Impl::build_channels() {
  const auto& edges = graph.edges();
  for (size_t ei = 0; ei < edges.size(); ++ei) {
    const Edge& e = edges[ei];
    const bool cycle = comp[static_cast<size_t>(e.from_op)] >= 0 &&
                       comp[static_cast<size_t>(e.from_op)] == comp[static_cast<size_t>(e.to_op)];
    const size_t window = e.credit_bytes ? e.credit_bytes : opt.credit_bytes;
    const auto& src_ranks = op_ranks[static_cast<size_t>(e.from_op)];
    const auto& dst_ranks = op_ranks[static_cast<size_t>(e.to_op)];
    for (size_t si = 0; si < src_ranks.size(); ++si) {
      int src = op_base[static_cast<size_t>(e.from_op)] + static_cast<int>(si);
      Instance* src_local = local_by_global[static_cast<size_t>(src)];
      OutEdge out;
      out.edge = static_cast<int>(ei);
      out.routing = e.routing;
      out.cycle = cycle;
      for (size_t di = 0; di < dst_ranks.size(); ++di) {
        int src_rank = src_ranks[si], dst_rank = dst_ranks[di];
        bool reachable = true;
        switch (e.routing.kind()) {
          case Routing::Kind::kForward: reachable = src_rank == dst_rank; break;
          case Routing::Kind::kToRank: reachable = dst_rank == e.routing.rank(); break;
          case Routing::Kind::kBroadcast:
            reachable = e.routing.include_self() || src_rank != dst_rank;
            break;
          default: break;
        }
        if (!reachable) continue;
        auto ch = std::make_unique<Channel>();
        ch->id = static_cast<uint32_t>(channels.size());
        ch->edge = static_cast<int>(ei);
        ch->src = src;
        ch->dst = op_base[static_cast<size_t>(e.to_op)] + static_cast<int>(di);
        ch->src_rank = src_rank;
        ch->dst_rank = dst_rank;
        ch->dst_port = e.to_port;
        ch->cycle = cycle;
        ch->window = window;
        if (src_local && !cycle) ch->gate = std::make_unique<runtime::CreditGate>(window);
        if (Instance* dst = local_by_global[static_cast<size_t>(ch->dst)]) {
          dst->in_channels.push_back(ch->id);
          if (cycle) {
            dst->port_has_cycle[static_cast<size_t>(e.to_port)] = true;
          } else {
            dst->port_open[static_cast<size_t>(e.to_port)]++;
            dst->outside_open++;
          }
        }
        out.channels.push_back(ch->id);
        channels.push_back(std::move(ch));
      }
      if (src_local) {
        // Start round robin at a different receiver on each sender, spreading the load.
        out.next = si;
        src_local->outputs[static_cast<size_t>(e.from_port)].push_back(std::move(out));
      }
    }
  }
}

// Frames ----------------------------------------------------------------------------------------

void Executor::Impl::control(int dst, FrameKind kind, uint32_t channel, uint64_t aux,
                             std::vector<std::byte> meta, uint8_t flags) {
  runtime::OutFrame f;
  f.header.kind = static_cast<uint8_t>(kind);
  f.header.flags = flags;
  f.header.channel = channel;
  f.header.aux = aux;
  f.meta = std::move(meta);
  tp.send(dst, std::move(f));
}

namespace {
std::vector<std::byte> text_bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());
  return v;
}
std::string bytes_text(const runtime::InFrame& f) {
  return std::string(reinterpret_cast<const char*>(f.payload()), f.header.meta_bytes);
}
}  // namespace

void Executor::Impl::on_frame(runtime::InFrame&& f) {
  const auto kind = static_cast<FrameKind>(f.header.kind);
  const int from = f.src_rank;
  auto bad = [&](const std::string& why) {
    throw TransportError("invalid frame from rank " + std::to_string(from) + ": " + why);
  };
  auto channel_of = [&]() -> Channel& {
    if (f.header.channel >= channels.size()) {
      bad("unknown channel " + std::to_string(f.header.channel));
    }
    return *channels[f.header.channel];
  };
  auto edge_name = [&](const Channel& ch) {
    const Edge& e = graph.edges()[static_cast<size_t>(ch.edge)];
    return graph.output_name(e.from_op, e.from_port) + " -> " + graph.input_name(e.to_op, e.to_port);
  };
  switch (kind) {
    case FrameKind::kData:
    case FrameKind::kEndOfStream: {
      Channel& ch = channel_of();
      if (ch.dst_rank != rank || ch.src_rank != from) {
        bad("channel " + std::to_string(ch.id) + " does not run from rank " + std::to_string(from) +
            " to rank " + std::to_string(rank));
      }
      if (f.header.seq != ch.expected_seq) {
        bad("edge " + edge_name(ch) + ": frame " + std::to_string(f.header.seq) +
            " arrived where frame " + std::to_string(ch.expected_seq) + " was due");
      }
      ch.expected_seq++;
      InboxItem item;
      item.port = ch.dst_port;
      item.channel = ch.id;
      if (kind == FrameKind::kData) {
        try {
          item.batch = share(decode_batch(f.owner(), f.payload(), f.payload_size()));
        } catch (const Error& e) {
          bad("edge " + edge_name(ch) + ": " + e.what());
        }
        item.bytes = item.batch->byte_size();
      } else {
        item.kind = InboxItem::Kind::kEndOfStream;
      }
      deliver(ch, std::move(item));
      return;
    }
    case FrameKind::kCredit: {
      Channel& ch = channel_of();
      if (ch.src_rank != rank || ch.dst_rank != from || !ch.gate) {
        bad("credit for channel " + std::to_string(ch.id) + " that rank " + std::to_string(from) +
            " does not receive");
      }
      ch.gate->release(f.header.aux);
      return;
    }
    case FrameKind::kTermReady: {
      if (rank != 0 || f.header.channel >= static_cast<uint32_t>(cycles)) bad("unexpected ready");
      std::lock_guard lock(mu);
      Wave& w = waves[f.header.channel];
      if (!w.ready[static_cast<size_t>(from)]) {
        w.ready[static_cast<size_t>(from)] = true;
        w.ready_count++;
      }
      main_cv.notify_all();
      return;
    }
    case FrameKind::kTermProbe: {
      if (f.header.channel >= static_cast<uint32_t>(cycles)) bad("probe of unknown cycle");
      uint64_t counts[2] = {0, 0};
      for (auto& in : local) {
        if (in->scc != static_cast<int>(f.header.channel)) continue;
        counts[0] += in->c.cycle_sent.load();
        counts[1] += in->c.cycle_processed.load();
      }
      std::vector<std::byte> meta(sizeof counts);
      std::memcpy(meta.data(), counts, sizeof counts);
      control(0, FrameKind::kTermReport, f.header.channel, f.header.aux, std::move(meta));
      return;
    }
    case FrameKind::kTermReport: {
      if (rank != 0 || f.header.channel >= static_cast<uint32_t>(cycles) || f.header.meta_bytes != 16) {
        bad("unexpected termination report");
      }
      uint64_t counts[2];
      std::memcpy(counts, f.payload(), sizeof counts);
      on_report(static_cast<int>(f.header.channel), f.header.aux, counts[0], counts[1]);
      return;
    }
    case FrameKind::kTermDone: {
      if (f.header.channel >= static_cast<uint32_t>(cycles)) bad("end of unknown cycle");
      cycle_done(static_cast<int>(f.header.channel));
      return;
    }
    case FrameKind::kLog: {
      if (rank != 0) bad("log lines sent to a rank other than 0");
      std::string text = bytes_text(f);
      std::lock_guard lock(mu);
      received_logs.emplace_back(static_cast<LogStream>(f.header.flags & 1), std::move(text));
      main_cv.notify_all();
      return;
    }
    case FrameKind::kError: {
      fail(bytes_text(f), static_cast<ExitCode>(f.header.aux), from);
      return;
    }
  }
  bad("unknown frame kind " + std::to_string(f.header.kind));
}

void Executor::Impl::on_transport_error(const std::string& message) {
  fail((world > 1 ? "[rank " + std::to_string(rank) + "] " : std::string()) + message,
       ExitCode::kFailure, rank);
}

// Errors ----------------------------------------------------------------------------------------

void Executor::Impl::fail(const std::string& message, ExitCode code, int origin) {
  {
    std::lock_guard lock(mu);
    if (error_message) return;
    error_message = message;
    error_code = code;
    error_origin = origin;
    main_cv.notify_all();
  }
  if (origin == rank && !shutting_down.load()) {
    for (int r = 0; r < world; ++r) {
      if (r != rank) {
        control(r, FrameKind::kError, 0, static_cast<uint64_t>(code), text_bytes(message));
      }
    }
  }
  cancel_all();
}

void Executor::Impl::cancel_all() {
  cancelled = true;
  for (auto& in : local) in->inbox->cancel();
  for (auto& ch : channels) {
    if (ch->gate) ch->gate->cancel();
  }
  std::lock_guard lock(mu);
  main_cv.notify_all();
}

// Data path -------------------------------------------------------------------------------------

void Executor::Impl::send(Instance& from, Channel& ch, const BatchPtr& batch) {
  const size_t bytes = batch->byte_size();
  if (ch.gate) {
    auto waited = ch.gate->acquire(credit_charge(bytes));
    if (waited.count() > 0) {
      from.c.credit_waits++;
      from.c.credit_wait_ns += static_cast<uint64_t>(waited.count());
    }
  } else if (ch.cycle) {
    from.c.cycle_sent++;
  }
  const uint64_t seq = ch.next_seq++;
  if (ch.dst_rank == rank) {
    InboxItem item;
    item.port = ch.dst_port;
    item.channel = ch.id;
    item.batch = batch;
    item.bytes = bytes;
    deliver(ch, std::move(item));
    return;
  }
  runtime::OutFrame f;
  f.header.kind = static_cast<uint8_t>(FrameKind::kData);
  f.header.channel = ch.id;
  f.header.seq = seq;
  encode_batch(batch, f);
  tp.send(ch.dst_rank, std::move(f));
}

void Executor::Impl::deliver(Channel& ch, InboxItem item) {
  Instance* dst = local_by_global[static_cast<size_t>(ch.dst)];
  TENSAIR_ASSERT(dst != nullptr, "delivery to an instance on another rank");
  if (item.kind == InboxItem::Kind::kData) {
    const auto charge = static_cast<int64_t>(credit_charge(item.bytes));
    int64_t q = ch.queued_bytes.fetch_add(charge) + charge;
    atomic_max(ch.queued_peak, q);
  }
  dst->inbox->push(std::move(item));
}

void Executor::Impl::consumed(Channel& ch, size_t bytes) {
  const size_t charge = credit_charge(bytes);
  int64_t left = ch.queued_bytes.fetch_sub(static_cast<int64_t>(charge)) - static_cast<int64_t>(charge);
  if (ch.cycle) return;
  if (ch.src_rank == rank) {
    ch.gate->release(charge);
    return;
  }
  uint64_t pending = ch.pending_credit.fetch_add(charge) + charge;
  // Return credit in chunks, and everything as soon as the channel's queue is empty, so a
  // waiting sender never stalls on credit that is merely held back.
  if (pending >= ch.window / 4 || left == 0) {
    uint64_t give = ch.pending_credit.exchange(0);
    if (give > 0 && !cancelled.load()) control(ch.src_rank, FrameKind::kCredit, ch.id, give);
  }
}

void Executor::Impl::send_end_of_stream(Channel& ch) {
  const uint64_t seq = ch.next_seq++;
  if (ch.dst_rank == rank) {
    InboxItem item;
    item.kind = InboxItem::Kind::kEndOfStream;
    item.port = ch.dst_port;
    item.channel = ch.id;
    deliver(ch, std::move(item));
    return;
  }
  runtime::OutFrame f;
  f.header.kind = static_cast<uint8_t>(FrameKind::kEndOfStream);
  f.header.channel = ch.id;
  f.header.seq = seq;
  tp.send(ch.dst_rank, std::move(f));
}

// Cycles ----------------------------------------------------------------------------------------

void Executor::Impl::instance_inputs_ended(Instance& in) {
  bool ready = false;
  {
    std::lock_guard lock(mu);
    ready = ++cycle_inputs_ended[static_cast<size_t>(in.scc)] == cycle_local[static_cast<size_t>(in.scc)];
  }
  if (ready) rank_ready(in.scc);
}

void Executor::Impl::rank_ready(int scc) {
  control(0, FrameKind::kTermReady, static_cast<uint32_t>(scc), 0);
}

// Rank 0, main thread: starts a counting wave for every cycle whose ranks are all ready.
void Executor::Impl::coordinator_tick() {
  if (rank != 0) return;
  std::vector<std::pair<int, uint64_t>> probes;
  {
    std::lock_guard lock(mu);
    auto now = Clock::now();
    for (int s = 0; s < cycles; ++s) {
      Wave& w = waves[static_cast<size_t>(s)];
      if (cycle_terminated[static_cast<size_t>(s)] || w.open || w.ready_count < world) continue;
      if (now < w.next_at) continue;
      w.open = true;
      w.id++;
      w.reports = 0;
      w.sent = w.processed = 0;
      probes.emplace_back(s, w.id);
    }
  }
  for (auto [s, id] : probes) {
    for (int r = 0; r < world; ++r) control(r, FrameKind::kTermProbe, static_cast<uint32_t>(s), id);
  }
}

void Executor::Impl::on_report(int scc, uint64_t wave, uint64_t sent, uint64_t processed) {
  bool done = false;
  {
    std::lock_guard lock(mu);
    Wave& w = waves[static_cast<size_t>(scc)];
    if (!w.open || wave != w.id) return;
    w.sent += sent;
    w.processed += processed;
    if (++w.reports < world) return;
    w.open = false;
    auto counts = std::make_pair(w.sent, w.processed);
    if (w.sent == w.processed && w.previous == counts) {
      done = true;
      // Decided: no further wave may start, even before rank 0 receives its own "done".
      cycle_terminated[static_cast<size_t>(scc)] = true;
    } else {
      // Counts still moving: look again soon, backing off while the cycle is busy.
      if (w.previous && w.previous != counts) w.delay_us = std::min(w.delay_us * 2, 50000);
      w.previous = counts;
      w.next_at = Clock::now() + std::chrono::microseconds(w.delay_us);
    }
    main_cv.notify_all();
  }
  if (done) {
    for (int r = 0; r < world; ++r) control(r, FrameKind::kTermDone, static_cast<uint32_t>(scc), 0);
  }
}

void Executor::Impl::cycle_done(int scc) {
  {
    std::lock_guard lock(mu);
    cycle_terminated[static_cast<size_t>(scc)] = true;
    main_cv.notify_all();
  }
  for (auto& in : local) {
    if (in->scc != scc) continue;
    InboxItem item;
    item.kind = InboxItem::Kind::kFinish;
    in->inbox->push(std::move(item));
  }
}

// Metrics, logs, progress -------------------------------------------------------------------------

void Executor::Impl::add_log_line(LogStream stream, std::string line) {
  std::lock_guard lock(mu);
  std::string& buf = stream == LogStream::kMetrics ? log_metrics : log_dead;
  buf += line;
  buf += '\n';
  if (buf.size() > (1 << 20)) main_cv.notify_all();
}

void Executor::Impl::write_log(LogStream stream, const std::string& text) {
  std::ofstream& file = stream == LogStream::kMetrics ? metrics_file : dead_file;
  if (stream == LogStream::kDeadLetters && !dead_file.is_open() && !opt.out_dir.empty()) {
    dead_file.open(opt.out_dir / "dead_letters.jsonl", std::ios::app);
  }
  if (!file.is_open()) return;
  file << text;
  if (stream == LogStream::kMetrics) {
    // Keep the latest counters of other ranks' instances for the progress line.
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + pos, end - pos);
      if (line.find("\"type\":\"operator\"") != std::string_view::npos) {
        json j = json::parse(line, nullptr, false);
        if (!j.is_discarded()) {
          remote_snapshots[j.value("operator", "") + "#" + std::to_string(j.value("instance", 0))] = j;
        }
      }
      pos = end + 1;
    }
  }
}

void Executor::Impl::flush_logs(bool final) {
  std::string metrics, dead;
  std::vector<std::pair<LogStream, std::string>> received;
  {
    std::lock_guard lock(mu);
    metrics.swap(log_metrics);
    dead.swap(log_dead);
    received.swap(received_logs);
  }
  if (rank == 0) {
    for (auto& [stream, text] : received) write_log(stream, text);
    if (!metrics.empty()) write_log(LogStream::kMetrics, metrics);
    if (!dead.empty()) write_log(LogStream::kDeadLetters, dead);
    if (final || !metrics.empty()) metrics_file.flush();
    if (dead_file.is_open()) dead_file.flush();
    return;
  }
  if (opt.out_dir.empty()) return;
  if (!metrics.empty()) control(0, FrameKind::kLog, 0, 0, text_bytes(metrics), 0);
  if (!dead.empty()) control(0, FrameKind::kLog, 0, 0, text_bytes(dead), 1);
}

json Executor::Impl::instance_metrics(const Instance& in, bool final) const {
  InstanceStats s = in.stats();
  return json{{"t", elapsed()},
              {"type", "operator"},
              {"rank", rank},
              {"operator", s.name},
              {"op_type", in.info_.type},
              {"instance", s.instance},
              {"source", graph.operators()[static_cast<size_t>(in.op)].inputs.empty()},
              {"records_in", s.records_in},
              {"records_out", s.records_out},
              {"bytes_in", s.bytes_in},
              {"bytes_out", s.bytes_out},
              {"batches_in", s.batches_in},
              {"batches_out", s.batches_out},
              {"queue_depth", in.inbox->depth()},
              {"queued_bytes", in.queued_bytes()},
              {"queued_bytes_peak", s.queued_bytes_peak},
              {"credit_waits", s.credit_waits},
              {"credit_wait_s", s.credit_wait_s},
              {"dead_letters", s.dead_letters},
              {"busy_s", s.busy_s},
              {"final", final}};
}

void Executor::Impl::snapshot_metrics(bool final) {
  for (const auto& in : local) add_log_line(LogStream::kMetrics, instance_metrics(*in, final).dump());
  runtime::TransportStats ts = tp.stats();
  add_log_line(LogStream::kMetrics,
               json{{"t", elapsed()}, {"type", "transport"}, {"rank", rank},
                    {"frames_sent", ts.frames_sent}, {"frames_received", ts.frames_received},
                    {"bytes_sent", ts.bytes_sent}, {"bytes_received", ts.bytes_received},
                    {"final", final}}
                   .dump());
}

namespace {
std::string human(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}
std::string human_bytes(double v) {
  char buf[32];
  if (v >= 1 << 30) std::snprintf(buf, sizeof buf, "%.1f GiB", v / (1 << 30));
  else if (v >= 1 << 20) std::snprintf(buf, sizeof buf, "%.1f MiB", v / (1 << 20));
  else if (v >= 1 << 10) std::snprintf(buf, sizeof buf, "%.1f KiB", v / (1 << 10));
  else std::snprintf(buf, sizeof buf, "%.0f B", v);
  return buf;
}
}  // namespace

void Executor::Impl::progress_line(bool final) {
  if (!opt.progress || rank != 0) return;
  // Latest counters: this rank live, other ranks from their last metrics lines.
  std::map<std::string, json> view = remote_snapshots;
  for (const auto& in : local) {
    json j = instance_metrics(*in, false);
    view[in->info_.name + "#" + std::to_string(in->info_.instance)] = j;
  }
  std::map<std::string, uint64_t> source_records;
  double in_flight = 0;
  for (const auto& [key, j] : view) {
    if (j.value("source", false)) source_records[j.value("operator", "")] += j.value("records_out", uint64_t{0});
    in_flight += j.value("queued_bytes", 0.0);
  }
  double t = elapsed();
  std::string line;
  char head[32];
  std::snprintf(head, sizeof head, "[%7.1f s]", t);
  line = head;
  for (const auto& [name, records] : source_records) {
    auto& prev = progress_prev[name];
    double dt = t - prev.first;
    double rate = dt > 0 ? static_cast<double>(records - std::min(records, prev.second)) / dt : 0;
    if (final) rate = t > 0 ? static_cast<double>(records) / t : 0;
    prev = {t, records};
    line += " " + name + ": " + human(static_cast<double>(records)) + " rec (" + human(rate) + " rec/s)";
  }
  line += " | in flight " + human_bytes(in_flight);
  std::fprintf(stderr, "\r%-100s%s", line.c_str(), final ? "\n" : "");
  std::fflush(stderr);
}

// Run -------------------------------------------------------------------------------------------

void Executor::Impl::run() {
  start_time = Clock::now();
  tp.start([this](runtime::InFrame&& f) { on_frame(std::move(f)); },
           [this](const std::string& m) { on_transport_error(m); });
  if (!opt.out_dir.empty() && rank == 0) {
    std::error_code ec;
    std::filesystem::create_directories(opt.out_dir, ec);
    metrics_file.open(opt.out_dir / "metrics.jsonl", std::ios::trunc);
    if (!metrics_file) {
      fail("cannot write " + (opt.out_dir / "metrics.jsonl").string(), ExitCode::kConfig, rank);
    } else {
      std::filesystem::remove(opt.out_dir / "dead_letters.jsonl", ec);
      metrics_file << json{{"t", 0.0}, {"type", "job"}, {"event", "start"}, {"job", opt.job_name},
                           {"ranks", world}, {"operators", graph.operators().size()}}
                          .dump()
                   << "\n";
    }
  }
  // Cycles with no instance on this rank: this rank is ready for them from the start.
  for (int s = 0; s < cycles; ++s) {
    if (cycle_local[static_cast<size_t>(s)] == 0) rank_ready(s);
  }
  {
    std::lock_guard lock(mu);
    running = static_cast<int>(local.size());
  }
  for (auto& in : local) {
    Instance* p = in.get();
    in->thread = std::thread([p] { p->thread_main(); });
  }
  main_loop();
  for (auto& in : local) in->thread.join();
  snapshot_metrics(true);
  flush_logs(true);
  shutting_down = true;
  tp.shutdown();
  flush_logs(true);
  if (rank == 0) {
    progress_line(true);
    if (metrics_file.is_open()) {
      std::lock_guard lock(mu);
      metrics_file << json{{"t", elapsed()}, {"type", "job"}, {"event", "end"},
                           {"status", error_message ? "error" : "ok"},
                           {"elapsed_s", elapsed()}}
                          .dump()
                   << "\n";
      metrics_file.flush();
    }
  }
  std::lock_guard lock(mu);
  if (error_message) {
    // Only the rank where the error arose prints it; the others end quietly with its code.
    if (error_origin == rank) throw Error(*error_message, error_code);
    throw PeerFailure("stopped because rank " + std::to_string(error_origin) + " failed: " + *error_message,
                      error_code);
  }
}

void Executor::Impl::main_loop() {
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(0.05, opt.metrics_interval_s)));
  auto now = Clock::now();
  next_metrics = now + interval;
  next_flush = now + std::chrono::milliseconds(200);
  next_progress = now + std::chrono::milliseconds(500);
  for (;;) {
    coordinator_tick();
    now = Clock::now();
    if (now >= next_metrics) {
      snapshot_metrics(false);
      next_metrics = now + interval;
    }
    if (now >= next_flush) {
      flush_logs(false);
      next_flush = now + std::chrono::milliseconds(200);
    }
    if (opt.progress && rank == 0 && now >= next_progress) {
      progress_line(false);
      next_progress = now + std::chrono::milliseconds(500);
    }
    std::unique_lock lock(mu);
    bool cycles_done = std::all_of(cycle_terminated.begin(), cycle_terminated.end(), [](bool b) { return b; });
    if (running == 0 && (cycles_done || cancelled.load())) return;
    auto wake = std::min({next_metrics, next_flush, now + std::chrono::milliseconds(50)});
    if (rank == 0) {
      for (int s = 0; s < cycles; ++s) {
        const Wave& w = waves[static_cast<size_t>(s)];
        if (!cycle_terminated[static_cast<size_t>(s)] && !w.open && w.ready_count == world) {
          wake = std::min(wake, w.next_at);
        }
      }
    }
    if (wake > now) main_cv.wait_until(lock, wake);
  }
}

// Executor --------------------------------------------------------------------------------------

Executor::Executor(const Graph& graph, runtime::Transport& transport, ExecutorOptions options)
    : impl_(std::make_unique<Impl>(graph, transport, std::move(options))) {
  impl_->build();
}

Executor::~Executor() {
  if (!impl_) return;
  // run() joins its threads; only an executor destroyed without running gets here with none.
  for (auto& in : impl_->local) {
    if (in->thread.joinable()) {
      impl_->cancel_all();
      in->thread.join();
    }
  }
}

void Executor::run() { impl_->run(); }

std::vector<InstanceStats> Executor::stats() const {
  std::vector<InstanceStats> out;
  for (const auto& in : impl_->local) out.push_back(in->stats());
  return out;
}

}  // namespace tensair::dataflow
