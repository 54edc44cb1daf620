// A model replica as the HTTP endpoint serves it (serve::InferenceBackend): the newest
// published copy of the weights, and one inference thread that coalesces concurrent requests
// into one forward pass.
//
// Invariants
// - The training thread only calls publish(), which swaps a shared_ptr under mu_ (a pointer
//   copy: it never waits for an inference or for HTTP). A published copy is never modified:
//   it was cloned between two training steps (Network::copy_for_inference), so every answer
//   comes from exactly one version of the weights, never a half-applied update.
// - HTTP threads check and convert their request, queue it and wait for its promise; only the
//   inference thread runs forward(), under NoGradGuard, on the copy it took for that batch.
// - Requests whose inputs have the same per-record shapes and dtypes are concatenated along
//   the batch dimension, up to max_batch records (a larger request runs alone), and the output
//   rows are split back in order.
#pragma once

#include <torch/script.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "tensair/common/metrics_registry.hpp"
#include "tensair/model/model.hpp"
#include "tensair/serve/inference.hpp"

namespace tensair::model {

// One version of the weights, as served and as written to snapshot files.
struct PublishedModel {
  torch::jit::Module module;  // eval mode; never modified once published
  int64_t version = 0;
  int64_t step = 0;
};

class ServedModel final : public serve::InferenceBackend {
 public:
  // `name`: the operator's name (the URL's <name>); `metric_labels` label its counters.
  ServedModel(const ModelOptions& o, std::string name, metrics::Labels metric_labels);
  ~ServedModel() override;  // fails waiting requests with 503 and joins the inference thread

  // Training thread: serve `m` from now on.
  void publish(std::shared_ptr<const PublishedModel> m);

  serve::ModelMetadata metadata() const override;
  bool ready() const override;
  int64_t version() const override;
  serve::InferOutcome infer(std::vector<serve::HostTensor> inputs) override;

 private:
  struct Pending {
    std::vector<at::Tensor> inputs;  // in the order of ModelOptions::inputs
    std::string key;                 // per-record shapes and dtypes: what may be batched together
    int64_t rows = 0;
    std::promise<serve::InferOutcome> done;
  };
  // Checks the request against the model's inputs; the tensors, or an outcome with a 400.
  std::optional<serve::InferOutcome> convert(std::vector<serve::HostTensor>& in, Pending& p) const;
  void run();  // the inference thread
  void run_batch(std::vector<std::unique_ptr<Pending>>& batch);

  const ModelOptions& o_;
  const std::string name_;
  std::vector<serve::TensorSpec> input_specs_;
  int64_t classes_ = -1;  // the output's width when known

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const PublishedModel> current_;  // guarded by mu_
  std::deque<std::unique_ptr<Pending>> queue_;     // guarded by mu_
  bool stopping_ = false;                          // guarded by mu_

  metrics::Counter& forwards_;
  metrics::Counter& forward_records_;
  std::thread thread_;
};

}  // namespace tensair::model
