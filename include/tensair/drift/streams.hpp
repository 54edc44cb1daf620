// Labelled streams for judging drift detectors: seeded synthetic generators (Gaussian losses,
// Bernoulli 0/1 errors; abrupt, gradual, variance-only and no drift) with their true drift
// positions, and the prequential 0/1 error streams of a simple online classifier over the real
// benchmark data sets in data/drift/ (drift positions known only for SEA).
//
// Every generator is deterministic for a given seed on every platform (own uniform and normal
// sampling on top of std::mt19937_64, whose output the standard fixes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tensair/drift/detector.hpp"

namespace tensair::drift {

struct LabelledStream {
  std::string name;
  std::string description;
  Input input = Input::kLoss;                  // what the values are
  Direction direction = Direction::kIncrease;  // the change the detectors should watch
  std::vector<double> values;
  // Index of the first value of each new concept (the start of its transition when gradual).
  std::vector<size_t> drifts;
  size_t transition = 0;    // length of each gradual transition; 0 = abrupt
  bool labelled = true;     // false: drift positions unknown, detections are only counted
  size_t max_delay = 1000;  // scoring: the first detection in [drift, drift + max_delay) is true
};

// Piecewise-stationary Gaussian stream: segment i (segment_length values) has mean means[i] and
// standard deviation sds[i] (sds may hold a single value for all segments). With a transition,
// mean and standard deviation move linearly from segment i-1's to segment i's over the first
// `transition` values of segment i. Drifts are the segment starts 1..n-1.
LabelledStream gaussian_stream(std::string name, const std::vector<double>& means,
                               const std::vector<double>& sds, size_t segment_length,
                               size_t transition, uint64_t seed);

// 0/1 error stream: 1 with probability rates[i] in segment i; linear transitions as above.
LabelledStream bernoulli_stream(std::string name, const std::vector<double>& rates,
                                size_t segment_length, size_t transition, uint64_t seed);

// The standard synthetic set (drift-eval and the tests use it):
//   gauss_abrupt        losses N(1 + 0.2k, 0.2^2): +1 sd per segment, abrupt
//   gauss_abrupt_small  losses N(1 + 0.1k, 0.2^2): +0.5 sd (= OPTWIN's rho) per segment
//   gauss_gradual       as gauss_abrupt, transitions of 2,000 values
//   gauss_variance      losses N(1, (0.2 * 2^k)^2): standard deviation doubles, mean fixed
//                       (watched in both directions: the mean does not move)
//   gauss_none          losses N(1, 0.2^2), stationary
//   error_abrupt        0/1 errors, rate 0.05 + 0.1k, abrupt
//   error_gradual       as error_abrupt, transitions of 2,000 values
//   error_none          0/1 errors, rate 0.2, stationary
//   error_low_none      0/1 errors, rate 0.01, stationary (sparse errors)
// Segments of 10,000 values (20,000 for gauss_variance), stationary streams of 100,000; quick:
// fewer, shorter segments (5,000) and stationary streams of 20,000.
std::vector<LabelledStream> synthetic_streams(bool quick = false, uint64_t seed = 1);

// The real data sets: "sea", "elec2", "weather", "outdoor", "moving_squares",
// "interchanging_rbf", "transient_chessboard" (see data/drift/README.md).
std::vector<std::string> real_dataset_names();

// The prequential 0/1 error stream (predict, then learn) of a nearest-class-mean classifier over
// one real data set in `dir` (default: data_dir()/drift), at most `limit` rows (0 = all).
// Features are standardised online; class means forget old values (rate 0.005), so the error
// rises after a drift and falls as the classifier adapts. SEA is labelled (abrupt drifts every
// 12,500 rows, max_delay 2,500) and watched in both directions (the classifier's error falls at
// two of its three drifts); the others are not labelled and watch increases.
// Throws IoError / DataError.
LabelledStream real_stream(const std::string& dataset, const std::filesystem::path& dir = {},
                           size_t limit = 0);

// Every real stream (quick: sea, elec2 and weather only).
std::vector<LabelledStream> real_streams(bool quick = false, const std::filesystem::path& dir = {});

// The online classifier behind real_stream(), for reuse and tests.
class NearestClassMean {
 public:
  explicit NearestClassMean(size_t features, double forgetting = 0.005);
  // Predicts the class of x (-1 before any class was seen), then learns (x, label).
  // Returns true when the prediction was wrong.
  bool predict_then_learn(const std::vector<double>& x, int label);
  size_t features() const { return d_; }

 private:
  void standardise(const std::vector<double>& x, std::vector<double>& z) const;

  size_t d_;
  double forgetting_;
  uint64_t seen_ = 0;
  std::vector<double> mean_, m2_;  // online feature mean and squared deviations (Welford)
  std::vector<int> labels_;
  std::vector<uint64_t> counts_;
  std::vector<std::vector<double>> centres_;
  std::vector<double> z_;
};

}  // namespace tensair::drift
