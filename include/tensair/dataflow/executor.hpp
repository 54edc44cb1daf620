// The Executor runs a validated graph on one rank of a job.
//
// Every rank builds the same graph and runs an Executor over its Transport; the executors talk
// through frames (docs/wire-format.md) and together run the job to completion:
// - each operator instance placed on this rank runs on its own thread;
// - batches between instances on one rank are handed over by pointer, never serialised;
// - every channel (edge, sending instance, receiving instance) has a credit of bytes in flight;
//   a sender out of credit blocks, so a slow operator slows its sources instead of growing
//   queues. On a cycle a blocked sender could never be drained, so there emit() never blocks;
//   operators on a cycle bound what they send with Context::offer (the model exchange);
// - end-of-stream markers follow the last batch of every channel; an operator finishes when all
//   its inputs ended. Operators on a cycle finish together when rank 0 has established that all
//   their outside inputs ended and no message is in flight inside the cycle (termination.hpp);
// - checkpoints (options.checkpoint): rank 0 triggers them; barriers travel from the sources
//   with the data; every instance snapshots at the first barrier and records what its other
//   inputs still deliver until their barrier (snapshot_tracker.hpp); each rank writes one file,
//   rank 0 the manifest (checkpoint.hpp). options.resume restores a whole job from one;
// - a stop (options.stop_signal, set by a signal handler) ends the sources after a last
//   checkpoint; the job then drains, flushes and ends as a finite stream would;
// - the first error on any rank is sent to all ranks; every rank then stops its operators and
//   leaves through the same collective shutdown, and run() rethrows the error, of the same
//   kind, on every rank (Error::origin_rank() says where it arose). A rank that dies or stops
//   answering (heartbeats, options.heartbeat_timeout_s) makes the others stop at once with a
//   TransportError naming it, without the collective shutdown (the transport is abandoned).
//
// Metrics: every `metrics_interval_s` and at the end, one JSON line per operator instance
// (counters) goes to OUT/metrics.jsonl, written by rank 0; operators add their own lines with
// Context::log_event. Dead letters go to OUT/dead_letters.jsonl. See docs/metrics.md.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensair/dataflow/checkpoint.hpp"
#include "tensair/dataflow/graph.hpp"
#include "tensair/runtime/transport.hpp"

namespace tensair::dataflow {

// What one batch counts against a channel's credit besides its column bytes: a fixed charge for
// the batch itself (its header, column objects, queue entry). Without it a stream of one-record
// batches of 8 bytes could queue a million batches in 8 MiB of credit; with it a channel holds
// at most credit / (bytes + 256) batches, however small they are.
constexpr size_t kBatchCreditCharge = 256;

struct ExecutorOptions {
  std::filesystem::path out_dir;     // metrics.jsonl and dead_letters.jsonl; empty: not written
  size_t credit_bytes = 8 << 20;     // credit per channel for edges that do not set their own
  double metrics_interval_s = 2.0;   // period of the metrics lines
  bool progress = false;             // a progress line on stderr (rank 0)
  std::string job_name = "job";
  CheckpointOptions checkpoint;      // off unless enabled
  // Resume from a checkpoint: "latest" (the newest usable one under the checkpoint folder; a
  // damaged one is skipped with a warning), a checkpoint folder (refused with one line when it
  // cannot be used), or a folder of checkpoints (its newest usable one). Empty: start fresh.
  std::string resume;
  // A peer that sends nothing (not even a heartbeat) for this long is taken as failed.
  double heartbeat_timeout_s = 30;
  // An operator instance with more dead letters than this ends the job with an error (0: no
  // limit); or, with max_dead_letter_fraction in (0, 1), with more than that fraction of the
  // records it has seen (records in, or for a source records out + dead letters; checked from
  // 100 records on). A stream that is mostly garbage then fails instead of running on.
  uint64_t max_dead_letters = 0;
  double max_dead_letter_fraction = 0;
  // GET /metrics (Prometheus text, docs/metrics.md) on metrics_host:metrics_port + rank, for
  // jobs whose models serve none (a model's serve_port has /metrics too); 0: a free port,
  // logged. Unset: no server (the registry is filled all the same).
  std::optional<int> metrics_port;
  std::string metrics_host = "127.0.0.1";
  // Polled by the executor; a non-zero value (the signal number, set by a signal handler)
  // asks for a clean stop of the whole job. Null: no stops.
  const std::atomic<int>* stop_signal = nullptr;
};

// How run() ended when it did not throw.
struct RunOutcome {
  enum class Status {
    kFinished,  // every input ended
    kStopped,   // a stop was requested (by a signal on some rank): the job drained and ended
  };
  Status status = Status::kFinished;
  int signal = 0;             // kStopped: the signal that asked for the stop
  uint64_t resumed_from = 0;  // the checkpoint the job was restored from (0: none)
  uint64_t last_checkpoint = 0;  // the newest checkpoint completed by this run (0: none)
};

// Final counters of one operator instance.
struct InstanceStats {
  std::string name;
  int instance = 0;
  int rank = 0;
  uint64_t records_in = 0, records_out = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  uint64_t batches_in = 0, batches_out = 0;
  uint64_t credit_waits = 0;        // emits that had to wait for credit
  double credit_wait_s = 0;         // time spent waiting for credit
  uint64_t queued_bytes_peak = 0;   // largest bytes queued on one input channel
  std::vector<uint64_t> queued_bytes_peak_by_port;  // the same, per input port
  uint64_t dead_letters = 0;
  double busy_s = 0;                // time inside process()/produce()
};

namespace detail {
class Impl;
}

class Executor {
 public:
  // Validates `graph` for the transport's world size (ConfigError). The graph and the
  // transport must outlive the executor.
  Executor(const Graph& graph, runtime::Transport& transport, ExecutorOptions options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Runs until the job has finished (or stopped) on every rank, then shuts the transport down.
  // Throws the job's first error (from whichever rank raised it). Call once.
  RunOutcome run();

  // This rank's instances, after run().
  std::vector<InstanceStats> stats() const;

 private:
  std::unique_ptr<detail::Impl> impl_;
};

}  // namespace tensair::dataflow
