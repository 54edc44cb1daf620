// The Model operator's replica: training steps, predictions, evaluation, control commands and
// metrics. What goes to the peers is Replication's (replication.hpp); the checkpointed state is
// in model_state.cpp.
#include "model/model_instance.hpp"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <span>
#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

#include "model/device.hpp"
#include "model/embeddings.hpp"
#include "model/training.hpp"
#include "tensair/common/error.hpp"

namespace tensair::model {

using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Column;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;
using Clock = std::chrono::steady_clock;

namespace {

std::string substitute_rank(std::string path, int rank) {
  for (size_t at; (at = path.find("{rank}")) != std::string::npos;)
    path.replace(at, 6, std::to_string(rank));
  return path;
}

int default_threads(int world_size) {
  int local = world_size;
  if (const char* env = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE"))
    local = std::max(1, std::atoi(env));
  // One core per rank is left to the engine's own threads (sources, transport): an OpenMP team
  // that shares its cores with busy threads spins itself to a crawl (measured: the CIFAR CNN in
  // one process on 2 cores took 12.4 s with 2 torch threads, 6.5 s with 1).
  int per_rank = static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, local);
  return std::max(1, per_rank - 1);
}

// ModelOptions::device on this rank (the job file's check resolved it the same way; this
// repeats it for replicas built through the C++ API).
at::Device replica_device(const ModelOptions& o) {
  DeviceId d;
  try {
    d = resolve_device_here(o.device);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("device ") + e.what());
  }
  if (!d.cuda) return at::kCPU;
  if (o.kernel == Kernel::kFused) {
    throw ConfigError("device \"" + o.device + "\" with kernel \"fused\": the fused skip-gram "
                      "kernel runs on the CPU only (set kernel = \"autograd\" to train on CUDA)");
  }
  return at::Device(at::kCUDA, static_cast<at::DeviceIndex>(d.index));
}

// `t` on `device`: itself when it is there already (no copy on the CPU).
at::Tensor to_device(const at::Tensor& t, at::Device device) {
  return !t.defined() || t.device() == device ? t : t.to(device);
}

ReplicationOptions replication_options(const ModelOptions& o, at::Device device) {
  ReplicationOptions r;
  r.device = device;
  r.mode = o.mode;
  r.exchange = o.exchange;
  r.broadcast_every = o.broadcast_every;
  r.max_staleness = o.max_staleness;
  r.fp16 = o.fp16;
  r.sparse = o.sparse;
  r.coalesce = o.coalesce;
  return r;
}

std::vector<std::vector<int64_t>> parameter_shapes(const Network& net) {
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& p : net.parameters()) shapes.push_back(p.sizes().vec());
  return shapes;
}

}  // namespace

Schema metrics_schema() {
  return {{"rank", DType::kInt64, {}},
          {"step", DType::kInt64, {}},
          {"version", DType::kInt64, {}},
          {"phase", DType::kString, {}},
          {"loss", DType::kFloat64, {}},
          {"accuracy", DType::kFloat64, {}},
          {"samples", DType::kInt64, {}},
          {"records", DType::kInt64, {}},
          {"samples_per_s", DType::kFloat64, {}},
          {"staleness_mean", DType::kFloat64, {}},
          {"staleness_max", DType::kInt64, {}},
          {"training", DType::kInt64, {}}};
}

ModelInstance::ModelInstance(const ModelOptions& o, const dataflow::InstanceInfo& info)
    : o_(o),
      info_(info),
      device_(replica_device(o)),
      net_(o.network, o.seed, device_),
      shapes_(parameter_shapes(net_)),
      replication_(replication_options(o, device_), info.instance, info.instances, shapes_),
      training_(o.training != Training::kNever),
      metrics_(info) {
  threads_ = o_.threads > 0 ? o_.threads : default_threads(info.world_size);
  at::set_num_threads(threads_);
  opt_ = make_optimizer(o_.optimizer, net_.parameters());
  if (o_.kernel == Kernel::kFused) {
    if (o_.network.kind != "skipgram" || net_.names() != std::vector<std::string>{"in_embed", "out_embed"})
      throw ConfigError("kernel \"fused\" needs the built-in skipgram network");
    sgns_ = std::make_unique<SgnsKernel>(o_.network.vocab, o_.network.dim, o_.inputs);
  }
}

