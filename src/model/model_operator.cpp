// The Model operator. See include/tensair/model/model.hpp for ports and options, and
// docs/model.md for the protocol.
//
// DASGD, per replica:
//   version_  gradients folded into the weights (own steps + remote deltas' steps)
//   own step  forward, loss, backward, optimizer step; the gradient joins the outgoing delta,
//             sent every broadcast_every steps with the version of its first gradient
//   delta in  applied through the local optimizer on arrival (the exchange port has priority
//             over train); staleness = version_ - delta.version, measured before applying
//   bounded   (max_staleness = k, broadcast_every = 1) a replica computes its c-th gradient
//             only once it has folded, from every peer, all gradients numbered up to c-1-s
//             (or all the peer made, once it finished). With N replicas this bounds the
//             staleness of every applied delta by (2s+1) + (N-2)(3s+2) (docs/model.md derives
//             it); s is the largest gap whose bound is at most k. Deltas are still applied on
//             arrival, so the replica with the fewest steps can always go on: no deadlock.
// sync: every step all replicas with data contribute their gradient (summed over samples);
//   each replica applies the sample-weighted mean once every unfinished replica's
//   contribution for that step arrived, so all replicas take identical steps.
#include <torch/optim.h>
#include <torch/script.h>
#include <torch/serialize.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <deque>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "model/delta.hpp"
#include "model/network.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/model/model.hpp"

