#include "tensair/drift/evaluate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "drift/detector_state.hpp"
#include "tensair/drift/matching.hpp"
#include "tensair/common/error.hpp"

namespace tensair::drift {

PeriodicDetector::PeriodicDetector(uint64_t k, int64_t phase)
    : k_(k), phase_(phase < 0 ? k / 2 : static_cast<uint64_t>(phase)) {
  if (k == 0) throw ConfigError("periodic detector: k must be at least 1");
  phase_ %= k_;
}

bool PeriodicDetector::update(double) {
  const uint64_t i = values_++;
  if (i % k_ != phase_) return false;
  ++detections_;
  return true;
}

nlohmann::json Score::to_json() const {
  nlohmann::json j = {{"detector", detector},
                      {"stream", stream},
                      {"labelled", labelled},
                      {"values", values},
                      {"detections", detections},
                      {"updates_per_s", updates_per_s},
                      {"detection_indices", detection_indices}};
  if (labelled) {
    j["drifts"] = drifts;
    j["true_detections"] = true_detections;
    j["false_positives"] = false_positives;
    j["repeats"] = repeats;
    j["missed"] = missed;
    j["mean_delay"] = std::isnan(mean_delay) ? nlohmann::json(nullptr) : nlohmann::json(mean_delay);
    j["max_delay"] = max_delay;
  }
  return j;
}

Score score_detections(const std::vector<size_t>& detections, const std::vector<size_t>& drifts,
                       size_t n_values, size_t max_delay) {
  Score s;
  s.values = n_values;
  s.drifts = drifts.size();
  s.detections = detections.size();
  s.max_delay = max_delay;
  s.detection_indices = detections;
  const Matching m = match_detections(std::vector<double>(drifts.begin(), drifts.end()),
                                      std::vector<double>(detections.begin(), detections.end()),
                                      {0, static_cast<double>(max_delay)});
  s.true_detections = m.found();
  s.missed = m.missed();
  s.repeats = m.repeats.size();
  s.false_positives = s.detections - s.true_detections;
  s.mean_delay = m.mean_delay();
  return s;
}

Score evaluate(Detector& detector, const LabelledStream& stream, int timed_passes) {
  detector.reset();
  std::vector<size_t> found;
  for (size_t i = 0; i < stream.values.size(); ++i) {
    if (detector.update(stream.values[i])) found.push_back(i);
  }
  Score s = score_detections(found, stream.drifts, stream.values.size(), stream.max_delay);
  s.detector = detector.name();
  s.stream = stream.name;
  s.labelled = stream.labelled;
  if (!stream.labelled) {
    s.drifts = s.true_detections = s.false_positives = s.missed = s.repeats = 0;
    s.mean_delay = std::numeric_limits<double>::quiet_NaN();
  }
  std::vector<double> rates;
  size_t sink = 0;
  for (int pass = 0; pass < timed_passes; ++pass) {
    detector.reset();
    const auto t0 = std::chrono::steady_clock::now();
    for (double v : stream.values) sink += detector.update(v);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(stream.values.size()) / std::max(secs, 1e-9));
  }
  TENSAIR_ASSERT(timed_passes <= 0 || sink == found.size() * static_cast<size_t>(timed_passes),
                 "a detector gave different detections on the same stream");
  if (!rates.empty()) {
    std::sort(rates.begin(), rates.end());
    s.updates_per_s = rates[rates.size() / 2];
  }
  detector.reset();
  return s;
}

std::string PeriodicDetector::save_state() const {
  detail::DetectorStateWriter w(name(), 1, params().dump());
  w.put<uint64_t>(values_);
  w.put<uint64_t>(detections_);
  return w.take();
}

void PeriodicDetector::load_state(std::string_view state) {
  detail::DetectorStateReader r(state, name(), 1, params().dump());
  const auto values = r.get<uint64_t>(), detections = r.get<uint64_t>();
  r.expect_end();
  if (detections > values) r.fail("holds more detections than values");
  values_ = values, detections_ = detections;
}

}  // namespace tensair::drift
