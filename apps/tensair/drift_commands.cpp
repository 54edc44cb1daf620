#include "drift_commands.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tensair/common/error.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/common/paths.hpp"
#include "tensair/drift/detector.hpp"
#include "tensair/drift/evaluate.hpp"
#include "tensair/drift/run_matching.hpp"
#include "tensair/drift/streams.hpp"
#include "tensair/drift/value_input.hpp"

namespace tensair::apps {

namespace {

using drift::ParamMap;

int report(const Error& e) {
  std::fprintf(stderr, "tensair: error: %s\n", e.what());
  return static_cast<int>(e.exit_code());
}

ParamMap parse_params(const std::vector<std::string>& args) {
  ParamMap out;
  for (const auto& a : args) {
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError("--param \"" + a + "\": expected KEY=VALUE");
    }
    std::string key = a.substr(0, eq);
    if (!out.emplace(key, a.substr(eq + 1)).second) {
      throw ConfigError("--param " + key + " given twice");
    }
  }
  return out;
}

// Lines from a file (FileReader: plain, gzip, xz) or stdin.
class LineSource {
 public:
  explicit LineSource(const std::string& file) {
    if (file == "-") {
      name_ = "<stdin>";
    } else {
      name_ = file;
      if (!std::filesystem::exists(file)) {
        throw IoError("input file " + file + " does not exist", ExitCode::kConfig);
      }
      reader_ = std::make_unique<FileReader>(file);
    }
  }
  ~LineSource() { std::free(buf_); }
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  bool next(std::string_view& line) {
    if (reader_) {
      if (!reader_->read_line(line_)) return false;
      line = line_;
      return true;
    }
    ssize_t n = ::getline(&buf_, &cap_, stdin);
    if (n < 0) return false;
    if (n > 0 && buf_[n - 1] == '\n') --n;
    line = std::string_view(buf_, static_cast<size_t>(n));
    return true;
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::unique_ptr<FileReader> reader_;
  std::string line_;
  char* buf_ = nullptr;
  size_t cap_ = 0;
};

struct DetectArgs {
  std::string detector;
  std::vector<std::string> params;
  bool json = false;
  std::string file;
};

int run_detect(const DetectArgs& a) {
  try {
    std::unique_ptr<drift::Detector> det = drift::make_detector(a.detector, parse_params(a.params));
    LineSource src(a.file);
    // Values go through in chunks; without --json a chunk is one value, so detections print
    // as they happen (a live pipe on stdin). With --json only the update calls are timed.
    const size_t chunk_size = a.json ? 65536 : 1;
    std::vector<double> values;
    std::vector<size_t> lines;
    values.reserve(chunk_size);
    lines.reserve(chunk_size);
    std::vector<size_t> detections;
    size_t index = 0, line_no = 0;
    double seconds = 0;
    auto flush = [&] {
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < values.size(); ++i) {
        bool drift = false;
        try {
          drift = det->update(values[i]);
        } catch (const DataError& e) {
          throw Error(src.name() + ":" + std::to_string(lines[i]) + ": " + e.what(),
                      ExitCode::kConfig);
        }
        if (drift) {
          detections.push_back(index + i);
          if (!a.json) {
            std::printf("%zu\n", index + i);
            std::fflush(stdout);
          }
        }
      }
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      index += values.size();
      values.clear();
      lines.clear();
    };
    std::string_view line;
    while (src.next(line)) {
      ++line_no;
      double v;
      if (!drift::parse_detector_value(line, src.name(), line_no, v)) continue;
      values.push_back(v);
      lines.push_back(line_no);
      if (values.size() == chunk_size) flush();
    }
    flush();
    if (a.json) {
      nlohmann::json j = {
          {"detector", det->name()},
          {"parameters", det->params()},
          {"file", a.file},
          {"values", index},
          {"detections", detections},
          {"update_seconds", seconds},
          {"updates_per_s", seconds > 0 ? static_cast<double>(index) / seconds : 0.0},
          {"state", det->state()}};
      std::printf("%s\n", j.dump(2).c_str());
    }
    return 0;
  } catch (const Error& e) {
    return report(e);
  }
}

struct EvalArgs {
  bool quick = false;
  std::string json_path;
  std::string data_dir;
  uint64_t seed = 1;
  std::string run_dir;  // --run OUT: match a run's detections instead
  std::optional<double> tolerance;  // with --run; none: the sources' own
};

std::string fmt_rate(double r) {
  char buf[32];
  if (r >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f M", r / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f k", r / 1e3);
  }
  return buf;
}

std::string fmt_position(double v, const std::string& position) {
  char buf[32];
  std::snprintf(buf, sizeof buf, position == "index" ? "%.0f" : "%.2f", v);
  return buf;
}