ModelInstance::~ModelInstance() {
  if (csv_) std::fclose(csv_);
}

void ModelInstance::open(Context& ctx) {
  ctx_ = &ctx;
  last_rate_time_ = Clock::now();
  if (!o_.csv_path.empty()) open_csv();
  ctx.log_event({{"kind", "model_start"},
                 {"network", net_.description()},
                 {"parameters", net_.parameter_count()},
                 {"threads", threads_},
                 {"device", device_.str()},
                 {"mode", name_of(o_.mode)},
                 {"exchange", name_of(o_.exchange)},
                 {"version", replication_.version()}});
  // After a restore, credit is fresh: what waited for it goes now.
  replication_.resume(*this);
  if (o_.serve_port || o_.snapshot_every.on()) {
    live_ = std::make_unique<LiveReplica>(o_, info_);
    live_->tick(net_, replication_.version(), replication_.own_steps(), ctx, /*force=*/true);
  }
}

void ModelInstance::process(int port, const BatchPtr& batch, Context& ctx) {
  ctx_ = &ctx;
  switch (port) {
    case kTrain:
      if (BatchPtr b = screen(batch, /*with_label=*/true)) on_train(b);
      break;
    case kPredict:
      if (BatchPtr b = screen(batch, /*with_label=*/false)) predict(b, /*with_loss=*/false);
      break;
    case kEvaluate:
      eval_set_.push_back(batch);
      break;
    case kControl:
      on_control(*batch);
      break;
    case kExchangeIn:
      replication_.on_message(batch, *this);
      run_held_batch();
      break;
    default:
      break;
  }
  // Between two batches the weights are one version: the time to copy them when due.
  if (live_) live_->tick(net_, replication_.version(), replication_.own_steps(), ctx);
}

void ModelInstance::on_input_done(int port, Context& ctx) {
  ctx_ = &ctx;
  if (port != kTrain) return;
  train_done_ = true;
  replication_.train_ended(*this);
}

void ModelInstance::on_credit(int port, int target, Context& ctx) {
  ctx_ = &ctx;
  if (port == kExchangeOut) replication_.on_credit(target, *this);
}

void ModelInstance::on_finish(Context& ctx) {
  ctx_ = &ctx;
  // Every peer has finished and the exchange is quiet: fold what is left.
  replication_.finish(*this);
  if (!eval_set_.empty()) evaluate();
  if (live_) live_->finish(net_, replication_.version(), replication_.own_steps(), ctx);
  if (!o_.export_path.empty()) {
    std::filesystem::path p = substitute_rank(o_.export_path.string(), info_.rank);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    net_.save(p.string());
    ctx.log_event({{"kind", "model_export"}, {"path", p.string()}});
  }
  if (!o_.vocab_path.empty() && info_.instance == 0)
    export_embeddings(o_, net_.parameters()[0].detach().to(at::kCPU), ctx);
  const ReplicationStats& s = replication_.stats();
  ctx.log_event({{"kind", "model_summary"},
                 {"steps", replication_.own_steps()},
                 {"version", replication_.version()},
                 {"samples", samples_},
                 {"device", device_.str()},
                 {"exchange", name_of(o_.exchange)},
                 {"deltas_sent", s.deltas_sent},
                 {"delta_bytes_sent", s.delta_bytes_sent},
                 {"delta_bytes_max", s.delta_bytes_max},
                 {"dense_delta_bytes", net_.parameter_count() * 4},
                 {"deltas_applied", s.deltas_applied},
                 {"deltas_folded", s.deltas_folded},
                 {"deltas_coalesced", s.deltas_coalesced},
                 {"credit_refusals", s.credit_refusals},
                 {"staleness_mean",
                  s.staleness_n ? s.staleness_sum / static_cast<double>(s.staleness_n) : 0.0},
                 {"staleness_max", s.staleness_max},
                 {"nonfinite_losses", nonfinite_},
                 {"predictions", predictions_},
                 {"training", training_}});
  if (csv_ && std::fflush(csv_) != 0) throw IoError("error writing " + o_.csv_path.string());
}

// ReplicaLink ------------------------------------------------------------------------------------

bool ModelInstance::offer(int peer, const BatchPtr& message) {
  return ctx_->offer(kExchangeOut, peer, message);
}