namespace tensair::model {
namespace {

using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Column;
using dataflow::ColumnSpec;
using dataflow::Context;
using dataflow::DType;
using dataflow::PortSpec;
using dataflow::Schema;
using Clock = std::chrono::steady_clock;

enum InPort { kTrain = 0, kPredict = 1, kEvaluate = 2, kControl = 3, kExchangeIn = 4 };
enum OutPort { kPredictions = 0, kMetrics = 1, kExchangeOut = 2 };

Schema metrics_schema() {
  return {{"rank", DType::kInt64, {}},         {"step", DType::kInt64, {}},
          {"version", DType::kInt64, {}},      {"phase", DType::kString, {}},
          {"loss", DType::kFloat64, {}},       {"accuracy", DType::kFloat64, {}},
          {"samples", DType::kInt64, {}},      {"records", DType::kInt64, {}},
          {"samples_per_s", DType::kFloat64, {}},
          {"staleness_mean", DType::kFloat64, {}}, {"staleness_max", DType::kInt64, {}},
          {"training", DType::kInt64, {}}};
}

std::string substitute_rank(std::string path, int rank) {
  for (size_t at; (at = path.find("{rank}")) != std::string::npos;) path.replace(at, 6, std::to_string(rank));
  return path;
}

std::string shape_string(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// Loss (mean over the batch) and accuracy (NaN when it does not apply) of a network output.
struct LossValue {
  at::Tensor loss;
  double accuracy = std::nan("");
};

LossValue compute_loss(const std::string& kind, const at::Tensor& out, const at::Tensor& labels) {
  LossValue v;
  if (kind == "cross_entropy") {
    at::Tensor y = labels.to(at::kLong).reshape({-1});
    if (out.dim() != 2 || out.size(0) != y.size(0)) {
      throw ModelError("cross_entropy needs outputs [batch, classes] and one label per record; got outputs " +
                       shape_string(out.sizes()) + " and " + std::to_string(y.size(0)) + " labels");
    }
    if (y.numel() > 0 && (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= out.size(1))) {
      throw ModelError("a label is outside 0.." + std::to_string(out.size(1) - 1) + " (the network has " +
                       std::to_string(out.size(1)) + " outputs)");
    }
    v.loss = at::nll_loss(at::log_softmax(out, 1), y);
    v.accuracy = out.argmax(1).eq(y).to(at::kFloat).mean().item<double>();
  } else if (kind == "bce") {
    at::Tensor y = labels.to(at::kFloat).reshape(out.sizes());
    v.loss = at::binary_cross_entropy_with_logits(out, y);
    v.accuracy = out.gt(0).eq(y.gt(0.5)).to(at::kFloat).mean().item<double>();
  } else if (kind == "mse") {
    at::Tensor y = labels.to(at::kFloat).reshape(out.sizes());
    v.loss = at::mse_loss(out, y);
  } else if (kind == "sgns") {
    // Column 0: the true context (label 1); the others: negatives (label 0).
    at::Tensor pos = out.select(1, 0);
    at::Tensor neg = out.narrow(1, 1, out.size(1) - 1);
    v.loss = -(at::log_sigmoid(pos) + at::log_sigmoid(-neg).sum(1)).mean();
    v.accuracy = pos.unsqueeze(1).gt(neg).all(1).to(at::kFloat).mean().item<double>();
  } else {
    throw ConfigError("unknown loss \"" + kind + "\" (known: cross_entropy, bce, mse, sgns)");
  }
  return v;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerOptions& o, const std::vector<at::Tensor>& params) {
  if (o.kind == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
  }
  if (o.kind == "adam") {
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
  }
  throw ConfigError("unknown optimizer \"" + o.kind + "\" (known: sgd, adam)");
}

class ModelDef final : public dataflow::OperatorDef {
 public:
  explicit ModelDef(ModelOptions o) : o_(std::move(o)) {
    if (o_.mode != "dasgd" && o_.mode != "sync" && o_.mode != "local") {
      throw ConfigError("unknown mode \"" + o_.mode + "\" (known: dasgd, sync, local)");
    }
    if (o_.training != "always" && o_.training != "until_converged" && o_.training != "never") {
      throw ConfigError("unknown training \"" + o_.training + "\" (known: always, until_converged, never)");
    }
    if (o_.nan_policy != "skip" && o_.nan_policy != "error") {
      throw ConfigError("unknown nan_policy \"" + o_.nan_policy + "\" (known: skip, error)");
    }
    if (o_.broadcast_every < 1) throw ConfigError("broadcast_every must be at least 1");
    if (o_.max_staleness && o_.broadcast_every != 1) {
      throw ConfigError("max_staleness needs broadcast_every = 1 (the bound counts single gradients)");
    }
    if (o_.max_staleness && o_.mode != "dasgd") throw ConfigError("max_staleness applies to mode = \"dasgd\" only");
    if (o_.epochs_for_convergence < 2) throw ConfigError("epochs_for_convergence must be at least 2");
    if (o_.epoch_size < 1) throw ConfigError("epoch_size must be positive");
    if (o_.optimizer.kind != "sgd" && o_.optimizer.kind != "adam") {
      throw ConfigError("unknown optimizer \"" + o_.optimizer.kind + "\" (known: sgd, adam)");
    }
    if (o_.loss != "cross_entropy" && o_.loss != "bce" && o_.loss != "mse" && o_.loss != "sgns") {
      throw ConfigError("unknown loss \"" + o_.loss + "\" (known: cross_entropy, bce, mse, sgns)");
    }
    if (o_.label.empty() && o_.loss != "sgns") throw ConfigError("the " + o_.loss + " loss needs a label column");
    if (o_.inputs.empty()) throw ConfigError("name the columns fed to the network (features = [...])");
  }

  std::string type() const override { return "model"; }
  std::vector<PortSpec> inputs() const override {
    Schema train;
    for (const auto& c : o_.inputs) train.push_back({c, DType::kFloat32, {}, true});
    return {{"train", std::nullopt, true, 0},
            {"predict", std::nullopt, true, 0},
            {"evaluate", std::nullopt, true, 0},
            {"control", Schema{{"command", DType::kString, {}}}, true, 2},
            {"exchange", std::nullopt, true, 3}};
  }
  std::vector<PortSpec> outputs() const override {
    return {{"predictions", std::nullopt, true}, {"metrics", metrics_schema(), true}, {"exchange", std::nullopt, true}};
  }
  std::vector<std::pair<std::string, std::string>> peer_edges() const override {
    if (o_.mode == "local") return {};
    return {{"exchange", "exchange"}};
  }
  std::vector<std::optional<Schema>> infer_outputs(const std::vector<std::optional<Schema>>& in) const override {
    // Train, predict and evaluate batches must carry the input columns (and the label for
    // train and evaluate).
    const char* names[] = {"train", "predict", "evaluate"};
    for (size_t p = 0; p < 3 && p < in.size(); ++p) {
      if (!in[p]) continue;
      std::vector<std::string> need = o_.inputs;
      if (p != kPredict && !o_.label.empty()) need.push_back(o_.label);
      for (const auto& c : need) {
        if (!dataflow::find_column(*in[p], c)) {
          throw ConfigError(std::string("input ") + names[p] + ": column \"" + c + "\" is not among the columns arriving (" +
                            dataflow::schema_to_string(*in[p]) + ")");
        }
      }
    }
    return {std::nullopt, metrics_schema(), std::nullopt};
  }
  std::string describe() const override {
    std::string s = "network=" + o_.network.kind + " loss=" + o_.loss + " optimizer=" + o_.optimizer.kind +
                    " lr=" + std::to_string(o_.optimizer.lr) + " mode=" + o_.mode +
                    " training=" + o_.training;
    if (o_.max_staleness) s += " max_staleness=" + std::to_string(*o_.max_staleness);
    return s;
  }

  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo& info) const override;

  const ModelOptions& options() const { return o_; }

 private:
  ModelOptions o_;
};

class ModelInstance final : public dataflow::Operator {
 public:
  ModelInstance(const ModelOptions& o, const dataflow::InstanceInfo& info)
      : o_(o), info_(info), net_(o.network, o.seed), training_(o.training != "never") {
    int threads = o_.threads;
    if (threads <= 0) {
      int local = info.world_size;
      if (const char* env = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) local = std::max(1, std::atoi(env));
      // One core per rank is left to the engine's own threads (sources, transport): an OpenMP
      // team that shares its cores with busy threads spins itself to a crawl (measured: the
      // CIFAR CNN in one process on 2 cores took 12.4 s with 2 torch threads, 6.5 s with 1).
      int per_rank = static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, local);
      threads = std::max(1, per_rank - 1);
    }
    at::set_num_threads(threads);
    threads_ = threads;
    opt_ = make_optimizer(o_.optimizer, net_.parameters());
    for (const auto& p : net_.parameters()) shapes_.push_back(p.sizes().vec());
    peers_.resize(static_cast<size_t>(info.instances));
    if (o_.mode != "local") peer_count_ = info.instances - 1;
    if (o_.max_staleness && info.instances > 1) {
      // The largest clock gap s whose staleness bound (2s+1) + (N-2)(3s+2) is at most k.
      auto bound = [n = info.instances](int64_t s) { return (2 * s + 1) + (n - 2) * (3 * s + 2); };
      if (bound(0) > *o_.max_staleness) {
        throw ModelError("max_staleness = " + std::to_string(*o_.max_staleness) + " cannot be guaranteed with " +
                         std::to_string(info.instances) + " replicas: the least bound is " + std::to_string(bound(0)) +
                         " (2N-3; see docs/model.md)");
      }
      while (bound(gap_ + 1) <= *o_.max_staleness) ++gap_;
    }
    if (!o_.resume.empty()) restore(o_.resume);
  }

  void open(Context& ctx) override {
    last_rate_time_ = Clock::now();
    if (!o_.csv_path.empty()) {
      std::filesystem::path p = substitute_rank(o_.csv_path.string(), info_.rank);
      if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
      csv_.open(p, std::ios::trunc);
      if (!csv_) throw IoError("cannot write " + p.string());
    }
    ctx.log_event({{"kind", "model_start"},
                   {"network", net_.description()},
                   {"parameters", net_.parameter_count()},
                   {"threads", threads_},
                   {"mode", o_.mode},
                   {"version", version_}});
  }