// `drift-eval --run OUT`: the run's detections matched to its true changes (run_matching.hpp),
// printed and written to OUT/drift_matches.json.
int run_drift_matches(const EvalArgs& a) {
  const std::filesystem::path out = a.run_dir;
  std::error_code ec;
  if (!std::filesystem::is_directory(out, ec))
    throw ConfigError("output folder " + a.run_dir + " does not exist");
  if (!std::filesystem::exists(out / "metrics.jsonl", ec))
    throw ConfigError((out / "metrics.jsonl").string() + " does not exist");
  const drift::RunMatches run = drift::write_run_matches(out, a.tolerance);
  for (int64_t line : run.cut_lines) {
    std::fprintf(stderr, "tensair: note: %s:%lld: a line cut off (a killed run?); skipped\n",
                 (out / "metrics.jsonl").string().c_str(), static_cast<long long>(line));
  }
  const std::string& p = run.position;
  std::printf("# drift matches of %s: %zu true change(s), %zu detector(s); positions: %s, "
              "tolerance %s\n",
              a.run_dir.c_str(), run.changes.size(), run.detectors.size(), p.c_str(),
              fmt_position(run.rule.tolerance, p).c_str());
  for (const auto& d : run.detectors) {
    const auto& m = d.matching;
    std::printf("\n%s (%s #%lld, rank %lld): %zu of %zu change(s) found", d.detector.c_str(),
                d.op.c_str(), static_cast<long long>(d.instance), static_cast<long long>(d.rank),
                m.found(), m.changes.size());
    if (m.found()) std::printf(", mean delay %s", fmt_position(m.mean_delay(), p).c_str());
    std::printf("; %zu repeat(s), %zu false alarm(s)", m.repeats.size(), m.false_alarms.size());
    for (size_t k = 0; k < m.false_alarms.size() && k < 20; ++k)
      std::printf("%s%s", k ? ", " : " at ", fmt_position(m.detections[m.false_alarms[k]], p).c_str());
    std::printf("\n| change at | detected at | delay |\n|---:|---:|---:|\n");
    for (size_t i = 0; i < m.matches.size(); ++i) {
      const auto& c = m.matches[i];
      std::printf("| %s | %s | %s |\n", fmt_position(m.changes[i], p).c_str(),
                  c.detection ? fmt_position(m.detections[*c.detection], p).c_str() : "missed",
                  c.detection ? fmt_position(c.delay, p).c_str() : "-");
    }
  }
  std::printf("\nwritten to %s\n", (out / "drift_matches.json").string().c_str());
  return 0;
}

