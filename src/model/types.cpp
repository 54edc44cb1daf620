// Job-file type "model". Keys (all optional unless noted; see docs/model.md):
//   network = "cifar_cnn" | "mlp" | "skipgram" | "path/to/module.pt" (TorchScript)
//   layers = [in, hidden..., out] (mlp)   vocab, dim (skipgram)
//   features = [columns fed to forward]   label = "label"   id = "id"
//   loss = "cross_entropy" | "bce" | "mse" | "sgns"   seed, threads
//   device = "cpu" | "cuda" | "cuda:N" | "cuda:local_rank" | "auto" (src/model/device.hpp)
//   optimizer = "sgd" | "adam", lr, momentum, weight_decay, beta1, beta2, eps
//   mode = "dasgd" | "sync" | "local", exchange = "update" | "gradient", broadcast_every,
//   max_staleness, fp16, sparse, coalesce
//   training = "always" | "until_converged" | "never", epoch_size, convergence_factor,
//   epochs_for_convergence, eval_every, max_steps, nan_policy = "skip" | "error", warmup_steps
//   export, csv, log_every (checkpoints: the job's [checkpoint] table)
//   vocab_file, embeddings, probe_words, neighbours (skipgram)
//   serve_port, serve_host, serve_every, serve_max_batch, serve_max_request_bytes,
//   snapshot_every, snapshot_dir, snapshot_keep (docs/serving.md)
#include <algorithm>
#include <cmath>
#include <string>

#include "model/device.hpp"
#include "tensair/job/registry.hpp"
#include "tensair/model/model.hpp"

