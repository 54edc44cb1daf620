// The served replica and its request coalescing (served_model.hpp).
#include "model/served_model.hpp"

#include <algorithm>

#include "model/training.hpp"
#include "tensair/common/log.hpp"

namespace tensair::model {

using serve::DataType;
using serve::HostTensor;
using serve::InferOutcome;

namespace {

InferOutcome refused(int status, std::string error) {
  InferOutcome o;
  o.status = status;
  o.error = std::move(error);
  return o;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// The inputs a network takes, with the record shapes that are known before it runs.
std::vector<serve::TensorSpec> input_specs(const ModelOptions& o) {
  std::vector<serve::TensorSpec> specs;
  for (size_t i = 0; i < o.inputs.size(); ++i) {
    serve::TensorSpec s{o.inputs[i], DataType::kFp32, {-1}};
    const std::string& kind = o.network.kind;
    if (kind == "mlp" && i == 0 && !o.network.layers.empty()) s.shape = {-1, o.network.layers[0]};
    if (kind == "cifar_cnn" && i == 0) s.shape = {-1, 3, 32, 32};
    if (kind == "skipgram") {
      s.datatype = DataType::kInt64;
      if (i == 2) s.shape = {-1, -1};
    }
    specs.push_back(s);
  }
  return specs;
}

}  // namespace

ServedModel::ServedModel(const ModelOptions& o, std::string name, metrics::Labels labels)
    : o_(o),
      name_(std::move(name)),
      input_specs_(input_specs(o)),
      forwards_(metrics::registry().counter(
          "tensair_serve_forward_total",
          "Forward passes run for inference requests (coalesced requests share one)", labels)),
      forward_records_(metrics::registry().counter("tensair_serve_forward_records_total",
                                                   "Records predicted for inference requests",
                                                   labels)) {
  if (o.network.kind == "mlp" && !o.network.layers.empty()) classes_ = o.network.layers.back();
  if (o.network.kind == "cifar_cnn") classes_ = 10;
  thread_ = std::thread([this] { run(); });
}

ServedModel::~ServedModel() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& p : queue_) p->done.set_value(refused(503, "the model is shutting down"));
}

void ServedModel::publish(std::shared_ptr<const PublishedModel> m) {
  std::lock_guard lock(mu_);
  current_ = std::move(m);
}

serve::ModelMetadata ServedModel::metadata() const {
  serve::ModelMetadata m;
  m.name = name_;
  m.inputs = input_specs_;
  m.outputs = {{"output", DataType::kFp32, {-1, classes_}}};
  return m;
}

bool ServedModel::ready() const {
  std::lock_guard lock(mu_);
  return current_ != nullptr;
}

int64_t ServedModel::version() const {
  std::lock_guard lock(mu_);
  return current_ ? current_->version : 0;
}

std::optional<InferOutcome> ServedModel::convert(std::vector<HostTensor>& in, Pending& p) const {
  for (const HostTensor& t : in) {
    bool known = false;
    for (const auto& s : input_specs_) known = known || s.name == t.name;
    if (!known) {
      std::string names;
      for (const auto& s : input_specs_) names += (names.empty() ? "" : ", ") + s.name;
      return refused(
          400, "unknown input \"" + t.name + "\" (model \"" + name_ + "\" takes " + names + ")");
    }
  }
  for (const auto& spec : input_specs_) {
    auto it = std::find_if(in.begin(), in.end(),
                           [&](const HostTensor& t) { return t.name == spec.name; });
    if (it == in.end()) return refused(400, "input \"" + spec.name + "\" is missing");
    HostTensor& t = *it;
    const std::string what = "input \"" + t.name + "\": ";
    if (serve::is_floating(t.datatype) != serve::is_floating(spec.datatype)) {
      return refused(400, what + "datatype " + serve::name_of(t.datatype) + ", expected " +
                              serve::name_of(spec.datatype));
    }
    bool shape_ok = t.shape.size() == spec.shape.size() || spec.shape == std::vector<int64_t>{-1};
    for (size_t d = 1; shape_ok && d < spec.shape.size(); ++d)
      shape_ok = spec.shape[d] < 0 || spec.shape[d] == t.shape[d];
    if (!shape_ok || t.shape.empty()) {
      return refused(400, what + "shape " + shape_text(t.shape) + ", expected " +
                              shape_text(spec.shape) + " (-1: any size)");
    }
    if (t.shape[0] < 1) return refused(400, what + "the batch dimension must be at least 1");
    if (p.rows == 0) p.rows = t.shape[0];
    if (t.shape[0] != p.rows) {
      return refused(400, what + "batch dimension " + std::to_string(t.shape[0]) +
                              ", the other inputs have " + std::to_string(p.rows));
    }
    at::Tensor x;
    if (serve::is_floating(t.datatype)) {
      x = at::from_blob(t.reals.data(), {static_cast<int64_t>(t.reals.size())}, at::kDouble)
              .to(at::kFloat);
    } else {
      x = at::from_blob(t.integers.data(), {static_cast<int64_t>(t.integers.size())}, at::kLong)
              .clone();
    }
    p.inputs.push_back(x.reshape(t.shape));
    p.key += std::string(c10::toString(p.inputs.back().scalar_type())) +
             shape_text(std::vector<int64_t>(t.shape.begin() + 1, t.shape.end())) + ";";
  }
  return std::nullopt;
}

