// One running replica of the Model operator: the network, its optimizer, the ports, the
// metrics; its Replication (replication.hpp) decides what goes to and comes from the peers.
// See include/tensair/model/model.hpp for ports and options, docs/model.md for the protocols.
#pragma once

#include <torch/optim.h>
#include <torch/script.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/live_replica.hpp"
#include "model/model_metrics.hpp"
#include "model/network.hpp"
#include "model/replication.hpp"
#include "model/sgns_kernel.hpp"
#include "tensair/dataflow/operator.hpp"
#include "tensair/model/model.hpp"

namespace tensair::model {

enum InPort { kTrain = 0, kPredict = 1, kEvaluate = 2, kControl = 3, kExchangeIn = 4 };
enum OutPort { kPredictions = 0, kMetrics = 1, kExchangeOut = 2 };

dataflow::Schema metrics_schema();

class ModelInstance final : public dataflow::Operator, private ReplicaLink {
 public:
  ModelInstance(const ModelOptions& o, const dataflow::InstanceInfo& info);
  ~ModelInstance() override;

  void open(dataflow::Context& ctx) override;
  void process(int port, const dataflow::BatchPtr& batch, dataflow::Context& ctx) override;
  void on_input_done(int port, dataflow::Context& ctx) override;
  void on_credit(int port, int target, dataflow::Context& ctx) override;
  void snapshot(dataflow::StateWriter& state, dataflow::Context& ctx) override;  // model_state.cpp
  void restore(dataflow::StateReader& state, dataflow::Context& ctx) override;   // model_state.cpp
  void on_finish(dataflow::Context& ctx) override;

 private:
  // ReplicaLink (the replication's view of this replica).
  bool offer(int peer, const dataflow::BatchPtr& message) override;
  void send(int peer, const dataflow::BatchPtr& message) override;
  void apply(const std::vector<at::Tensor>& values, Exchange payload) override;
  void apply_mean_gradient(const std::vector<at::Tensor>& mean) override;
  void folded(double loss_mean, double accuracy_mean, int64_t steps) override;
  void sync_step_done(bool own, double loss_mean, double accuracy_mean, int64_t samples,
                      int64_t steps) override;
  void peer_converged() override;
  bool more_exchange_queued() const override;

  // Training.
  std::vector<at::Tensor> input_tensors(const dataflow::Batch& b) const;
  at::Tensor label_tensor(const dataflow::Batch& b) const;
  // The batch without the records a network cannot use, each of which becomes a dead letter:
  // a feature that is not finite, and (with_label, cross_entropy) a label outside the classes.
  // Null when no record is left.
  dataflow::BatchPtr screen(const dataflow::BatchPtr& batch, bool with_label);
  // The number of classes: what the network's kind tells (mlp, cifar_cnn), else the width of
  // a TorchScript network's [batch, classes] output, probed once on `batch`; 0 when unknown.
  int64_t known_classes(const dataflow::Batch& batch);
  at::Tensor forward(const std::vector<at::Tensor>& in);
  void on_train(const dataflow::BatchPtr& batch);
  bool gradient(const dataflow::Batch& batch, double& loss, double& acc);
  // kernel = "fused": the gradient into the embeddings' .grad() without autograd.
  void fused_gradient(const dataflow::Batch& batch, double& loss, double& acc);
  void prepare_grads();
  void train_step(const dataflow::BatchPtr& batch);
  void sync_contribute(const dataflow::BatchPtr& batch);
  void set_learning_rate();
  void after_step();
  void run_held_batch();

  // Predictions, evaluation, control.
  void predict(const dataflow::BatchPtr& batch, bool with_loss);
  void evaluate();
  void on_control(const dataflow::Batch& b);

  // Accounting and convergence.
  void account(double loss, double acc, int64_t n);
  void on_converged(bool announce);
  void emit_metrics(const char* phase, double loss, double acc, int64_t samples);

  // The reference-compatible CSV file (exactly-once like a sink: model_state.cpp).
  void open_csv();
  void csv_line(const std::string& line);

  const ModelOptions& o_;
  dataflow::InstanceInfo info_;
  at::Device device_;  // the replica's (ModelOptions::device resolved on this rank)
  Network net_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::unique_ptr<SgnsKernel> sgns_;  // kernel = "fused"
  std::vector<std::vector<int64_t>> shapes_;
  int threads_ = 1;
  Replication replication_;
  dataflow::Context* ctx_ = nullptr;  // the instance's context, set when it opens

  bool training_ = true;
  bool train_done_ = false;
  int64_t samples_ = 0, predictions_ = 0, nonfinite_ = 0;
  int64_t warmup_left_ = 0;  // own steps left in a learning-rate warm-up
  double current_lr_ = -1;   // the rate set in the optimizer (-1: as configured)
  dataflow::BatchPtr held_;  // a train batch waiting for the staleness bound

  // Epochs and convergence.
  int64_t epoch_ = 0, epoch_count_ = 0;
  double epoch_loss_ = 0;
  std::deque<double> past_losses_;

  std::vector<dataflow::BatchPtr> eval_set_;
  std::FILE* csv_ = nullptr;
  std::optional<uint64_t> csv_resume_at_;  // restored: the CSV file's length at the checkpoint
  std::chrono::steady_clock::time_point last_rate_time_;
  int64_t rate_samples_ = 0, metric_rows_ = 0;
  double rate_ = 0;
  int64_t probed_classes_ = 0;  // a TorchScript network's output width; -1: not [batch, C]
  int64_t rate_steps_ = 0;      // own steps at the start of the rate window
  double step_rate_ = 0;

  ModelMetrics metrics_;
  // The endpoint and snapshot files (serve_port, snapshot_every); null when neither is on.
  std::unique_ptr<LiveReplica> live_;
};

}  // namespace tensair::model