namespace tensair::model {

namespace {

// A cadence: a count of model versions (an integer >= 1) or a duration ("30s", "500ms").
Every every(const job::Params& p, const std::string& key, Every def) {
  const toml::node* n = p.node(key);
  if (!n) return def;
  Every e;
  if (auto count = n->value_exact<int64_t>()) {
    if (*count < 1) p.fail(key, "expected a count of versions >= 1 or a duration like \"30s\"");
    e.versions = *count;
    return e;
  }
  const auto text = n->value_exact<std::string>();
  double scale = 0;
  std::string number;
  if (text && text->ends_with("ms")) {
    scale = 1e-3;
    number = text->substr(0, text->size() - 2);
  } else if (text && text->ends_with("s")) {
    scale = 1;
    number = text->substr(0, text->size() - 1);
  }
  size_t used = 0;
  double v = 0;
  try {
    v = scale > 0 && !number.empty() ? std::stod(number, &used) : 0;
  } catch (const std::exception&) {
    used = 0;
  }
  if (scale == 0 || used != number.size() || !(v > 0) || !std::isfinite(v)) {
    p.fail(key, "expected a count of model versions (e.g. 50) or a positive duration in "
                "seconds or milliseconds (e.g. \"30s\", \"500ms\")");
  }
  e.seconds = v * scale;
  return e;
}

ModelOptions model_options(const job::Params& p) {
  ModelOptions o;
  std::string network = p.str("network", "cifar_cnn");
  if (network.size() > 3 && (network.ends_with(".pt") || network.ends_with(".pth") || network.find('/') != std::string::npos)) {
    o.network.kind = "torchscript";
    o.network.path = p.input_path("network");
    if (!std::filesystem::exists(o.network.path)) p.fail("network", "TorchScript file " + o.network.path.string() + " does not exist");
  } else if (network == "cifar_cnn" || network == "mlp" || network == "skipgram") {
    o.network.kind = network;
  } else {
    p.fail("network", "unknown network \"" + network +
                          "\" (known: cifar_cnn, mlp, skipgram, or a TorchScript file ending in .pt)");
  }
  if (const toml::node* layers = p.node("layers")) {
    const toml::array* arr = layers->as_array();
    if (!arr) p.fail("layers", "expected an array of layer sizes, e.g. [8, 64, 2]");
    for (const auto& v : *arr) {
      auto n = v.value<int64_t>();
      if (!n || *n < 1) p.fail("layers", "layer sizes must be positive integers");
      o.network.layers.push_back(*n);
    }
  }
  o.network.vocab = p.integer("vocab", 0, 0);
  o.network.dim = p.integer("dim", 0, 0);
  if (o.network.kind == "mlp" && o.network.layers.size() < 2) p.fail("layers", "an mlp needs layers = [inputs, hidden..., outputs]");
  if (o.network.kind == "skipgram" && (o.network.vocab < 2 || o.network.dim < 1)) {
    p.fail(o.network.vocab < 2 ? "vocab" : "dim", "a skipgram network needs vocab >= 2 and dim >= 1");
  }
  // Sizes that cannot be allocated are refused here, naming the size (once: a bad_alloc
  // reported as an input-shape problem at the first batch).
  if (const int64_t n = parameter_count(o.network); n > kMaxParameters) {
    const std::string count = std::to_string(n) + " parameters, more than the " +
                              std::to_string(kMaxParameters) + " a network may have (" +
                              std::to_string(kMaxParameters * 4 >> 30) + " GiB of float32)";
    if (o.network.kind == "mlp") {
      const int64_t widest = *std::max_element(o.network.layers.begin(), o.network.layers.end());
      p.fail("layers", "layer size " + std::to_string(widest) +
                           " is too large: the mlp would have " + count);
    }
    p.fail("vocab", "vocab " + std::to_string(o.network.vocab) + " with dim " +
                        std::to_string(o.network.dim) +
                        " is too large: the embeddings would have " + count);
  }
  std::vector<std::string> default_inputs = o.network.kind == "skipgram" ? std::vector<std::string>{"target", "context", "negatives"}
                                            : o.network.kind == "mlp"    ? std::vector<std::string>{"x"}
                                                                         : std::vector<std::string>{"image"};
  o.inputs = p.strings("features", default_inputs);  // "inputs" is the job file's port tables
  // A fixed set of names becomes its enum here, once, with the key named when it is wrong.
  auto choice = [&p](const std::string& key, const std::string& def, auto parse) {
    try {
      return parse(p.str(key, def));
    } catch (const ConfigError& e) {
      p.fail(key, e.what());
    }
  };
  o.loss = choice("loss", o.network.kind == "skipgram" ? "sgns" : "cross_entropy", parse_loss);
  // The device is resolved here as this process would resolve it for its replica (its local
  // rank from the launcher), so a CUDA value on a CPU-only build fails at validate, one line.
  o.device = p.str("device", o.device);
  DeviceId device;
  try {
    device = resolve_device_here(o.device);
  } catch (const ConfigError& e) {
    p.fail("device", e.what());
  }
  // The fused skip-gram kernel is the default where it applies: skipgram + sgns on the CPU.
  const bool sgns = o.network.kind == "skipgram" && o.loss == Loss::kSgns;
  o.kernel = choice("kernel", sgns && !device.cuda ? "fused" : "autograd", parse_kernel);
  if (o.kernel == Kernel::kFused && !sgns) {
    p.fail("kernel", "\"fused\" is the skip-gram negative-sampling kernel: it needs network = "
                     "\"skipgram\" and loss = \"sgns\"");
  }
  if (o.kernel == Kernel::kFused && o.inputs.size() != 3)
    p.fail("features", "the skipgram network takes 3 features: target, context, negatives");
  if (device.cuda && o.kernel == Kernel::kFused) {
    p.fail("kernel", "\"fused\" runs on the CPU only, and device \"" + o.device +
                         "\" is a CUDA device (kernel = \"autograd\" trains on CUDA)");
  }
  o.label = p.str("label", o.loss == Loss::kSgns ? "" : (o.network.kind == "mlp" ? "y" : "label"));
  o.id = p.str("id", o.id);
  o.seed = static_cast<uint64_t>(p.integer("seed", 1, 0));
  o.threads = static_cast<int>(p.integer("threads", 0, 0, 1024));
  o.optimizer.kind = choice("optimizer", "sgd", parse_optimizer);
  // The ranges LibTorch's optimizers accept (outside them they throw mid-run, or diverge).
  using R = job::Params::Range;
  constexpr double inf = job::Params::kInf;
  o.optimizer.lr = p.number("lr", o.optimizer.kind == OptimizerKind::kAdam ? 1e-3 : 0.01,
                            R{0, inf, true});
  o.optimizer.momentum = p.number("momentum", 0, R{0, 1, false, true});
  o.optimizer.weight_decay = p.number("weight_decay", 0, R{0, inf});
  o.optimizer.beta1 = p.number("beta1", 0.9, R{0, 1, false, true});
  o.optimizer.beta2 = p.number("beta2", 0.999, R{0, 1, false, true});
  o.optimizer.eps = p.number("eps", 1e-8, R{0, inf, true});
  o.mode = choice("mode", name_of(o.mode), parse_mode);
  o.exchange = choice("exchange", name_of(o.exchange), parse_exchange);
  o.broadcast_every = static_cast<int>(p.integer("broadcast_every", 1, 1, 1 << 20));
  if (p.has("max_staleness")) o.max_staleness = p.integer("max_staleness", std::nullopt, 1);
  o.fp16 = p.boolean("fp16", false);
  o.sparse = p.boolean("sparse", true);
  o.coalesce = p.boolean("coalesce", false);
  o.training = choice("training", name_of(o.training), parse_training);
  o.epoch_size = p.integer("epoch_size", o.epoch_size, 1);
  o.convergence_factor = p.number("convergence_factor", o.convergence_factor, R{0, inf});
  o.epochs_for_convergence = static_cast<int>(p.integer("epochs_for_convergence", 2, 2, 1000));
  o.eval_every = p.integer("eval_every", 0, 0);
  o.max_steps = p.integer("max_steps", 0, 0);
  o.nan_policy = choice("nan_policy", name_of(o.nan_policy), parse_nan_policy);
  o.warmup_steps = p.integer("warmup_steps", o.warmup_steps, 1);
  for (const char* gone : {"checkpoint_dir", "checkpoint_every", "resume"}) {
    if (p.has(gone)) {
      p.fail(gone, "models no longer checkpoint on their own: the job's [checkpoint] table takes consistent "
                   "checkpoints of every operator, and `tensair run --resume latest` restores them "
                   "(docs/fault-tolerance.md)");
    }
  }
  if (p.has("export")) o.export_path = p.output_path("export");
  if (p.has("csv")) o.csv_path = p.output_path("csv");
  o.log_every = p.integer("log_every", o.log_every, 1);
  if (p.has("vocab_file")) o.vocab_path = p.output_path("vocab_file", std::nullopt, job::Params::Output::kReads);  // written by the source into OUT
  if (p.has("embeddings")) o.embeddings_path = p.output_path("embeddings");
  o.probe_words = p.strings("probe_words", std::vector<std::string>{});
  o.neighbours = static_cast<int>(p.integer("neighbours", 8, 1, 1000));
  if (p.has("serve_port")) o.serve_port = static_cast<int>(p.integer("serve_port", 0, 0, 65535));
  o.serve_host = p.str("serve_host", o.serve_host);
  o.serve_every = every(p, "serve_every", o.serve_every);
  o.serve_max_batch = p.integer("serve_max_batch", o.serve_max_batch, 1, 1 << 20);
  o.serve_max_request_bytes =
      p.integer("serve_max_request_bytes", o.serve_max_request_bytes, 1024, int64_t{1} << 32);
  o.snapshot_every = every(p, "snapshot_every", Every{});
  if (o.snapshot_every.on() || p.has("snapshot_dir"))
    o.snapshot_dir = p.output_path("snapshot_dir", "snapshots/" + p.section());
  o.snapshot_keep = p.integer("snapshot_keep", 0, 0);
  return o;
}

}  // namespace

void register_job_types() {
  static const bool registered = [] {
    job::register_operator_type(
        {"model", "a LibTorch network trained online (DASGD / sync) with predictions and metrics", [](const job::Params& p) {
           ModelOptions o = model_options(p);
           try {
             return model_operator(o);
           } catch (const ConfigError& e) {
             p.fail("", e.what());
           }
         }});
    return true;
  }();
  (void)registered;
}

}  // namespace tensair::model
