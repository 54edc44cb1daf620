// The Model operator: one replica equals a plain LibTorch loop; DASGD replicas end equal;
// sync equals one replica on the concatenated batches; sparse deltas are small; the staleness
// bound holds; uneven streams end cleanly; bad inputs give clear errors. Ranks are in-process
// (LocalCluster); tests/e2e runs the same operator under mpirun through the CLI.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "model/delta.hpp"
#include "model/network.hpp"
#include "tensair/common/error.hpp"
#include "tensair/model/model.hpp"
#include "testing/harness.hpp"
#include "testing/lambda_op.hpp"
#include "testing/temp_dir.hpp"
#include "model/model_test_util.hpp"

namespace tensair::model {
namespace {

namespace fs = std::filesystem;
using dataflow::Batch;
using dataflow::DType;
using dataflow::Graph;
using dataflow::Placement;
using dataflow::Routing;
using testing::TempDir;

// ---------------------------------------------------------------------------------------------

TEST(NetworkTest, CifarCnnHasTheReferenceLayersAndParameterCount) {
  NetworkOptions n;
  n.kind = "cifar_cnn";
  Network net(n, 1);
  EXPECT_EQ(net.parameter_count(), 122570);
  EXPECT_EQ(net.parameters().size(), 10u);
  at::Tensor out = net.forward({torch::randn({4, 3, 32, 32})});
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{4, 10}));
}

// The same network as plain torch::nn modules, trained by a plain loop.
struct PlainMlp : torch::nn::Module {
  torch::nn::Linear l0{nullptr}, l1{nullptr};
  PlainMlp(int64_t a, int64_t b, int64_t c) : l0(register_module("l0", torch::nn::Linear(a, b))), l1(register_module("l1", torch::nn::Linear(b, c))) {}
  at::Tensor forward(at::Tensor x) { return l1(torch::relu(l0(x.flatten(1)))); }
};

struct PlainCnn : torch::nn::Module {
  torch::nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr};
  torch::nn::Linear f1{nullptr}, f2{nullptr};
  PlainCnn()
      : c1(register_module("c1", torch::nn::Conv2d(3, 32, 3))),
        c2(register_module("c2", torch::nn::Conv2d(32, 64, 3))),
        c3(register_module("c3", torch::nn::Conv2d(64, 64, 3))),
        f1(register_module("f1", torch::nn::Linear(1024, 64))),
        f2(register_module("f2", torch::nn::Linear(64, 10))) {}
  at::Tensor forward(at::Tensor x) {
    x = torch::max_pool2d(torch::relu(c1(x)), 2);
    x = torch::max_pool2d(torch::relu(c2(x)), 2);
    x = torch::relu(c3(x)).flatten(1);
    return f2(torch::relu(f1(x)));
  }
};

template <class Plain>
std::vector<at::Tensor> plain_loop(Plain& plain, const NetworkOptions& net_options, uint64_t seed,
                                   const std::vector<Batch>& data, double lr) {
  Network init(net_options, seed);  // the operator's initial weights
  auto params = plain.parameters();
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(init.parameters()[i]);
  }
  torch::optim::SGD opt(params, torch::optim::SGDOptions(lr));
  for (const Batch& b : data) {
    opt.zero_grad();
    at::Tensor out = plain.forward(column_tensor(b.column("x")));
    at::Tensor loss = torch::nll_loss(torch::log_softmax(out, 1), column_tensor(b.column("y")));
    loss.backward();
    opt.step();
  }
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}

