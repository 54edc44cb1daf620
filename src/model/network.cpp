#include "model/network.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "tensair/common/error.hpp"

namespace tensair::model {
namespace {

// PyTorch's default for Linear and Conv layers: weights and biases uniform in
// ±1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5) gives the same bound).
// Initial weights come from a generator of the network's own: replicas built concurrently (one
// thread per in-process rank) must not interleave draws from torch's global generator.
void add_affine(torch::jit::Module& m, const std::string& name, std::vector<int64_t> weight_shape, at::Generator& gen) {
  int64_t fan_in = 1;
  for (size_t i = 1; i < weight_shape.size(); ++i) fan_in *= weight_shape[i];
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  at::Tensor w = torch::empty(weight_shape).uniform_(-bound, bound, gen);
  at::Tensor b = torch::empty({weight_shape[0]}).uniform_(-bound, bound, gen);
  m.register_parameter(name + "_weight", w.requires_grad_(true), false);
  m.register_parameter(name + "_bias", b.requires_grad_(true), false);
}

// The reference's CIFAR-10 CNN (TensorFlow tutorial), channels first:
// conv(32,3x3) relu pool2 conv(64,3x3) relu pool2 conv(64,3x3) relu flatten dense(64) relu
// dense(10): 122,570 parameters.
torch::jit::Module cifar_cnn(at::Generator& gen) {
  torch::jit::Module m("CifarCNN");
  add_affine(m, "conv1", {32, 3, 3, 3}, gen);
  add_affine(m, "conv2", {64, 32, 3, 3}, gen);
  add_affine(m, "conv3", {64, 64, 3, 3}, gen);
  add_affine(m, "fc1", {64, 1024}, gen);
  add_affine(m, "fc2", {10, 64}, gen);
  m.define(R"JIT(
def forward(self, x: Tensor) -> Tensor:
    x = torch.max_pool2d(torch.relu(torch.conv2d(x, self.conv1_weight, self.conv1_bias)), [2, 2])
    x = torch.max_pool2d(torch.relu(torch.conv2d(x, self.conv2_weight, self.conv2_bias)), [2, 2])
    x = torch.relu(torch.conv2d(x, self.conv3_weight, self.conv3_bias))
    x = torch.flatten(x, 1)
    x = torch.relu(torch.linear(x, self.fc1_weight, self.fc1_bias))
    return torch.linear(x, self.fc2_weight, self.fc2_bias)
)JIT");
  return m;
}

torch::jit::Module mlp(const std::vector<int64_t>& layers, at::Generator& gen) {
  if (layers.size() < 2) throw ConfigError("an mlp needs layers = [inputs, hidden..., outputs] (at least two sizes)");
  for (int64_t n : layers) {
    if (n < 1) throw ConfigError("mlp layer sizes must be positive, got " + std::to_string(n));
  }
  torch::jit::Module m("MLP");
  std::string src = "\ndef forward(self, x: Tensor) -> Tensor:\n    x = torch.flatten(x, 1)\n";
  for (size_t i = 0; i + 1 < layers.size(); ++i) {
    std::string name = "l" + std::to_string(i);
    add_affine(m, name, {layers[i + 1], layers[i]}, gen);
    std::string lin = "torch.linear(x, self." + name + "_weight, self." + name + "_bias)";
    if (i + 2 < layers.size()) {
      src += "    x = torch.relu(" + lin + ")\n";
    } else {
      src += "    return " + lin + "\n";
    }
  }
  m.define(src);
  return m;
}

// Skip-gram with negative sampling (word2vec.c's initialisation: input vectors uniform in
// ±0.5/dim, output vectors zero). Embedding lookups use sparse gradients.
torch::jit::Module skipgram(int64_t vocab, int64_t dim, at::Generator& gen) {
  if (vocab < 2 || dim < 1) throw ConfigError("skipgram needs vocab >= 2 and dim >= 1");
  torch::jit::Module m("SkipGram");
  double bound = 0.5 / static_cast<double>(dim);
  m.register_parameter("in_embed", torch::empty({vocab, dim}).uniform_(-bound, bound, gen).requires_grad_(true), false);
  m.register_parameter("out_embed", torch::zeros({vocab, dim}).requires_grad_(true), false);
  m.define(R"JIT(
def forward(self, target: Tensor, context: Tensor, negatives: Tensor) -> Tensor:
    t = torch.embedding(self.in_embed, target.reshape([-1]), -1, False, True)
    c = torch.cat([context.reshape([-1, 1]), negatives.reshape([context.numel(), -1])], 1)
    e = torch.embedding(self.out_embed, c, -1, False, True)
    return torch.bmm(e, t.unsqueeze(2)).squeeze(2)
)JIT");
  return m;
}

// a * b + c, saturating at INT64_MAX (sizes come from the job file).
int64_t mul_add(int64_t a, int64_t b, int64_t c) {
  int64_t m = 0, r = 0;
  if (__builtin_mul_overflow(a, b, &m) || __builtin_add_overflow(m, c, &r)) return INT64_MAX;
  return r;
}

// Builds a built-in network (allocating its weights), with a one-line error naming the network
// and its size when LibTorch cannot allocate them.
template <class Build>
torch::jit::Module allocate(const NetworkOptions& o, Build build) {
  try {
    return build();
  } catch (const std::bad_alloc&) {
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (what.find("alloc") == std::string::npos) {
      throw ModelError("cannot build the network " + o.kind + ": " +
                       what.substr(0, what.find('\n')));
    }
  }
  throw ModelError("cannot allocate the network " + o.kind + " of " +
                   std::to_string(parameter_count(o)) + " parameters: out of memory");
}

}  // namespace

int64_t parameter_count(const NetworkOptions& o) {
  if (o.kind == "cifar_cnn") return 122570;
  if (o.kind == "skipgram") return mul_add(2, mul_add(o.vocab, o.dim, 0), 0);
  if (o.kind != "mlp") return 0;
  int64_t n = 0;
  for (size_t i = 0; i + 1 < o.layers.size(); ++i) {
    n = mul_add(1, n, mul_add(o.layers[i], o.layers[i + 1], o.layers[i + 1]));  // weights, biases
  }
  return n;
}

Network::Network(const NetworkOptions& o, uint64_t seed, at::Device device) : device_(device) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  if (o.kind != "torchscript" && model::parameter_count(o) > kMaxParameters) {
    throw ConfigError("the network " + o.kind + " would have " +
                      std::to_string(model::parameter_count(o)) + " parameters, more than the " +
                      std::to_string(kMaxParameters) +
                      " a built-in network may have");
  }
  if (o.kind == "cifar_cnn") {
    module_ = allocate(o, [&] { return cifar_cnn(gen); });
    default_inputs_ = {"image"};
    default_loss_ = "cross_entropy";
    description_ = "cifar_cnn";
  } else if (o.kind == "mlp") {
    module_ = allocate(o, [&] { return mlp(o.layers, gen); });
    default_inputs_ = {"x"};
    default_loss_ = "cross_entropy";
    description_ = "mlp";
  } else if (o.kind == "skipgram") {
    module_ = allocate(o, [&] { return skipgram(o.vocab, o.dim, gen); });
    default_inputs_ = {"target", "context", "negatives"};
    default_loss_ = "sgns";
    description_ = "skipgram " + std::to_string(o.vocab) + "x" + std::to_string(o.dim);
  } else if (o.kind == "torchscript") {
    if (o.path.empty()) throw ConfigError("a torchscript network needs a path to a saved module");
    if (!std::filesystem::exists(o.path)) {
      throw IoError("TorchScript file " + o.path.string() + " does not exist", ExitCode::kConfig);
    }
    try {
      module_ = torch::jit::load(o.path.string());
    } catch (const c10::Error& e) {
      throw IoError("cannot load TorchScript file " + o.path.string() + ": " + e.what_without_backtrace(),
                    ExitCode::kConfig);
    }
    default_loss_ = "cross_entropy";
    description_ = "torchscript " + o.path.filename().string();
  } else {
    throw ConfigError("unknown network \"" + o.kind + "\" (known: cifar_cnn, mlp, skipgram, torchscript)");
  }
  if (!device_.is_cpu()) move_to_device();
  for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
    if (!p.value.requires_grad()) continue;  // frozen layers are not trained
    names_.push_back(p.name);
    params_.push_back(p.value);
  }
  if (params_.empty()) throw ConfigError("network " + description_ + " has no trainable parameters");
  module_.train(true);
}