void ModelInstance::send(int peer, const BatchPtr& message) {
  ctx_->send_to(kExchangeOut, peer, message);
}

// Remote values arrive in host memory; on a GPU replica they are moved to it here.
void ModelInstance::apply(const std::vector<at::Tensor>& values, Exchange payload) {
  torch::NoGradGuard no_grad;
  const auto& params = net_.parameters();
  if (payload == Exchange::kUpdate) {
    for (size_t i = 0; i < params.size() && i < values.size(); ++i) {
      if (values[i].defined()) params[i].add_(to_device(values[i], device_));
    }
    return;
  }
  // A remote gradient goes through this replica's optimizer, as one step.
  for (size_t i = 0; i < params.size(); ++i)
    params[i].mutable_grad() = i < values.size() ? to_device(values[i], device_) : at::Tensor();
  prepare_grads();
  opt_->step();
  for (const auto& p : params) p.mutable_grad() = at::Tensor();
}

void ModelInstance::apply_mean_gradient(const std::vector<at::Tensor>& mean) {
  torch::NoGradGuard no_grad;
  const auto& params = net_.parameters();
  for (size_t i = 0; i < params.size(); ++i)
    params[i].mutable_grad() = i < mean.size() ? to_device(mean[i], device_) : at::Tensor();
  prepare_grads();
  opt_->step();
  for (const auto& p : params) p.mutable_grad() = at::Tensor();
}

void ModelInstance::folded(double loss_mean, double accuracy_mean, int64_t steps) {
  account(loss_mean, accuracy_mean, steps);
}

void ModelInstance::sync_step_done(bool own, double loss_mean, double accuracy_mean,
                                   int64_t samples, int64_t steps) {
  if (samples > 0) account(loss_mean, accuracy_mean, steps);
  if (!own) return;
  if (samples > 0) emit_metrics("train", loss_mean, accuracy_mean, samples);
  ctx_->resume(kTrain);
  after_step();
}

void ModelInstance::peer_converged() { on_converged(/*announce=*/false); }

bool ModelInstance::more_exchange_queued() const { return ctx_->queued(kExchangeIn) > 0; }

// Training ---------------------------------------------------------------------------------------

std::vector<at::Tensor> ModelInstance::input_tensors(const Batch& b) const {
  std::vector<at::Tensor> in;
  for (const auto& name : o_.inputs) {
    const Column* c = b.find(name);
    if (!c)
      throw ModelError("a batch has no column \"" + name +
                       "\" (columns: " + dataflow::schema_to_string(b.schema()) + ")");
    if (c->dtype() == DType::kString)
      throw ModelError("column \"" + name + "\" is a string column, not a tensor");
    in.push_back(to_device(column_tensor(*c), device_));  // a view of the batch on the CPU
  }
  return in;
}

int64_t ModelInstance::known_classes(const Batch& batch) {
  if (o_.network.kind == "mlp" && !o_.network.layers.empty()) return o_.network.layers.back();
  if (o_.network.kind == "cifar_cnn") return 10;
  if (o_.network.kind != "torchscript") return 0;
  if (probed_classes_ == 0) {
    // Once: a forward pass in eval mode without gradients, so that it changes nothing (no
    // batch-norm statistics, no dropout draw). A network that fails here fails the same way in
    // training, where the error is reported; the probe only learns the width.
    probed_classes_ = -1;
    const bool was_training = net_.training();
    net_.train(false);
    try {
      at::NoGradGuard no_grad;
      const at::Tensor out = net_.forward(input_tensors(batch));
      if (out.dim() == 2 && out.size(0) == batch.rows() && out.size(1) > 0)
        probed_classes_ = out.size(1);
    } catch (const std::exception&) {
    }
    net_.train(was_training);
  }
  return std::max<int64_t>(probed_classes_, 0);
}

