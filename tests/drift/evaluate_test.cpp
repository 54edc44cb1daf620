// Streams, scoring, and the comparison of OPTWIN with ADWIN on the synthetic streams.
#include "tensair/drift/evaluate.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "tensair/common/error.hpp"
#include "tensair/drift/streams.hpp"

namespace tensair::drift {
namespace {

TEST(EvaluateTest, ScoringRules) {
  // Drifts at 100 and 200, max delay 50: windows [100, 150) and [200, 250).
  Score s = score_detections({10, 105, 110, 260, 300}, {100, 200}, 400, 50);
  EXPECT_EQ(s.detections, 5u);
  EXPECT_EQ(s.true_detections, 1u);  // 105
  EXPECT_DOUBLE_EQ(s.mean_delay, 5.0);
  EXPECT_EQ(s.missed, 1u);           // 200: 260 is too late
  EXPECT_EQ(s.false_positives, 4u);  // 10, 110 (a repeat), 260, 300
  EXPECT_EQ(s.repeats, 1u);
  // A window ends at the next drift even if max_delay is longer.
  s = score_detections({150}, {100, 120}, 400, 100);
  EXPECT_EQ(s.true_detections, 1u);
  EXPECT_DOUBLE_EQ(s.mean_delay, 30.0);
  EXPECT_EQ(s.missed, 1u);
  // No drifts: every detection is false.
  s = score_detections({1, 2}, {}, 10, 5);
  EXPECT_EQ(s.false_positives, 2u);
  EXPECT_TRUE(std::isnan(s.mean_delay));
}

TEST(EvaluateTest, PeriodicYardstickFindsEverythingAndMore) {
  LabelledStream s = gaussian_stream("g", {0, 1, 2, 3}, {1}, 1000, 0, 1);
  s.max_delay = 100;
  PeriodicDetector d(100);
  Score sc = evaluate(d, s, 1);
  EXPECT_EQ(sc.detector, "periodic");
  EXPECT_EQ(sc.true_detections, 3u);
  EXPECT_EQ(sc.missed, 0u);
  EXPECT_EQ(sc.detections, 40u);
  EXPECT_EQ(sc.false_positives, 37u);
  EXPECT_DOUBLE_EQ(sc.mean_delay, 50.0);  // fires at indices 50, 150, ...: 1050 - 1000
  PeriodicDetector first(100, 99);        // indices 99, 199, ...
  EXPECT_DOUBLE_EQ(evaluate(first, s, 0).mean_delay, 99.0);
  EXPECT_GT(sc.updates_per_s, 0);
}

TEST(StreamsTest, SyntheticStreamsAreSeededAndLabelled) {
  auto a = synthetic_streams(true, 1), b = synthetic_streams(true, 1),
       c = synthetic_streams(true, 2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].values, b[i].values) << a[i].name;
    EXPECT_NE(a[i].values, c[i].values) << a[i].name;
    EXPECT_FALSE(a[i].description.empty());
    for (size_t d : a[i].drifts) EXPECT_LT(d, a[i].values.size());
  }
  const LabelledStream& g = a[0];
  EXPECT_EQ(g.name, "gauss_abrupt");
  EXPECT_EQ(g.values.size(), 25000u);
  EXPECT_EQ(g.drifts, (std::vector<size_t>{5000, 10000, 15000, 20000}));
  // Segment means and standard deviations as specified: N(1 + 0.2k, 0.2^2).
  for (size_t k = 0; k < 5; ++k) {
    double sum = 0, sq = 0;
    for (size_t i = k * 5000; i < (k + 1) * 5000; ++i)
      sum += g.values[i], sq += g.values[i] * g.values[i];
    const double mean = sum / 5000, sd = std::sqrt(sq / 5000 - mean * mean);
    EXPECT_NEAR(mean, 1.0 + 0.2 * k, 0.01);
    EXPECT_NEAR(sd, 0.2, 0.01);
  }
  // Bernoulli: only 0 and 1, at the specified rates.
  for (const auto& s : a) {
    if (s.name != "error_abrupt") continue;
    EXPECT_EQ(s.input, Input::kError);
    const double first = std::accumulate(s.values.begin(), s.values.begin() + 5000, 0.0) / 5000;
    EXPECT_NEAR(first, 0.05, 0.01);
    for (double v : s.values) ASSERT_TRUE(v == 0.0 || v == 1.0);
  }
}

TEST(StreamsTest, GradualTransitionsMoveLinearly) {
  LabelledStream s = bernoulli_stream("b", {0.0, 1.0}, 10000, 2000, 9);
  // Before the transition: all zeros; after it: all ones; in the middle about half.
  EXPECT_EQ(std::accumulate(s.values.begin(), s.values.begin() + 10000, 0.0), 0.0);
  EXPECT_EQ(std::accumulate(s.values.begin() + 12000, s.values.end(), 0.0), 8000.0);
  const double mid = std::accumulate(s.values.begin() + 10900, s.values.begin() + 11100, 0.0) / 200;
  EXPECT_NEAR(mid, 0.5, 0.12);
}

