// OPTWIN: quantiles, the cut table (against the original's file and against brute force), and
// the detector's behaviour on synthetic streams.
#include "tensair/drift/optwin.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tensair/common/error.hpp"
#include "tensair/common/paths.hpp"
#include "tensair/drift/streams.hpp"

namespace tensair::drift {
namespace {

namespace fs = std::filesystem;

fs::path original_table() { return data_dir() / "tensair/optwin/cut_30-25000_0.01_0.5r.csv.gz"; }

std::vector<size_t> detections(Detector& d, const std::vector<double>& values) {
  std::vector<size_t> out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (d.update(values[i])) out.push_back(i);
  }
  return out;
}

// ---- Quantiles --------------------------------------------------------------------------------

TEST(OptwinQuantilesTest, MatchTextbookTables) {
  // Values from standard statistical tables (and their known digits).
  EXPECT_NEAR(normal_quantile(0.975), 1.959964, 1e-6);
  EXPECT_NEAR(normal_quantile(0.995), 2.575829, 1e-6);
  EXPECT_NEAR(t_quantile(0.975, 10), 2.228139, 1e-6);
  EXPECT_NEAR(t_quantile(0.995, 30), 2.749996, 1e-6);
  EXPECT_NEAR(t_quantile(0.95, 1), 6.313752, 1e-6);
  EXPECT_NEAR(t_quantile(0.975, 1e7), 1.959964, 1e-5);  // t tends to the normal
  EXPECT_NEAR(f_quantile(0.95, 5, 10), 3.325835, 1e-6);
  EXPECT_NEAR(f_quantile(0.99, 10, 20), 3.368186, 1e-6);
  EXPECT_NEAR(f_quantile(0.95, 1, 1), 161.4476, 1e-4);
  // t(df)^2 at 1 - a/2 is F(1, df) at 1 - a.
  const double t = t_quantile(0.975, 12);
  EXPECT_NEAR(t * t, f_quantile(0.95, 1, 12), 1e-9);
  // Non-integer degrees of freedom (Welch) work, between their neighbours.
  EXPECT_GT(t_quantile(0.99, 10.5), t_quantile(0.99, 11));
  EXPECT_LT(t_quantile(0.99, 10.5), t_quantile(0.99, 10));
}

TEST(OptwinQuantilesTest, OutOfDomainIsAnError) {
  EXPECT_THROW(t_quantile(1.5, 10), Error);
  EXPECT_THROW(f_quantile(0.5, -1, 3), Error);
}

// ---- Thresholds -------------------------------------------------------------------------------

// The original's table was made with confidence 0.99 ("0.01" in its name is 1 - confidence),
// rho 0.5, lengths 30..25,000 (its arrays run to w_max + 1). Our cuts, computed with Boost.Math,
// must equal it within one position for every length; in fact they are identical.
TEST(OptwinThresholdsTest, CutsEqualTheOriginalTable) {
  auto file = OptwinThresholds::read_table(original_table());
  ASSERT_TRUE(file->from_file());
  EXPECT_DOUBLE_EQ(file->confidence(), 0.99);
  EXPECT_DOUBLE_EQ(file->rho(), 0.5);
  EXPECT_EQ(file->min_window(), 30u);
  ASSERT_EQ(file->max_length(), 25001u);

  OptwinThresholds ours(0.99, 0.5, 30, 25001);
  ours.compute_all();
  size_t exact = 0, total = 0;
  double worst_phi = 0, worst_t = 0;
  for (size_t n = 30; n <= 25001; ++n) {
    const OptwinCut& a = ours.at(n);
    const OptwinCut& b = file->at(n);
    ++total;
    exact += a.cut == b.cut;
    ASSERT_LE(std::abs(static_cast<long>(a.cut) - static_cast<long>(b.cut)), 1) << "length " << n;
    worst_phi = std::max(worst_phi, std::abs(a.phi - b.phi) / b.phi);
    worst_t = std::max(worst_t, std::abs(a.t - b.t) / b.t);
  }
  EXPECT_EQ(exact, total) << "cuts equal for " << exact << " of " << total << " lengths";
  EXPECT_LT(worst_phi, 1e-6);
  EXPECT_LT(worst_t, 1e-6);
  // Below min_window there is nothing.
  EXPECT_EQ(ours.at(29).cut, 0u);
  EXPECT_EQ(file->at(29).cut, 0u);

  // The sample values of the reference (section 4.2), including the n/2+1 fallback region.
  EXPECT_EQ(ours.at(30).cut, 16u);
  EXPECT_NEAR(ours.at(30).phi, 5.17, 0.005);
  EXPECT_NEAR(ours.at(30).t, 3.24, 0.005);
  EXPECT_EQ(ours.at(100).cut, 51u);
  EXPECT_NEAR(ours.at(100).phi, 2.27, 0.005);
  EXPECT_NEAR(ours.at(100).t, 2.90, 0.005);
  EXPECT_EQ(ours.at(1000).cut, 938u);
  EXPECT_NEAR(ours.at(1000).phi, 1.79, 0.005);
  EXPECT_NEAR(ours.at(1000).t, 2.88, 0.005);
  EXPECT_EQ(ours.at(25000).cut, 24939u);
  EXPECT_NEAR(ours.at(25000).phi, 1.776, 0.0005);
  EXPECT_NEAR(ours.at(25000).t, 2.91, 0.005);
  EXPECT_NEAR(ours.t_warning(25000), 2.10, 0.005);
  EXPECT_NEAR(file->t_warning(25000), ours.t_warning(25000), 1e-6);
}

// The cut is the largest k with g(k) >= 0, or n/2+1 without a root. The search (one evaluation
// per length, galloping for the lengths where |N| shrinks) must agree with trying every k.
TEST(OptwinThresholdsTest, SearchEqualsBruteForce) {
  struct Case {
    double confidence, rho;
  };
  for (Case c : {Case{0.999, 0.5}, Case{0.99, 0.1}, Case{0.95, 1.0}, Case{0.9999, 0.25}}) {
    OptwinThresholds table(c.confidence, c.rho, 30, 20000);
    for (size_t n : {30, 31, 57, 100, 181, 250, 1000, 4321, 20000}) {
      size_t expect = n / 2 + 1;
      for (size_t k = n - 2; k >= 2; --k) {
        if (table.evaluate(n, k).g >= 0) {
          expect = k;
          break;
        }
      }
      EXPECT_EQ(table.at(n).cut, expect)
          << "confidence " << c.confidence << " rho " << c.rho << " length " << n;
    }
  }
}

TEST(OptwinThresholdsTest, SetUpIsLazyAndCheap) {
  OptwinThresholds table(0.999, 0.5, 30, 25000);
  EXPECT_EQ(table.computed(), 0u);
  EXPECT_GT(table.at(100).cut, 0u);
  EXPECT_EQ(table.computed(), 101u);  // only what was asked for
  table.compute_all();
  EXPECT_EQ(table.computed(), 25001u);
  // Trying every split would take about n^2/2 = 3e8 evaluations; the search needs about one
  // per length.
  EXPECT_LT(table.evaluations(), 2u * 25000u) << table.evaluations();
  // Monotone in the way the search assumes: |N| = n - cut never grows once g has a root.
  size_t last_m = std::numeric_limits<size_t>::max();
  for (size_t n = 300; n <= 25000; ++n) {
    const size_t m = n - table.at(n).cut;
    EXPECT_LE(m, last_m) << "length " << n;
    last_m = m;
  }
}

TEST(OptwinThresholdsTest, BadTableFilesAreOneLineErrors) {
  const fs::path dir = fs::temp_directory_path() / ("tensair_optwin_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "bad.csv") << "0.99,0.5,100,30,0,0,x,0";
  try {
    OptwinThresholds::read_table(dir / "bad.csv");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("field 7 is not a number: \"x\""), std::string::npos)
        << e.what();
  }
  std::ofstream(dir / "short.csv") << "0.99,0.5,100,30,1,2,3";
  EXPECT_THROW(OptwinThresholds::read_table(dir / "short.csv"), DataError);
  try {
    OptwinThresholds::read_table(dir / "missing.csv");
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::kConfig);
  }
  fs::remove_all(dir);
}

