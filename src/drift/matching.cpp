#include "tensair/drift/matching.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "tensair/common/error.hpp"

namespace tensair::drift {

size_t Matching::found() const {
  return static_cast<size_t>(std::count_if(matches.begin(), matches.end(),
                                           [](const ChangeMatch& m) { return m.detection; }));
}

double Matching::mean_delay() const {
  double sum = 0;
  size_t n = 0;
  for (const auto& m : matches) {
    if (!m.detection) continue;
    sum += m.delay;
    ++n;
  }
  return n ? sum / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

Matching match_detections(std::vector<double> changes, std::vector<double> detections,
                          const MatchRule& rule) {
  if (!std::isfinite(rule.tolerance) || rule.tolerance < 0)
    throw ConfigError("drift matching: the tolerance must be a finite number >= 0, not " +
                      std::to_string(rule.tolerance));
  if (std::isnan(rule.max_delay) || rule.max_delay < 0)
    throw ConfigError("drift matching: max_delay must be >= 0, not " +
                      std::to_string(rule.max_delay));
  auto is_nan = [](double v) { return std::isnan(v); };
  if (std::any_of(changes.begin(), changes.end(), is_nan) ||
      std::any_of(detections.begin(), detections.end(), is_nan))
    throw ConfigError("drift matching: a position is not a number");
  std::sort(changes.begin(), changes.end());
  changes.erase(std::unique(changes.begin(), changes.end()), changes.end());
  std::sort(detections.begin(), detections.end());

  Matching m;
  m.changes = std::move(changes);
  m.detections = std::move(detections);
  m.matches.resize(m.changes.size());
  // Windows are disjoint and ascending, so one pass over the detections assigns each to the
  // window it falls in, if any.
  size_t d = 0;
  for (size_t i = 0; i < m.changes.size(); ++i) {
    const double start = m.changes[i] - rule.tolerance;
    double end = m.changes[i] + rule.max_delay;
    if (i + 1 < m.changes.size()) end = std::min(end, m.changes[i + 1] - rule.tolerance);
    for (; d < m.detections.size() && m.detections[d] < start; ++d) m.false_alarms.push_back(d);
    for (; d < m.detections.size() && m.detections[d] < end; ++d) {
      if (m.matches[i].detection) {
        m.repeats.push_back(d);
      } else {
        m.matches[i].detection = d;
        m.matches[i].delay = m.detections[d] - m.changes[i];
      }
    }
  }
  for (; d < m.detections.size(); ++d) m.false_alarms.push_back(d);
  return m;
}

}  // namespace tensair::drift
