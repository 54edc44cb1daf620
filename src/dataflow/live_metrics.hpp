// This rank's engine counters in the process's metrics registry, for GET /metrics
// (docs/metrics.md), and the metrics-only HTTP server of `[job] metrics_port`.
//
// Nothing is pushed on the data path: a registry collector copies the instances' counters
// (the same atomics the metrics.jsonl lines read) into the registry when /metrics is scraped.
// Checkpoint figures are set by rank 0 when a checkpoint completes.
//
// Threading: start() and stop() are called by the executor's main thread; the collector runs
// on an HTTP thread; checkpoint_completed() on the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "tensair/common/metrics_registry.hpp"
#include "tensair/serve/http_server.hpp"

namespace tensair::dataflow::detail {

class Impl;

class LiveMetrics {
 public:
  // Registers the collector and, with opt.metrics_port, starts the server on metrics_port +
  // rank (0: a free port, logged). Throws IoError when the port cannot be bound.
  void start(Impl& impl);
  // Takes the last values and unregisters the collector (which reads the instances, so this
  // runs before they go); stops the server.
  void stop();
  void checkpoint_completed(uint64_t id, double duration_s, uint64_t bytes);

 private:
  void collect(Impl& impl);

  metrics::CollectorHandle collector_;
  std::unique_ptr<serve::HttpServer> server_;
  Impl* impl_ = nullptr;
  std::atomic<double> last_checkpoint_at_{-1};  // Impl::elapsed() at the last completion
};

}  // namespace tensair::dataflow::detail
