// Page-Hinkley: textbook behaviour on hand-made streams.
#include "tensair/drift/page_hinkley.hpp"

#include <gtest/gtest.h>

#include <random>

namespace tensair::drift {
namespace {

// 50 zeros then ones, alpha = 1, delta = 0, lambda = 10, no minimum. Before the change every
// deviation is 0. The k-th one has running mean k/(50+k), so its deviation is 50/(50+k) and
//   S_K = 50 (1/51 + 1/52 + ... + 1/(50+K)).
// K = 11: 50 * 0.19706 = 9.85 < 10; K = 12: 50 * 0.21319 = 10.66 >= 10. Detection at index
// 50 + 12 - 1 = 61.
TEST(PageHinkleyTest, HandComputedDetectionPoint) {
  PageHinkleyParams p;
  p.alpha = 1;
  p.delta = 0;
  p.threshold = 10;
  p.min_instances = 1;
  PageHinkley d(p);
  std::vector<size_t> found;
  for (size_t i = 0; i < 200; ++i) {
    if (d.update(i < 50 ? 0.0 : 1.0)) found.push_back(i);
  }
  ASSERT_FALSE(found.empty());
  EXPECT_EQ(found[0], 61u);
}

TEST(PageHinkleyTest, SumFollowsThePublishedRecursion) {
  // Defaults (River/MOA): delta 0.005, lambda 50, alpha 1 - 1e-4. Three values by hand:
  // x = 1, 3, 2 -> means 1, 2, 2 -> S = max(0, 0 - 0.005) = 0,
  // S = max(0, 0 + (3 - 2) - 0.005) = 0.995, S = max(0, alpha * 0.995 + 0 - 0.005) = 0.9899005.
  PageHinkley d;
  d.update(1);
  EXPECT_DOUBLE_EQ(d.sum_increase(), 0.0);
  d.update(3);
  EXPECT_DOUBLE_EQ(d.sum_increase(), 0.995);
  d.update(2);
  EXPECT_NEAR(d.sum_increase(), 0.9999 * 0.995 - 0.005, 1e-15);
}

TEST(PageHinkleyTest, RiversExampleDetectsSoonAfterTheChange) {
  // River's example: 1,000 values in {0, 1}, then values in {4..7}. Each new value adds about
  // 5 to S, so lambda = 50 is crossed about 10 values after the change (River: index 1009 on
  // its data).
  std::mt19937_64 rng(12345);
  PageHinkley d;
  std::vector<size_t> found;
  for (size_t i = 0; i < 2000; ++i) {
    const double v = i < 1000 ? static_cast<double>(rng() % 2) : static_cast<double>(4 + rng() % 4);
    if (d.update(v)) found.push_back(i);
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_GE(found[0], 1005u);
  EXPECT_LE(found[0], 1015u);
}

TEST(PageHinkleyTest, MinInstancesAndResetAfterDetection) {
  PageHinkleyParams p;
  p.threshold = 5;
  PageHinkley d(p);  // min_instances 30
  std::vector<size_t> found;
  for (size_t i = 0; i < 100; ++i) {
    if (d.update(i < 3 ? 0.0 : 100.0)) found.push_back(i);
  }
  // S passes 5 at once, but no report before 30 values; after the report the detector starts
  // afresh on a constant stream (no further change).
  EXPECT_EQ(found, std::vector<size_t>{29});
  EXPECT_EQ(d.state()["detections"], 1);
  EXPECT_EQ(d.state()["count"], 70);
}

TEST(PageHinkleyTest, Directions) {
  auto run = [](Direction dir) {
    PageHinkleyParams p;
    p.common.direction = dir;
    PageHinkley d(p);
    size_t n = 0;
    for (size_t i = 0; i < 2000; ++i) n += d.update(i < 1000 ? 5.0 : 1.0);
    return n;
  };
  EXPECT_EQ(run(Direction::kIncrease), 0u);
  EXPECT_EQ(run(Direction::kDecrease), 1u);
  EXPECT_EQ(run(Direction::kBoth), 1u);
}

}  // namespace
}  // namespace tensair::drift