// ---- The detector -----------------------------------------------------------------------------

// OPTWIN written the slow, obvious way: the window in a deque, every statistic recomputed
// from scratch at every value. The real one (circular buffer, running sums, moving cut,
// eviction, periodic re-centring) must take the same decisions.
class NaiveOptwin {
 public:
  NaiveOptwin(std::shared_ptr<OptwinThresholds> table, size_t w_length, bool variance)
      : table_(std::move(table)), w_length_(w_length), variance_(variance) {}

  bool update(double x) {
    w_.push_back(x);
    if (w_.size() > w_length_) w_.pop_front();
    if (w_.size() < table_->min_window()) return false;
    const OptwinCut& c = table_->at(w_.size());
    auto stats = [&](size_t from, size_t to, double& mean, double& var) {
      mean = 0;
      for (size_t i = from; i < to; ++i) mean += w_[i];
      mean /= static_cast<double>(to - from);
      var = 0;
      for (size_t i = from; i < to; ++i) var += (w_[i] - mean) * (w_[i] - mean);
      var = var / static_cast<double>(to - from - 1) + 1e-12;
    };
    double mh, vh, mn, vn;
    stats(0, c.cut, mh, vh);
    stats(c.cut, w_.size(), mn, vn);
    const double nh = c.cut, nn = static_cast<double>(w_.size() - c.cut);
    const double t = (mn - mh) / std::sqrt(vn / nn + vh / nh);
    if (t > c.t) {
      w_.assign(1, x);
      return true;
    }
    if (variance_ && vn / vh > c.phi) {
      w_.assign(1, x);
      return mn > mh;
    }
    return false;
  }

