// The replica as others see it while it trains: its HTTP endpoint (serve_port) and its
// snapshot files (snapshot_every). The model thread calls tick() after every change to the
// weights; when a refresh or a snapshot is due, tick() copies the weights once
// (Network::copy_for_inference, between steps, so the copy is one version) and hands the copy
// to the served model (a pointer swap) and to the snapshot writer (its own thread). Neither
// ever makes the training thread wait for HTTP or the disk. See docs/serving.md.
#pragma once

#include <chrono>
#include <memory>

#include "model/network.hpp"
#include "model/served_model.hpp"
#include "model/snapshot_writer.hpp"
#include "tensair/dataflow/operator.hpp"
#include "tensair/serve/http_server.hpp"

namespace tensair::model {

class LiveReplica {
 public:
  // Starts the server (every instance, on serve_port + instance; port 0: any free port) and
  // the snapshot writer (instance 0 only). Throws IoError when the port cannot be bound.
  LiveReplica(const ModelOptions& o, const dataflow::InstanceInfo& info);
  ~LiveReplica();

  bool active() const { return served_ || writer_; }
  // After a change of the weights (or with force: at open and at the end). Logs each written
  // snapshot through ctx (model_snapshot lines).
  void tick(const Network& net, int64_t version, int64_t step, dataflow::Context& ctx,
            bool force = false);
  // At the end: the final version published and written, every write finished.
  void finish(const Network& net, int64_t version, int64_t step, dataflow::Context& ctx);

 private:
  using Clock = std::chrono::steady_clock;
  static bool due(const Every& every, int64_t version, int64_t last_version,
                  Clock::time_point last_time, Clock::time_point now);
  void log_written(dataflow::Context& ctx);

  const ModelOptions& o_;
  dataflow::InstanceInfo info_;
  std::shared_ptr<ServedModel> served_;
  std::unique_ptr<serve::HttpServer> server_;
  std::unique_ptr<SnapshotWriter> writer_;
  bool announced_ = false;
  int64_t served_version_ = -1, snapshot_version_ = -1;
  Clock::time_point served_time_{}, snapshot_time_{};
};

}  // namespace tensair::model
