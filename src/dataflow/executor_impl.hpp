// The executor's internals, shared by its implementation files:
//   executor.cpp       set-up, run(), the main loop, errors, stop, shutdown
//   instance.cpp       one operator instance: its thread, its Context, routing
//   data_path.cpp      channels: send, deliver, credit, end of stream, barriers
//   frames.cpp         every frame that arrives (the progress thread)
//   checkpointing.cpp  this rank's side of checkpoints: triggers, snapshots, rank files, restore
//   metrics_log.cpp    metrics.jsonl, dead_letters.jsonl, the progress line
// and the pure units termination.hpp, snapshot_tracker.hpp, checkpoint_coordinator.hpp.
//
// Threads on one rank:
//   main      run(): starts everything, coordinates cycle termination and checkpoints (rank 0),
//             writes and ships metrics, prints progress, watches for a stop, then shuts down.
//   instance  one per local operator instance: pops its inbox and calls the operator.
//   progress  the transport's thread: on_frame() decodes batches into inboxes, applies credit,
//             answers termination probes, delivers checkpoint triggers, collects logs (rank 0)
//             and errors.
//   writer    writes this rank's checkpoint files (checkpointing.cpp), so that no instance
//             waits for a disk.
//
// Invariants:
// - A channel is written by exactly one thread (its sending instance), so its sequence numbers
//   are assigned in send order; remote receivers check them (FIFO, no loss, no duplicate).
// - queued_bytes of a channel counts the credit charge (column bytes + kBatchCreditCharge) of
//   the batches pushed to the receiving inbox and not yet processed; it never exceeds the
//   channel's credit except for a single batch larger than the credit, and on a cycle by the
//   batches sent with send_to() (bounded by the protocol that sends them).
// - cycle_sent is incremented before a batch or barrier on a cycle edge is handed over;
//   cycle_processed after it was processed (including everything it emitted). With all outside
//   inputs of a cycle ended, equal sums over two consecutive waves mean the cycle is quiet.
// - Every local instance reports every checkpoint exactly once: its snapshot, or "finished".
//   ckpt_mu orders an instance's finishing against the arrival of triggers, so none is missed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dataflow/checkpoint_coordinator.hpp"
#include "dataflow/inbox.hpp"
#include "dataflow/live_metrics.hpp"
#include "dataflow/snapshot_tracker.hpp"
#include "dataflow/termination.hpp"
#include "runtime/credit_gate.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/dataflow/state.hpp"

namespace tensair::dataflow::detail {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

// Frame kinds of the dataflow layer (FrameHeader::kind). See docs/wire-format.md.
enum class FrameKind : uint8_t {
  kData = 1,              // channel, seq; payload: a batch
  kEndOfStream = 2,       // channel, seq
  kCredit = 3,            // channel; aux: bytes returned to the sender
  kBarrier = 4,           // channel, seq; aux: checkpoint id
  kTermReady = 10,        // channel: cycle id. "All my instances of this cycle ended their inputs."
  kTermProbe = 11,        // channel: cycle id, aux: wave. Rank 0 asks for counts.
  kTermReport = 12,       // channel: cycle id, aux: wave; meta: u64 sent, u64 processed
  kTermDone = 13,         // channel: cycle id. The cycle has terminated.
  kLog = 14,              // flags: 0 metrics, 1 dead letters; meta: JSON lines
  kError = 15,            // flags: ErrorKind, aux: exit code; meta: message
  kCkptTrigger = 20,      // rank 0 -> all. aux: checkpoint id; flags: 1 = the sources stop after it
  kCkptRequest = 21,      // -> rank 0: a source asks for a checkpoint (every_records)
  kCkptRankDone = 22,     // -> rank 0. aux: id; meta: JSON {"files": [...], "error": "..."}
  kCkptComplete = 23,     // rank 0 -> all. aux: id
  kStopRequest = 24,      // -> rank 0. aux: signal number
  kStop = 25,             // rank 0 -> all (checkpoints off). aux: signal number
  kRankFinished = 26,     // -> rank 0: every instance of the sender has finished
  kShutdown = 27,         // rank 0 -> all: everything finished; leave through the shutdown
  kRestoreOffer = 28,     // -> rank 0. meta: JSON: the checkpoints usable on the sender
  kRestoreDecision = 29,  // rank 0 -> all. aux: checkpoint id (0: none); meta: JSON
};

enum class LogStream : uint8_t { kMetrics = 0, kDeadLetters = 1 };

// What a batch of `bytes` column bytes counts against a channel's credit (and in its queued
// bytes); the sender and the receiver compute it alike from the batch.
inline size_t credit_charge(size_t bytes) { return bytes + kBatchCreditCharge; }

std::vector<std::byte> text_bytes(const std::string& s);

struct Counters {
  std::atomic<uint64_t> records_in{0}, records_out{0}, bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> batches_in{0}, batches_out{0}, credit_waits{0}, credit_wait_ns{0};
  std::atomic<uint64_t> dead_letters{0}, busy_ns{0}, cycle_sent{0}, cycle_processed{0};
  std::atomic<uint64_t> offers_refused{0};

