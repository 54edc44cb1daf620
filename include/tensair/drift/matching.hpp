// The one rule that matches drift detections to true concept changes. `tensair drift-eval`
// scores detectors with it on labelled streams; `tensair drift-eval --run OUT` and
// `tensair report OUT` apply it to a run's metrics.jsonl (run_matching.hpp) and write
// OUT/drift_matches.json, which scripts/report.py and scripts/drift_summary.py read: all of
// them agree because none of them matches on its own.
//
// Positions are stream positions (records or values; seconds when a run's lines carry no
// index). Change i's window is
//
//   [c_i - tolerance, min(c_i + max_delay, c_{i+1} - tolerance))
//
// The first detection in a change's window finds it (delay = detection - c_i, as low as
// -tolerance); the later ones in that window are repeats; a detection in no window is a false
// alarm. A change whose window holds no detection is missed. The tolerance absorbs a source's
// shuffle buffer: records of a new concept can leave a source that many positions before the
// change's record id, and a detector may fire on them (the demo's change at 60,000 is found at
// 59,776 with a 1,000-record buffer).
#pragma once

#include <cstddef>
#include <limits>
#include <optional>
#include <vector>

namespace tensair::drift {

struct MatchRule {
  double tolerance = 0;                                       // >= 0
  double max_delay = std::numeric_limits<double>::infinity();  // >= 0
};

struct ChangeMatch {
  std::optional<size_t> detection;  // index into the sorted detections; none: missed
  double delay = 0;                 // detection - change, when found
};

struct Matching {
  std::vector<double> changes;        // ascending, without duplicates
  std::vector<double> detections;     // ascending
  std::vector<ChangeMatch> matches;   // one per change
  std::vector<size_t> repeats;        // detections in a window that were not its first
  std::vector<size_t> false_alarms;   // detections in no window

  size_t found() const;
  size_t missed() const { return matches.size() - found(); }
  // Mean delay over the found changes; NaN when none was found.
  double mean_delay() const;
};

// Sorts both lists (and removes duplicate changes) and matches them by the rule above. Throws
// ConfigError for a negative or non-finite tolerance, a negative max_delay or a NaN position.
Matching match_detections(std::vector<double> changes, std::vector<double> detections,
                          const MatchRule& rule = {});

}  // namespace tensair::drift
