#include "tensair/drift/run_matching.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <tuple>

#include "tensair/common/error.hpp"

namespace tensair::drift {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

double number_or_nan(const json& line, const char* key) {
  auto it = line.find(key);
  if (it == line.end() || !it->is_number()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

// Fields read without throwing: a line of the wrong type counts as not having the field.
int64_t int_or(const json& line, const char* key, int64_t fallback) {
  auto it = line.find(key);
  return it != line.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

std::string string_or(const json& line, const char* key, const std::string& fallback) {
  auto it = line.find(key);
  return it != line.end() && it->is_string() ? it->get<std::string>() : fallback;
}

bool parses_as_start_line(const std::string& text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && string_or(j, "event", "") == "start";
}

// The rule of report.py: a line a run killed mid-write left is the start of an object, last in
// the file or followed by the start line of the run that resumed the job.
bool cut_off(const std::string& text, const std::string* next) {
  if (text.empty() || text.front() != '{' || text.back() == '}') return false;
  return next == nullptr || parses_as_start_line(*next);
}

std::string trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") + 1 - b);
}

std::string shown(const std::string& text) {
  return text.size() <= 60 ? text : text.substr(0, 57) + "...";
}

}  // namespace

RunMatches match_run(const fs::path& metrics_jsonl, std::optional<double> tolerance) {
  std::ifstream in(metrics_jsonl, std::ios::binary);
  if (!in) throw IoError("cannot read " + metrics_jsonl.string(), ExitCode::kConfig);
  std::vector<std::pair<int64_t, std::string>> texts;
  std::string raw;
  for (int64_t number = 1; std::getline(in, raw); ++number) {
    std::string t = trimmed(raw);
    if (!t.empty()) texts.emplace_back(number, std::move(t));
  }
  if (in.bad()) throw IoError("cannot read " + metrics_jsonl.string());

  RunMatches run;
  std::vector<json> changes, drifts;
  const std::string where = metrics_jsonl.string() + ":";
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& [number, text] = texts[i];
    json line = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (line.is_discarded()) {
      if (cut_off(text, i + 1 < texts.size() ? &texts[i + 1].second : nullptr)) {
        run.cut_lines.push_back(number);
        continue;
      }
      throw DataError(where + std::to_string(number) + ": not JSON: " + shown(text));
    }
    if (!line.is_object()) throw DataError(where + std::to_string(number) + ": not a JSON object");
    const std::string kind = string_or(line, "kind", "");
    if (kind != "drift" && kind != "concept_change") continue;
    for (const char* key : {"index", "t", "tolerance"}) {
      auto it = line.find(key);
      if (it != line.end() && !it->is_null() && (!it->is_number() || it->is_boolean()))
        throw DataError(where + std::to_string(number) + ": \"" + key +
                        "\" is not a number: " + shown(it->dump()));
    }
    (kind == "drift" ? drifts : changes).push_back(std::move(line));
  }

  auto finite = [](const json& l, const char* key) { return std::isfinite(number_or_nan(l, key)); };
  const bool by_index =
      std::all_of(drifts.begin(), drifts.end(), [&](const json& l) { return finite(l, "index"); }) &&
      std::all_of(changes.begin(), changes.end(), [&](const json& l) { return finite(l, "index"); });
  run.position = by_index ? "index" : "t";
  const char* pos_key = by_index ? "index" : "t";
  auto pos = [&](const json& l) { return number_or_nan(l, pos_key); };

  // A change is announced by every source instance that emits its records: keep the first.
  std::stable_sort(changes.begin(), changes.end(), [](const json& a, const json& b) {
    return number_or_nan(a, "t") < number_or_nan(b, "t");
  });
  double announced_tolerance = 0;
  for (auto& c : changes) {
    if (!std::isfinite(pos(c))) continue;
    announced_tolerance = std::max(announced_tolerance, std::max(0.0, number_or_nan(c, "tolerance")));
    auto same = [&](const json& k) { return pos(k) == pos(c); };
    if (std::none_of(run.changes.begin(), run.changes.end(), same)) run.changes.push_back(c);
  }
  std::stable_sort(run.changes.begin(), run.changes.end(),
                   [&](const json& a, const json& b) { return pos(a) < pos(b); });
  run.rule.tolerance = by_index ? tolerance.value_or(announced_tolerance) : 0;
  std::vector<double> change_positions;
  for (const auto& c : run.changes) change_positions.push_back(pos(c));

  std::map<std::tuple<std::string, std::string, int64_t>, std::vector<json>> by_detector;
  for (auto& d : drifts) {
    if (!std::isfinite(pos(d))) continue;
    const int64_t instance = int_or(d, "instance", int_or(d, "rank", 0));
    by_detector[{string_or(d, "detector", "?"), string_or(d, "operator", "?"), instance}]
        .push_back(std::move(d));
  }
  for (auto& [key, lines] : by_detector) {
    DetectorMatches dm;
    std::tie(dm.detector, dm.op, dm.instance) = key;
    dm.rank = int_or(lines.front(), "rank", dm.instance);
    std::stable_sort(lines.begin(), lines.end(),
                     [&](const json& a, const json& b) { return pos(a) < pos(b); });
    std::vector<double> at;
    for (const auto& l : lines) at.push_back(pos(l));
    dm.detections = std::move(lines);
    dm.matching = match_detections(change_positions, at, run.rule);
    run.detectors.push_back(std::move(dm));
  }
  return run;
}

json RunMatches::to_json() const {
  json dets = json::array();
  for (const auto& d : detectors) {
    json matches = json::array();
    for (size_t i = 0; i < d.matching.matches.size(); ++i) {
      const auto& m = d.matching.matches[i];
      json j = {{"change", i}, {"detection", nullptr}, {"delay", nullptr}};
      if (m.detection) j["detection"] = *m.detection, j["delay"] = m.delay;
      matches.push_back(std::move(j));
    }
    const double mean = d.matching.mean_delay();
    dets.push_back({{"detector", d.detector},
                    {"operator", d.op},
                    {"instance", d.instance},
                    {"rank", d.rank},
                    {"detections", d.detections},
                    {"matches", matches},
                    {"found", d.matching.found()},
                    {"missed", d.matching.missed()},
                    {"mean_delay", std::isnan(mean) ? json(nullptr) : json(mean)},
                    {"repeats", d.matching.repeats},
                    {"false_alarms", d.matching.false_alarms}});
  }
  return {{"rule",
           {{"position", position},
            {"tolerance", rule.tolerance},
            {"max_delay", std::isinf(rule.max_delay) ? json(nullptr) : json(rule.max_delay)},
            {"text",
             "change i's window is [c_i - tolerance, min(c_i + max_delay, c_(i+1) - tolerance)); "
             "its first detection finds it, later ones are repeats, detections in no window "
             "are false alarms (docs/drift.md)"}}},
          {"changes", changes},
          {"detectors", dets},
          {"cut_lines", cut_lines}};
}

RunMatches write_run_matches(const fs::path& out_dir, std::optional<double> tolerance) {
  RunMatches run = match_run(out_dir / "metrics.jsonl", tolerance);
  const fs::path target = out_dir / "drift_matches.json";
  const fs::path tmp = out_dir / "drift_matches.json.tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << run.to_json().dump(1) << "\n";
    f.close();
    if (!f) throw IoError("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) throw IoError("cannot write " + target.string() + ": " + ec.message());
  return run;
}

}  // namespace tensair::drift