  // The counters a checkpoint carries over (so metrics continue across a restore); the cycle
  // counters start from 0 in every run.
  void save(StateWriter& w) const;
  void load(StateReader& r);
};

struct Channel {
  uint32_t id = 0;
  int edge = 0;
  int src = 0, dst = 0;  // global instance ids
  int src_rank = 0, dst_rank = 0;
  int dst_port = 0;
  bool cycle = false;
  size_t window = 0;
  // Sending side (src on this rank).
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
  std::vector<int> targets;        // the receiving instance index of each channel
  uint64_t next = 0;               // round robin position; least_loaded's tie-break
  // least_loaded: woken by every release of credit on the edge's channels.
  std::shared_ptr<runtime::CreditListener> credit_listener;
};

// One recorded item of a checkpoint's channel state.
struct RecordedItem {
  uint32_t channel = 0;
  bool end_of_stream = false;
  BatchPtr batch;
};

// A local instance's part of a restored checkpoint, parsed from its rank file.
struct RestoredInstance {
  bool finished = false;
  std::string engine;               // the engine's state of the instance (save_engine_state)
  std::vector<RecordedItem> items;  // its recorded channel state, to deliver again
  std::string operator_state;       // what Operator::snapshot wrote
};

// One instance's entry in a rank file:
//   u32 format, string engine state, u64 n, n x (u32 channel, u8 end_of_stream, [batch]),
//   string operator state
std::string encode_instance_entry(const std::string& engine, const std::vector<RecordedItem>& items,
                                  const std::string& operator_state);
RestoredInstance decode_instance_entry(std::string_view entry, const std::string& what);

class Impl;

// One operator instance on this rank: its thread, inbox, ports and the Context it offers.
class Instance final : public Context {
 public:
  Instance(Impl& impl, int id, int op, int scc, InstanceInfo info, std::vector<int> priorities,
           size_t outputs, size_t inputs);

  // Context
  const InstanceInfo& info() const override { return info_; }
  void emit(int port, BatchPtr batch) override;
  bool offer(int port, int target, BatchPtr batch) override;
  void send_to(int port, int target, BatchPtr batch) override;
  std::vector<int> targets(int port) const override;
  void dead_letter(std::string_view reason, std::string_view record) override;
  void log_event(const json& event) override;
  void pause(int in_port) override { inbox->pause(in_port); }
  void resume(int in_port) override { inbox->resume(in_port); }
  size_t queued(int in_port) const override { return inbox->queued(in_port); }
  void set_timer(Clock::time_point when) override { timer = when; }
  void clear_timer() override { timer.reset(); }
  void sync_at_checkpoint(int fd) override;
  bool cancelled() const override;
  bool yield_requested() const override;
  CheckpointView checkpoints() const override;

  // Set-up, before the thread starts: the snapshot tracker over the input channels, and the
  // restored state (when resuming; its recorded items are moved out).
  void prepare(RestoredInstance* restored, uint64_t restored_id);
  void thread_main();

  InstanceStats stats() const;
  int64_t queued_bytes() const;
  std::string context() const;
  const std::string& name() const { return info_.name; }
  bool is_source() const { return is_source_; }

  // Checkpoints, from other threads (under Impl::ckpt_mu): a trigger arrived; a checkpoint
  // completed everywhere.
  void deliver_trigger(uint64_t id);
  void deliver_completion(uint64_t id);
  // On the instance's thread as it finishes, under Impl::ckpt_mu: completes the checkpoint in
  // progress and reports the instance finished in the ones it has not reported.
  void finish_checkpoints();
  // A finished instance forwards checkpoint `id`'s barrier (under Impl::ckpt_mu).
  void forward_barriers_finished(uint64_t id);

  Impl& impl;
  const int id;  // global instance id
  const int op;
  const int scc;
  std::unique_ptr<Inbox> inbox;
  std::vector<std::vector<OutEdge>> outputs;  // per output port
  std::vector<int> port_open;                 // per input port: outside channels not yet ended
  std::vector<bool> port_has_cycle;           // per input port: fed by a cycle edge
  std::vector<uint32_t> in_channels;
  int outside_open = 0;
  Counters c;
  std::thread thread;
  // Guarded by Impl::ckpt_mu: the instance has finished, so the rank reports it as finished in
  // every later checkpoint.
  bool ckpt_finished = false;

