// The fused skip-gram negative-sampling kernel against the autograd path it replaces: the same
// gradient rows, loss and accuracy on small batches full of repeated words (a word that is its
// own context, a negative equal to the context, a target repeated across rows); the same
// weights after DASGD training on 2 in-process ranks; word ids outside the table become dead
// letters, not crashes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "model/model_test_util.hpp"
#include "model/network.hpp"
#include "model/sgns_kernel.hpp"
#include "model/training.hpp"
#include "tensair/common/error.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::model {
namespace {

using dataflow::Batch;
using dataflow::DType;

struct Pairs {
  at::Tensor target, context, negatives;  // int64 [n], [n], [n, k]
};

// Ids from a small range so that rows repeat within the batch and across its columns.
Pairs random_pairs(uint64_t seed, int64_t n, int64_t k, int64_t vocab) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t hi = std::max<int64_t>(2, vocab / 3);
  Pairs p;
  p.target = at::randint(0, hi, {n}, gen, at::kLong);
  p.context = at::randint(0, hi, {n}, gen, at::kLong);
  p.negatives = at::randint(0, hi, {n, k}, gen, at::kLong);
  p.context[0] = p.target[0];        // a word that is its own context
  if (k > 0) p.negatives[1][0] = p.context[1];  // a negative equal to the context
  p.target[2] = p.target[3];         // a target repeated
  return p;
}

// A skipgram network whose output vectors are not all zero (word2vec.c starts them at zero,
// which makes the input rows' gradient zero and a comparison of it trivial).
Network network(int64_t vocab, int64_t dim, uint64_t seed) {
  NetworkOptions o;
  o.kind = "skipgram";
  o.vocab = vocab;
  o.dim = dim;
  Network net(o, seed);
  at::Generator gen = at::detail::createCPUGenerator(seed + 1);
  at::NoGradGuard no_grad;
  net.parameters()[1].uniform_(-0.5, 0.5, gen);
  net.parameters()[0].mul_(40);  // scores of a few units: neither saturated nor all near 0
  return net;
}

TEST(SgnsKernel, GradientLossAndAccuracyEqualAutograd) {
  for (auto [n, k, vocab, dim] : std::vector<std::array<int64_t, 4>>{
           {64, 5, 50, 16}, {7, 1, 9, 3}, {33, 0, 20, 8}, {256, 10, 1000, 100}}) {
    SCOPED_TRACE("n=" + std::to_string(n) + " k=" + std::to_string(k) +
                 " vocab=" + std::to_string(vocab) + " dim=" + std::to_string(dim));
    Network net = network(vocab, dim, 5);
    Pairs p = random_pairs(static_cast<uint64_t>(n * 31 + k), n, k, vocab);

    for (const auto& w : net.parameters()) w.mutable_grad() = at::Tensor();
    at::Tensor out = net.forward({p.target, p.context, p.negatives});
    LossValue expected = compute_loss(Loss::kSgns, out, {});
    expected.loss.backward();
    const at::Tensor want_in = net.parameters()[0].grad().to_dense();
    const at::Tensor want_out = net.parameters()[1].grad().to_dense();

    SgnsKernel kernel(vocab, dim, {"target", "context", "negatives"});
    SgnsGradient g = kernel.gradient(net.parameters()[0].detach(), net.parameters()[1].detach(),
                                     p.target.data_ptr<int64_t>(), p.context.data_ptr<int64_t>(),
                                     p.negatives.data_ptr<int64_t>(), n, k);
    ASSERT_TRUE(g.in_grad.is_sparse() && g.in_grad.is_coalesced());
    ASSERT_TRUE(g.out_grad.is_sparse() && g.out_grad.is_coalesced());
    // Coalesced as marked: the ids ascending and unique (coalesce() would keep them as they are).
    EXPECT_TRUE(at::equal(g.in_grad._indices(), g.in_grad.clone()._coalesced_(false).coalesce()._indices()));
    EXPECT_TRUE(at::equal(g.out_grad._indices(), g.out_grad.clone()._coalesced_(false).coalesce()._indices()));
    const double scale = want_out.abs().max().item<double>() + want_in.abs().max().item<double>();
    ASSERT_GT(scale, 1e-4) << "a comparison of zeros proves nothing";
    EXPECT_LT((g.in_grad.to_dense() - want_in).abs().max().item<double>(), 1e-6 * scale + 1e-9);
    EXPECT_LT((g.out_grad.to_dense() - want_out).abs().max().item<double>(), 1e-6 * scale + 1e-9);
    EXPECT_NEAR(g.loss, expected.loss.item<double>(), 1e-5 * std::abs(g.loss));
    EXPECT_NEAR(g.accuracy, expected.accuracy, 1e-6);  // autograd's mean is a float
    // The kernel's scratch is clean for the next batch: the same call gives the same result.
    SgnsGradient again =
        kernel.gradient(net.parameters()[0].detach(), net.parameters()[1].detach(),
                        p.target.data_ptr<int64_t>(), p.context.data_ptr<int64_t>(),
                        p.negatives.data_ptr<int64_t>(), n, k);
    EXPECT_TRUE(at::equal(again.in_grad.to_dense(), g.in_grad.to_dense()));
    EXPECT_TRUE(at::equal(again.out_grad.to_dense(), g.out_grad.to_dense()));
  }
}