TEST(ModelTest, OneReplicaEqualsAPlainLibTorchLoop) {
  torch::set_num_threads(1);
  {  // MLP
    TempDir dir;
    std::vector<Batch> data = batches(1, 50, 16, {8}, 3);
    ModelOptions o = mlp_options({8, 16, 3}, 0.1);
    RunResult r = run_model(1, {data}, xy_schema({8}), o, dir);
    for (auto& oc : r.outcomes) ASSERT_FALSE(oc.error) << *oc.error;
    PlainMlp plain(8, 16, 3);
    auto expect = plain_loop(plain, o.network, o.seed, data, 0.1);
    EXPECT_LT(max_diff(r.weights[0], expect), 1e-6);
    EXPECT_EQ(r.summary[0]["version"], 50);
  }
  {  // the reference CNN
    TempDir dir;
    std::vector<Batch> data = batches(2, 50, 4, {3, 32, 32}, 10);
    ModelOptions o = mlp_options({}, 0.05);
    o.network.kind = "cifar_cnn";
    RunResult r = run_model(1, {data}, xy_schema({3, 32, 32}), o, dir);
    for (auto& oc : r.outcomes) ASSERT_FALSE(oc.error) << *oc.error;
    PlainCnn plain;
    auto expect = plain_loop(plain, o.network, o.seed, data, 0.05);
    EXPECT_LT(max_diff(r.weights[0], expect), 1e-6);
  }
}

TEST(ModelTest, DasgdReplicasEndWithEqualWeightsAndVersionsCountEveryGradient) {
  for (int ranks : {2, 3}) {
    for (int every : {1, 3}) {
      TempDir dir;
      // Uneven shares: rank 0 gets 20 batches, rank 1 gets 7, rank 2 none.
      std::vector<std::vector<Batch>> data = {batches(3, 20, 8, {8}, 3), batches(4, 7, 8, {8}, 3), {}};
      ModelOptions o = mlp_options({8, 16, 3}, 0.05);
      o.broadcast_every = every;
      RunResult r = run_model(ranks, data, xy_schema({8}), o, dir);
      for (auto& oc : r.outcomes) ASSERT_FALSE(oc.error) << *oc.error;
      ASSERT_EQ(static_cast<int>(r.weights.size()), ranks);
      for (int k = 1; k < ranks; ++k) {
        EXPECT_LT(max_diff(r.weights[0], r.weights[k]), 1e-5) << ranks << " ranks, broadcast_every " << every << ", rank " << k;
      }
      for (int k = 0; k < ranks; ++k) EXPECT_EQ(r.summary[k]["version"], 27) << "rank " << k;
      // Plain SGD adds up the same gradients in any order: the replicas equal one that saw
      // every gradient, which differs from the initial weights.
      Network init(o.network, o.seed);
      std::vector<at::Tensor> w0(init.parameters().begin(), init.parameters().end());
      EXPECT_GT(max_diff(r.weights[0], w0), 1e-3);
    }
  }
}

TEST(ModelTest, SyncEqualsOneReplicaOnTheConcatenatedBatches) {
  for (int ranks : {2, 3}) {
    TempDir dir;
    // Unequal batch sizes and counts: rank 0 has 6 batches of 8, rank 1 4 of 5; with 3 ranks,
    // rank 2 has none.
    std::vector<std::vector<Batch>> data = {batches(5, 6, 8, {8}, 3), batches(6, 4, 5, {8}, 3), {}};
    data.resize(static_cast<size_t>(ranks));
    ModelOptions o = mlp_options({8, 16, 3}, 0.1);
    o.mode = Mode::kSync;
    RunResult r = run_model(ranks, data, xy_schema({8}), o, dir);
    for (auto& oc : r.outcomes) ASSERT_FALSE(oc.error) << *oc.error;
    // Step s of one replica: the concatenation of every rank's batch s.
    std::vector<Batch> concat;
    for (size_t s = 0; s < 6; ++s) {
      std::vector<dataflow::BatchPtr> parts;
      for (const auto& d : data) {
        if (s < d.size()) parts.push_back(dataflow::share(d[s]));
      }
      concat.push_back(dataflow::concat_batches(parts));
    }
    PlainMlp plain(8, 16, 3);
    auto expect = plain_loop(plain, o.network, o.seed, concat, 0.1);
    for (int k = 0; k < ranks; ++k) EXPECT_LT(max_diff(r.weights[k], expect), 1e-5) << ranks << " ranks, rank " << k;
  }
}