 private:
  std::shared_ptr<OptwinThresholds> table_;
  size_t w_length_;
  bool variance_;
  std::deque<double> w_;
};

TEST(OptwinTest, MatchesNaiveRecomputation) {
  // A short maximum window, so the window is full and slides most of the time.
  for (bool variance : {false, true}) {
    OptwinParams p;
    p.w_length = 300;
    p.detect = variance ? OptwinParams::Detect::kMeanAndVariance : OptwinParams::Detect::kMean;
    Optwin fast(p);
    NaiveOptwin naive(OptwinThresholds::shared(p.confidence, p.rho, p.min_window, p.w_length),
                      p.w_length, variance);
    // Long stationary stretches (slides, evictions, re-centring), mean shifts both ways and a
    // variance change; a large offset makes cancellation errors visible if there were any.
    LabelledStream s = gaussian_stream("mix", {1000, 1000.3, 1000.3, 999.9, 1001, 1001},
                                       {0.2, 0.2, 0.6, 0.2, 0.2, 0.3}, 5000, 0, 42);
    std::vector<size_t> want;
    for (size_t i = 0; i < s.values.size(); ++i) {
      if (naive.update(s.values[i])) want.push_back(i);
    }
    EXPECT_EQ(detections(fast, s.values), want) << "variance test " << variance;
    EXPECT_GE(want.size(), 2u);
  }
}