  void process(int port, const BatchPtr& batch, Context& ctx) override {
    switch (port) {
      case kTrain: on_train(batch, ctx); break;
      case kPredict: predict(batch, ctx, /*with_loss=*/false); break;
      case kEvaluate: eval_set_.push_back(batch); break;
      case kControl: on_control(*batch, ctx); break;
      case kExchangeIn: on_message(decode_message(batch, shapes_), ctx); break;
      default: break;
    }
  }

  void on_input_done(int port, Context& ctx) override {
    if (port != kTrain) return;
    train_done_ = true;
    if (o_.mode == "dasgd") flush_delta(ctx);
    if (peer_count_ > 0 && (o_.mode == "sync" || o_.max_staleness)) {
      Message m;
      m.kind = MessageKind::kFinished;
      m.sender = info_.instance;
      m.version = version_;
      m.steps = step_;
      m.step = sync_step_;
      send(m, ctx);
    }
    if (o_.mode == "sync") try_complete_sync(ctx);
  }

  void on_finish(Context& ctx) override {
    // Every peer has finished and the exchange is quiet: fold what is left.
    fold_pending(ctx, /*force=*/true);
    if (!eval_set_.empty()) evaluate(ctx);
    if (!o_.checkpoint_dir.empty()) checkpoint(ctx);
    if (!o_.export_path.empty()) {
      std::filesystem::path p = substitute_rank(o_.export_path.string(), info_.rank);
      if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
      net_.save(p.string());
      ctx.log_event({{"kind", "model_export"}, {"path", p.string()}});
    }
    if (!o_.vocab_path.empty() && info_.instance == 0) export_embeddings(ctx);
    nlohmann::json summary = {{"kind", "model_summary"},
                              {"steps", step_},
                              {"version", version_},
                              {"samples", samples_},
                              {"deltas_sent", deltas_sent_},
                              {"delta_bytes_sent", delta_bytes_sent_},
                              {"delta_bytes_max", delta_bytes_max_},
                              {"dense_delta_bytes", net_.parameter_count() * 4},
                              {"deltas_applied", deltas_applied_},
                              {"staleness_mean", staleness_n_ ? staleness_sum_ / static_cast<double>(staleness_n_) : 0.0},
                              {"staleness_max", staleness_max_},
                              {"nonfinite_losses", nonfinite_},
                              {"predictions", predictions_},
                              {"training", training_}};
    ctx.log_event(summary);
    if (csv_.is_open()) csv_.flush();
  }

 private:
  struct Peer {
    std::deque<Message> pending;   // deltas not yet folded (coalescing)
    int64_t folded_steps = 0;      // its gradients folded into this replica
    int64_t total_steps = -1;      // gradients it made in all, once it finished
    bool finished = false;
  };

  // ---- training --------------------------------------------------------------------------

  std::vector<at::Tensor> input_tensors(const Batch& b) const {
    std::vector<at::Tensor> in;
    for (const auto& name : o_.inputs) {
      const Column* c = b.find(name);
      if (!c) throw ModelError("a batch has no column \"" + name + "\" (columns: " + dataflow::schema_to_string(b.schema()) + ")");
      if (c->dtype() == DType::kString) throw ModelError("column \"" + name + "\" is a string column, not a tensor");
      in.push_back(column_tensor(*c));
    }
    return in;
  }

  at::Tensor label_tensor(const Batch& b) const {
    if (o_.label.empty()) return {};
    const Column* c = b.find(o_.label);
    if (!c) throw ModelError("a batch has no label column \"" + o_.label + "\"");
    return column_tensor(*c);
  }

  // forward() with a message naming the shapes when the network does not accept them.
  at::Tensor forward(const std::vector<at::Tensor>& in) {
    try {
      return net_.forward(in);
    } catch (const tensair::Error&) {
      throw;
    } catch (const std::exception& e) {  // c10::Error, or torch::jit::JITException from TorchScript
      std::string shapes;
      for (size_t i = 0; i < in.size(); ++i) {
        shapes += (i ? ", " : "") + o_.inputs[i] + ": " + std::string(c10::toString(in[i].scalar_type())) +
                  shape_string(in[i].sizes());
      }
      std::string expected;
      if (o_.network.kind == "cifar_cnn") expected = "; expected image: Float[batch,3,32,32]";
      if (o_.network.kind == "mlp" && !o_.network.layers.empty()) {
        expected = "; expected x: Float[batch," + std::to_string(o_.network.layers[0]) + "]";
      }
      // The cause is the last "Error: " line of a TorchScript traceback, or the first line.
      std::string why = e.what();
      if (size_t at = why.rfind("Error: "); at != std::string::npos) why = why.substr(at + 7);
      why = why.substr(0, why.find('\n'));
      throw ModelError("the network " + net_.description() + " does not accept inputs " + shapes + expected + " (" +
                       why + ")");
    }
  }

  void on_train(const BatchPtr& batch, Context& ctx) {
    if (skip_ > 0) {  // resuming: these records were trained on before the checkpoint
      int64_t n = std::min<int64_t>(skip_, batch->rows());
      skip_ -= n;
      if (n == batch->rows()) return;
      on_train(dataflow::share(batch->slice(n, batch->rows() - n)), ctx);
      return;
    }
    if (!training_ || (o_.max_steps > 0 && step_ >= o_.max_steps)) {
      predict(batch, ctx, /*with_loss=*/true);
      return;
    }
    if (o_.mode == "sync") {
      sync_contribute(batch, ctx);
      return;
    }
    if (o_.max_staleness && !may_step()) {
      held_ = batch;  // waits for the peers; deltas keep arriving on the exchange port
      ctx.pause(kTrain);
      return;
    }
    train_step(batch, ctx);
  }

