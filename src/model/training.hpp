// Losses and optimizers of the Model operator, from their enums (model.hpp).
#pragma once

#include <torch/optim.h>
#include <torch/script.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "tensair/model/model.hpp"

namespace tensair::model {

// Loss (mean over the batch) and accuracy (NaN when it does not apply) of a network output.
struct LossValue {
  at::Tensor loss;
  double accuracy = std::nan("");
};

// Throws ModelError naming what does not fit (output shape, a label outside the classes).
LossValue compute_loss(Loss kind, const at::Tensor& out, const at::Tensor& labels);

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& o,
                                                        const std::vector<at::Tensor>& params);

// Plain SGD (no momentum, no weight decay): a step is w -= lr * g, so the applied update is
// known without looking at the weights, and sparse gradients stay sparse.
inline bool plain_sgd(const OptimizerOptions& o) {
  return o.kind == OptimizerKind::kSgd && o.momentum == 0 && o.weight_decay == 0;
}

// "[32,3,32,32]"
std::string shape_string(at::IntArrayRef s);

}  // namespace tensair::model
