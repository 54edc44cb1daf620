// The Model operator: a LibTorch network replica per instance, trained online from a stream
// with decentralised asynchronous SGD (DASGD) or synchronous gradient averaging.
//
// Ports
//   inputs   train      features + labels: train on every batch (or, while training is off,
//                       predict and report the loss)
//            predict    features (+ id): predictions only                        (optional)
//            evaluate   a held-out stream, kept and evaluated every eval_every steps (optional)
//            control    column `command` (string): "start" / "stop" training,
//                       "reset_optimizer", "warmup"; used by the drift detector      (optional)
//            exchange   updates from the other replicas (connected automatically)
//   outputs  predictions  id (when the input has it) + `output` (the network's output)
//            metrics      one row per batch: rank, step, version, phase (train, predict,
//                         eval), loss, accuracy, samples (in the batch), records (train +
//                         predicted records of this replica so far), samples_per_s,
//                         staleness_mean, staleness_max, training
//            exchange     updates to the other replicas (connected automatically)
//
// Checkpoints: an instance's snapshot holds its weights, optimizer state, the replication
// state (version, peers' clocks, updates waiting for credit or for coalescing, sync steps in
// progress), the held-back batch of a bounded-staleness wait, the evaluation set, its counters
// and the epoch/convergence state; a restored replica carries on exactly where it was.
//
// This header is free of LibTorch so that programs configuring a job need not include it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::model {

// How replicas share their training (replication.hpp has the protocols).
enum class Mode {
  kDasgd,  // decentralised asynchronous SGD: every update goes to every peer, applied on arrival
  kSync,   // every step, the sample-weighted mean of every replica's gradient
  kLocal,  // no exchange
};
// What a DASGD update carries.
enum class Exchange {
  kUpdate,    // the applied parameter update (w after - w before), added by receivers: exact for
              // every optimizer, so replicas end equal with Adam and momentum too
  kGradient,  // the raw gradient, applied through each receiver's optimizer
};
enum class Training {
  kAlways,          // every train batch is a step
  kUntilConverged,  // train until the convergence rule holds, then predict until told to start
  kNever,           // predict only
};
enum class NanPolicy {
  kSkip,   // a non-finite loss is counted and its batch skipped
  kError,  // it ends the job
};
enum class Loss { kCrossEntropy, kBce, kMse, kSgns };
enum class OptimizerKind { kSgd, kAdam };
// How a training step computes its gradient (the values are the same, to rounding).
enum class Kernel {
  kAutograd,  // the network's forward() and LibTorch autograd: every network
  kFused,     // the fused skip-gram negative-sampling gradient (skipgram + sgns only): no
              // autograd, one pass over the rows the batch touches, vectorised
};

// Job-file names of these values, and back. parse_* throws ConfigError listing the known names.
Mode parse_mode(const std::string& name);
Exchange parse_exchange(const std::string& name);
Training parse_training(const std::string& name);
NanPolicy parse_nan_policy(const std::string& name);
Loss parse_loss(const std::string& name);
OptimizerKind parse_optimizer(const std::string& name);
Kernel parse_kernel(const std::string& name);
const char* name_of(Mode v);
const char* name_of(Exchange v);
const char* name_of(Training v);
const char* name_of(NanPolicy v);
const char* name_of(Loss v);
const char* name_of(OptimizerKind v);
const char* name_of(Kernel v);

// The network: a built-in (built as a TorchScript module in C++, so it exports like any
// other) or a TorchScript file saved from Python.
struct NetworkOptions {
  // "cifar_cnn"  the reference CNN: input float32[3,32,32] (CHW), 10 logits, 122,570 params
  // "mlp"        input float32[layers[0]], hidden ReLU layers, output layers.back()
  // "skipgram"   inputs target int64, context int64, negatives int64[k]: logits [1+k]
  //              from two vocab×dim embeddings with sparse gradients
  // "torchscript" the module in `path` (its forward takes the input columns in order)
  std::string kind = "cifar_cnn";
  std::filesystem::path path;
  std::vector<int64_t> layers;  // mlp
  int64_t vocab = 0;            // skipgram
  int64_t dim = 0;              // skipgram
};

// The most parameters a built-in network may have: 2^28, 1 GiB of float32 weights (gradients,
// updates and optimizer state take as much again, or more). A larger one is refused when the
// job is loaded (naming the key and the layer size), not left to fail an allocation.
inline constexpr int64_t kMaxParameters = int64_t{1} << 28;
// The parameter count of a built-in network from its options (saturating at INT64_MAX); 0 for
// a TorchScript file, whose size is known once it is loaded.
int64_t parameter_count(const NetworkOptions& options);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kSgd;
  double lr = 0.01;
  double momentum = 0;
  double weight_decay = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam
};