 private:
  void run_source();
  void run_operator();
  void handle(InboxItem& item);
  void outside_inputs_ended();
  void input_port_done(int port);
  void finish();
  void route(OutEdge& e, const BatchPtr& batch);
  void route_by_key(OutEdge& e, const BatchPtr& batch);
  void route_least_loaded(OutEdge& e, const BatchPtr& batch);
  OutEdge& single_edge(int port, const char* what);
  Channel& target_channel(OutEdge& e, int target);
  std::string graph_port(int port) const;

  // Checkpoints.
  void take_snapshot(uint64_t id);
  std::string snapshot_entry();  // the snapshot taken, with what was recorded since
  void apply_step(const SnapshotTracker::Step& s);
  void source_checkpoint_points();
  std::string save_engine_state() const;
  void load_engine_state(StateReader& r);

  InstanceInfo info_;
  std::unique_ptr<Operator> op_impl;
  bool is_source_ = false;
  bool inputs_ended = false;
  bool finished = false;
  std::vector<bool> port_done;  // on_input_done was called
  std::optional<Clock::time_point> timer;
  std::optional<SnapshotTracker> tracker;
  std::string snap_engine_, snap_operator_;  // the snapshot in progress, taken at its barrier
  std::vector<int> snap_fds_;                // files to fsync before it completes (duplicates)
  std::vector<RecordedItem> recorded;        // its channel state, recorded since
  const RestoredInstance* restored_ = nullptr;
  uint64_t restored_id_ = 0;
  // Sources: the newest trigger and completion announced to this instance (its thread checks
  // them between produce() calls), and records read since it last asked for a checkpoint.
  std::atomic<uint64_t> source_trigger_{0};
  std::atomic<uint64_t> source_complete_{0};
  uint64_t source_completed_ = 0;
  uint64_t snapshot_id_ = 0;  // the checkpoint whose snapshot() runs now (checkpoints())
  uint64_t records_since_request_ = 0;
  bool records_request_sent_ = false;
};

class Impl {
 public:
  Impl(const Graph& g, runtime::Transport& t, ExecutorOptions o);

  // Set-up (executor.cpp)
  void build();
  void build_channels();

  // Running (executor.cpp)
  RunOutcome run();
  void main_loop();
  void poll_stop();
  void begin_stop(int signal);
  void stop_sources(int signal);
  RunOutcome finish_run();

  // Errors (executor.cpp)
  void fail(const std::string& message, ErrorKind kind, ExitCode code, int origin);
  void fail(const std::exception& e, const std::string& context);
  // A peer is gone or silent (from the transport), or another survivor said so (`notice`).
  void peer_lost(int rank, const std::string& what);
  void peer_lost_notice(int rank, const std::string& message);
  void cancel_all();

  // Frames (frames.cpp)
  void on_frame(runtime::InFrame&& f);
  void on_transport_error(const std::string& message);
  void control(int dst, FrameKind kind, uint32_t channel, uint64_t aux,
               std::vector<std::byte> meta = {}, uint8_t flags = 0);

  // Data path (data_path.cpp)
  void send(Instance& from, Channel& ch, const BatchPtr& batch, bool wait_for_credit);
  bool offer(Instance& from, Channel& ch, const BatchPtr& batch);
  void deliver(Channel& ch, InboxItem item);
  void consumed(Channel& ch, size_t bytes, bool restored);
  void send_end_of_stream(Channel& ch);
  void send_barrier(Instance& from, Channel& ch, uint64_t id);

  // Cycles (executor.cpp)
  void instance_inputs_ended(Instance& in);
  void rank_ready(int scc);
  void coordinator_tick();
  void cycle_done(int scc);
  void instance_finished(Instance& in);

  // Checkpoints (checkpointing.cpp)
  bool checkpoints_on() const { return opt.checkpoint.enabled; }
  void on_trigger(uint64_t id, bool stop, int signal);
  // An instance's report for checkpoint `id`: its entry, or nullopt when it had finished, and
  // the files to fsync before the checkpoint can complete (descriptors the rank then owns).
  void report(Instance& in, uint64_t id, std::optional<std::string> entry, std::vector<int> fds = {});
  void report_locked(Instance& in, uint64_t id, std::optional<std::string> entry, std::vector<int> fds = {});
  void report_finished_everywhere_locked(Instance& in);
  void maybe_write_locked(uint64_t id);
  void on_rank_done(uint64_t id, int rank, const json& report);
  void on_checkpoint_complete(uint64_t id, const json& manifest);
  void checkpoint_tick();
  void request_checkpoint();
  void write_manifest(const CheckpointCoordinator::InFlight& f);
  std::filesystem::path checkpoint_root() const;
  // Resume: agree with the other ranks on one checkpoint, then load this rank's file.
  void agree_on_resume();
  void on_restore_offer(int rank, const json& offer);
  void load_rank_file(uint64_t id);
  // A local instance has restored its operator's state; the last one logs the "restored" job
  // event with this rank's restore time (agreement, reading its file, restoring every state).
  void instance_restored();
  void start_writer();
  void stop_writer();
  void enqueue_write(std::function<void()> job);
  bool writer_idle();

