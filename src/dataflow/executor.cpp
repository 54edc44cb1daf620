// Executor: set-up, run(), the main loop, errors, stops and the end of a run. See
// executor_impl.hpp for the threads and invariants, and executor.hpp for the contract.
#include "tensair/dataflow/executor.hpp"

#include <algorithm>

#include "dataflow/executor_impl.hpp"
#include "tensair/common/log.hpp"

namespace tensair::dataflow {
namespace detail {

namespace fs = std::filesystem;

void Counters::save(StateWriter& w) const {
  for (const auto* a : {&records_in, &records_out, &bytes_in, &bytes_out, &batches_in, &batches_out,
                        &credit_waits, &credit_wait_ns, &dead_letters, &busy_ns, &offers_refused}) {
    w.put<uint64_t>(a->load());
  }
}

void Counters::load(StateReader& r) {
  for (auto* a : {&records_in, &records_out, &bytes_in, &bytes_out, &batches_in, &batches_out,
                  &credit_waits, &credit_wait_ns, &dead_letters, &busy_ns, &offers_refused}) {
    a->store(r.get<uint64_t>());
  }
}

Impl::Impl(const Graph& g, runtime::Transport& t, ExecutorOptions o)
    : graph(g),
      tp(t),
      opt(std::move(o)),
      rank(t.rank()),
      world(t.world_size()),
      termination(0, 1) {}

// Set-up ----------------------------------------------------------------------------------------

void Impl::build() {
  graph.validate(world);
  comp = graph.cycle_components();
  for (int c : comp) cycles = std::max(cycles, c + 1);
  termination = CycleTermination(cycles, world);
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
  restore_offers.assign(static_cast<size_t>(world), std::nullopt);

  for (size_t g = 0; g < instances.size(); ++g) {
    const GlobalInstance& gi = instances[g];
    if (gi.rank != rank) continue;
    const OperatorNode& node = ops[static_cast<size_t>(gi.op)];
    std::vector<int> priorities;
    for (const PortSpec& p : node.inputs) priorities.push_back(p.priority);
    InstanceInfo info{node.name,  node.def->type(),
                      rank,       world,
                      gi.index,   static_cast<int>(op_ranks[static_cast<size_t>(gi.op)].size()),
                      opt.out_dir};
    auto in = std::make_unique<Instance>(
        *this, static_cast<int>(g), gi.op, comp[static_cast<size_t>(gi.op)], std::move(info),
        std::move(priorities), node.outputs.size(), node.inputs.size());
    if (in->scc >= 0) cycle_local[static_cast<size_t>(in->scc)]++;
    local_by_global[g] = in.get();
    local.push_back(std::move(in));
  }
  build_channels();
}

void Impl::build_channels() {
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
          case Routing::Kind::kForward:
            reachable = src_rank == dst_rank;
            break;
          case Routing::Kind::kToRank:
            reachable = dst_rank == e.routing.rank();
            break;
          case Routing::Kind::kBroadcast:
            reachable = e.routing.include_self() || src_rank != dst_rank;
            break;
          default:
            break;
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
        if (src_local) {
          ch->gate = std::make_unique<runtime::CreditGate>(window);
          // An offer() refused for lack of credit: the sender hears when credit is back.
          ch->gate->set_on_available(
              [src_local, port = e.from_port, target = static_cast<int>(di)] {
                InboxItem item;
                item.kind = InboxItem::Kind::kCredit;
                item.port = port;
                item.id = static_cast<uint64_t>(target);
                src_local->inbox->push(std::move(item));
              });
        }
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
        out.targets.push_back(static_cast<int>(di));
        channels.push_back(std::move(ch));
      }
      if (src_local) {
        // Start round robin at a different receiver on each sender, spreading the load.
        out.next = si;
        if (e.routing.kind() == Routing::Kind::kLeastLoaded) {
          out.credit_listener = std::make_shared<runtime::CreditListener>();
          for (uint32_t id : out.channels) channels[id]->gate->set_listener(out.credit_listener);
        }
        src_local->outputs[static_cast<size_t>(e.from_port)].push_back(std::move(out));
      }
    }
  }
}