// The parameters and buffers to device_, with a one-line error of ours (not LibTorch's).
void Network::move_to_device() {
  try {
    module_.to(device_);
  } catch (const c10::Error& e) {
    int64_t n = 0;
    for (const auto& p : module_.parameters()) n += p.numel();
    const std::string what = e.what_without_backtrace();
    throw ModelError("cannot move the network " + description_ + " (" + std::to_string(n) +
                     " parameters) to " + device_.str() +
                     (what.find("out of memory") != std::string::npos
                          ? ": out of memory on the device"
                          : ": the device refused it (see nvidia-smi)"));
  }
}

int64_t Network::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.numel();
  return n;
}

at::Tensor Network::forward(const std::vector<at::Tensor>& inputs) {
  std::vector<c10::IValue> args(inputs.begin(), inputs.end());
  c10::IValue out = module_.forward(args);
  if (!out.isTensor()) throw ModelError("the network's forward() must return one tensor");
  return out.toTensor();
}

void Network::save(const std::string& path) const {
  try {
    if (device_.is_cpu()) {
      module_.save(path);
    } else {
      at::NoGradGuard no_grad;
      torch::jit::Module copy = module_.clone();  // on the CPU, the file loads anywhere
      copy.to(at::kCPU);
      copy.save(path);
    }
  } catch (const c10::Error& e) {
    throw IoError("cannot write TorchScript file " + path + ": " + e.what_without_backtrace());
  }
}

torch::jit::Module Network::copy_for_inference() const {
  at::NoGradGuard no_grad;
  torch::jit::Module copy = module_.clone();  // deep: slots are deep-copied, tensors cloned
  copy.eval();
  if (!device_.is_cpu()) copy.to(at::kCPU);
  return copy;
}

}  // namespace tensair::model
