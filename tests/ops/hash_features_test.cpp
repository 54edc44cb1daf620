// hash_features: the hashing trick over a string column.
#include <gtest/gtest.h>

#include <cmath>

#include "tensair/common/error.hpp"
#include "tensair/ops/functional.hpp"
#include "testing/operator_driver.hpp"

namespace tensair::ops {
namespace {

using dataflow::Batch;
using dataflow::BatchBuilder;
using dataflow::DType;

Batch texts(const std::vector<std::string>& t) {
  BatchBuilder b({{"id", DType::kInt64, {}}, {"text", DType::kString, {}}});
  for (size_t i = 0; i < t.size(); ++i) {
    b.column(0).append<int64_t>(static_cast<int64_t>(i));
    b.column(1).append_string(t[i]);
  }
  return b.finish();
}

std::vector<float> row(const Batch& b, int64_t r, int64_t dim) {
  const float* v = b.column("x").values<float>().data() + r * dim;
  return {v, v + dim};
}

TEST(HashFeatures, UnitVectorsThatDependOnlyOnTheTokens) {
  HashFeaturesOptions o;
  o.dim = 64;
  testing::OperatorDriver d(hash_features(o), testing::instance_info("h"));
  d.process(0, texts({"Hello, hello!", "HELLO hello", "good day", "", "day good"}));
  ASSERT_EQ(d.ctx().emitted().size(), 1u);
  const Batch& b = *d.ctx().emitted()[0];
  ASSERT_EQ(b.rows(), 5);
  EXPECT_EQ(b.column("x").record_shape(), std::vector<int64_t>{64});
  EXPECT_EQ(b.column("id").values<int64_t>()[4], 4);  // other columns pass through
  EXPECT_EQ(b.column("text").str(2), "good day");
  // One token twice: a single index holding +-1 after scaling to unit length.
  const auto a = row(b, 0, 64);
  int nonzero = 0;
  for (float x : a) nonzero += x != 0;
  EXPECT_EQ(nonzero, 1);
  EXPECT_EQ(a, row(b, 1, 64));                // case does not matter
  EXPECT_EQ(row(b, 2, 64), row(b, 4, 64));   // unigrams: order does not matter
  double norm = 0;
  for (float x : row(b, 2, 64)) norm += x * x;
  EXPECT_NEAR(norm, 1.0, 1e-6);
  for (float x : row(b, 3, 64)) EXPECT_EQ(x, 0.0f);  // no tokens: the zero vector

  o.ngrams = 2;
  testing::OperatorDriver bigrams(hash_features(o), testing::instance_info("h"));
  bigrams.process(0, texts({"good day", "day good"}));
  const Batch& g = *bigrams.ctx().emitted()[0];
  EXPECT_NE(row(g, 0, 64), row(g, 1, 64));  // bigrams: order matters
}

TEST(HashFeatures, RefusesImpossibleOptions) {
  HashFeaturesOptions o;
  o.dim = 0;
  EXPECT_THROW(hash_features(o), ConfigError);
  o.dim = 8;
  o.ngrams = 3;
  EXPECT_THROW(hash_features(o), ConfigError);
}

}  // namespace
}  // namespace tensair::ops