BatchPtr ModelInstance::screen(const BatchPtr& batch, bool with_label) {
  const int64_t n = batch->rows();
  if (n == 0) return batch;
  // Each check: a mask of the rows it refuses, and the reason for one such row.
  struct Check {
    at::Tensor bad;
    std::function<std::string(int64_t row)> reason;
  };
  std::vector<Check> checks;
  for (const auto& name : o_.inputs) {
    const Column* c = batch->find(name);
    if (!c || (c->dtype() != DType::kFloat32 && c->dtype() != DType::kFloat64)) continue;
    at::Tensor t = column_tensor(*c).reshape({n, -1});
    checks.push_back({at::isfinite(t).all(1).logical_not(),
                      [name](int64_t) { return "feature \"" + name + "\" is not finite"; }});
  }
  if (o_.network.kind == "skipgram") {
    // A word id outside the table would index past it (either kernel).
    const int64_t vocab = o_.network.vocab;
    for (const auto& name : o_.inputs) {
      const Column* c = batch->find(name);
      if (!c || c->dtype() == DType::kString || c->record_elements() == 0) continue;
      at::Tensor ids = column_tensor(*c).to(at::kLong).reshape({n, -1});
      at::Tensor outside = ids.lt(0).logical_or(ids.ge(vocab));
      checks.push_back({outside.any(1), [name, ids, outside, vocab](int64_t r) {
                          const int64_t col = outside[r].to(at::kInt).argmax().item<int64_t>();
                          return "word id " + std::to_string(ids[r][col].item<int64_t>()) +
                                 " in \"" + name + "\" is outside 0.." +
                                 std::to_string(vocab - 1) + " (vocab = " +
                                 std::to_string(vocab) + ")";
                        }});
    }
  }
  const int64_t classes =
      with_label && o_.loss == Loss::kCrossEntropy ? known_classes(*batch) : 0;
  if (classes > 0) {
    const Column* c = batch->find(o_.label);
    if (c && c->record_elements() == 1 && c->dtype() != DType::kString) {
      at::Tensor y = column_tensor(*c).to(at::kLong).reshape({-1});
      checks.push_back({y.lt(0).logical_or(y.ge(classes)), [y, classes](int64_t r) {
                          return "label " + std::to_string(y[r].item<int64_t>()) +
                                 " is outside 0.." + std::to_string(classes - 1) +
                                 " (the network has " + std::to_string(classes) + " outputs)";
                        }});
    }
  }
  if (checks.empty()) return batch;
  at::Tensor bad = checks[0].bad;
  for (size_t k = 1; k < checks.size(); ++k) bad = bad.logical_or(checks[k].bad);
  if (!bad.any().item<bool>()) return batch;

  const Column* id = batch->find(o_.id);
  at::Tensor bad_rows = bad.nonzero().reshape({-1});
  for (int64_t k = 0; k < bad_rows.size(0); ++k) {
    const int64_t r = bad_rows[k].item<int64_t>();
    const Check& first = *std::find_if(checks.begin(), checks.end(),
                                       [r](const Check& c) { return c.bad[r].item<bool>(); });
    std::string record = id && id->dtype() == DType::kInt64
                             ? o_.id + "=" + std::to_string(id->as_int64(r))
                             : "row " + std::to_string(r) + " of a batch of " + std::to_string(n);
    ctx_->dead_letter(first.reason(r), record);
  }
  at::Tensor keep = bad.logical_not().nonzero().reshape({-1}).contiguous();
  if (keep.numel() == 0) return nullptr;
  const int64_t* rows = keep.data_ptr<int64_t>();
  return dataflow::share(
      batch->take(std::span<const int64_t>(rows, static_cast<size_t>(keep.numel()))));
}

at::Tensor ModelInstance::label_tensor(const Batch& b) const {
  if (o_.label.empty()) return {};
  const Column* c = b.find(o_.label);
  if (!c) throw ModelError("a batch has no label column \"" + o_.label + "\"");
  return to_device(column_tensor(*c), device_);
}