TEST(ModelTest, SparseEmbeddingDeltasAreSmallOnTheWire) {
  // 50,000 x 300 skip-gram, batches of 512 (target, context, 5 negatives) with word ids drawn
  // from a Zipf law, as in text.
  const int64_t vocab = 50000, dim = 300, rows = 512, negatives = 5;
  std::mt19937 rng(3);
  std::vector<double> weights(vocab);
  for (int64_t i = 0; i < vocab; ++i) weights[static_cast<size_t>(i)] = 1.0 / static_cast<double>(i + 1);
  std::discrete_distribution<int64_t> zipf(weights.begin(), weights.end());
  std::vector<std::vector<Batch>> data(2);
  for (int rank = 0; rank < 2; ++rank) {
    for (int b = 0; b < 3; ++b) {
      dataflow::BatchBuilder bb({{"target", DType::kInt64, {}}, {"context", DType::kInt64, {}}, {"negatives", DType::kInt64, {negatives}}});
      for (int64_t r = 0; r < rows; ++r) {
        bb.column(0).append<int64_t>(zipf(rng));
        bb.column(1).append<int64_t>(zipf(rng));
        std::vector<int64_t> neg(negatives);
        for (auto& n : neg) n = zipf(rng);
        bb.column(2).append_values(neg.data(), neg.size());
      }
      data[static_cast<size_t>(rank)].push_back(bb.finish());
    }
  }
  TempDir dir;
  ModelOptions o;
  o.network.kind = "skipgram";
  o.network.vocab = vocab;
  o.network.dim = dim;
  o.inputs = {"target", "context", "negatives"};
  o.loss = Loss::kSgns;
  o.optimizer.lr = 0.5;
  o.threads = 1;
  RunResult r = run_model(2, data, data[0][0].schema(), o, dir);
  for (auto& oc : r.outcomes) ASSERT_FALSE(oc.error) << *oc.error;
  double dense = static_cast<double>(r.summary[0]["dense_delta_bytes"].get<int64_t>());
  EXPECT_EQ(dense, 2.0 * vocab * dim * 4);
  for (int k = 0; k < 2; ++k) {
    double max_bytes = static_cast<double>(r.summary[k]["delta_bytes_max"].get<int64_t>());
    EXPECT_GT(max_bytes, 0);
    EXPECT_LE(max_bytes, 0.02 * dense) << "rank " << k << ": " << max_bytes << " bytes per delta";
    std::printf("sparse delta: largest %.0f bytes = %.2f %% of the dense %.0f bytes\n", max_bytes, 100 * max_bytes / dense, dense);
    EXPECT_EQ(r.summary[k]["version"], 6);
  }
  EXPECT_LT(max_diff(r.weights[0], r.weights[1]), 1e-5);
}

