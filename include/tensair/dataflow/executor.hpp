// The Executor runs a validated graph on one rank of a job.
//
// Every rank builds the same graph and runs an Executor over its Transport; the executors talk
// through frames (docs/wire-format.md) and together run the job to completion:
// - each operator instance placed on this rank runs on its own thread;
// - batches between instances on one rank are handed over by pointer, never serialised;
// - every channel (edge, sending instance, receiving instance) has a credit of bytes in flight;
//   a sender out of credit blocks, so a slow operator slows its sources instead of growing
//   queues. Edges inside a cycle carry no credit (a cycle of blocked senders could never drain);
// - end-of-stream markers follow the last batch of every channel; an operator finishes when all
//   its inputs ended. Operators on a cycle finish together when rank 0 has established, by two
//   consecutive counting waves (Mattern's four-counter method), that all their outside inputs
//   ended and no batch is in flight inside the cycle;
// - the first error on any rank is sent to all ranks; every rank then stops its operators and
//   leaves through the same collective shutdown, and run() rethrows the error.
//
// Metrics: every `metrics_interval_s` and at the end, one JSON line per operator instance
// (counters) goes to OUT/metrics.jsonl, written by rank 0; operators add their own lines with
// Context::log_event. Dead letters go to OUT/dead_letters.jsonl. See docs/metrics.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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
  uint64_t dead_letters = 0;
  double busy_s = 0;                // time inside process()/produce()
};

class Executor {
 public:
  // Validates `graph` for the transport's world size (ConfigError). The graph and the
  // transport must outlive the executor.
  Executor(const Graph& graph, runtime::Transport& transport, ExecutorOptions options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Runs until the job has finished on every rank, then shuts the transport down. Throws the
  // job's first error (from whichever rank raised it). Call once.
  void run();

  // This rank's instances, after run().
  std::vector<InstanceStats> stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tensair::dataflow