// Cycles ----------------------------------------------------------------------------------------

void Impl::instance_inputs_ended(Instance& in) {
  bool ready = false;
  {
    std::lock_guard lock(mu);
    ready = ++cycle_inputs_ended[static_cast<size_t>(in.scc)] ==
            cycle_local[static_cast<size_t>(in.scc)];
  }
  if (ready) rank_ready(in.scc);
}

void Impl::rank_ready(int scc) { control(0, FrameKind::kTermReady, static_cast<uint32_t>(scc), 0); }

// Rank 0, main thread: starts a counting wave for every cycle whose ranks are all ready.
void Impl::coordinator_tick() {
  if (rank != 0) return;
  std::vector<std::pair<int, uint64_t>> probes;
  {
    std::lock_guard lock(mu);
    probes = termination.waves_to_start(Clock::now());
  }
  for (auto [s, id] : probes) {
    for (int r = 0; r < world; ++r) control(r, FrameKind::kTermProbe, static_cast<uint32_t>(s), id);
  }
}

void Impl::cycle_done(int scc) {
  {
    std::lock_guard lock(mu);
    termination.mark_terminated(scc);
    main_cv.notify_all();
  }
  for (auto& in : local) {
    if (in->scc != scc) continue;
    InboxItem item;
    item.kind = InboxItem::Kind::kFinish;
    in->inbox->push(std::move(item));
  }
}

void Impl::instance_finished(Instance& in) {
  std::lock_guard lock(ckpt_mu);
  in.finish_checkpoints();
}

// Stops -----------------------------------------------------------------------------------------

// Main thread: a signal asked for a stop; rank 0 decides for the whole job.
void Impl::poll_stop() {
  if (!opt.stop_signal) return;
  const int sig = opt.stop_signal->load();
  if (sig == 0) return;
  {
    std::lock_guard lock(mu);
    if (stop_requested) return;
    stop_requested = true;
  }
  if (rank == 0) {
    begin_stop(sig);
  } else {
    control(0, FrameKind::kStopRequest, 0, static_cast<uint64_t>(sig));
  }
}

// Rank 0: the job stops. With checkpoints, the sources end after one last checkpoint (its
// trigger carries the stop); without, they end at once.
void Impl::begin_stop(int signal) {
  {
    std::lock_guard lock(mu);
    if (stop_begun) return;
    stop_begun = true;
    int expected = 0;
    stop_signal_seen.compare_exchange_strong(expected, signal);
    if (coordinator) {
      coordinator->request_stop();
      main_cv.notify_all();
    }
  }
  job_event({{"event", "stop"}, {"signal", signal}});
  if (!coordinator) {
    for (int r = 0; r < world; ++r) control(r, FrameKind::kStop, 0, static_cast<uint64_t>(signal));
  }
}

void Impl::stop_sources(int signal) {
  int expected = 0;
  stop_signal_seen.compare_exchange_strong(expected, signal);
  sources_stop = true;
  std::lock_guard lock(mu);
  main_cv.notify_all();
}

// Errors ----------------------------------------------------------------------------------------

void Impl::fail(const std::exception& e, const std::string& context) {
  if (const auto* err = dynamic_cast<const Error*>(&e)) {
    if (err->kind() == ErrorKind::kCancelled) return;
    fail(context + ": " + err->what(), err->kind(), err->exit_code(), rank);
    return;
  }
  // A std:: or LibTorch exception that no layer turned into an Error: its text is all there is.
  fail(context + ": " + e.what(), ErrorKind::kError, ExitCode::kFailure, rank);
}

void Impl::fail(const std::string& message, ErrorKind kind, ExitCode code, int origin) {
  bool lost = false;
  {
    std::lock_guard lock(mu);
    if (error_message) return;
    error_message = message;
    error_kind = kind;
    error_code = code;
    error_origin = origin;
    lost = lost_peer;
    main_cv.notify_all();
  }
  if (origin == rank && !shutting_down.load() && !lost) {
    for (int r = 0; r < world; ++r) {
      if (r != rank) {
        control(r, FrameKind::kError, 0, static_cast<uint64_t>(code), text_bytes(message),
                static_cast<uint8_t>(kind));
      }
    }
  }
  cancel_all();
}