TEST(ModelTest, MaxStalenessBoundsEveryAppliedDelta) {
  // Rank 0 is slow where staleness comes from: its few batches are large, so each gradient takes
  // long to compute, while ranks 1 and 2 take a small batch every millisecond. Without a bound
  // they apply many steps of their own while one gradient of rank 0 is in the making, so it
  // reaches them stale; with max_staleness = 3 (the least 3 replicas allow) none may be more than
  // 3 behind. (Staleness is the receiver's version minus the version the gradient was computed
  // on, so a rank that is merely fed slowly sends fresh deltas: the slowness must be in compute.)
  std::vector<std::vector<Batch>> data = {batches(8, 4, 40000, {8}, 3), batches(9, 120, 8, {8}, 3),
                                          batches(10, 120, 8, {8}, 3)};
  int64_t unbounded_max = 0;
  for (bool bounded : {false, true}) {
    TempDir dir;
    ModelOptions o = mlp_options({8, 256, 3}, 0.05);
    if (bounded) o.max_staleness = 3;
    RunResult r = run_model(3, data, xy_schema({8}), o, dir, /*delay_ms=*/{0, 1, 1});
    for (auto& oc : r.outcomes) ASSERT_FALSE(oc.error) << *oc.error;
    int64_t worst = 0;
    for (int k = 0; k < 3; ++k) {
      worst = std::max(worst, r.summary[k]["staleness_max"].get<int64_t>());
      EXPECT_EQ(r.summary[k]["version"], 244);
    }
    if (bounded) {
      EXPECT_LE(worst, 3);
    } else {
      unbounded_max = worst;
    }
    for (int k = 1; k < 3; ++k) EXPECT_LT(max_diff(r.weights[0], r.weights[k]), 1e-5);
  }
  std::cout << "staleness max without a bound: " << unbounded_max << "\n";
  EXPECT_GT(unbounded_max, 3) << "the slow rank should see stale deltas when nothing bounds them";
  // A bound below what N replicas allow is refused with the reason.
  TempDir dir;
  ModelOptions o = mlp_options({8, 16, 3}, 0.05);
  o.max_staleness = 2;
  RunResult r = run_model(3, data, xy_schema({8}), o, dir);
  bool refused = false;
  for (auto& oc : r.outcomes) {
    refused = refused || (oc.error && oc.error->find("max_staleness = 2 cannot be guaranteed with 3 replicas: the least bound is 3") != std::string::npos);
  }
  EXPECT_TRUE(refused);
}

TEST(ModelTest, DeltaMessagesRoundTripDenseSparseAndHalf) {
  std::vector<std::vector<int64_t>> shapes = {{4, 3}, {10, 2}};
  Message m;
  m.kind = MessageKind::kDelta;
  m.sender = 2;
  m.version = 41;
  m.steps = 3;
  m.grads = {torch::randn({4, 3}),
             torch::sparse_coo_tensor(torch::tensor({{1, 7}}, torch::kLong), torch::randn({2, 2}), {10, 2})};
  for (bool fp16 : {false, true}) {
    auto batch = dataflow::share(encode_message(m, fp16));
    Message d = decode_message(batch, shapes);
    EXPECT_EQ(d.sender, 2);
    EXPECT_EQ(d.version, 41);
    EXPECT_EQ(d.steps, 3);
    double tol = fp16 ? 1e-2 : 0;
    EXPECT_LE((d.grads[0] - m.grads[0]).abs().max().item<double>(), tol);
    ASSERT_TRUE(d.grads[1].is_sparse());
    EXPECT_LE((d.grads[1].to_dense() - m.grads[1].to_dense()).abs().max().item<double>(), tol);
  }
  // A delta from a different network is rejected.
  auto batch = dataflow::share(encode_message(m, false));
  EXPECT_THROW(decode_message(batch, {{5, 3}, {10, 2}}), DataError);
}

// Crafted messages: every field a peer sends is checked before it is used.
std::string decode_error(const Batch& encoded, const std::string& column, dataflow::Column with,
                         const std::vector<std::vector<int64_t>>& shapes) {
  std::vector<dataflow::Column> cols;
  for (const auto& c : encoded.columns()) cols.push_back(c.name() == column ? with : c);
  try {
    decode_message(dataflow::share(Batch(std::move(cols))), shapes);
  } catch (const DataError& e) {
    return e.what();
  }
  return "(accepted)";
}

// One row: a scalar (per_record false, v of one value) or a record of v.size() values.
dataflow::Column int_column(const std::string& name, std::vector<int64_t> v, bool per_record) {
  std::vector<int64_t> shape;
  if (per_record) shape.push_back(static_cast<int64_t>(v.size()));
  dataflow::ColumnBuilder b({name, DType::kInt64, shape});
  b.append_values(v.data(), v.size());
  return b.finish();
}

