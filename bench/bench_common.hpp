// Shared helpers of the benchmark programs in bench/: command line, repetition statistics, the
// markdown table and the JSON file every benchmark writes (format: bench/README.md).
//
// A benchmark program:
//   int main(int argc, char** argv) {
//     tensair::tune_allocator();
//     auto args = tensair::bench::parse_args(argc, argv, "bench_x", "what it measures");
//     tensair::bench::Report report("x");
//     report.settings["allocator"] = tensair::allocator_description();
//     ... measure each figure `args.repeats()` times, check the answer (exit 1 if wrong) ...
//     report.add({"name", median(samples), "unit", true, "baseline", base, note});
//     std::cout << report.markdown();
//     report.write(args.json_path);
//   }
// Header-only, no MPI and no LibTorch, so every layer's benchmark can use it.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tensair::bench {

struct Args {
  bool quick = false;     // --quick: small sizes, a few seconds (CI smoke runs)
  std::string json_path;  // --json PATH: where to write the figures ("" = nowhere)

  // Timed repetitions after one warm-up: 5, or 3 with --quick.
  int repeats() const { return quick ? 3 : 5; }
};

// Parses --quick, --json PATH and --help; anything else prints one line and exits with 2.
inline Args parse_args(int argc, char** argv, const std::string& program,
                       const std::string& what) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--quick") {
      a.quick = true;
    } else if (s == "--json" && i + 1 < argc) {
      a.json_path = argv[++i];
    } else if (s.rfind("--json=", 0) == 0) {
      a.json_path = s.substr(7);
    } else if (s == "--help" || s == "-h") {
      std::cout << "usage: " << program << " [--quick] [--json PATH]\n" << what << "\n";
      std::exit(0);
    } else {
      std::cerr << program << ": error: unknown argument \"" << s
                << "\" (usage: " << program << " [--quick] [--json PATH])\n";
      std::exit(2);
    }
  }
  return a;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// "<cores> cores, <model name from /proc/cpuinfo>"
inline std::string machine_description() {
  std::string model = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        model = line.substr(colon + 1);
        model.erase(0, model.find_first_not_of(" \t"));
      }
      break;
    }
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return std::to_string(cores) + " cores, " + model;
}

// "0.52 0.61 0.70": the 1, 5 and 15 minute load averages, to tell a quiet machine from a busy
// one when reading figures (a 2-core machine with load 2 gives noisy, low numbers).
inline std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "unknown";
  return a + " " + b + " " + c;
}

inline const char* build_type() {
#ifdef NDEBUG
  return "optimised (NDEBUG)";
#else
  return "debug (assertions on)";
#endif
}

// "1.23", "123", "0.0123": three significant digits, no exponent for everyday magnitudes.
inline std::string fmt(double v) {
  if (std::isnan(v)) return "n/a";
  char buf[64];
  double a = std::fabs(v);
  if (a >= 1e9 || (a > 0 && a < 1e-3)) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else if (a >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (a >= 10) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  } else if (a >= 1) {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f", v);
  }
  return buf;
}

// "1KiB", "64KiB", "16MiB"
inline std::string size_name(size_t bytes) {
  if (bytes >= (size_t{1} << 20) && bytes % (size_t{1} << 20) == 0) {
    return std::to_string(bytes >> 20) + "MiB";
  }
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

// A markdown table with a header row.
inline std::string markdown_table(const std::vector<std::string>& header,
                                  const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    out << "|";
    for (const auto& c : cells) out << " " << c << " |";
    out << "\n";
  };
  line(header);
  out << "|";
  for (size_t i = 0; i < header.size(); ++i) out << (i == 0 ? "---|" : "---:|");
  out << "\n";
  for (const auto& r : rows) line(r);
  return out.str();
}

// Summary of repeated samples for notes: "median of 5 (min 1.2, max 1.4)".
inline std::string spread(const std::vector<double>& v) {
  if (v.empty()) return "no samples";
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return "median of " + std::to_string(v.size()) + " (min " + fmt(*lo) + ", max " + fmt(*hi) +
         ")";
}

// One figure. ratio = value / baseline_value when there is a baseline.
struct Result {
  std::string name;
  double value = 0;
  std::string unit;
  bool higher_is_better = true;
  std::optional<std::string> baseline;
  std::optional<double> baseline_value;
  std::string note;
};

class Report {
 public:
  explicit Report(std::string bench) : bench_(std::move(bench)) {}

  // Free-form settings: allocator, threads, ranks, sizes, ...
  nlohmann::json settings = nlohmann::json::object();

  void add(Result r) { results_.push_back(std::move(r)); }
  const std::vector<Result>& results() const { return results_; }

  nlohmann::json to_json() const {
    nlohmann::json j;
    j["bench"] = bench_;
    j["machine"] = machine_description();
    j["settings"] = settings;
    j["results"] = nlohmann::json::array();
    for (const Result& r : results_) {
      nlohmann::json o;
      o["name"] = r.name;
      o["value"] = finite_or_null(r.value);
      o["unit"] = r.unit;
      o["higher_is_better"] = r.higher_is_better;
      o["baseline"] = r.baseline ? nlohmann::json(*r.baseline) : nlohmann::json(nullptr);
      o["baseline_value"] =
          r.baseline_value ? finite_or_null(*r.baseline_value) : nlohmann::json(nullptr);
      o["ratio"] = (r.baseline_value && *r.baseline_value != 0)
                       ? finite_or_null(r.value / *r.baseline_value)
                       : nlohmann::json(nullptr);
      o["note"] = r.note;
      j["results"].push_back(std::move(o));
    }
    return j;
  }

  // Writes the JSON to `path` (nothing when empty). Exits 1 with a message when it cannot.
  void write(const std::string& path) const {
    if (path.empty()) return;
    std::ofstream out(path);
    out << to_json().dump(2) << "\n";
    if (!out) {
      std::cerr << "bench_" << bench_ << ": error: cannot write " << path << "\n";
      std::exit(1);
    }
  }

 private:
  static nlohmann::json finite_or_null(double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  }

  std::string bench_;
  std::vector<Result> results_;
};

}  // namespace tensair::bench