// forward() with a message naming the shapes when the network does not accept them.
at::Tensor ModelInstance::forward(const std::vector<at::Tensor>& in) {
  try {
    return net_.forward(in);
  } catch (const tensair::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw ModelError("out of memory running the network " + net_.description() + " (" +
                     std::to_string(net_.parameter_count()) +
                     " parameters): lower the batch size or the layer sizes");
  } catch (const std::exception& e) {  // c10::Error, or torch::jit::JITException from TorchScript
    std::string shapes;
    for (size_t i = 0; i < in.size(); ++i) {
      shapes += (i ? ", " : "") + o_.inputs[i] + ": " +
                std::string(c10::toString(in[i].scalar_type())) + shape_string(in[i].sizes());
    }
    std::string why = e.what();
    if (why.find("can't allocate memory") != std::string::npos) {
      throw ModelError("out of memory running the network " + net_.description() + " (" +
                       std::to_string(net_.parameter_count()) + " parameters) on inputs " +
                       shapes + ": lower the batch size or the layer sizes");
    }
    // The network's first input is the first feature column, whatever its name (once "x" or
    // "image" was named here, not the column the job feeds).
    const std::string first = o_.inputs.empty() ? "x" : o_.inputs[0];
    std::string expected;
    if (o_.network.kind == "cifar_cnn") expected = "; expected " + first + ": Float[batch,3,32,32]";
    if (o_.network.kind == "mlp" && !o_.network.layers.empty()) {
      expected = "; expected " + first + ": Float[batch," +
                 std::to_string(o_.network.layers[0]) + "]";
    }
    // The cause is the last "Error: " line of a TorchScript traceback, or the first line.
    if (size_t at = why.rfind("Error: "); at != std::string::npos) why = why.substr(at + 7);
    why = why.substr(0, why.find('\n'));
    throw ModelError("the network " + net_.description() + " does not accept inputs " + shapes +
                     expected + " (" + why + ")");
  }
}

void ModelInstance::on_train(const BatchPtr& batch) {
  if (!training_ || (o_.max_steps > 0 && replication_.own_steps() >= o_.max_steps)) {
    predict(batch, /*with_loss=*/true);
    return;
  }
  if (o_.mode == Mode::kSync) {
    sync_contribute(batch);
    return;
  }
  if (!replication_.may_step()) {
    held_ = batch;  // waits for the peers; their updates keep arriving on the exchange port
    ctx_->pause(kTrain);
    return;
  }
  train_step(batch);
}

void ModelInstance::run_held_batch() {
  if (!held_ || !replication_.may_step()) return;
  BatchPtr b = std::move(held_);
  held_.reset();
  ctx_->resume(kTrain);
  train_step(b);
}

// Forward + backward on `batch`; returns false when the loss was not finite (skipped). On
// success the parameters' .grad() hold the gradient of the mean loss.
bool ModelInstance::gradient(const Batch& batch, double& loss, double& acc) {
  net_.train(true);
  for (const auto& p : net_.parameters()) p.mutable_grad() = at::Tensor();
  LossValue lv;
  if (sgns_) {
    fused_gradient(batch, loss, acc);
  } else {
    at::Tensor out = forward(input_tensors(batch));
    lv = compute_loss(o_.loss, out, label_tensor(batch));
    loss = lv.loss.item<double>();
    acc = lv.accuracy;
  }
  if (!std::isfinite(loss)) {
    for (const auto& p : net_.parameters()) p.mutable_grad() = at::Tensor();
    ++nonfinite_;
    ctx_->log_event(
        {{"kind", "nonfinite_loss"}, {"step", replication_.own_steps()}, {"loss", loss}});
    if (o_.nan_policy == NanPolicy::kError) {
      throw ModelError("non-finite loss (" + std::to_string(loss) + ") at step " +
                       std::to_string(replication_.own_steps()) + " on rank " +
                       std::to_string(info_.rank) + " (nan_policy = \"error\")");
    }
    return false;
  }
  if (!sgns_) lv.loss.backward();
  return true;
}

void ModelInstance::fused_gradient(const Batch& batch, double& loss, double& acc) {
  std::vector<at::Tensor> in = input_tensors(batch);
  for (auto& t : in) t = t.to(at::kLong).contiguous();
  const int64_t n = in[1].numel();
  if (in[0].numel() != n || (n > 0 && in[2].numel() % n != 0)) {
    throw ModelError("the skipgram network needs one " + o_.inputs[0] + " and one " +
                     o_.inputs[1] + " per record and the same number of " + o_.inputs[2] +
                     " in each; got " + shape_string(in[0].sizes()) + ", " +
                     shape_string(in[1].sizes()) + " and " + shape_string(in[2].sizes()));
  }
  const auto& params = net_.parameters();
  SgnsGradient g = sgns_->gradient(params[0].detach(), params[1].detach(),
                                   in[0].data_ptr<int64_t>(), in[1].data_ptr<int64_t>(),
                                   in[2].data_ptr<int64_t>(), n, n > 0 ? in[2].numel() / n : 0);
  params[0].mutable_grad() = g.in_grad;
  params[1].mutable_grad() = g.out_grad;
  loss = g.loss;
  acc = g.accuracy;
}