TEST(ModelTest, CraftedDeltaMessagesAreRefusedWithTheReason) {
  Message m;
  m.kind = MessageKind::kDelta;
  m.steps = 1;
  m.grads = {torch::randn({3}), torch::sparse_coo_tensor(torch::tensor({{1}}, torch::kLong),
                                                          torch::randn({1, 2}), {10, 2})};
  const Batch b = encode_message(m, false);
  const std::vector<std::vector<int64_t>> shapes = {{3}, {10, 2}};
  EXPECT_EQ(decode_error(b, "steps", int_column("steps", {1}, false), shapes), "(accepted)");
  EXPECT_NE(decode_error(b, "steps", int_column("steps", {-1}, false), shapes)
                .find("negative sender, version, steps or samples"),
            std::string::npos);
  EXPECT_EQ(decode_error(b, "kind", int_column("kind", {9}, false), shapes),
            "model message of unknown kind 9");
  // Row indices of another type than int64.
  dataflow::ColumnBuilder f({"s1.idx", DType::kFloat32, {1}});
  const float one = 1;
  f.append_values(&one, 1);
  EXPECT_EQ(decode_error(b, "s1.idx", f.finish(), shapes),
            "sparse delta for parameter 1: row indices of type float32, expected int64");
  // A sparse delta for a scalar parameter (no rows to index).
  EXPECT_EQ(decode_error(b, "s1.idx", int_column("s1.idx", {0}, true), {{3}, {}}),
            "sparse delta for parameter 1, which has no rows");
  // An index past the table.
  EXPECT_EQ(decode_error(b, "s1.idx", int_column("s1.idx", {10}, true), shapes),
            "sparse delta for parameter 1: row index out of range");
}

std::string error_of(const RunResult& r) {
  for (const auto& oc : r.outcomes) {
    if (oc.error) return *oc.error;
  }
  return "no error";
}

// One bad record (a label outside the classes, a feature that is not finite) is a dead letter:
// counted, written with its reason, and the rest of its batch trains.
TEST(ModelTest, BadRecordsBecomeDeadLettersAndTheRestOfTheBatchTrains) {
  std::vector<Batch> data;
  for (int i = 0; i < 4; ++i) {
    torch::manual_seed(100 + i);
    at::Tensor x = torch::randn({8, 8});
    at::Tensor y = x.sum(1).gt(0).to(at::kLong);
    if (i == 1) y[3] = 7;
    if (i == 2) x[0][5] = std::numeric_limits<float>::quiet_NaN();
    at::Tensor id = torch::arange(i * 8, i * 8 + 8, torch::kLong);
    data.push_back(Batch({tensor_column("id", id, {}, 8), tensor_column("x", x, {8}, 8),
                          tensor_column("y", y, {}, 8)}));
  }
  dataflow::Schema schema = {{"id", DType::kInt64, {}},
                             {"x", DType::kFloat32, {8}},
                             {"y", DType::kInt64, {}}};
  TempDir dir;
  RunResult r = run_model(1, {data}, schema, mlp_options({8, 16, 2}), dir);
  ASSERT_EQ(error_of(r), "no error");
  EXPECT_EQ(r.summary[0]["samples"].get<int64_t>(), 30);
  EXPECT_EQ(r.summary[0]["nonfinite_losses"].get<int64_t>(), 0);
  std::ifstream in(dir / "dead_letters.jsonl");
  std::vector<nlohmann::json> dead;
  for (std::string line; std::getline(in, line);) dead.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0]["reason"], "label 7 is outside 0..1 (the network has 2 outputs)");
  EXPECT_EQ(dead[0]["record"], "id=11");
  EXPECT_EQ(dead[0]["operator"], "model");
  EXPECT_EQ(dead[1]["reason"], "feature \"x\" is not finite");
  EXPECT_EQ(dead[1]["record"], "id=16");
}