  // Forward + backward on `batch`; returns false when the loss was not finite (skipped).
  // On success the parameters' .grad() hold the gradient of the mean loss.
  bool gradient(const Batch& batch, double& loss, double& acc, Context& ctx) {
    net_.train(true);
    for (const auto& p : net_.parameters()) p.mutable_grad() = at::Tensor();
    at::Tensor out = forward(input_tensors(batch));
    LossValue lv = compute_loss(o_.loss, out, label_tensor(batch));
    loss = lv.loss.item<double>();
    acc = lv.accuracy;
    if (!std::isfinite(loss)) {
      ++nonfinite_;
      ctx.log_event({{"kind", "nonfinite_loss"}, {"step", step_}, {"loss", loss}});
      if (o_.nan_policy == "error") {
        throw ModelError("non-finite loss (" + std::to_string(loss) + ") at step " + std::to_string(step_) + " on rank " +
                         std::to_string(info_.rank) + " (nan_policy = \"error\")");
      }
      return false;
    }
    lv.loss.backward();
    return true;
  }

  // Densifies sparse gradients the optimizer cannot take as they are.
  void prepare_grads() {
    bool dense_only = o_.optimizer.kind != "sgd" || o_.optimizer.momentum != 0 || o_.optimizer.weight_decay != 0;
    for (const auto& p : net_.parameters()) {
      at::Tensor& g = p.mutable_grad();
      if (g.defined() && g.is_sparse()) g = dense_only ? g.to_dense() : g.coalesce();
    }
  }

  void train_step(const BatchPtr& batch, Context& ctx) {
    double loss = 0, acc = 0;
    if (!gradient(*batch, loss, acc, ctx)) return;
    {
      torch::NoGradGuard no_grad;
      for (const auto& p : net_.parameters()) {
        at::Tensor& g = p.mutable_grad();
        if (g.defined() && g.is_sparse()) g = g.coalesce();
      }
      // The outgoing delta: the raw gradients, summed over broadcast_every steps.
      if (o_.mode == "dasgd" && peer_count_ > 0) {
        if (delta_steps_ == 0) {
          delta_version_ = version_;
          delta_.assign(shapes_.size(), at::Tensor());
        }
        for (size_t i = 0; i < shapes_.size(); ++i) {
          const at::Tensor& g = net_.parameters()[i].grad();
          if (!g.defined()) continue;
          at::Tensor copy = (o_.sparse || !g.is_sparse()) ? g.clone() : g.to_dense();
          delta_[i] = delta_[i].defined() ? (delta_[i] + copy) : copy;
        }
        delta_steps_ += 1;
        delta_samples_ += batch->rows();
        delta_loss_ += loss * static_cast<double>(batch->rows());
        delta_acc_ += acc * static_cast<double>(batch->rows());
      }
      set_learning_rate();
      prepare_grads();
      opt_->step();
    }
    ++step_;
    ++version_;
    samples_ += batch->rows();
    account(loss, acc, 1, ctx);
    emit_metrics(ctx, "train", loss, acc, batch->rows());
    if (o_.mode == "dasgd" && delta_steps_ >= o_.broadcast_every) flush_delta(ctx);
    after_step(ctx);
  }

  // The learning rate of the next own step: during a warm-up, k/warmup_steps of the configured
  // one at the k-th step; the configured one otherwise.
  void set_learning_rate() {
    double lr = o_.optimizer.lr;
    if (warmup_left_ > 0) {
      lr *= static_cast<double>(o_.warmup_steps - warmup_left_ + 1) / static_cast<double>(o_.warmup_steps);
      --warmup_left_;
    }
    if (lr == current_lr_) return;
    for (auto& group : opt_->param_groups()) group.options().set_lr(lr);
    current_lr_ = lr;
  }

  void after_step(Context& ctx) {
    if (o_.eval_every > 0 && step_ % o_.eval_every == 0 && !eval_set_.empty()) evaluate(ctx);
    if (o_.checkpoint_every > 0 && step_ % o_.checkpoint_every == 0 && !o_.checkpoint_dir.empty()) checkpoint(ctx);
  }

  void flush_delta(Context& ctx) {
    if (delta_steps_ == 0 || peer_count_ == 0) return;
    Message m;
    m.kind = MessageKind::kDelta;
    m.sender = info_.instance;
    m.version = delta_version_;
    m.steps = delta_steps_;
    m.samples = delta_samples_;
    m.loss_sum = delta_loss_;
    m.acc_sum = delta_acc_;
    m.grads = std::move(delta_);
    size_t bytes = send(m, ctx);
    ++deltas_sent_;
    delta_bytes_sent_ += bytes;
    delta_bytes_max_ = std::max<uint64_t>(delta_bytes_max_, bytes);
    delta_.clear();
    delta_steps_ = delta_samples_ = 0;
    delta_loss_ = delta_acc_ = 0;
  }

  size_t send(const Message& m, Context& ctx) {
    Batch b = encode_message(m, o_.fp16);
    size_t bytes = b.byte_size();
    ctx.emit(kExchangeOut, std::move(b));
    return bytes;
  }

  // ---- remote deltas ---------------------------------------------------------------------

