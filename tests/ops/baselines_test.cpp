// prequential_baselines: the no-change and majority scores, and their checkpoints.
#include "tensair/ops/baselines.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tensair/common/error.hpp"
#include "testing/lambda_op.hpp"
#include "testing/operator_driver.hpp"

namespace tensair::ops {
namespace {

using testing::Input;
using testing::instance_info;
using testing::OperatorDriver;
using testing::Resume;
using testing::resume_operator;

// Labels in runs (so that no-change scores well) drawn from 5 classes with a skew.
std::vector<Input> label_batches(int batches, int rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Input> out;
  int64_t label = 0;
  for (int b = 0; b < batches; ++b) {
    std::vector<int64_t> y;
    for (int r = 0; r < rows; ++r) {
      if (rng() % 4 == 0) label = static_cast<int64_t>(rng() % 7) % 5;
      y.push_back(label);
    }
    out.push_back({0, dataflow::share(testing::int64_batch({{"y", y}}))});
  }
  return out;
}

TEST(BaselinesTest, ScoresNoChangeAndMajority) {
  OperatorDriver d(prequential_baselines("y"), instance_info("base"));
  d.process(0, testing::int64_batch({{"y", {1, 1, 2, 2, 2, 1}}}));
  d.finish();
  ASSERT_EQ(d.ctx().emitted(0).size(), 1u);
  const auto& b = *d.ctx().emitted(0)[0];
  EXPECT_EQ(b.column("records").at<int64_t>(0), 6);
  // Predictions for records 2..6: no-change is right at 2, 4 and 5 (3 of 5); majority
  // predicts 1, 1, 1, 1 (a 2:2 tie goes to the smaller label), then 2: right at 2 only.
  EXPECT_DOUBLE_EQ(b.column("no_change_accuracy").at<double>(0), 3.0 / 5);
  EXPECT_DOUBLE_EQ(b.column("majority_accuracy").at<double>(0), 1.0 / 5);
}

TEST(BaselinesTest, ResumedCountsAndScoresEqualAnUninterruptedRun) {
  const std::vector<Input> inputs = label_batches(12, 50, 9);
  auto def = prequential_baselines("y");
  for (size_t at : {0, 1, 6, 11, 12}) {
    SCOPED_TRACE("snapshot after " + std::to_string(at) + " batches");
    Resume r = resume_operator(def, instance_info("base"), inputs, at);
    ASSERT_EQ(r.resumed.emitted(0).size(), 1u);
    EXPECT_EQ(r.resumed.emitted(0)[0]->column("records").at<int64_t>(0), 600);
    EXPECT_TRUE(testing::same_records(r.reference, r.resumed));
    EXPECT_TRUE(testing::same_records(r.uninterrupted, r.resumed));
  }
}

TEST(BaselinesTest, DamagedStateIsADataErrorNamingTheState) {
  const auto info = instance_info("base");
  auto def = prequential_baselines("y");
  Resume r = resume_operator(def, info, label_batches(3, 20, 2), 3);
  for (size_t n = 0; n < r.state.size(); n += 3) {
    try {
      OperatorDriver d(def, info, r.state.substr(0, n));
      ADD_FAILURE() << "restored from " << n << " of " << r.state.size() << " bytes";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(OperatorDriver::state_name(info)), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace tensair::ops
