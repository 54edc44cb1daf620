// Drift detectors: updates per second on one core (OPTWIN with w_length 25,000, ADWIN,
// Page-Hinkley) and OPTWIN's threshold set-up time for every window length up to 25,000.
//
//   bench_drift [--quick] [--json PATH]
//
// Each figure is the median of 5 timed repetitions (3 with --quick) after a warm-up. Results
// are checked: the detectors must find the shift of a check stream and stay under OPTWIN's
// false-alarm bound on the stationary stream, and the computed cuts must equal the original's
// table at sample lengths; otherwise the program exits 1.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "tensair/common/process.hpp"
#include "tensair/drift/adwin.hpp"
#include "tensair/drift/optwin.hpp"
#include "tensair/drift/page_hinkley.hpp"
#include "tensair/drift/streams.hpp"

namespace {

using namespace tensair::drift;
using tensair::bench::median;
using tensair::bench::seconds_since;
using Clock = std::chrono::steady_clock;

bool ok = true;
void check(bool cond, const std::string& what) {
  if (!cond) {
    std::fprintf(stderr, "bench_drift: error: check failed: %s\n", what.c_str());
    ok = false;
  }
}

// Runs the detector over the values `reps` times after one warm-up pass; returns the rates of
// the timed passes and the detections of the warm-up pass.
std::vector<double> rates(Detector& d, const std::vector<double>& values, int reps, size_t& found) {
  d.reset();
  found = 0;
  for (double v : values) found += d.update(v);
  std::vector<double> out;
  for (int r = 0; r < reps; ++r) {
    d.reset();
    size_t n = 0;
    const auto t0 = Clock::now();
    for (double v : values) n += d.update(v);
    const double s = seconds_since(t0);
    check(n == found, d.name() + ": different detections on a repeated pass");
    out.push_back(static_cast<double>(values.size()) / s / 1e6);
  }
  return out;
}

// The detector must report the 2-sd shift of `shift` (at index 30,000) within 300 values.
void check_finds_shift(Detector& d, const std::vector<double>& shift) {
  d.reset();
  size_t hit = 0;
  for (size_t i = 0; i < shift.size(); ++i) {
    if (d.update(shift[i]) && i >= 30000 && i < 30300) ++hit;
  }
  check(hit >= 1, d.name() + " missed the 2-sd shift");
  d.reset();
}

}  // namespace

int main(int argc, char** argv) {
  tensair::tune_allocator();
  const auto args = tensair::bench::parse_args(
      argc, argv, "bench_drift",
      "Drift detectors: updates/s on one core (OPTWIN w_length 25,000, ADWIN, Page-Hinkley) and "
      "OPTWIN's threshold set-up time for all window lengths up to 25,000.");
  const size_t n = args.quick ? 1000000 : 10000000;
  const int reps = args.repeats();
  tensair::bench::Report report("drift");
  report.settings["allocator"] = tensair::allocator_description();
  report.settings["build"] = tensair::bench::build_type();
  report.settings["threads"] = 1;
  report.settings["values_per_pass"] = n;
  report.settings["repetitions"] = reps;
  report.settings["stream"] = "stationary N(1, 0.2^2), seed 1";
  std::printf("bench_drift: %s; %zu values per pass, median of %d passes after a warm-up\n\n",
              tensair::bench::machine_description().c_str(), n, reps);

  // A long stationary stream: OPTWIN's window fills to w_length and then slides, the case that
  // costs most (eviction, a moving cut, periodic re-centring).
  const std::vector<double> values = gaussian_stream("flat", {1.0}, {0.2}, n, 0, 1).values;
  const std::vector<double> shift = gaussian_stream("shift", {1.0, 1.4}, {0.2}, 30000, 0, 2).values;
  const std::string python = "authors' Python OPTWIN (issue #5, not measured here)";

  // Threshold set-up on fresh tables (not the process-wide cache).
  for (double confidence : {0.99, 0.999}) {
    std::vector<double> times;
    uint64_t evals = 0;
    for (int r = 0; r < reps + 1; ++r) {
      const auto t0 = Clock::now();
      OptwinThresholds t(confidence, 0.5, 30, 25000);
      t.compute_all();
      if (r > 0) times.push_back(seconds_since(t0) * 1e3);
      evals = t.evaluations();
      if (confidence == 0.99) {  // the original's table at sample lengths
        check(t.at(30).cut == 16 && t.at(100).cut == 51 && t.at(1000).cut == 938 &&
                  t.at(25000).cut == 24939,
              "OPTWIN cuts differ from the original's table");
      }
    }
    char name[64];
    std::snprintf(name, sizeof name, "optwin_setup_25000_c%g", confidence);
    char conf[16];
    std::snprintf(conf, sizeof conf, "%g", confidence);
    report.add({name, median(times), "ms", false, python + ", precomputing 25,000 lengths", 78e3,
                std::string("every length 30..25,000, confidence ") + conf + ", rho 0.5; " +
                    std::to_string(evals) + " F+t quantile evaluations; " +
                    tensair::bench::spread(times)});
  }

  {
    Optwin optwin;  // defaults: confidence 0.999, rho 0.5, w_length 25,000
    size_t found = 0;
    const auto r = rates(optwin, values, reps, found);
    // The false-alarm bound of optwin_test: at most 2 (1 - 0.999^(1/4)) per value on average.
    const double bound = static_cast<double>(n) * 2 * (1 - std::pow(0.999, 0.25));
    check(static_cast<double>(found) <= bound, "OPTWIN false alarms above the confidence bound");
    check_finds_shift(optwin, shift);
    report.add(
        {"optwin_updates", median(r), "M updates/s", true, python + ", table precomputed", 0.4,
         "w_length 25,000 (full and sliding), via the Detector interface; " +
             std::to_string(found) + " false alarms in " + std::to_string(n) + " values (bound " +
             std::to_string(static_cast<long>(bound)) + "); " + tensair::bench::spread(r)});
  }
  {
    Adwin adwin;
    size_t found = 0;
    const auto r = rates(adwin, values, reps, found);
    check_finds_shift(adwin, shift);
    report.add({"adwin_updates", median(r), "M updates/s", true, std::nullopt, std::nullopt,
                "delta 0.002, clock 32; " + std::to_string(found) + " false alarms; " +
                    tensair::bench::spread(r)});
  }
  {
    PageHinkley ph;
    size_t found = 0;
    const auto r = rates(ph, values, reps, found);
    check_finds_shift(ph, shift);
    report.add({"page_hinkley_updates", median(r), "M updates/s", true, std::nullopt, std::nullopt,
                "River/MOA defaults; " + std::to_string(found) + " false alarms; " +
                    tensair::bench::spread(r)});
  }

  std::vector<std::vector<std::string>> rows;
  for (const auto& r : report.results()) {
    rows.push_back({r.name, tensair::bench::fmt(r.value), r.unit,
                    r.baseline_value ? tensair::bench::fmt(*r.baseline_value) : "-",
                    r.baseline_value ? tensair::bench::fmt(r.value / *r.baseline_value) : "-",
                    r.note});
  }
  std::cout << tensair::bench::markdown_table(
      {"measurement", "value", "unit", "baseline", "ratio", "note"}, rows);
  report.write(args.json_path);
  return ok ? 0 : 1;
}
