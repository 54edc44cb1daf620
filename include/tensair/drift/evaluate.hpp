// Scoring drift detectors on labelled streams, by the matching rule of matching.hpp with no
// tolerance: a drift at index d is found by the first detection in
// [d, min(d + max_delay, next drift)), and its delay is (index - d). Every other detection is a
// false positive, including a second detection of a drift already found (those are also counted
// as `repeats`, so a reader can tell them from alarms far from any drift). A drift without a
// detection in its window is missed. Unlabelled streams (real data without known drift points)
// are not scored: only their detections are counted.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "tensair/drift/detector.hpp"
#include "tensair/drift/streams.hpp"

namespace tensair::drift {

// The yardstick: fires every k values, at indices phase, phase + k, phase + 2k, ... (phase
// defaults to k/2, so against drifts at multiples of k its delay is k/2, what it averages over
// drifts at unknown positions). With k = max_delay it finds every drift, with about one false
// positive per k values: it shows what a detector's score is worth.
class PeriodicDetector final : public Detector {
 public:
  explicit PeriodicDetector(uint64_t k, int64_t phase = -1);
  bool update(double value) override;
  void reset() override { values_ = detections_ = 0; }
  std::string name() const override { return "periodic"; }
  nlohmann::json params() const override { return {{"k", k_}, {"phase", phase_}}; }
  nlohmann::json state() const override {
    return {{"values", values_}, {"detections", detections_}};
  }
  std::string save_state() const override;
  void load_state(std::string_view state) override;

 private:
  uint64_t k_, phase_, values_ = 0, detections_ = 0;
};

struct Score {
  std::string detector;  // name()
  std::string stream;    // LabelledStream::name
  bool labelled = true;
  size_t values = 0;
  size_t drifts = 0;
  size_t detections = 0;  // all detections
  size_t true_detections = 0;
  size_t false_positives = 0;
  size_t repeats = 0;  // false positives inside a drift's window, after its true detection
  size_t missed = 0;
  double mean_delay = std::numeric_limits<double>::quiet_NaN();  // over true detections
  size_t max_delay = 0;                                          // the scoring window used
  double updates_per_s = 0;                                      // median over the timed passes
  std::vector<size_t> detection_indices;

  nlohmann::json to_json() const;
};

// Scores detection indices against true drift starts (both ascending) for a stream of
// n_values values; see the file comment for the rules.
Score score_detections(const std::vector<size_t>& detections, const std::vector<size_t>& drifts,
                       size_t n_values, size_t max_delay);

// Runs the detector over the stream from a reset(): one pass collects the detections (and warms
// caches such as OPTWIN's thresholds), then `timed_passes` more passes are timed and the median
// rate is reported. The detector is left reset.
Score evaluate(Detector& detector, const LabelledStream& stream, int timed_passes = 3);

}  // namespace tensair::drift