InferOutcome ServedModel::infer(std::vector<HostTensor> inputs) {
  auto p = std::make_unique<Pending>();
  if (auto refusal = convert(inputs, *p)) return *refusal;
  std::future<InferOutcome> done = p->done.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return refused(503, "the model is shutting down");
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
  return done.get();
}

void ServedModel::run() {
  at::NoGradGuard no_grad;  // thread-local: this thread never records gradients
  for (;;) {
    std::vector<std::unique_ptr<Pending>> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      // The oldest request, and every later one that can share its forward pass.
      int64_t rows = 0;
      const std::string key = queue_.front()->key;
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->key == key && (batch.empty() || rows + (*it)->rows <= o_.serve_max_batch)) {
          rows += (*it)->rows;
          batch.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    run_batch(batch);
  }
}

void ServedModel::run_batch(std::vector<std::unique_ptr<Pending>>& batch) {
  std::shared_ptr<const PublishedModel> model;
  {
    std::lock_guard lock(mu_);
    model = current_;
  }
  auto fail_all = [&](int status, const std::string& error) {
    for (auto& p : batch) p->done.set_value(refused(status, error));
  };
  if (!model) return fail_all(503, "model \"" + name_ + "\" has no weights published yet");
  std::vector<c10::IValue> args;
  int64_t rows = 0;
  for (size_t i = 0; i < batch[0]->inputs.size(); ++i) {
    std::vector<at::Tensor> parts;
    for (auto& p : batch) parts.push_back(p->inputs[i]);
    args.emplace_back(parts.size() == 1 ? parts[0] : at::cat(parts, 0));
  }
  for (auto& p : batch) rows += p->rows;
  at::Tensor out;
  try {
    // forward() of a module is const in effect (eval mode, no gradients), but not declared so.
    c10::IValue result = const_cast<torch::jit::Module&>(model->module).forward(args);
    if (result.isTensor()) out = result.toTensor();
  } catch (const std::exception& e) {
    // The network refused these inputs (a TorchScript network whose shapes are not known
    // beforehand): the client hears which shapes, the log gets LibTorch's text.
    std::string shapes;
    for (size_t i = 0; i < args.size(); ++i) {
      shapes += (i ? ", " : "") + o_.inputs[i] + ": " + shape_string(args[i].toTensor().sizes());
    }
    std::string why = e.what();
    log().debug("serving \"{}\": forward failed on {}: {}", name_, shapes,
                why.substr(0, why.find('\n')));
    if (batch.size() > 1) {
      // One bad request must not fail the others it was batched with: run each alone.
      for (auto& p : batch) {
        std::vector<std::unique_ptr<Pending>> one;
        one.push_back(std::move(p));
        run_batch(one);
      }
      return;
    }
    return fail_all(400, "the network does not accept inputs " + shapes);
  }
  if (!out.defined() || out.dim() < 1 || out.size(0) != rows) {
    log().warn("serving \"{}\": the network's output is not one tensor of {} rows", name_, rows);
    return fail_all(500, "internal error");
  }
  forwards_.inc();
  forward_records_.inc(static_cast<double>(rows));
  out = out.to(at::kDouble).contiguous();
  int64_t row = 0;
  for (auto& p : batch) {
    at::Tensor mine = out.narrow(0, row, p->rows).contiguous();
    row += p->rows;
    HostTensor t;
    t.name = "output";
    t.datatype = DataType::kFp32;
    t.shape = mine.sizes().vec();
    const double* d = mine.data_ptr<double>();
    t.reals.assign(d, d + mine.numel());
    InferOutcome outcome;
    outcome.outputs.push_back(std::move(t));
    outcome.version = model->version;
    outcome.step = model->step;
    p->done.set_value(std::move(outcome));
  }
}

}  // namespace tensair::model
