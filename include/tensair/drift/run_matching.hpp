// A run's drift detections matched to its true concept changes, by the rule of matching.hpp.
//
// Reads OUT/metrics.jsonl: "concept_change" lines (the sources': index = the change's record
// id, tolerance = how many positions early its records can be emitted, the shuffle buffer) and
// "drift" lines (the detectors': index = the stream position of the loss that fired). Each
// detector (detector name, operator, instance) is matched on its own. Positions are `index`
// when every such line has one, else the time `t` (then without tolerance). A line a killed
// run cut off mid-write (the last one, or one followed by a resumed run's start line) is skipped
// and counted; any other line that is not a JSON object is an error naming file:line.
//
// `tensair drift-eval --run OUT` and `tensair report OUT` write the result to
// OUT/drift_matches.json (to_json), which the report and the terminal summary read.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensair/drift/matching.hpp"

namespace tensair::drift {

struct DetectorMatches {
  std::string detector;   // the detector's name (optwin, ...)
  std::string op;         // the operator that logged the detections
  int64_t instance = 0;
  int64_t rank = 0;
  std::vector<nlohmann::json> detections;  // its drift lines, in position order
  Matching matching;                       // positions of `changes` and `detections`
};

struct RunMatches {
  std::string position = "index";            // "index" or "t"
  MatchRule rule;
  std::vector<nlohmann::json> changes;       // one concept_change line per change, ascending
  std::vector<DetectorMatches> detectors;    // ordered by detector, operator, instance
  std::vector<int64_t> cut_lines;            // line numbers skipped as cut off

  nlohmann::json to_json() const;
};

// Matches the drift lines of `metrics_jsonl`. `tolerance` overrides the concept_change lines'
// own (their largest). Throws IoError (unreadable) or DataError (file:line: what is wrong).
RunMatches match_run(const std::filesystem::path& metrics_jsonl,
                     std::optional<double> tolerance = std::nullopt);

// Writes match_run(OUT/metrics.jsonl) to OUT/drift_matches.json (atomically) and returns it.
RunMatches write_run_matches(const std::filesystem::path& out_dir,
                             std::optional<double> tolerance = std::nullopt);

}  // namespace tensair::drift