  void on_message(Message m, Context& ctx) {
    if (m.sender < 0 || m.sender >= static_cast<int64_t>(peers_.size())) {
      throw DataError("model message from unknown replica " + std::to_string(m.sender));
    }
    Peer& peer = peers_[static_cast<size_t>(m.sender)];
    switch (m.kind) {
      case MessageKind::kDelta:
        peer.pending.push_back(std::move(m));
        fold_pending(ctx, false);
        break;
      case MessageKind::kFinished:
        peer.finished = true;
        peer.total_steps = m.steps;
        sync_finished_at_[m.sender] = m.step;
        if (o_.mode == "sync") {
          try_complete_sync(ctx);
        } else {
          fold_pending(ctx, false);
        }
        break;
      case MessageKind::kConverged:
        on_converged(ctx, /*announce=*/false);
        break;
      case MessageKind::kSync:
        sync_[m.step].push_back(std::move(m));
        try_complete_sync(ctx);
        break;
      default:
        throw DataError("model message of unknown kind " + std::to_string(static_cast<int64_t>(m.kind)));
    }
  }

  // Bounded staleness: may this replica compute its next gradient (number step_ + 1)? Every
  // peer's gradients up to number step_ - gap_ must be folded (all of them once it finished).
  bool may_step() const {
    if (!o_.max_staleness) return true;
    int64_t need = step_ - gap_;
    for (size_t q = 0; q < peers_.size(); ++q) {
      if (static_cast<int>(q) == info_.instance) continue;
      const Peer& p = peers_[q];
      if (p.folded_steps >= need) continue;
      if (p.finished && p.folded_steps >= p.total_steps) continue;
      return false;
    }
    return true;
  }

  // Folds the pending deltas that may be folded now (all of them with `force`), coalescing
  // them when configured, then runs a held train batch if it may go ahead.
  void fold_pending(Context& ctx, bool force) {
    if (o_.coalesce && !force && ctx.queued(kExchangeIn) > 0) return;  // more to sum first
    std::vector<Message> all;
    for (auto& p : peers_) {
      for (auto& m : p.pending) all.push_back(std::move(m));
      p.pending.clear();
    }
    if (o_.coalesce) {
      if (!all.empty()) apply(all, ctx);
    } else {
      for (auto& m : all) {
        std::vector<Message> one;
        one.push_back(std::move(m));
        apply(one, ctx);
      }
    }
    if (held_ && may_step()) {
      BatchPtr b = std::move(held_);
      held_.reset();
      ctx.resume(kTrain);
      train_step(b, ctx);
    }
  }

  // Applies deltas through the local optimizer as one step (their gradients summed).
  void apply(std::vector<Message>& deltas, Context& ctx) {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> sum(shapes_.size());
    int64_t steps = 0, samples = 0;
    double loss = 0, acc = 0;
    for (const Message& m : deltas) {
      int64_t staleness = version_ - m.version;
      staleness_sum_ += static_cast<double>(staleness);
      staleness_window_sum_ += static_cast<double>(staleness);
      ++staleness_n_;
      ++staleness_window_n_;
      staleness_max_ = std::max(staleness_max_, staleness);
      staleness_window_max_ = std::max(staleness_window_max_, staleness);
      for (size_t i = 0; i < shapes_.size(); ++i) {
        if (!m.grads[i].defined()) continue;
        sum[i] = sum[i].defined() ? sum[i] + m.grads[i] : m.grads[i];
      }
      steps += m.steps;
      samples += m.samples;
      loss += m.loss_sum;
      acc += m.acc_sum;
      peers_[static_cast<size_t>(m.sender)].folded_steps += m.steps;
    }
    const auto& params = net_.parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = sum[i];
    prepare_grads();
    opt_->step();
    for (const auto& p : params) p.mutable_grad() = at::Tensor();
    version_ += steps;
    deltas_applied_ += static_cast<int64_t>(deltas.size());
    if (samples > 0) {
      account(loss / static_cast<double>(samples), acc / static_cast<double>(samples), steps, ctx);
    }
  }

  // ---- sync mode -------------------------------------------------------------------------

  void sync_contribute(const BatchPtr& batch, Context& ctx) {
    double loss = 0, acc = 0;
    Message m;
    m.kind = MessageKind::kSync;
    m.sender = info_.instance;
    m.version = version_;
    m.step = sync_step_;
    m.samples = batch->rows();
    if (gradient(*batch, loss, acc, ctx)) {
      torch::NoGradGuard no_grad;
      double n = static_cast<double>(batch->rows());
      for (const auto& p : net_.parameters()) {
        const at::Tensor& g = p.grad();
        m.grads.push_back(g.defined() ? (g.is_sparse() ? g.coalesce() : g) * n : at::Tensor());
      }
      m.loss_sum = loss * n;
      m.acc_sum = acc * n;
    } else {
      m.samples = 0;  // skipped: contributes nothing, but the step still needs its message
      m.grads.assign(shapes_.size(), at::Tensor());
    }
    if (peer_count_ > 0) send(m, ctx);
    samples_ += batch->rows();
    sync_[sync_step_].push_back(std::move(m));
    ctx.pause(kTrain);  // until every replica's gradient for this step is in
    sync_waiting_ = true;
    try_complete_sync(ctx);
  }

