// Page-Hinkley test (Page 1954), as River and MOA implement it for drift detection.
//
// Keeps the running mean of every value since the last reset and a cumulative sum of the
// deviations from it, with a forgetting factor:
//   mean_t = mean_{t-1} + (x_t - mean_{t-1}) / t
//   S_t    = max(0, alpha * S_{t-1} + (x_t - mean_t - delta))     (direction "increase")
// and reports a change when S_t >= threshold (lambda), once at least min_instances values were
// seen. Direction "decrease" uses -x; "both" keeps one sum per direction. After a report the
// detector resets completely. Assumes the scale of the input: delta and threshold are in the
// input's units (the defaults suit 0/1 errors and losses of order 1; a detection needs at
// least threshold / shift values).
#pragma once

#include <cstdint>

#include "tensair/drift/detector.hpp"

namespace tensair::drift {

struct PageHinkleyParams {
  uint32_t min_instances = 30;  // no report before this many values since the last reset
  double delta = 0.005;         // magnitude of change tolerated
  double threshold = 50;        // lambda
  double alpha = 1 - 0.0001;    // forgetting factor of the cumulative sum
  CommonParams common;

  static PageHinkleyParams parse(const ParamMap& params);  // throws ConfigError
  static std::vector<std::string> keys();
  nlohmann::json to_json() const;
};

class PageHinkley final : public Detector {
 public:
  explicit PageHinkley(PageHinkleyParams params = {});

  bool update(double value) override;
  void reset() override;
  std::string name() const override { return "page-hinkley"; }
  nlohmann::json params() const override { return params_.to_json(); }
  // {"values", "detections", "count", "mean", "sum_increase", "sum_decrease"}
  nlohmann::json state() const override;
  std::string save_state() const override;
  void load_state(std::string_view state) override;

  double sum_increase() const { return sum_up_; }
  double sum_decrease() const { return sum_down_; }

 private:
  void clear();

  PageHinkleyParams params_;
  bool up_ = true, down_ = false;
  uint64_t count_ = 0;  // values since the last reset
  double mean_ = 0, sum_up_ = 0, sum_down_ = 0;
  uint64_t values_ = 0, detections_ = 0;
};

}  // namespace tensair::drift
