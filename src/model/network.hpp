// Networks as TorchScript modules: the built-ins are assembled in C++ (parameters registered,
// forward() defined in TorchScript source), files saved from Python are loaded. Either way a
// network is one torch::jit::Module, trained through its parameters() and exported with save().
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "tensair/model/model.hpp"

namespace tensair::model {

class Network {
 public:
  // Builds or loads the network; `seed` makes the built-ins' initial weights the same on every
  // replica (drawn on the CPU whatever the device, so that replicas on different devices start
  // equal), then moves its parameters and buffers to `device`. Throws ConfigError for unknown
  // kinds and bad parameters, IoError for files, ModelError when the device cannot hold it.
  Network(const NetworkOptions& options, uint64_t seed, at::Device device = at::kCPU);

  at::Tensor forward(const std::vector<at::Tensor>& inputs);
  void train(bool on) { module_.train(on); }
  bool training() const { return module_.is_training(); }

  // The trainable parameters in a fixed order (the same on every replica), on device().
  const std::vector<at::Tensor>& parameters() const { return params_; }
  const std::vector<std::string>& names() const { return names_; }
  int64_t parameter_count() const;
  at::Device device() const { return device_; }

  // The columns forward() takes by default, and the loss it is made for.
  const std::vector<std::string>& default_inputs() const { return default_inputs_; }
  const std::string& default_loss() const { return default_loss_; }
  const std::string& description() const { return description_; }

  // Writes a TorchScript file that torch.jit.load (Python or C++) loads and runs; its tensors
  // are on the CPU whatever the device, so it loads anywhere.
  void save(const std::string& path) const;

  // A deep copy of the module (parameters and buffers cloned) in eval mode, on the CPU, for
  // serving and snapshots: later training steps do not change it. Call from the training
  // thread, between steps, so the copy is one consistent version of the weights.
  torch::jit::Module copy_for_inference() const;

 private:
  void move_to_device();

  torch::jit::Module module_;
  at::Device device_ = at::kCPU;
  std::vector<at::Tensor> params_;
  std::vector<std::string> names_;
  std::vector<std::string> default_inputs_;
  std::string default_loss_;
  std::string description_;
};

}  // namespace tensair::model