  void try_complete_sync(Context& ctx) {
    for (;;) {
      auto& parts = sync_[sync_step_];
      bool own = false;
      std::vector<bool> have(peers_.size(), false);
      for (const Message& m : parts) have[static_cast<size_t>(m.sender)] = true;
      own = have[static_cast<size_t>(info_.instance)];
      if (!own && !train_done_) return;  // waiting for this replica's own data
      for (size_t q = 0; q < peers_.size(); ++q) {
        if (static_cast<int>(q) == info_.instance || have[q]) continue;
        auto f = sync_finished_at_.find(static_cast<int64_t>(q));
        if (f == sync_finished_at_.end() || f->second > sync_step_) return;  // still to come
      }
      if (parts.empty()) {  // every replica has finished
        sync_.erase(sync_step_);
        return;
      }
      torch::NoGradGuard no_grad;
      int64_t samples = 0;
      double loss = 0, acc = 0;
      std::vector<at::Tensor> sum(shapes_.size());
      // Sum in replica order so that every replica computes bit-identical steps.
      std::sort(parts.begin(), parts.end(), [](const Message& a, const Message& b) { return a.sender < b.sender; });
      for (const Message& m : parts) {
        samples += m.samples;
        loss += m.loss_sum;
        acc += m.acc_sum;
        for (size_t i = 0; i < shapes_.size(); ++i) {
          if (m.grads[i].defined()) sum[i] = sum[i].defined() ? sum[i] + m.grads[i] : m.grads[i];
        }
      }
      if (samples > 0) {
        const auto& params = net_.parameters();
        for (size_t i = 0; i < params.size(); ++i) {
          params[i].mutable_grad() = sum[i].defined() ? sum[i] / static_cast<double>(samples) : at::Tensor();
        }
        prepare_grads();
        opt_->step();
        for (const auto& p : params) p.mutable_grad() = at::Tensor();
        version_ += static_cast<int64_t>(parts.size());
        double l = loss / static_cast<double>(samples), a = acc / static_cast<double>(samples);
        account(l, a, static_cast<int64_t>(parts.size()), ctx);
        if (own) {
          ++step_;
          emit_metrics(ctx, "train", l, a, samples);
        }
      }
      sync_.erase(sync_step_);
      ++sync_step_;
      if (sync_waiting_) {
        sync_waiting_ = false;
        ctx.resume(kTrain);
        after_step(ctx);
      }
    }
  }

  // ---- predictions, evaluation, control --------------------------------------------------

  void predict(const BatchPtr& batch, Context& ctx, bool with_loss) {
    torch::NoGradGuard no_grad;
    net_.train(false);
    at::Tensor out = forward(input_tensors(*batch)).contiguous();
    std::vector<Column> cols;
    if (const Column* id = batch->find(o_.id)) cols.push_back(*id);
    std::vector<int64_t> record(out.sizes().begin() + 1, out.sizes().end());
    cols.push_back(tensor_column("output", out.to(at::kFloat), record, out.size(0)));
    predictions_ += batch->rows();
    if (with_loss && (!o_.label.empty() || o_.loss == "sgns")) {
      LossValue lv = compute_loss(o_.loss, out, label_tensor(*batch));
      double loss = lv.loss.item<double>();
      emit_metrics(ctx, "predict", loss, lv.accuracy, batch->rows());
      if (csv_.is_open()) csv_ << "predicting, " << predictions_ << "," << loss << "," << out.reshape({-1})[0].item<double>() << "\n";
    }
    ctx.emit(kPredictions, Batch(std::move(cols)));
  }

  void evaluate(Context& ctx) {
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
    nlohmann::json e = {{"kind", "eval"}, {"step", step_}, {"version", version_}, {"samples_seen", samples_},
                        {"loss", loss / static_cast<double>(n)}, {"records", n}};
    if (std::isfinite(acc)) e["accuracy"] = acc / static_cast<double>(n);
    ctx.log_event(e);
    emit_metrics(ctx, "eval", loss / static_cast<double>(n), acc / static_cast<double>(n), n);
  }

  void on_control(const Batch& b, Context& ctx) {
    const Column& c = b.column("command");
    for (int64_t r = 0; r < b.rows(); ++r) {
      std::string cmd(c.str(r));
      if (cmd == "start") {
        if (o_.training == "never") continue;
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
        ctx.dead_letter("unknown model command (known: start, stop, reset_optimizer, warmup)", cmd);
        continue;
      }
      ctx.log_event({{"kind", "model_control"}, {"command", cmd}, {"step", step_}, {"version", version_}, {"training", training_}});
    }
  }

  // ---- accounting, convergence -----------------------------------------------------------

  // Folds `n` gradients' mean loss/accuracy into the epoch statistics; an epoch is epoch_size
  // gradients stream-wide (counted by version, as in the reference).
  void account(double loss, double acc, int64_t n, Context& ctx) {
    if (csv_.is_open()) {
      csv_ << "training, " << version_ << "," << std::to_string(loss) << "," << std::to_string(std::isfinite(acc) ? acc : 0.0) << ",\n";
    }
    epoch_loss_ += loss * static_cast<double>(n);
    epoch_count_ += n;
    if (version_ / o_.epoch_size == epoch_) return;
    epoch_ = version_ / o_.epoch_size;
    double mean = epoch_loss_ / static_cast<double>(epoch_count_);
    epoch_loss_ = 0;
    epoch_count_ = 0;
    ctx.log_event({{"kind", "epoch"}, {"epoch", epoch_}, {"version", version_}, {"loss", mean}});
    if (o_.training != "until_converged" || !training_) return;
    // The reference's rule: converged when the last epoch's mean loss improved by no more than
    // convergence_factor on each of the previous epochs_for_convergence - 1 epochs.
    past_losses_.push_back(mean);
    while (static_cast<int>(past_losses_.size()) > o_.epochs_for_convergence) past_losses_.pop_front();
    if (static_cast<int>(past_losses_.size()) < o_.epochs_for_convergence) return;
    double cur = past_losses_.back();
    bool improving = false;
    for (size_t i = 0; i + 1 < past_losses_.size(); ++i) {
      if (past_losses_[i] - cur > o_.convergence_factor) improving = true;
    }
    if (!improving) on_converged(ctx, /*announce=*/true);
  }

  void on_converged(Context& ctx, bool announce) {
    if (!training_ || o_.training != "until_converged") return;
    training_ = false;
    past_losses_.clear();
    if (o_.mode == "dasgd") flush_delta(ctx);
    ctx.log_event({{"kind", "converged"}, {"step", step_}, {"version", version_}, {"by", announce ? "self" : "peer"}});
    if (announce && peer_count_ > 0) {
      Message m;
      m.kind = MessageKind::kConverged;
      m.sender = info_.instance;
      m.version = version_;
      send(m, ctx);
    }
  }