TEST(SgnsKernel, SaturatedScoresKeepAFiniteLoss) {
  // Scores of ±200: exp(200) overflows float, the loss must not.
  const int64_t vocab = 4, dim = 1;
  at::Tensor in = at::full({vocab, dim}, 20.0f), out = at::full({vocab, dim}, 10.0f);
  out[1] = -10.0f;
  std::vector<int64_t> target = {0, 0}, context = {1, 2}, negatives = {2, 1};
  SgnsKernel kernel(vocab, dim, {"t", "c", "n"});
  SgnsGradient g = kernel.gradient(in, out, target.data(), context.data(), negatives.data(), 2, 1);
  // Row 0: context score -200 (loss 200), negative +200 (loss 200); row 1: both ~0 loss.
  EXPECT_NEAR(g.loss, 200.0, 1e-3);
  EXPECT_DOUBLE_EQ(g.accuracy, 0.5);
}

TEST(SgnsKernel, AnIdOutsideTheTableNamesColumnAndRow) {
  SgnsKernel kernel(10, 4, {"target", "context", "negatives"});
  at::Tensor in = at::zeros({10, 4}), out = at::zeros({10, 4});
  std::vector<int64_t> target = {1, 2, 3}, context = {4, 5, 6}, negatives = {1, 2, 3, 4, 5, 10};
  try {
    kernel.gradient(in, out, target.data(), context.data(), negatives.data(), 3, 2);
    FAIL() << "no error";
  } catch (const ModelError& e) {
    EXPECT_STREQ(e.what(),
                 "column \"negatives\" row 2: word id 10 is outside 0..9 (vocab = 10)");
  }
  // The failed call left no marks behind.
  negatives.back() = 9;
  SgnsGradient g = kernel.gradient(in, out, target.data(), context.data(), negatives.data(), 3, 2);
  EXPECT_EQ(g.in_grad._nnz(), 3);
  EXPECT_EQ(g.out_grad._nnz(), 7);  // contexts 4, 5, 6 and negatives 1, 2, 3, 4, 5, 9
}

// Batches of (target, context, negatives) from a Zipf law, as text gives.
std::vector<Batch> word_batches(uint64_t seed, int count, int64_t rows, int64_t k,
                                int64_t vocab, int64_t bad_every = 0) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::vector<double> weights(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) weights[static_cast<size_t>(i)] = 1.0 / (i + 1.0);
  std::discrete_distribution<int64_t> zipf(weights.begin(), weights.end());
  std::vector<Batch> out;
  int64_t record = 0;
  for (int b = 0; b < count; ++b) {
    dataflow::BatchBuilder bb({{"target", DType::kInt64, {}},
                               {"context", DType::kInt64, {}},
                               {"negatives", DType::kInt64, {k}}});
    for (int64_t r = 0; r < rows; ++r, ++record) {
      const bool bad = bad_every > 0 && record % bad_every == bad_every - 1;
      bb.column(0).append<int64_t>(zipf(rng));
      bb.column(1).append<int64_t>(bad ? vocab + 3 : zipf(rng));
      std::vector<int64_t> neg(static_cast<size_t>(k));
      for (auto& v : neg) v = zipf(rng);
      bb.column(2).append_values(neg.data(), neg.size());
    }
    out.push_back(bb.finish());
  }
  return out;
}