// Sparse gradients stay sparse (coalesced) for plain SGD and are made dense for the optimizers
// that cannot take them.
void ModelInstance::prepare_grads() {
  const bool dense_only = !plain_sgd(o_.optimizer);
  for (const auto& p : net_.parameters()) {
    at::Tensor& g = p.mutable_grad();
    if (g.defined() && g.is_sparse()) g = dense_only ? g.to_dense() : g.coalesce();
  }
}

// The learning rate of the next own step: during a warm-up, k/warmup_steps of the configured
// one at the k-th step; the configured one otherwise.
void ModelInstance::set_learning_rate() {
  double lr = o_.optimizer.lr;
  if (warmup_left_ > 0) {
    lr *= static_cast<double>(o_.warmup_steps - warmup_left_ + 1) /
          static_cast<double>(o_.warmup_steps);
    --warmup_left_;
  }
  if (lr == current_lr_) return;
  for (auto& group : opt_->param_groups()) group.options().set_lr(lr);
  current_lr_ = lr;
}

// One own step: the optimizer steps with the batch's gradient; the step's update goes to the
// peers: w after - w before (exchange = update; for plain SGD that is -lr * g, sparse rows
// staying sparse), or the gradient itself (exchange = gradient).
void ModelInstance::train_step(const BatchPtr& batch) {
  double loss = 0, acc = 0;
  if (!gradient(*batch, loss, acc)) return;
  Update u;
  {
    torch::NoGradGuard no_grad;
    const auto& params = net_.parameters();
    set_learning_rate();
    prepare_grads();
    const bool share = replication_.peers() > 0;
    u.values.resize(params.size());
    std::vector<at::Tensor> before;
    if (share && o_.exchange == Exchange::kGradient) {
      for (size_t i = 0; i < params.size(); ++i) {
        const at::Tensor& g = params[i].grad();
        if (g.defined()) u.values[i] = (o_.sparse || !g.is_sparse()) ? g.clone() : g.to_dense();
      }
    } else if (share && plain_sgd(o_.optimizer)) {
      const double lr = current_lr_ < 0 ? o_.optimizer.lr : current_lr_;
      for (size_t i = 0; i < params.size(); ++i) {
        const at::Tensor& g = params[i].grad();
        if (g.defined())
          u.values[i] = g.is_sparse() && !o_.sparse ? g.to_dense() * (-lr) : g * (-lr);
      }
    } else if (share) {
      before.resize(params.size());
      for (size_t i = 0; i < params.size(); ++i) {
        if (params[i].grad().defined()) before[i] = params[i].detach().clone();
      }
    }
    opt_->step();
    for (size_t i = 0; i < before.size(); ++i) {
      if (before[i].defined()) u.values[i] = params[i].detach() - before[i];
    }
  }
  const double n = static_cast<double>(batch->rows());
  u.samples = batch->rows();
  u.loss_sum = loss * n;
  u.acc_sum = acc * n;
  replication_.own_step(std::move(u), *this);
  samples_ += batch->rows();
  account(loss, acc, 1);
  emit_metrics("train", loss, acc, batch->rows());
  after_step();
}

void ModelInstance::after_step() {
  if (o_.eval_every > 0 && replication_.own_steps() % o_.eval_every == 0 && !eval_set_.empty())
    evaluate();
}

// sync: this replica's gradient for the step, summed over its samples; the step is taken when
// every replica's is in (Replication calls sync_step_done).
void ModelInstance::sync_contribute(const BatchPtr& batch) {
  double loss = 0, acc = 0;
  Update sum;
  sum.samples = batch->rows();
  if (gradient(*batch, loss, acc)) {
    torch::NoGradGuard no_grad;
    const double n = static_cast<double>(batch->rows());
    for (const auto& p : net_.parameters()) {
      const at::Tensor& g = p.grad();
      sum.values.push_back(g.defined() ? (g.is_sparse() ? g.coalesce() : g) * n : at::Tensor());
    }
    sum.loss_sum = loss * n;
    sum.acc_sum = acc * n;
  } else {
    sum.samples = 0;  // skipped: contributes nothing, but the step still needs its message
  }
  samples_ += batch->rows();
  ctx_->pause(kTrain);  // until every replica's gradient for this step is in
  replication_.contribute(std::move(sum), *this);
}