// How often something happens while a model trains: every `versions` model versions (updates
// applied: this replica's own steps plus its peers' updates), or every `seconds`; off when both
// are 0. Job files write a count (50) or a duration ("30s", "500ms").
struct Every {
  int64_t versions = 0;
  double seconds = 0;
  bool on() const { return versions > 0 || seconds > 0; }
};

struct ModelOptions {
  NetworkOptions network;
  OptimizerOptions optimizer;
  // Columns of the train/predict/evaluate batches fed to forward(), in order, and the label
  // column (empty for the skipgram loss, whose label is implicit).
  std::vector<std::string> inputs;
  std::string label;
  std::string id = "id";                 // copied into predictions when present
  Loss loss = Loss::kCrossEntropy;
  // The job file's default: fused for a skipgram network with the sgns loss, else autograd.
  Kernel kernel = Kernel::kAutograd;
  uint64_t seed = 1;                     // same on every replica: equal initial weights
  int threads = 0;                       // torch intra-op threads; 0: cores / local ranks - 1 (at least 1)
  // Where each replica's network lives and trains (docs/model.md#devices): "cpu", "cuda",
  // "cuda:N", "cuda:local_rank" (the rank's index among the ranks of its host) or "auto"
  // (cuda:local_rank when LibTorch has CUDA and a device is visible, else cpu). Resolved on
  // each rank when its replica is built; replicas of one job may be on different devices.
  std::string device = "cpu";

  // Replication.
  Mode mode = Mode::kDasgd;
  Exchange exchange = Exchange::kUpdate;  // dasgd: what travels (docs/model.md: why the default)
  int broadcast_every = 1;               // dasgd: local steps per update sent
  std::optional<int64_t> max_staleness;  // dasgd: SSP bound on the staleness of applied deltas
  bool fp16 = false;                     // send dense updates as float16
  bool sparse = true;                    // send sparse updates as rows (indices + values)
  bool coalesce = false;                 // sum queued remote updates into one before applying

  // Lifecycle.
  Training training = Training::kAlways;
  int64_t epoch_size = 1000;             // mini-batches (all replicas) per epoch
  double convergence_factor = 1e-2;
  int epochs_for_convergence = 2;
  int64_t eval_every = 0;                // steps between evaluations (0: at the end only)
  int64_t max_steps = 0;                 // stop training after this many local steps (0: no limit)
  NanPolicy nan_policy = NanPolicy::kSkip;
  // After a "warmup" command (sent by the drift detector with warmup = true), the learning rate
  // ramps linearly from lr/warmup_steps back to lr over this many own steps.
  int64_t warmup_steps = 100;

  // Files (paths may contain {rank}).
  std::filesystem::path export_path;     // TorchScript file written at the end
  std::filesystem::path csv_path;        // reference-compatible rows: "training, n,loss,acc,"
  int64_t log_every = 10;                // steps between metrics.jsonl lines

  // Skip-gram only: the vocabulary ("word count" per line, line i = id i; the skipgram_source
  // writes it), the word2vec text file written at the end ("N D", then "word v1 ... vD"), and
  // words whose nearest neighbours (cosine) are logged at the end.
  std::filesystem::path vocab_path;
  std::filesystem::path embeddings_path;
  std::vector<std::string> probe_words;
  int neighbours = 8;

  // Serving while training (docs/serving.md). With serve_port set, every instance serves its
  // replica over HTTP (KServe v2) on serve_port + instance (0: a free port each, logged);
  // the served copy of the weights is refreshed from the replica every serve_every.
  std::optional<int> serve_port;
  std::string serve_host = "127.0.0.1";
  Every serve_every{0, 0.1};
  int64_t serve_max_batch = 256;            // records per coalesced forward pass
  int64_t serve_max_request_bytes = 32 << 20;
  // Snapshots for external servers: instance 0 writes <snapshot_dir>/<name>_v<version>.pt and
  // the pointer file `latest` every snapshot_every (and at the end), keeping the newest
  // snapshot_keep (0: all).
  Every snapshot_every;
  std::filesystem::path snapshot_dir;      // default OUT/snapshots
  int64_t snapshot_keep = 0;
};

std::shared_ptr<const dataflow::OperatorDef> model_operator(ModelOptions options);

// Registers the job-file type "model". Idempotent.
void register_job_types();

}  // namespace tensair::model
