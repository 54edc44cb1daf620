// ADWIN: textbook behaviour on hand-made streams and the exactness of its bucket summary.
#include "tensair/drift/adwin.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tensair/common/error.hpp"

namespace tensair::drift {
namespace {

// River's documented example: 1,000 values uniform in {0, 1}, then 1,000 uniform in {4..7}.
// River (current version, which resets after a detection) reports index 1023 only: the clock
// tests every 32 values, the test at index 991 sees no new value, the one at index 1023 sees
// 24 values of mean 5.5 against 1,000 of mean 0.5, far beyond epsilon (about 1.2 there).
TEST(AdwinTest, RiversExampleDetectsAtTheFirstClockTickAfterTheChange) {
  std::mt19937_64 rng(12345);
  Adwin d;
  std::vector<size_t> found;
  for (size_t i = 0; i < 2000; ++i) {
    const double v = i < 1000 ? static_cast<double>(rng() % 2) : static_cast<double>(4 + rng() % 4);
    if (d.update(v)) {
      found.push_back(i);
      EXPECT_EQ(d.width(), 0u);  // reset after the report
    }
  }
  EXPECT_EQ(found, std::vector<size_t>{1023});
}

// Clock 1 (test at every value), 20 zeros then tens. With W0 = the 20 zeros and W1 = k tens:
//   variance v = 20k/(20+k)^2 * 100, d' = ln(2 ln(20+k) / 0.002), m = 1/16 + 1/(k-4),
//   epsilon = sqrt(2 m v d') + 2/3 d' m.
// k = 10: v = 22.2, d' = 8.13, m = 0.229, epsilon = 10.33 > 10: no change yet.
// k = 11: v = 22.9, d' = 8.14, m = 0.205, epsilon = 9.85 < 10: change, at index 20 + 11 - 1.
TEST(AdwinTest, HandComputedDetectionPoint) {
  AdwinParams p;
  p.clock = 1;
  Adwin d(p);
  std::vector<size_t> found;
  for (size_t i = 0; i < 100; ++i) {
    if (d.update(i < 20 ? 0.0 : 10.0)) found.push_back(i);
  }
  EXPECT_EQ(found, std::vector<size_t>{30});
}

TEST(AdwinTest, BucketSummaryIsExact) {
  // A stationary stream with no change: the window keeps everything; its width, mean and
  // variance equal the exact ones, in O(M log W) buckets of 2^i values.
  std::mt19937_64 rng(3);
  Adwin d;
  const size_t n = 10000;
  double sum = 0, sum2 = 0;
  std::vector<double> xs;
  for (size_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(rng() % 1000) / 1000.0;
    xs.push_back(v);
    sum += v;
    ASSERT_FALSE(d.update(v)) << "false alarm at " << i;
  }
  const double mean = sum / n;
  for (double v : xs) sum2 += (v - mean) * (v - mean);
  EXPECT_EQ(d.width(), n);
  EXPECT_NEAR(d.mean(), mean, 1e-12);
  EXPECT_NEAR(d.variance(), sum2 / n, 1e-9);
  EXPECT_LE(d.rows(), 14u);  // 2^13 < 10,000 < 2^14
  EXPECT_LE(d.buckets(), 5u * d.rows());
  EXPECT_GE(d.buckets(), d.rows());
}

TEST(AdwinTest, ConstantStreamNeverAlarms) {
  Adwin d;
  for (int i = 0; i < 100000; ++i) ASSERT_FALSE(d.update(0.25));
  EXPECT_EQ(d.width(), 100000u);
  EXPECT_DOUBLE_EQ(d.mean(), 0.25);
}

TEST(AdwinTest, ChangeTheOtherWayShrinksTheWindowWithoutReport) {
  // Error rate 0.8 then 0.2: the model improved. Watching "increase", ADWIN drops the old values
  // (its window is its estimate of the current level) but reports nothing.
  std::mt19937_64 rng(5);
  auto stream = [&](size_t i) { return (rng() % 1000) < (i < 3000 ? 800u : 200u) ? 1.0 : 0.0; };
  AdwinParams p;
  p.common.input = Input::kError;
  Adwin inc(p);
  p.common.direction = Direction::kDecrease;
  Adwin dec(p);
  size_t inc_found = 0, dec_found = 0;
  for (size_t i = 0; i < 6000; ++i) {
    const double v = stream(i);
    inc_found += inc.update(v);
    dec_found += dec.update(v);
  }
  EXPECT_EQ(inc_found, 0u);
  EXPECT_LT(inc.width(), 3500u);  // the old 0.8 values are gone
  EXPECT_NEAR(inc.mean(), 0.2, 0.05);
  EXPECT_GE(inc.state()["shrinks"].get<int>(), 1);
  EXPECT_EQ(dec_found, 1u);
}

TEST(AdwinTest, ErrorInputIsChecked) {
  AdwinParams p;
  p.common.input = Input::kError;
  Adwin d(p);
  EXPECT_THROW(d.update(2), DataError);
  EXPECT_THROW(d.update(std::nan("")), DataError);
}

}  // namespace
}  // namespace tensair::drift