// The transport found a peer gone or silent. Every surviving rank stops at once and leaves
// without the collective shutdown; the lowest surviving rank reports it (one line for the job).
void Impl::peer_lost(int lost, const std::string& what) {
  const std::string message = "rank " + std::to_string(lost) + " " + what + "; stopping the job";
  std::vector<int> lost_now;
  {
    std::lock_guard lock(mu);
    // Once the job is failing, other ranks leave too: their exits are not new failures.
    if (lost_peer || error_message) return;
    lost_now = lost_ranks;
  }
  lost_now.push_back(lost);
  // Tell the other survivors now, rather than each waiting for its own timeout.
  for (int r = 0; r < world; ++r) {
    if (r == rank || std::find(lost_now.begin(), lost_now.end(), r) != lost_now.end()) continue;
    control(r, FrameKind::kError, static_cast<uint32_t>(lost),
            static_cast<uint64_t>(ExitCode::kFailure), text_bytes(message),
            static_cast<uint8_t>(static_cast<uint8_t>(ErrorKind::kTransport) | 0x80));
  }
  peer_lost_notice(lost, message);
}

void Impl::peer_lost_notice(int lost, const std::string& message) {
  int reporter = 0;
  {
    std::lock_guard lock(mu);
    if (lost_peer) return;
    lost_peer = true;
    if (std::find(lost_ranks.begin(), lost_ranks.end(), lost) == lost_ranks.end())
      lost_ranks.push_back(lost);
    while (std::find(lost_ranks.begin(), lost_ranks.end(), reporter) != lost_ranks.end())
      ++reporter;
  }
  fail(message, ErrorKind::kTransport, ExitCode::kFailure, reporter);
}

void Impl::cancel_all() {
  cancelled = true;
  for (auto& in : local) in->inbox->cancel();
  for (auto& ch : channels) {
    if (ch->gate) ch->gate->cancel();
  }
  std::lock_guard lock(mu);
  main_cv.notify_all();
}

// Run -------------------------------------------------------------------------------------------

RunOutcome Impl::run() {
  start_time = Clock::now();
  if (opt.heartbeat_timeout_s > 0 && world > 1) {
    tp.watch_peers(opt.heartbeat_timeout_s,
                   [this](int r, const std::string& what) { peer_lost(r, what); });
  }
  tp.start([this](runtime::InFrame&& f) { on_frame(std::move(f)); },
           [this](const std::string& m) { on_transport_error(m); });
  try {
    if (checkpoints_on() && checkpoint_root().empty()) {
      throw ConfigError("checkpoints need a folder: give [checkpoint] dir or an output folder");
    }
    agree_on_resume();
    if (resumed_from) load_rank_file(resumed_from);
    if (!cancelled.load()) open_metrics();
    if (!cancelled.load()) live_metrics.start(*this);
  } catch (const Error& e) {
    // A decision every rank reached alike (origin 0), or this rank's own failure.
    fail(e.what(), e.kind(), e.exit_code(), e.from_other_rank() ? e.origin_rank() : rank);
  }
  if (!cancelled.load()) {
    if (checkpoints_on()) {
      start_writer();
      if (rank == 0) {
        const uint64_t first = std::max(highest_checkpoint_id(checkpoint_root()), resumed_from) + 1;
        std::lock_guard lock(mu);
        coordinator.emplace(opt.checkpoint, world, first, Clock::now());
      }
    }
    // Cycles with no instance on this rank: this rank is ready for them from the start.
    for (int s = 0; s < cycles; ++s) {
      if (cycle_local[static_cast<size_t>(s)] == 0) rank_ready(s);
    }
    int to_restore = 0;
    for (auto& in : local) {
      auto it = restored.find(in->id);
      in->prepare(it == restored.end() ? nullptr : &it->second, resumed_from);
      if (it != restored.end() && !it->second.finished) ++to_restore;
    }
    restoring = to_restore + 1;
    if (resumed_from) instance_restored();  // the engine's part is done
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
  }
  return finish_run();
}