// Predictions, evaluation, control ---------------------------------------------------------------

void ModelInstance::predict(const BatchPtr& batch, bool with_loss) {
  torch::NoGradGuard no_grad;
  net_.train(false);
  at::Tensor out = forward(input_tensors(*batch)).contiguous();
  std::vector<Column> cols;
  if (const Column* id = batch->find(o_.id)) cols.push_back(*id);
  std::vector<int64_t> record(out.sizes().begin() + 1, out.sizes().end());
  // Columns are host memory: the output comes back from the device (no copy on the CPU).
  cols.push_back(tensor_column("output", out.to(at::kCPU, at::kFloat), record, out.size(0)));
  predictions_ += batch->rows();
  if (with_loss && (!o_.label.empty() || o_.loss == Loss::kSgns)) {
    LossValue lv = compute_loss(o_.loss, out, label_tensor(*batch));
    double loss = lv.loss.item<double>();
    emit_metrics("predict", loss, lv.accuracy, batch->rows());
    if (csv_) {
      csv_line("predicting, " + std::to_string(predictions_) + "," + std::to_string(loss) + "," +
               std::to_string(out.reshape({-1})[0].item<double>()));
    }
  }
  ctx_->emit(kPredictions, Batch(std::move(cols)));
}

void ModelInstance::evaluate() {
  torch::NoGradGuard no_grad;
  net_.train(false);
  double loss = 0, acc = 0;
  int64_t n = 0;
  for (const BatchPtr& b : eval_set_) {
    at::Tensor out = forward(input_tensors(*b));
    LossValue lv = compute_loss(o_.loss, out, label_tensor(*b));
    loss += lv.loss.item<double>() * static_cast<double>(b->rows());
    acc += lv.accuracy * static_cast<double>(b->rows());
    n += b->rows();
  }
  net_.train(true);
  if (n == 0) return;
  nlohmann::json e = {{"kind", "eval"},
                      {"step", replication_.own_steps()},
                      {"version", replication_.version()},
                      {"samples_seen", samples_},
                      {"loss", loss / static_cast<double>(n)},
                      {"records", n}};
  if (std::isfinite(acc)) e["accuracy"] = acc / static_cast<double>(n);
  ctx_->log_event(e);
  emit_metrics("eval", loss / static_cast<double>(n), acc / static_cast<double>(n), n);
}

void ModelInstance::on_control(const Batch& b) {
  const Column& c = b.column("command");
  for (int64_t r = 0; r < b.rows(); ++r) {
    std::string cmd(c.str(r));
    if (cmd == "start") {
      if (o_.training == Training::kNever) continue;
      training_ = true;
      past_losses_.clear();
    } else if (cmd == "stop") {
      training_ = false;
    } else if (cmd == "reset_optimizer") {
      opt_ = make_optimizer(o_.optimizer, net_.parameters());
      current_lr_ = -1;
    } else if (cmd == "warmup") {
      warmup_left_ = o_.warmup_steps;
    } else {
      ctx_->dead_letter("unknown model command (known: start, stop, reset_optimizer, warmup)", cmd);
      continue;
    }
    ctx_->log_event({{"kind", "model_control"},
                     {"command", cmd},
                     {"step", replication_.own_steps()},
                     {"version", replication_.version()},
                     {"training", training_}});
  }
}

// Accounting, convergence, metrics ---------------------------------------------------------------