// Synthetic streams (seeds 1-5): OPTWIN finds every drift within a stated delay.
// Why these bounds: at confidence 0.999 the new part N holds n - cut <= 96 values for every
// window length from 1,000 to 25,000 (fewer for shorter windows), and a shift of at least rho
// = 0.5 standard deviations is designed to be detectable once N holds post-change values
// only. So an abrupt mean shift must be caught within 2 x 100 values (1 sd) or 4 x 100
// (0.5 sd, the design limit, where a t-test needs more luck); a variance doubling within
// 2 x 100; a gradual drift within its 2,000-value transition.
TEST(OptwinTest, FindsEveryDriftWithinTheStatedDelay) {
  const std::map<std::string, size_t> bound = {{"gauss_abrupt", 200},
                                               {"gauss_abrupt_small", 400},
                                               {"gauss_gradual", 2000},
                                               {"gauss_variance", 200}};
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    for (const LabelledStream& s : synthetic_streams(false, seed)) {
      auto it = bound.find(s.name);
      if (it == bound.end()) continue;
      auto d = make_detector("optwin", {{"direction", to_string(s.direction)}});
      const std::vector<size_t> found = detections(*d, s.values);
      ASSERT_FALSE(s.drifts.empty());
      for (size_t drift : s.drifts) {
        auto hit = std::lower_bound(found.begin(), found.end(), drift);
        ASSERT_TRUE(hit != found.end() && *hit < drift + it->second)
            << s.name << " seed " << seed << ": drift at " << drift << " not found within "
            << it->second
            << (hit == found.end() ? std::string(" (no detection after it)")
                                   : " (next detection at " + std::to_string(*hit) + ")");
      }
    }
  }
}

// False positives on 100,000 stationary Gaussian values.
// The bound: each test runs at the working confidence q = 0.999^(1/4) = 0.99975, so under the
// null (i.i.d. Gaussian) the t-test fires at a given value with probability <= 1 - q, and the
// F-test (exact for Gaussian data) with probability 1 - q. By the union bound an alarm at any
// one value has probability <= 2(1 - q) = 5.0e-4 (just under 1 - confidence = 1e-3), so the
// expected number of false alarms over N = 100,000 values is at most N * 2(1 - q) = 50.0.
// Tests at consecutive values share almost all their data, so the real count is far lower;
// we assert the bound for every seed and report the count.
TEST(OptwinTest, StationaryFalsePositivesWithinConfidenceBound) {
  const double q = std::pow(0.999, 0.25);
  const double bound = 100000 * 2 * (1 - q);
  EXPECT_NEAR(bound, 50.0, 0.05);
  size_t total = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    LabelledStream s = gaussian_stream("none", {1.0}, {0.2}, 100000, 0, seed);
    auto d = make_detector("optwin");
    const size_t n = detections(*d, s.values).size();
    EXPECT_LE(static_cast<double>(n), bound) << "seed " << seed;
    total += n;
  }
  std::printf("OPTWIN false alarms on 5 x 100,000 stationary values: %zu (bound 5 x %.1f)\n", total,
              bound);
  // 0/1 errors at rate 0.2 (detect = mean for indicators: t-test only, bound N (1 - q) = 25;
  // the t-test is only approximately valid for 0/1 data, so this is the approximate bound).
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    LabelledStream s = bernoulli_stream("none", {0.2}, 100000, 0, seed);
    auto d = make_detector("optwin", {{"input", "error"}});
    EXPECT_LE(static_cast<double>(detections(*d, s.values).size()), 100000 * (1 - q));
  }
}

TEST(OptwinTest, ReportsOneChangeOnceAndRestarts) {
  LabelledStream s = gaussian_stream("jump", {1.0, 3.0}, {0.2}, 5000, 0, 7);
  Optwin d;
  std::vector<size_t> found = detections(d, s.values);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_GE(found[0], 5000u);
  EXPECT_LT(found[0], 5030u);
  EXPECT_EQ(d.state()["detections"], 1);
  // A 10-sd jump: the first new value already inflates N's variance, so the F-test may fire
  // before the t-test; either way it is reported once.
  EXPECT_FALSE(d.state()["last_drift"].is_null());
  // Restarted with the value that triggered it: the window holds only new values.
  EXPECT_EQ(d.window_size(), s.values.size() - found[0]);
}

