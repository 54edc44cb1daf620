// OPTWIN: drift detection with optimal sub-windows (Tosi & Theobald, the detector of the
// original TensAIR).
//
// The window W holds the last values (at most w_length). It is split into a historical part
// H = W[0, cut) and a new part N = W[cut, |W|). The cut depends only on |W| and is the largest
// H for which a mean shift of rho standard deviations of H is still detectable at the working
// confidence q = confidence^(1/4) even when N's variance is up to the F critical ratio larger
// (the "optimal cut"). At every value OPTWIN then tests
//   * the means: Welch's t = (mean(N) - mean(H)) / sqrt(var(N)/|N| + var(H)/|H|) against the
//     one-sided t critical value of level q (two-sided comparison of |t| for direction "both");
//   * the variances (detect = "mean_and_variance"): var(N) / var(H) against the F critical
//     value of level q with (|H| - 1, |N| - 1) degrees of freedom.
// A t-test in the watched direction is a drift. An F-test is a drift when the mean moved in the
// watched direction too (or direction is "both"); when it moved the other way the window is
// emptied without a report, as the authors' Python does (the model improved: old values no
// longer describe the stream). After a drift the window is emptied and restarts with the value
// that triggered it.
//
// The thresholds (cut, F and t critical values) of each window length are computed with
// Boost.Math when the window first reaches that length and cached process-wide per
// (confidence, rho, min_window, w_length); the original's CSV table can be read instead.
// Updates are O(1) amortised: running sums of both parts, exact recomputation every w_length
// evictions so rounding cannot accumulate.
//
// Differences from the original C++ port (reference section 4.4), all fixed here: the table is
// read without the off-by-one shift; the t statistic uses variances, not standard deviations;
// the element that crosses from N to H when the full window slides is the right one; sums are
// kept around a shift so var >= 0 always (clamped), and a NaN input is an error, not a silent
// "no drift"; the window is bounded by w_length (25,000 by default), not 1,000.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensair/drift/detector.hpp"

namespace tensair::drift {

// Quantiles (inverse CDFs) from Boost.Math, for tests and tools. p in (0, 1).
double normal_quantile(double p);
double t_quantile(double p, double df);
double f_quantile(double p, double df1, double df2);

struct OptwinParams {
  enum class Detect {
    kMean,             // t-test on the means only
    kMeanAndVariance,  // t-test and F-test on the variances (the authors' OPTWIN)
  };
  double confidence = 0.999;  // overall confidence; each test runs at confidence^(1/4)
  double rho = 0.5;           // robustness: detectable mean shift in standard deviations of H
  size_t w_length = 25000;    // maximum window length (at most 10^6)
  size_t min_window = 30;     // no test below this many values
  // Default: mean_and_variance for a loss, mean for 0/1 indicators (their variance p(1-p) is a
  // function of the mean, and the F-test's normality assumption fails badly on them).
  Detect detect = Detect::kMeanAndVariance;
  std::filesystem::path table;  // the original's CSV cut table; empty = compute thresholds
  CommonParams common;

  // From text parameters (see make_detector()); throws ConfigError.
  static OptwinParams parse(const ParamMap& params);
  static std::vector<std::string> keys();
  nlohmann::json to_json() const;
};

// The thresholds of one window length n.
struct OptwinCut {
  uint32_t cut = 0;      // |H|: the historical part is W[0, cut)
  double phi = 0;        // F critical value: var(N)/var(H) above this is a variance increase
  double t = 0;          // t critical value at the working confidence
  double df = 0;         // degrees of freedom t was computed with (NaN when read from a file)
  double t_warning = 0;  // t critical value of the warning zone (0.98); NaN = not computed
};

// The cut table: thresholds for window lengths 0..max_length (lengths below min_window have an
// all-zero entry). Computing entry n uses the authors' definition (reference section 4.2):
// with nu = k/n, F(nu) = F.ppf(q; k-1, n-k-1), df(nu) from the Welch-Satterthwaite formula with
// unit H variance and N variance 1/F^2, t(nu) = t.ppf(q; df), and
//   g(k) = rho - t(nu) * sqrt(1/k + F(nu)/(n-k)),
// the cut is the largest k with g(k) >= 0 (floor of the largest root, which is what the
// authors' fsolve from (n-30)/n finds), or floor(n/2)+1 when g has no root.
// The search does not try every split: the size of N at the cut changes rarely with n, so each
// length costs one evaluation plus a galloping search for the next length at which N shrinks.
//
// Thread-safety: at() may be called from any number of threads; entries are computed under a
// mutex on first use and never change afterwards.
class OptwinThresholds {
 public:
  OptwinThresholds(double confidence, double rho, size_t min_window, size_t max_length);
  ~OptwinThresholds();