void Impl::main_loop() {
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(0.05, opt.metrics_interval_s)));
  auto now = Clock::now();
  next_metrics = now + interval;
  next_flush = now + std::chrono::milliseconds(200);
  next_progress = now + std::chrono::milliseconds(500);
  for (;;) {
    poll_stop();
    coordinator_tick();
    checkpoint_tick();
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
    const bool writer_done = !writer.joinable() || writer_idle();
    bool announce_finished = false, order_shutdown = false;
    {
      std::unique_lock lock(mu);
      if (cancelled.load()) {
        if (running == 0) return;
      } else if (running == 0 && termination.all_terminated()) {
        // Every local instance finished. Rank 0 lets the job leave once every rank has, and
        // no checkpoint is still being taken; the others wait for its word.
        if (!rank_finished_sent) {
          rank_finished_sent = true;
          if (rank == 0) {
            ranks_finished++;
          } else {
            announce_finished = true;
          }
        }
        if (rank == 0 && !shutdown_ordered && ranks_finished == world && writer_done &&
            (!coordinator || coordinator->idle())) {
          shutdown_ordered = true;
          order_shutdown = true;
        }
        if (shutdown_ordered && writer_done && !order_shutdown) return;
      }
      if (!announce_finished && !order_shutdown) {
        auto wake = std::min({next_metrics, next_flush, now + std::chrono::milliseconds(50)});
        if (rank == 0) {
          if (auto at = termination.next_wave_at()) wake = std::min(wake, *at);
          if (coordinator) {
            if (auto at = coordinator->next_due()) wake = std::min(wake, *at);
          }
        }
        if (wake > now) main_cv.wait_until(lock, wake);
        continue;
      }
    }
    if (announce_finished) control(0, FrameKind::kRankFinished, 0, 0);
    if (order_shutdown) {
      for (int r = 1; r < world; ++r) control(r, FrameKind::kShutdown, 0, 0);
      return;
    }
  }
}

// After the main loop: the last metrics, the collective shutdown (or, with a peer lost, none),
// the end line, and the outcome or the job's error.
RunOutcome Impl::finish_run() {
  snapshot_metrics(true);
  live_metrics.stop();
  flush_logs(true);
  bool lost = false;
  std::vector<int> lost_now;
  {
    std::lock_guard lock(mu);
    lost = lost_peer;
    lost_now = lost_ranks;
  }
  if (lost) {
    tp_abandoned = true;
    tp.abandon(lost_now);
  } else {
    shutting_down = true;
    tp.shutdown();
  }
  flush_logs(true);
  stop_writer();
  std::optional<std::string> message;
  {
    std::lock_guard lock(mu);
    message = error_message;
  }
  const char* status = "ok";
  if (lost)
    status = "failed";
  else if (message)
    status = "error";
  else if (stop_signal_seen.load())
    status = "stopped";
  if (rank == 0) progress_line(true);
  write_end_line(status);
  std::lock_guard lock(mu);
  if (error_message) {
    // Every rank rethrows the job's error as the kind it was raised as; the CLI prints it only
    // on the rank it arose on.
    Error::raise(error_kind, *error_message, error_code, error_origin == rank ? -1 : error_origin);
  }
  RunOutcome out;
  out.resumed_from = resumed_from;
  out.last_checkpoint = last_complete;
  if (stop_signal_seen.load()) {
    out.status = RunOutcome::Status::kStopped;
    out.signal = stop_signal_seen.load();
  }
  return out;
}

}  // namespace detail

// Executor --------------------------------------------------------------------------------------

Executor::Executor(const Graph& graph, runtime::Transport& transport, ExecutorOptions options)
    : impl_(std::make_unique<detail::Impl>(graph, transport, std::move(options))) {
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
  impl_->stop_writer();
}

RunOutcome Executor::run() { return impl_->run(); }

std::vector<InstanceStats> Executor::stats() const {
  std::vector<InstanceStats> out;
  for (const auto& in : impl_->local) out.push_back(in->stats());
  return out;
}

}  // namespace tensair::dataflow