TEST(StreamsTest, RealSeaStreamIsTheNcmErrorStream) {
  LabelledStream s = real_stream("sea");
  EXPECT_EQ(s.values.size(), 50000u);
  EXPECT_TRUE(s.labelled);
  EXPECT_EQ(s.drifts, (std::vector<size_t>{12500, 25000, 37500}));
  EXPECT_EQ(s.input, Input::kError);
  const double error = std::accumulate(s.values.begin(), s.values.end(), 0.0) / 50000;
  EXPECT_GT(error, 0.05);  // 10% label noise...
  EXPECT_LT(error, 0.4);   // ...but the classifier learns something
  LabelledStream e = real_stream("elec2", {}, 1000);
  EXPECT_EQ(e.values.size(), 1000u);
  EXPECT_FALSE(e.labelled);
  EXPECT_THROW(real_stream("nope"), ConfigError);
  EXPECT_THROW(real_stream("sea", "/nonexistent"), IoError);
}

TEST(StreamsTest, NearestClassMeanLearns) {
  NearestClassMean m(2);
  size_t late_errors = 0;
  for (int i = 0; i < 2000; ++i) {
    const int label = i % 2;
    const bool wrong = m.predict_then_learn({label * 10.0 + (i % 7) * 0.1, 1.0}, label);
    if (i >= 100) late_errors += wrong;
  }
  EXPECT_EQ(late_errors, 0u);
}

// OPTWIN against ADWIN on the synthetic Gaussian streams, five seeds. What is true here (see
// docs/drift.md for the table), asserted as such:
//  * with their published defaults OPTWIN reacts faster (smaller mean delay) on mean shifts,
//    but raises more false alarms than ADWIN on the stationary stream;
//  * at comparable delay (ADWIN tested at every value with delta 0.1, which brings its delay on
//    1-sd shifts down to OPTWIN's) ADWIN still raises no more false alarms than OPTWIN: OPTWIN
//    does NOT show fewer false positives than ADWIN on these streams;
//  * only OPTWIN sees a variance-only change: it finds every one, ADWIN misses some.
TEST(CompareTest, OptwinAgainstAdwinOnSyntheticStreams) {
  struct Sum {
    size_t tp = 0, fp = 0, missed = 0;
    double delay = 0;
  };
  std::map<std::string, std::map<std::string, Sum>> sums;  // detector -> stream -> sum
  const std::vector<std::pair<std::string, ParamMap>> detectors = {
      {"optwin", {}}, {"adwin", {}}, {"adwin_fast", {{"clock", "1"}, {"delta", "0.1"}}}};
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    for (const LabelledStream& s : synthetic_streams(false, seed)) {
      if (s.name.rfind("gauss_", 0) != 0) continue;
      for (const auto& [label, extra] : detectors) {
        ParamMap p = extra;
        p["direction"] = to_string(s.direction);
        auto d = make_detector(label == "adwin_fast" ? "adwin" : label, p);
        Score sc = evaluate(*d, s, 0);
        Sum& sum = sums[label][s.name];
        sum.tp += sc.true_detections;
        sum.fp += sc.false_positives;
        sum.missed += sc.missed;
        if (sc.true_detections)
          sum.delay += sc.mean_delay * static_cast<double>(sc.true_detections);
      }
    }
  }
  for (auto& [label, streams] : sums) {
    for (auto& [name, s] : streams) {
      std::printf("%-10s %-18s true %3zu false %3zu missed %3zu mean delay %6.0f\n", label.c_str(),
                  name.c_str(), s.tp, s.fp, s.missed,
                  s.tp ? s.delay / static_cast<double>(s.tp) : 0.0);
    }
  }
  auto delay = [&](const std::string& d, const std::string& s) {
    const Sum& x = sums[d][s];
    return x.delay / static_cast<double>(x.tp);
  };
  // Defaults: OPTWIN faster on mean shifts...
  EXPECT_LT(delay("optwin", "gauss_abrupt"), delay("adwin", "gauss_abrupt"));
  EXPECT_LT(delay("optwin", "gauss_abrupt_small"), delay("adwin", "gauss_abrupt_small"));
  EXPECT_EQ(sums["optwin"]["gauss_abrupt"].missed, 0u);
  EXPECT_EQ(sums["adwin"]["gauss_abrupt"].missed, 0u);
  // ...with more false alarms where nothing changes.
  EXPECT_GE(sums["optwin"]["gauss_none"].fp, sums["adwin"]["gauss_none"].fp);
  // Comparable delay: ADWIN's fast setting is within 25% of OPTWIN's delay on 1-sd shifts, and
  // still has no more false alarms on the stationary and abrupt streams.
  EXPECT_LT(std::abs(delay("adwin_fast", "gauss_abrupt") - delay("optwin", "gauss_abrupt")),
            0.25 * delay("optwin", "gauss_abrupt"));
  EXPECT_LE(sums["adwin_fast"]["gauss_none"].fp + sums["adwin_fast"]["gauss_abrupt"].fp,
            sums["optwin"]["gauss_none"].fp + sums["optwin"]["gauss_abrupt"].fp);
  // Variance-only drift: OPTWIN finds all 20, ADWIN (a mean test) misses some.
  EXPECT_EQ(sums["optwin"]["gauss_variance"].missed, 0u);
  EXPECT_GT(sums["adwin"]["gauss_variance"].missed, 0u);
}

}  // namespace
}  // namespace tensair::drift