  void emit_metrics(Context& ctx, const char* phase, double loss, double acc, int64_t samples) {
    auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - last_rate_time_).count();
    rate_samples_ += samples;
    if (dt >= 1.0) {
      rate_ = static_cast<double>(rate_samples_) / dt;
      rate_samples_ = 0;
      last_rate_time_ = now;
    }
    double smean = staleness_window_n_ ? staleness_window_sum_ / static_cast<double>(staleness_window_n_) : 0.0;
    dataflow::BatchBuilder b(metrics_schema());
    b.column(0).append<int64_t>(info_.rank);
    b.column(1).append<int64_t>(step_);
    b.column(2).append<int64_t>(version_);
    b.column(3).append_string(phase);
    b.column(4).append<double>(loss);
    b.column(5).append<double>(acc);
    b.column(6).append<int64_t>(samples);
    b.column(7).append<int64_t>(samples_ + predictions_);
    b.column(8).append<double>(rate_);
    b.column(9).append<double>(smean);
    b.column(10).append<int64_t>(staleness_window_max_);
    b.column(11).append<int64_t>(training_ ? 1 : 0);
    ctx.emit(kMetrics, b.finish());
    if (++metric_rows_ % std::max<int64_t>(1, o_.log_every) == 0 || std::string(phase) == "eval") {
      nlohmann::json e = {{"kind", "model"}, {"phase", phase}, {"step", step_}, {"version", version_},
                          {"records", samples_ + predictions_}, {"lr", current_lr_ < 0 ? o_.optimizer.lr : current_lr_},
                          {"samples_per_s", rate_}, {"staleness_mean", smean}, {"staleness_max", staleness_window_max_},
                          {"training", training_}};
      if (std::isfinite(loss)) e["loss"] = loss;
      if (std::isfinite(acc)) e["accuracy"] = acc;
      if (std::string(phase) != "eval") ctx.log_event(e);
      staleness_window_sum_ = 0;
      staleness_window_n_ = 0;
      staleness_window_max_ = 0;
    }
  }

  // ---- word embeddings -------------------------------------------------------------------

  // Writes the input embeddings in the word2vec text format and logs the nearest neighbours of
  // the probe words.
  void export_embeddings(Context& ctx) {
    if (o_.network.kind != "skipgram") throw ConfigError("vocab/embeddings/probe_words need network = \"skipgram\"");
    std::ifstream in(o_.vocab_path);
    if (!in) throw IoError("cannot read the vocabulary " + o_.vocab_path.string());
    std::vector<std::string> words;
    for (std::string line; std::getline(in, line);) words.push_back(line.substr(0, line.find(' ')));
    at::Tensor emb = net_.parameters()[0].detach();
    int64_t n = std::min<int64_t>(static_cast<int64_t>(words.size()), emb.size(0));
    if (static_cast<int64_t>(words.size()) > emb.size(0)) {
      throw ConfigError("the vocabulary has " + std::to_string(words.size()) + " words but the model only " +
                        std::to_string(emb.size(0)) + " rows (raise vocab, or set max_vocab on the source)");
    }
    if (!o_.embeddings_path.empty()) {
      std::filesystem::path p = o_.embeddings_path;
      if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
      std::ofstream out(p);
      out << n << " " << emb.size(1) << "\n";
      at::Tensor e = emb.narrow(0, 0, n).contiguous();
      const float* v = e.data_ptr<float>();
      char buf[32];
      for (int64_t i = 0; i < n; ++i) {
        out << words[static_cast<size_t>(i)];
        for (int64_t d = 0; d < e.size(1); ++d) {
          std::snprintf(buf, sizeof buf, " %.6g", static_cast<double>(v[i * e.size(1) + d]));
          out << buf;
        }
        out << "\n";
      }
      if (!out) throw IoError("error writing " + p.string());
      ctx.log_event({{"kind", "embeddings_export"}, {"path", p.string()}, {"words", n}, {"dim", emb.size(1)}});
    }
    at::Tensor unit = emb.narrow(0, 0, n) / emb.narrow(0, 0, n).norm(2, 1, true).clamp_min(1e-12);
    for (const std::string& w : o_.probe_words) {
      auto it = std::find(words.begin(), words.end(), w);
      if (it == words.end()) {
        ctx.log_event({{"kind", "neighbours"}, {"word", w}, {"error", "not in the vocabulary"}});
        continue;
      }
      int64_t id = it - words.begin();
      at::Tensor sim = unit.matmul(unit[id]);
      sim[id] = -2;  // not itself
      auto top = sim.topk(std::min<int64_t>(o_.neighbours, n - 1));
      nlohmann::json list = nlohmann::json::array();
      for (int64_t k = 0; k < std::get<1>(top).size(0); ++k) {
        int64_t j = std::get<1>(top)[k].item<int64_t>();
        list.push_back({{"word", words[static_cast<size_t>(j)]}, {"cosine", std::get<0>(top)[k].item<double>()}});
      }
      ctx.log_event({{"kind", "neighbours"}, {"word", w}, {"neighbours", list}});
    }
  }

  // ---- checkpoints -----------------------------------------------------------------------

  std::filesystem::path checkpoint_path(const std::filesystem::path& dir) const {
    std::filesystem::path d = substitute_rank(dir.string(), info_.rank);
    return d / ("rank" + std::to_string(info_.rank));
  }

