#include "model/training.hpp"

#include "tensair/common/error.hpp"

namespace tensair::model {

std::string shape_string(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

LossValue compute_loss(Loss kind, const at::Tensor& out, const at::Tensor& labels) {
  LossValue v;
  switch (kind) {
    case Loss::kCrossEntropy: {
      at::Tensor y = labels.to(at::kLong).reshape({-1});
      if (out.dim() != 2 || out.size(0) != y.size(0)) {
        throw ModelError(
            "cross_entropy needs outputs [batch, classes] and one label per record; got outputs " +
            shape_string(out.sizes()) + " and " + std::to_string(y.size(0)) + " labels");
      }
      if (y.numel() > 0 &&
          (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= out.size(1))) {
        throw ModelError("a label is outside 0.." + std::to_string(out.size(1) - 1) +
                         " (the network has " + std::to_string(out.size(1)) + " outputs)");
      }
      v.loss = at::nll_loss(at::log_softmax(out, 1), y);
      v.accuracy = out.argmax(1).eq(y).to(at::kFloat).mean().item<double>();
      return v;
    }
    case Loss::kBce: {
      at::Tensor y = labels.to(at::kFloat).reshape(out.sizes());
      v.loss = at::binary_cross_entropy_with_logits(out, y);
      v.accuracy = out.gt(0).eq(y.gt(0.5)).to(at::kFloat).mean().item<double>();
      return v;
    }
    case Loss::kMse: {
      at::Tensor y = labels.to(at::kFloat).reshape(out.sizes());
      v.loss = at::mse_loss(out, y);
      return v;
    }
    case Loss::kSgns: {
      // Column 0: the true context (label 1); the others: negatives (label 0).
      at::Tensor pos = out.select(1, 0);
      at::Tensor neg = out.narrow(1, 1, out.size(1) - 1);
      v.loss = -(at::log_sigmoid(pos) + at::log_sigmoid(-neg).sum(1)).mean();
      v.accuracy = pos.unsqueeze(1).gt(neg).all(1).to(at::kFloat).mean().item<double>();
      return v;
    }
  }
  throw ModelError("unknown loss");
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& o,
                                                        const std::vector<at::Tensor>& params) {
  switch (o.kind) {
    case OptimizerKind::kSgd:
      return std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
    case OptimizerKind::kAdam:
      return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr)
                                                              .betas({o.beta1, o.beta2})
                                                              .eps(o.eps)
                                                              .weight_decay(o.weight_decay));
  }
  throw ModelError("unknown optimizer");
}

}  // namespace tensair::model