  // Metrics and logs (metrics_log.cpp)
  void open_metrics();
  void add_log_line(LogStream stream, std::string line);
  void flush_logs(bool final);
  void write_log(LogStream stream, const std::string& text);
  void snapshot_metrics(bool final);
  json instance_metrics(const Instance& in, bool final) const;
  void progress_line(bool final);
  void write_end_line(const char* status);
  void job_event(json event);  // a "type": "job" line (rank 0)
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
  std::atomic<bool> sources_stop{false};  // sources end at their next produce() boundary
  std::atomic<int> stop_signal_seen{0};   // the signal of the stop the job is making (0: none)
  std::atomic<bool> tp_abandoned{false};

  // Everything below is guarded by mu.
  std::mutex mu;
  std::condition_variable main_cv;
  int running = 0;  // instance threads not yet exited
  std::optional<std::string> error_message;
  ErrorKind error_kind = ErrorKind::kError;
  ExitCode error_code = ExitCode::kFailure;
  int error_origin = -1;
  bool lost_peer = false;  // a rank died or stopped answering: no collective shutdown
  std::vector<int> lost_ranks;
  std::vector<int> cycle_local;         // local instances per cycle
  std::vector<int> cycle_inputs_ended;  // of which ended their outside inputs
  CycleTermination termination;
  std::string log_metrics, log_dead;                             // pending lines from this rank
  std::vector<std::pair<LogStream, std::string>> received_logs;  // rank 0: from other ranks
  std::map<std::string, json> remote_snapshots;  // rank 0: latest operator line per instance
  // The latest consumer lag of each Kafka source instance ("kafka_lag" events), for the
  // progress line: "operator#instance" -> (operator, messages behind).
  std::map<std::string, std::pair<std::string, int64_t>> source_lag;
  bool stop_requested = false;  // this rank asked rank 0 for a stop (or is rank 0 and began it)
  bool stop_begun = false;      // rank 0: the job-wide stop has begun
  int ranks_finished = 0;       // rank 0: ranks whose instances have all finished
  bool rank_finished_sent = false;
  bool shutdown_ordered = false;  // rank 0 said to leave (or this is rank 0 and may)
  // Resume agreement.
  std::vector<std::optional<json>> restore_offers;  // rank 0: per rank
  std::optional<std::pair<uint64_t, json>> restore_decision;

  // The engine's counters for GET /metrics (live_metrics.hpp).
  LiveMetrics live_metrics;

  // Checkpoints. The coordinator is rank 0's, guarded by mu; the rest by ckpt_mu.
  std::optional<CheckpointCoordinator> coordinator;
  uint64_t resumed_from = 0;
  uint64_t last_complete = 0;  // guarded by mu
  std::filesystem::path restored_folder;
  std::map<int, RestoredInstance> restored;  // by global instance id
  std::atomic<int> restoring{0};             // local instances still restoring their operator
  std::mutex ckpt_mu;
  struct RankCheckpoint {
    bool triggered = false;
    std::map<int, std::optional<std::string>> reports;  // by global id; nullopt: finished
    std::vector<int> fds;                               // to fsync, then close
  };
  std::map<uint64_t, RankCheckpoint> rank_ckpts;  // guarded by ckpt_mu
  uint64_t newest_trigger = 0;                    // guarded by ckpt_mu
  uint64_t rank_written = 0;  // guarded by ckpt_mu: checkpoints up to this one are handed on

  // The writer thread and its queue of jobs (guarded by writer_mu): rank files, manifests,
  // pruning.
  std::mutex writer_mu;
  std::condition_variable writer_cv;
  std::deque<std::function<void()>> writer_jobs;
  bool writer_busy = false;
  bool writer_stop = false;
  std::thread writer;

  // Rank 0 output files (main thread only).
  std::ofstream metrics_file, dead_file;
  Clock::time_point next_metrics{}, next_flush{}, next_progress{};
  std::map<std::string, std::pair<double, uint64_t>> progress_prev;  // source -> (t, records)
};

}  // namespace tensair::dataflow::detail