// Folds `n` steps' mean loss/accuracy into the epoch statistics; an epoch is epoch_size steps
// stream-wide (counted by version, as in the reference).
void ModelInstance::account(double loss, double acc, int64_t n) {
  if (csv_) {
    csv_line("training, " + std::to_string(replication_.version()) + "," + std::to_string(loss) +
             "," + std::to_string(std::isfinite(acc) ? acc : 0.0) + ",");
  }
  epoch_loss_ += loss * static_cast<double>(n);
  epoch_count_ += n;
  const int64_t version = replication_.version();
  if (version / o_.epoch_size == epoch_) return;
  epoch_ = version / o_.epoch_size;
  double mean = epoch_loss_ / static_cast<double>(epoch_count_);
  epoch_loss_ = 0;
  epoch_count_ = 0;
  ctx_->log_event({{"kind", "epoch"}, {"epoch", epoch_}, {"version", version}, {"loss", mean}});
  if (o_.training != Training::kUntilConverged || !training_) return;
  // The reference's rule: converged when the last epoch's mean loss improved by no more than
  // convergence_factor on each of the previous epochs_for_convergence - 1 epochs.
  past_losses_.push_back(mean);
  while (static_cast<int>(past_losses_.size()) > o_.epochs_for_convergence)
    past_losses_.pop_front();
  if (static_cast<int>(past_losses_.size()) < o_.epochs_for_convergence) return;
  double cur = past_losses_.back();
  bool improving = false;
  for (size_t i = 0; i + 1 < past_losses_.size(); ++i) {
    if (past_losses_[i] - cur > o_.convergence_factor) improving = true;
  }
  if (!improving) on_converged(/*announce=*/true);
}

void ModelInstance::on_converged(bool announce) {
  if (!training_ || o_.training != Training::kUntilConverged) return;
  training_ = false;
  past_losses_.clear();
  ctx_->log_event({{"kind", "converged"},
                   {"step", replication_.own_steps()},
                   {"version", replication_.version()},
                   {"by", announce ? "self" : "peer"}});
  if (announce) replication_.announce_converged(*this);
}

void ModelInstance::emit_metrics(const char* phase, double loss, double acc, int64_t samples) {
  auto now = Clock::now();
  double dt = std::chrono::duration<double>(now - last_rate_time_).count();
  rate_samples_ += samples;
  if (dt >= 1.0) {
    rate_ = static_cast<double>(rate_samples_) / dt;
    step_rate_ = static_cast<double>(replication_.own_steps() - rate_steps_) / dt;
    rate_samples_ = 0;
    rate_steps_ = replication_.own_steps();
    last_rate_time_ = now;
  }
  const double smean = replication_.window_staleness_mean();
  const int64_t smax = replication_.window_staleness_max();
  metrics_.loss(phase).set(loss);
  metrics_.accuracy(phase).set(acc);
  metrics_.version->set(static_cast<double>(replication_.version()));
  metrics_.steps->set_total(static_cast<double>(replication_.own_steps()));
  metrics_.records->set_total(static_cast<double>(samples_ + predictions_));
  metrics_.samples_per_s->set(rate_);
  metrics_.steps_per_s->set(step_rate_);
  metrics_.staleness_mean->set(smean);
  metrics_.staleness_max->set(static_cast<double>(smax));
  metrics_.training->set(training_ ? 1 : 0);
  dataflow::BatchBuilder b(metrics_schema());
  b.column(0).append<int64_t>(info_.rank);
  b.column(1).append<int64_t>(replication_.own_steps());
  b.column(2).append<int64_t>(replication_.version());
  b.column(3).append_string(phase);
  b.column(4).append<double>(loss);
  b.column(5).append<double>(acc);
  b.column(6).append<int64_t>(samples);
  b.column(7).append<int64_t>(samples_ + predictions_);
  b.column(8).append<double>(rate_);
  b.column(9).append<double>(smean);
  b.column(10).append<int64_t>(smax);
  b.column(11).append<int64_t>(training_ ? 1 : 0);
  ctx_->emit(kMetrics, b.finish());
  if (++metric_rows_ % std::max<int64_t>(1, o_.log_every) == 0 || std::string(phase) == "eval") {
    const ReplicationStats& s = replication_.stats();
    nlohmann::json e = {{"kind", "model"},
                        {"phase", phase},
                        {"step", replication_.own_steps()},
                        {"version", replication_.version()},
                        {"records", samples_ + predictions_},
                        {"lr", current_lr_ < 0 ? o_.optimizer.lr : current_lr_},
                        {"samples_per_s", rate_},
                        {"staleness_mean", smean},
                        {"staleness_max", smax},
                        {"deltas_folded", s.deltas_folded},
                        {"training", training_}};
    if (std::isfinite(loss)) e["loss"] = loss;
    if (std::isfinite(acc)) e["accuracy"] = acc;
    if (std::string(phase) != "eval") ctx_->log_event(e);
    replication_.reset_window();
  }
}

}  // namespace tensair::model