// A TorchScript network does not say how many classes it has: the model learns it from the
// width of the network's first output, so a label outside them is a dead letter there too.
TEST(ModelTest, ALabelOutsideATorchScriptNetworksClassesIsADeadLetter) {
  TempDir dir;
  NetworkOptions mlp;
  mlp.kind = "mlp";
  mlp.layers = {8, 16, 3};
  const std::string file = (dir / "net.pt").string();
  Network(mlp, 1).save(file);
  std::vector<Batch> data = batches(5, 3, 8, {8}, 3);
  {
    at::Tensor y = column_tensor(*data[0].find("y")).clone();
    y[2] = 3;  // the first batch: the probe runs on it, and its bad label is screened out
    data[0] = Batch({*data[0].find("x"), tensor_column("y", y, {}, 8)});
    at::Tensor y2 = column_tensor(*data[2].find("y")).clone();
    y2[0] = -1;
    data[2] = Batch({*data[2].find("x"), tensor_column("y", y2, {}, 8)});
  }
  ModelOptions o = mlp_options({8, 16, 3});
  o.network = NetworkOptions{};
  o.network.kind = "torchscript";
  o.network.path = file;
  o.inputs = {"x"};
  o.label = "y";
  o.loss = Loss::kCrossEntropy;
  RunResult r = run_model(1, {data}, xy_schema({8}), o, dir);
  ASSERT_EQ(error_of(r), "no error");
  EXPECT_EQ(r.summary[0]["samples"].get<int64_t>(), 3 * 8 - 2);
  std::ifstream in(dir / "dead_letters.jsonl");
  std::vector<nlohmann::json> dead;
  for (std::string line; std::getline(in, line);) dead.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0]["reason"], "label 3 is outside 0..2 (the network has 3 outputs)");
  EXPECT_EQ(dead[0]["record"], "row 2 of a batch of 8");
  EXPECT_EQ(dead[1]["reason"], "label -1 is outside 0..2 (the network has 3 outputs)");
}

// A stream with more bad records than the job allows fails, with one line that says so.
TEST(ModelTest, MoreDeadLettersThanAllowedEndTheJob) {
  std::vector<Batch> data = batches(3, 4, 8, {8}, 2);
  for (Batch& b : data) {  // every batch: its first label outside the two classes
    at::Tensor y = column_tensor(*b.find("y")).clone();
    y[0] = 5;
    b = Batch({*b.find("x"), tensor_column("y", y, {}, 8)});
  }
  for (bool fraction : {false, true}) {
    TempDir dir;
    ModelRun spec;
    spec.ranks = 1;
    spec.per_rank = {fraction ? std::vector<Batch>(8, data[0]) : data};  // 1 in 8 bad
    for (int i = 0; fraction && i < 20; ++i) spec.per_rank[0].push_back(data[0]);
    spec.schema = xy_schema({8});
    spec.options = mlp_options({8, 16, 2});
    if (fraction) {
      spec.executor.max_dead_letter_fraction = 0.1;  // 1 in 8 is 12.5 %
    } else {
      spec.executor.max_dead_letters = 2;
    }
    RunResult r = run_model(std::move(spec), dir);
    const std::string e = error_of(r);
    EXPECT_NE(e.find(fraction ? "dead letters, more than max_dead_letters = 0.1" :
                                "3 dead letters, more than max_dead_letters = 2"),
              std::string::npos) << e;
    EXPECT_NE(e.find("(the last: label 5 is outside 0..1"), std::string::npos) << e;
  }
}