int run_drift_eval(const EvalArgs& a) {
  try {
    if (a.tolerance && !(std::isfinite(*a.tolerance) && *a.tolerance >= 0))
      throw ConfigError(fmt::format("drift-eval: --tolerance must be a number >= 0, not {}",
                                    *a.tolerance));
    if (!a.run_dir.empty()) return run_drift_matches(a);
    if (a.tolerance) throw ConfigError("drift-eval: --tolerance goes with --run OUT");
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<drift::LabelledStream> streams = drift::synthetic_streams(a.quick, a.seed);
    const std::filesystem::path dir =
        a.data_dir.empty() ? data_dir() / "drift" : std::filesystem::path(a.data_dir);
    for (auto& s : drift::real_streams(a.quick, dir)) streams.push_back(std::move(s));

    std::vector<std::string> detectors = drift::detector_names();
    detectors.push_back("periodic");
    nlohmann::json results = nlohmann::json::array();
    std::printf("# drift-eval%s (seed %llu): %zu streams\n\n", a.quick ? " --quick" : "",
                static_cast<unsigned long long>(a.seed), streams.size());
    std::printf(
        "A drift is found by the first detection within `max delay` values after it (true); every "
        "other detection is a false positive (\"repeats\": those inside a drift's window after its "
        "true detection). Unlabelled real streams: detections counted only. Input and direction of "
        "each detector follow the stream (loss/error; increase, or both for gauss_variance and "
        "sea).\n\n");
    struct Total {
      size_t drifts = 0, tp = 0, fp = 0, missed = 0;
      double delay_sum = 0;
    };
    std::vector<std::pair<std::string, Total>> totals;
    for (const auto& name : detectors) {
      if (name == "periodic") {
        std::printf("## periodic (dummy: fires every k = max delay values, first at k/2)\n\n");
      } else {
        std::printf("## %s %s\n\n", name.c_str(),
                    drift::make_detector(name)->params().dump().c_str());
      }
      std::printf(
          "| stream | values | drifts | max delay | detections | true | false pos. (repeats) "
          "| missed | mean delay | updates/s |\n");
      std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
      Total total;
      for (const auto& s : streams) {
        std::unique_ptr<drift::Detector> det;
        ParamMap params;
        if (name == "periodic") {
          det = std::make_unique<drift::PeriodicDetector>(s.max_delay);
        } else {
          params = {{"input", drift::to_string(s.input)},
                    {"direction", drift::to_string(s.direction)}};
          det = drift::make_detector(name, params);
        }
        drift::Score sc = drift::evaluate(*det, s, 3);
        nlohmann::json j = sc.to_json();
        j["parameters"] = det->params();
        j.erase("detection_indices");
        j["detection_indices"] = sc.detection_indices;
        results.push_back(std::move(j));
        if (s.labelled) {
          char delay[32] = "-";
          if (!std::isnan(sc.mean_delay)) std::snprintf(delay, sizeof delay, "%.0f", sc.mean_delay);
          std::printf("| %s | %zu | %zu | %zu | %zu | %zu | %zu (%zu) | %zu | %s | %s |\n",
                      s.name.c_str(), sc.values, sc.drifts, s.max_delay, sc.detections,
                      sc.true_detections, sc.false_positives, sc.repeats, sc.missed, delay,
                      fmt_rate(sc.updates_per_s).c_str());
          total.drifts += sc.drifts;
          total.tp += sc.true_detections;
          total.fp += sc.false_positives;
          total.missed += sc.missed;
          if (sc.true_detections)
            total.delay_sum += sc.mean_delay * static_cast<double>(sc.true_detections);
        } else {
          std::printf("| %s (unlabelled) | %zu | ? | - | %zu | - | - | - | - | %s |\n",
                      s.name.c_str(), sc.values, sc.detections, fmt_rate(sc.updates_per_s).c_str());
        }
      }
      std::printf("\n");
      totals.emplace_back(name, total);
    }
    std::printf("## Totals over the labelled streams\n\n");
    std::printf("| detector | drifts | true | false pos. | missed | mean delay |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    for (const auto& [name, t] : totals) {
      std::printf("| %s | %zu | %zu | %zu | %zu | %.0f |\n", name.c_str(), t.drifts, t.tp, t.fp,
                  t.missed, t.tp ? t.delay_sum / static_cast<double>(t.tp) : 0.0);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("\n(%.1f s)\n", secs);
    if (!a.json_path.empty()) {
      nlohmann::json streams_json = nlohmann::json::array();
      for (const auto& s : streams) {
        streams_json.push_back({{"name", s.name},
                                {"description", s.description},
                                {"values", s.values.size()},
                                {"labelled", s.labelled},
                                {"drifts", s.drifts},
                                {"transition", s.transition},
                                {"max_delay", s.max_delay},
                                {"input", drift::to_string(s.input)},
                                {"direction", drift::to_string(s.direction)}});
      }
      nlohmann::json out = {{"command", "drift-eval"},
                            {"quick", a.quick},
                            {"seed", a.seed},
                            {"streams", streams_json},
                            {"results", results}};
      std::ofstream f(a.json_path);
      f << out.dump(1) << "\n";
      if (!f) throw IoError("cannot write " + a.json_path);
    }
    return 0;
  } catch (const Error& e) {
    return report(e);
  }
}

}  // namespace

void add_drift_commands(CLI::App& app, int& exit_code) {
  auto detect_args = std::make_shared<DetectArgs>();
  CLI::App* detect = app.add_subcommand(
      "detect", "find drifts in a stream of numbers (one per line; - for stdin)");
  detect->add_option("--detector", detect_args->detector, "optwin, adwin or page-hinkley")
      ->required();
  detect
      ->add_option("--param", detect_args->params,
                   "a detector parameter, KEY=VALUE (repeatable; docs/drift.md lists them)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  detect->add_flag("--json", detect_args->json,
                   "print a JSON summary (detections, parameters, updates/s) instead of indices");
  detect->add_option("file", detect_args->file, "the input file (plain, gzip or xz), - for stdin")
      ->required();
  detect->callback([detect_args, &exit_code] { exit_code = run_detect(*detect_args); });

  auto eval_args = std::make_shared<EvalArgs>();
  CLI::App* eval = app.add_subcommand(
      "drift-eval", "score every detector on synthetic and real labelled streams");
  eval->add_flag("--quick", eval_args->quick, "shorter streams, fewer data sets (a few seconds)");
  eval->add_option("--json", eval_args->json_path, "also write every result as JSON to PATH")
      ->type_name("PATH");
  eval->add_option("--data", eval_args->data_dir,
                   "the drift data sets (default: $TENSAIR_DATA/drift)")
      ->type_name("DIR");
  eval->add_option("--seed", eval_args->seed, "seed of the synthetic streams (default 1)");
  eval->add_option("--run", eval_args->run_dir,
                   "instead: match the detections of the run in OUT to its true concept changes "
                   "and write OUT/drift_matches.json (docs/drift.md)")
      ->type_name("OUT");
  eval->add_option("--tolerance", eval_args->tolerance,
                   "with --run: positions a detection may precede a change by (default: the "
                   "sources' shuffle buffers, from their concept_change lines)")
      ->type_name("N");
  eval->callback([eval_args, &exit_code] { exit_code = run_drift_eval(*eval_args); });
}

}  // namespace tensair::apps