  void checkpoint(Context& ctx) {
    std::filesystem::path dir = checkpoint_path(o_.checkpoint_dir);
    std::filesystem::create_directories(dir);
    try {
      torch::serialize::OutputArchive weights;
      const auto& params = net_.parameters();
      for (size_t i = 0; i < params.size(); ++i) weights.write(net_.names()[i], params[i].detach());
      weights.save_to((dir / "weights.pt.tmp").string());
      torch::serialize::OutputArchive optimizer;
      opt_->save(optimizer);
      optimizer.save_to((dir / "optimizer.pt.tmp").string());
    } catch (const c10::Error& e) {
      throw IoError("cannot write checkpoint in " + dir.string() + ": " + e.what_without_backtrace());
    }
    nlohmann::json state = {{"version", version_}, {"step", step_}, {"samples", samples_},
                            {"network", net_.description()}, {"parameters", net_.parameter_count()},
                            {"training", training_}};
    std::ofstream(dir / "state.json.tmp") << state.dump(2) << "\n";
    // Rename last so a crash leaves the previous checkpoint whole.
    for (const char* f : {"weights.pt", "optimizer.pt", "state.json"}) {
      std::filesystem::rename(dir / (std::string(f) + ".tmp"), dir / f);
    }
    ctx.log_event({{"kind", "checkpoint"}, {"path", dir.string()}, {"step", step_}, {"version", version_}});
  }

  void restore(const std::filesystem::path& from) {
    std::filesystem::path dir = checkpoint_path(from);
    if (!std::filesystem::exists(dir / "state.json")) {
      throw IoError("no checkpoint in " + dir.string() + " (state.json missing)", ExitCode::kConfig);
    }
    nlohmann::json state;
    try {
      std::ifstream(dir / "state.json") >> state;
      if (state.at("parameters").get<int64_t>() != net_.parameter_count()) {
        throw IoError("checkpoint " + dir.string() + " is of a network with " + state.at("parameters").dump() +
                          " parameters, this one has " + std::to_string(net_.parameter_count()),
                      ExitCode::kConfig);
      }
      version_ = state.at("version").get<int64_t>();
      step_ = state.at("step").get<int64_t>();
      samples_ = state.at("samples").get<int64_t>();
      training_ = state.at("training").get<bool>() && o_.training != "never";
    } catch (const nlohmann::json::exception& e) {
      throw IoError("corrupt checkpoint " + (dir / "state.json").string() + ": " + e.what(), ExitCode::kConfig);
    }
    try {
      torch::serialize::InputArchive weights;
      weights.load_from((dir / "weights.pt").string());
      torch::NoGradGuard no_grad;
      const auto& params = net_.parameters();
      for (size_t i = 0; i < params.size(); ++i) {
        at::Tensor t;
        weights.read(net_.names()[i], t);
        if (!t.sizes().equals(params[i].sizes())) {
          throw IoError("checkpoint " + dir.string() + ": parameter " + net_.names()[i] + " has shape " +
                            shape_string(t.sizes()) + ", the network's is " + shape_string(params[i].sizes()),
                        ExitCode::kConfig);
        }
        params[i].copy_(t);
      }
      torch::serialize::InputArchive optimizer;
      optimizer.load_from((dir / "optimizer.pt").string());
      opt_->load(optimizer);
    } catch (const c10::Error& e) {
      std::string why = e.what_without_backtrace();
      throw IoError("corrupt checkpoint in " + dir.string() + ": " + why.substr(0, why.find('\n')), ExitCode::kConfig);
    }
    skip_ = samples_;
    epoch_ = version_ / o_.epoch_size;
  }

  const ModelOptions& o_;
  dataflow::InstanceInfo info_;
  Network net_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::vector<std::vector<int64_t>> shapes_;
  int threads_ = 1;

  bool training_ = true;
  bool train_done_ = false;
  int64_t version_ = 0, step_ = 0, samples_ = 0, skip_ = 0;
  int64_t predictions_ = 0, nonfinite_ = 0;

  // Outgoing delta.
  std::vector<at::Tensor> delta_;
  int64_t delta_steps_ = 0, delta_samples_ = 0, delta_version_ = 0;
  double delta_loss_ = 0, delta_acc_ = 0;
  int64_t deltas_sent_ = 0, deltas_applied_ = 0;
  uint64_t delta_bytes_sent_ = 0, delta_bytes_max_ = 0;
  int64_t gap_ = 0;  // bounded staleness: the clock gap s
  int64_t warmup_left_ = 0;  // own steps left in a learning-rate warm-up
  double current_lr_ = -1;   // the rate set in the optimizer (-1: as configured)

  // Peers.
  int peer_count_ = 0;
  std::vector<Peer> peers_;
  BatchPtr held_;  // a train batch waiting for the staleness bound

  // Sync mode.
  int64_t sync_step_ = 0;
  bool sync_waiting_ = false;
  std::map<int64_t, std::vector<Message>> sync_;
  std::map<int64_t, int64_t> sync_finished_at_;

  // Staleness of applied deltas: overall and since the last metrics line.
  double staleness_sum_ = 0, staleness_window_sum_ = 0;
  int64_t staleness_n_ = 0, staleness_window_n_ = 0, staleness_max_ = 0, staleness_window_max_ = 0;

  // Epochs and convergence.
  int64_t epoch_ = 0, epoch_count_ = 0;
  double epoch_loss_ = 0;
  std::deque<double> past_losses_;

  std::vector<BatchPtr> eval_set_;
  std::ofstream csv_;
  Clock::time_point last_rate_time_;
  int64_t rate_samples_ = 0, metric_rows_ = 0;
  double rate_ = 0;
};

std::unique_ptr<dataflow::Operator> ModelDef::instantiate(const dataflow::InstanceInfo& info) const {
  return std::make_unique<ModelInstance>(o_, info);
}

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> model_operator(ModelOptions options) {
  return std::make_shared<ModelDef>(std::move(options));
}

}  // namespace tensair::model