TEST(OptwinTest, DirectionIsExplicit) {
  // The loss falls at index 3000: not a drift for "increase" (the model improved), a drift for
  // "decrease" and "both". (Only detections from the change on are counted: a false alarm
  // before it is possible, about once in 30,000 values, and is the subject of another test.)
  LabelledStream fall = gaussian_stream("fall", {2.0, 1.0}, {0.2}, 3000, 0, 3);
  auto after_change = [&](Detector& d) {
    std::vector<size_t> all = detections(d, fall.values), out;
    for (size_t i : all) {
      if (i >= 3000) out.push_back(i);
    }
    return out;
  };
  auto inc = make_detector("optwin", {{"direction", "increase"}});
  auto dec = make_detector("optwin", {{"direction", "decrease"}});
  auto both = make_detector("optwin", {{"direction", "both"}});
  EXPECT_TRUE(after_change(*inc).empty());
  EXPECT_EQ(after_change(*dec).size(), 1u);
  EXPECT_EQ(after_change(*both).size(), 1u);
  // Means are reported in the input's units whatever the direction.
  const double mean = dec->state()["mean_new"].get<double>();
  EXPECT_NEAR(mean, 1.0, 0.2);
}

TEST(OptwinTest, VarianceUpWithMeanDownEmptiesTheWindowWithoutReport) {
  // As the authors' Python: the F-test fires but the loss went down; the window restarts.
  LabelledStream s = gaussian_stream("noisy", {1.0, 0.9}, {0.05, 0.5}, 3000, 0, 11);
  Optwin d;
  std::vector<size_t> found = detections(d, s.values);
  const nlohmann::json st = d.state();
  EXPECT_GE(st["flushes"].get<int>() + static_cast<int>(found.size()), 1);
  // Whatever was reported, it came from the variance or mean test after the change.
  for (size_t i : found) EXPECT_GE(i, 3000u);
}

TEST(OptwinTest, TheOriginalTableGivesTheSameDetections) {
  LabelledStream s = synthetic_streams(true, 1)[0];  // gauss_abrupt
  auto computed = make_detector("optwin", {{"confidence", "0.99"}});
  auto from_file = make_detector("optwin", {{"table", original_table().string()}});
  EXPECT_EQ(from_file->params()["confidence"], 0.99);
  const std::vector<size_t> a = detections(*computed, s.values);
  EXPECT_EQ(a, detections(*from_file, s.values));
  EXPECT_FALSE(a.empty());
  // The table fixes confidence, rho and min_window; w_length must fit in it.
  EXPECT_THROW(make_detector("optwin", {{"table", original_table().string()}, {"rho", "0.4"}}),
               ConfigError);
  EXPECT_THROW(
      make_detector("optwin", {{"table", original_table().string()}, {"w_length", "30000"}}),
      ConfigError);
}

TEST(OptwinTest, StateForLogs) {
  Optwin d;
  nlohmann::json st = d.state();
  EXPECT_EQ(st["window"], 0);
  EXPECT_TRUE(st["t_stat"].is_null());
  LabelledStream s = gaussian_stream("flat", {1.0}, {0.2}, 1000, 0, 5);
  for (double v : s.values) d.update(v);
  st = d.state();
  EXPECT_EQ(st["values"], 1000);
  EXPECT_GE(st["window"].get<int>(), 1);
  if (st["window"].get<int>() >= 30) {
    EXPECT_NEAR(st["mean_hist"].get<double>(), 1.0, 0.1);
    EXPECT_NEAR(st["sd_hist"].get<double>(), 0.2, 0.05);
    EXPECT_GT(st["t_crit"].get<double>(), 3.0);
    EXPECT_FALSE(st["warning"].is_null());
  }
  d.reset();
  EXPECT_EQ(d.state()["values"], 0);
  EXPECT_EQ(d.window_size(), 0u);
}

TEST(OptwinTest, BadInputIsAnErrorNotSilence) {
  Optwin d;
  EXPECT_THROW(d.update(std::nan("")), DataError);
  EXPECT_THROW(d.update(std::numeric_limits<double>::infinity()), DataError);
  auto e = make_detector("optwin", {{"input", "error"}});
  EXPECT_THROW(e->update(0.5), DataError);
  EXPECT_NO_THROW(e->update(1));
}

}  // namespace
}  // namespace tensair::drift