  // The process-wide table for these parameters (created on first request, never freed).
  static std::shared_ptr<OptwinThresholds> shared(double confidence, double rho, size_t min_window,
                                                  size_t max_length);

  // Reads the original's table file `cut_<w_min>-<w_max>_<error>_<rho>r.csv[.gz]`: one line
  // "c, rho, w_max, w_min" then opt_cut, opt_phi, t_stat, t_warn for lengths 0..w_max+1.
  // Throws IoError (unreadable) or DataError (malformed, naming the field).
  static std::shared_ptr<OptwinThresholds> read_table(const std::filesystem::path& path);

  // Thresholds for window length n, min_window <= n <= max_length (computed on first use).
  const OptwinCut& at(size_t n) {
    if (n < ready_.load(std::memory_order_acquire)) return cuts_[n];
    return extend(n);
  }
  // Computes every length up to max_length now.
  void compute_all() { (void)at(max_length_); }
  // Lengths computed so far (entries 0..computed()-1 are final).
  size_t computed() const { return ready_.load(std::memory_order_acquire); }
  // Quantile evaluations spent so far (for benchmarks and tests of the search).
  uint64_t evaluations() const { return evaluations_; }

  // The t critical value of the warning zone for length n (computed here when the table has
  // none); for logs only.
  double t_warning(size_t n);

  double confidence() const { return confidence_; }
  double rho() const { return rho_; }
  size_t min_window() const { return min_window_; }
  size_t max_length() const { return max_length_; }
  bool from_file() const { return from_file_; }

  // g(k) of the definition above for window length n and cut k (2 <= k <= n-2), with the
  // critical values it used. Exposed so tests can check the search against brute force.
  struct Evaluation {
    double g, phi, t, df;
  };
  Evaluation evaluate(size_t n, size_t k) const;

 private:
  const OptwinCut& extend(size_t n);
  void compute_next();  // entry next_, under mu_
  size_t find_shrink(size_t from, size_t m);

  double confidence_, rho_, q_;
  size_t min_window_, max_length_;
  bool from_file_ = false;
  std::vector<OptwinCut> cuts_;  // max_length+1 entries, allocated up front
  std::atomic<size_t> ready_{0};
  std::mutex mu_;
  // Search state (under mu_).
  size_t next_ = 0;         // next length to compute
  bool have_root_ = false;  // g had a root at the last length
  size_t m_ = 0;            // |N| at the cut of the last length
  size_t shrink_at_ = 0;    // first length at which |N| = m_ - 1 is feasible
  size_t peak_ = 0;         // argmax of g at the last length without a root
  mutable std::atomic<uint64_t> evaluations_{0};
};

class Optwin final : public Detector {
 public:
  explicit Optwin(OptwinParams params = {});

  bool update(double value) override;
  void reset() override;
  std::string name() const override { return "optwin"; }
  nlohmann::json params() const override { return params_.to_json(); }
  // {"values", "detections", "window", "cut", "mean_hist", "mean_new", "sd_hist", "sd_new",
  //  "t_stat", "t_crit", "f_ratio", "f_crit", "warning", "last_drift": "mean"|"variance"|null,
  //  "flushes": windows emptied by a variance change in the unwatched direction}
  nlohmann::json state() const override;
  std::string save_state() const override;
  void load_state(std::string_view state) override;

  size_t window_size() const { return len_; }
  // The (shared, thread-safe) thresholds this detector uses.
  OptwinThresholds& thresholds() const { return *table_; }

 private:
  void clear_window();
  void push(double x);  // x already checked and oriented
  void recompute_sums();
  double at(size_t i) const {  // i-th oldest value of the window (shifted)
    size_t j = head_ + i;
    return buf_[j >= cap_ ? j - cap_ : j];
  }

  OptwinParams params_;
  std::shared_ptr<OptwinThresholds> table_;
  double sign_ = 1.0;  // -1 for direction "decrease": every test then watches an increase
  bool both_ = false;
  bool test_variance_ = true;

  std::vector<double> buf_;  // circular, values minus shift_
  size_t cap_ = 0, head_ = 0, len_ = 0;
  size_t cut_ = 0;  // |H|
  double shift_ = 0;
  double h_sum_ = 0, h_sq_ = 0, n_sum_ = 0, n_sq_ = 0;
  size_t evictions_ = 0;

  uint64_t values_ = 0, detections_ = 0, flushes_ = 0;
  int last_drift_ = 0;  // 0 none, 1 mean, 2 variance
};

}  // namespace tensair::drift