ModelOptions skipgram_options(int64_t vocab, int64_t dim, Kernel kernel) {
  ModelOptions o;
  o.network.kind = "skipgram";
  o.network.vocab = vocab;
  o.network.dim = dim;
  o.inputs = {"target", "context", "negatives"};
  o.loss = Loss::kSgns;
  o.kernel = kernel;
  o.optimizer.lr = 5;
  o.threads = 1;
  return o;
}

TEST(SgnsKernel, TrainingEqualsTheAutogradPath) {
  // 12 steps of 64 records per rank. One replica, and 2 in-process ranks in sync mode (both
  // deterministic): the fused kernel ends at the weights the autograd path ends at. DASGD on 2
  // ranks (whose result depends on when the peers' updates arrive): the fused replicas, their
  // updates exchanged as sparse rows, end equal to each other.
  const int64_t vocab = 300, dim = 24;
  std::vector<std::vector<Batch>> data = {word_batches(1, 12, 64, 5, vocab),
                                          word_batches(2, 12, 64, 5, vocab)};
  for (auto [ranks, mode] : {std::pair{1, Mode::kDasgd}, std::pair{2, Mode::kSync},
                             std::pair{2, Mode::kDasgd}}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks, " + name_of(mode));
    std::vector<std::vector<at::Tensor>> weights;
    for (Kernel kernel : {Kernel::kAutograd, Kernel::kFused}) {
      testing::TempDir dir;
      ModelOptions o = skipgram_options(vocab, dim, kernel);
      o.mode = mode;
      RunResult r = run_model(ranks, data, data[0][0].schema(), o, dir);
      for (auto& oc : r.outcomes) ASSERT_FALSE(oc.error) << *oc.error;
      EXPECT_EQ(r.summary[0]["samples"], 12 * 64);
      if (ranks == 2) EXPECT_LT(max_diff(r.weights[0], r.weights[1]), 1e-5) << name_of(kernel);
      weights.push_back(r.weights[0]);
    }
    double moved = 0;
    for (const auto& w : weights[1]) moved += w.abs().sum().item<double>();
    ASSERT_GT(moved, 1.0);
    if (ranks == 1 || mode == Mode::kSync) EXPECT_LT(max_diff(weights[0], weights[1]), 1e-5);
  }
}

TEST(SgnsKernel, WordIdsOutsideTheTableAreDeadLetters) {
  // Every 50th record's context is past the table: counted as a dead letter, the rest trained,
  // with either kernel, to the same weights.
  const int64_t vocab = 100, dim = 8;
  std::vector<std::vector<Batch>> data = {word_batches(4, 6, 50, 3, vocab, 50)};
  std::vector<std::vector<at::Tensor>> weights;
  for (Kernel kernel : {Kernel::kAutograd, Kernel::kFused}) {
    testing::TempDir dir;
    RunResult r = run_model(1, data, data[0][0].schema(), skipgram_options(vocab, dim, kernel), dir);
    for (auto& oc : r.outcomes) ASSERT_FALSE(oc.error) << *oc.error;
    EXPECT_EQ(r.summary[0]["samples"], 6 * 49) << name_of(kernel);
    std::ifstream in(dir / "dead_letters.jsonl");
    int dead = 0;
    for (std::string line; std::getline(in, line); ++dead) {
      EXPECT_EQ(nlohmann::json::parse(line)["reason"],
                "word id 103 in \"context\" is outside 0..99 (vocab = 100)");
    }
    EXPECT_EQ(dead, 6) << name_of(kernel);
    weights.push_back(r.weights[0]);
  }
  EXPECT_LT(max_diff(weights[0], weights[1]), 1e-4);
}

}  // namespace
}  // namespace tensair::model
