// ADWIN: adaptive windowing (Bifet & Gavaldà, SIAM SDM 2007), the ADWIN2 variant with an
// exponential histogram, as MOA and River implement it.
//
// The window is summarised by buckets: row i holds up to max_buckets buckets of 2^i values each
// (total and variance), so a window of W values takes O(max_buckets log W) memory. Every
// `clock` values (once more than grace_period values are in the window) ADWIN tries every
// split W = W0 W1 at bucket boundaries, oldest first, and calls it a change when
//   |mean(W0) - mean(W1)| > sqrt(2 m v d') + 2/3 d' m,
//   m = 1/(|W0| - L + 1) + 1/(|W1| - L + 1),  v = variance of W,  d' = ln(2 ln|W| / delta),
// with L = min_window_length and both parts at least L values long. On a change the oldest
// bucket is dropped and the splits are tried again, until none is significant.
//
// Direction: a change whose newer part W1 moved in the watched direction is reported, and the
// detector then resets completely (River's behaviour since 0.19: one change, one report). A
// change in the other direction only shrinks the window, as ADWIN always does, without a
// report. Assumes values in a bounded range (the bound is derived for [0, 1]); it works on
// losses through the variance term, but the false-alarm guarantee is the [0, 1] one.
#pragma once

#include <cstdint>
#include <vector>

#include "tensair/drift/detector.hpp"

namespace tensair::drift {

struct AdwinParams {
  double delta = 0.002;            // confidence of each test (smaller: fewer false alarms)
  uint32_t clock = 32;             // test every `clock` values
  uint32_t max_buckets = 5;        // buckets per row before two merge (MOA's M)
  uint32_t min_window_length = 5;  // smallest W0 and W1 tested
  uint32_t grace_period = 10;      // no test before the window holds more than this
  CommonParams common;

  static AdwinParams parse(const ParamMap& params);  // throws ConfigError
  static std::vector<std::string> keys();
  nlohmann::json to_json() const;
};

class Adwin final : public Detector {
 public:
  explicit Adwin(AdwinParams params = {});

  bool update(double value) override;
  void reset() override;
  std::string name() const override { return "adwin"; }
  nlohmann::json params() const override { return params_.to_json(); }
  // {"values", "detections", "width", "mean", "variance", "buckets", "rows", "shrinks":
  //  changes in the unwatched direction that shrank the window}
  nlohmann::json state() const override;
  std::string save_state() const override;
  void load_state(std::string_view state) override;

  // Values summarised by the window, their mean, and their variance (population).
  uint64_t width() const { return width_; }
  double mean() const { return width_ ? sign_ * total_ / static_cast<double>(width_) : 0.0; }
  double variance() const { return width_ ? variance_ / static_cast<double>(width_) : 0.0; }
  size_t buckets() const;
  size_t rows() const { return rows_.size(); }

 private:
  struct Row {  // buckets of one size, oldest first
    uint32_t count = 0;
    std::vector<double> total, variance;  // max_buckets + 1 slots
  };
  void insert(double x);
  void compress();
  uint64_t delete_oldest();
  // Tries the splits; true when a change in the watched direction was found (the window may
  // have shrunk either way).
  bool detect_change();
  // The cut test for |W0| = n0, |W1| = n1 and mean difference diff; dd = ln(2 ln|W| / delta)
  // and v = var(W) are the same for every split of one pass.
  bool significant(double n0, double n1, double diff, double dd, double v) const;

  AdwinParams params_;
  double sign_ = 1.0;
  bool both_ = false;
  std::vector<Row> rows_;  // rows_[i]: buckets of 2^i values; row 0 is the newest
  uint64_t width_ = 0;
  double total_ = 0, variance_ = 0;  // sum and sum of squared deviations of the window
  uint64_t tick_ = 0;
  uint64_t values_ = 0, detections_ = 0, shrinks_ = 0;
};

}  // namespace tensair::drift