// A column of the wrong width is named as the job names it: the feature column fed to the
// network (once "x" whatever the column, and found only at the first batch).
TEST(ModelTest, AWrongFeatureWidthNamesTheFeatureColumn) {
  ModelOptions o = mlp_options({8, 16, 3});
  o.inputs = {"feat"};
  std::vector<Batch> data;
  for (const Batch& b : batches(1, 2, 4, {5}, 3)) {
    data.push_back(Batch({b.column("x").renamed("feat"), b.column("y")}));
  }
  {  // the width is declared: refused before the run
    TempDir dir;
    const dataflow::Schema schema{{"feat", DType::kFloat32, {5}}, {"y", DType::kInt64, {}}};
    const std::string e = error_of(run_model(1, {data}, schema, o, dir));
    EXPECT_NE(e.find("operator \"model\": input train: column \"feat\" arrives as feat: "
                     "float32[5], but the mlp's first layer takes 8 values per record (layers[0])"),
              std::string::npos) << e;
  }
  {  // known at run time only: the first batch's error names it too
    TempDir dir;
    const dataflow::Schema schema{{"feat", DType::kFloat32, {}, true}, {"y", DType::kInt64, {}}};
    const std::string e = error_of(run_model(1, {data}, schema, o, dir));
    EXPECT_NE(e.find("does not accept inputs feat: Float[4,5]; expected feat: Float[batch,8]"),
              std::string::npos) << e;
  }
}

// Sizes that cannot be allocated are refused before anything is allocated.
TEST(NetworkTest, ANetworkTooLargeToAllocateIsRefusedNamingItsSize) {
  NetworkOptions o;
  o.kind = "mlp";
  o.layers = {8, 100000000, 2};
  EXPECT_EQ(parameter_count(o), 8 * 100000000LL + 100000000 + 2 * 100000000LL + 2);
  try {
    Network net(o, 1);
    FAIL() << "an mlp of 1.1e9 parameters was built";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("would have 1100000002 parameters, more than the "
                                         "268435456"),
              std::string::npos) << e.what();
  }
  o.layers = {INT64_MAX / 2, 4, 2};
  EXPECT_EQ(parameter_count(o), INT64_MAX);  // saturates, no overflow
  o.layers = {8, 64, 2};
  EXPECT_EQ(parameter_count(o), 8 * 64 + 64 + 64 * 2 + 2);
  EXPECT_EQ(parameter_count(o), Network(o, 1).parameter_count());
}

TEST(ModelTest, BadInputsGiveClearErrors) {
  {  // wrong input shape, known only when the batch arrives
    TempDir dir;
    const dataflow::Schema any{{"x", DType::kFloat32, {}, true}, {"y", DType::kInt64, {}}};
    RunResult r = run_model(1, {batches(1, 2, 4, {5}, 3)}, any, mlp_options({8, 16, 3}), dir);
    std::string e = error_of(r);
    EXPECT_NE(e.find("does not accept inputs x: Float[4,5]; expected x: Float[batch,8]"), std::string::npos) << e;
  }
  {  // NaN loss with nan_policy = error
    TempDir dir;
    ModelOptions o = mlp_options({8, 16, 3}, 1e30);
    o.nan_policy = NanPolicy::kError;
    RunResult r = run_model(1, {batches(1, 5, 4, {8}, 3)}, xy_schema({8}), o, dir);
    std::string e = error_of(r);
    EXPECT_NE(e.find("non-finite loss"), std::string::npos) << e;
    EXPECT_NE(e.find("on rank 0 (nan_policy = \"error\")"), std::string::npos) << e;
  }
  {  // NaN loss skipped and counted
    TempDir dir;
    ModelOptions o = mlp_options({8, 16, 3}, 1e30);
    RunResult r = run_model(1, {batches(1, 5, 4, {8}, 3)}, xy_schema({8}), o, dir);
    ASSERT_EQ(error_of(r), "no error");
    EXPECT_GT(r.summary[0]["nonfinite_losses"].get<int64_t>(), 0);
  }
  {  // missing TorchScript file
    NetworkOptions n;
    n.kind = "torchscript";
    n.path = "/nonexistent/model.pt";
    try {
      Network net(n, 1);
      FAIL();
    } catch (const IoError& e) {
      EXPECT_EQ(std::string(e.what()), "TorchScript file /nonexistent/model.pt does not exist");
    }
  }
}

}  // namespace
}  // namespace tensair::model
