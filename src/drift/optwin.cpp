#include "tensair/drift/optwin.hpp"

#include <algorithm>
#include <boost/math/distributions/fisher_f.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <tuple>

#include "drift/detector_state.hpp"
#include "drift/param_reader.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/file_reader.hpp"

namespace tensair::drift {

// ---- Quantiles --------------------------------------------------------------------------------

namespace {

// Computes in double: Boost's default promotes double to long double internally, which costs
// 6-10x the time (x87) for accuracy far beyond what a threshold needs.
using Policy = boost::math::policies::policy<boost::math::policies::promote_double<false>>;

template <class F>
double checked_quantile(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    throw Error(std::string("optwin: ") + what + " quantile failed: " + e.what());
  }
}

}  // namespace

double normal_quantile(double p) {
  return checked_quantile(
      "normal", [&] { return quantile(boost::math::normal_distribution<double, Policy>(), p); });
}

double t_quantile(double p, double df) {
  return checked_quantile(
      "t", [&] { return quantile(boost::math::students_t_distribution<double, Policy>(df), p); });
}

double f_quantile(double p, double df1, double df2) {
  return checked_quantile("F", [&] {
    return quantile(boost::math::fisher_f_distribution<double, Policy>(df1, df2), p);
  });
}

// ---- Parameters -------------------------------------------------------------------------------

std::vector<std::string> OptwinParams::keys() {
  return {"confidence", "rho", "w_length", "min_window", "detect", "table", "input", "direction"};
}

OptwinParams OptwinParams::parse(const ParamMap& params) {
  ParamReader r("optwin", params, keys());
  OptwinParams p;
  p.common = r.common();
  p.table = r.text("table", "");
  if (!p.table.empty()) {
    for (const char* fixed : {"confidence", "rho", "min_window"}) {
      if (r.has(fixed)) {
        r.fail(fixed,
               "cannot be set together with \"table\" (the table file fixes confidence, "
               "rho and min_window)");
      }
    }
  }
  p.confidence = r.number("confidence", p.confidence, 0, 1, true, true);
  p.rho = r.number("rho", p.rho, 0, 100, true, false);
  // The window and the cut table take about 50 bytes per length: 10^6 is 50 MB.
  p.min_window = r.integer("min_window", p.min_window, 8, 1000000);
  p.w_length = r.integer("w_length", p.w_length, 8, 1000000);
  if (p.w_length < p.min_window) {
    r.fail("w_length", "must be at least min_window (" + std::to_string(p.min_window) + "), got " +
                           std::to_string(p.w_length));
  }
  size_t def = p.common.input == Input::kLoss ? 1 : 0;
  p.detect = static_cast<Detect>(r.choice("detect", def, {"mean", "mean_and_variance"}));
  return p;
}

nlohmann::json OptwinParams::to_json() const {
  nlohmann::json j = {{"confidence", confidence},
                      {"rho", rho},
                      {"w_length", w_length},
                      {"min_window", min_window},
                      {"detect", detect == Detect::kMean ? "mean" : "mean_and_variance"},
                      {"input", to_string(common.input)},
                      {"direction", to_string(common.direction)}};
  if (!table.empty()) j["table"] = table.string();
  return j;
}

// ---- Thresholds -------------------------------------------------------------------------------

namespace {
constexpr double kWarningConfidence = 0.98;  // the authors' warning level
constexpr size_t kNever = std::numeric_limits<size_t>::max();
}  // namespace

OptwinThresholds::OptwinThresholds(double confidence, double rho, size_t min_window,
                                   size_t max_length)
    : confidence_(confidence),
      rho_(rho),
      q_(std::pow(confidence, 0.25)),
      min_window_(min_window),
      max_length_(max_length) {
  if (!(confidence > 0 && confidence < 1) || !(rho > 0) || min_window < 8 ||
      max_length < min_window) {
    throw ConfigError("optwin: bad thresholds (confidence " + std::to_string(confidence) +
                      ", rho " + std::to_string(rho) + ", min_window " +
                      std::to_string(min_window) + ", w_length " + std::to_string(max_length) +
                      "): need 0 < confidence < 1, rho > 0, 8 <= min_window <= w_length");
  }
  cuts_.resize(max_length_ + 1);
}

OptwinThresholds::~OptwinThresholds() = default;

std::shared_ptr<OptwinThresholds> OptwinThresholds::shared(double confidence, double rho,
                                                           size_t min_window, size_t max_length) {
  static std::mutex mu;
  static std::map<std::tuple<double, double, size_t, size_t>, std::shared_ptr<OptwinThresholds>>
      cache;
  std::lock_guard lock(mu);
  auto& slot = cache[{confidence, rho, min_window, max_length}];
  if (!slot) slot = std::make_shared<OptwinThresholds>(confidence, rho, min_window, max_length);
  return slot;
}

OptwinThresholds::Evaluation OptwinThresholds::evaluate(size_t n, size_t k) const {
  evaluations_.fetch_add(1, std::memory_order_relaxed);
  // The authors' formulas (reference section 4.2), floors included.
  const double nh = static_cast<double>(k);
  const double nn = static_cast<double>(n - k);
  const double f = f_quantile(q_, nh - 1, nn - 1);
  const double inv_f2 = 1.0 / (f * f);
  const double a = 1.0 / std::max(nh, 1e-15) + inv_f2 / nn;
  const double den = 1.0 / std::max(nh * nh * (nh - 1), 1e-15) +
                     inv_f2 * inv_f2 / std::max(nn * nn * (nn - 1), 1e-15);
  const double df = a * a / den;
  const double t = t_quantile(q_, df);
  return {rho_ - t * std::sqrt(1.0 / nh + f / nn), f, t, df};
}

const OptwinCut& OptwinThresholds::extend(size_t n) {
  if (n > max_length_) {
    throw Error("optwin: window length " + std::to_string(n) + " beyond the table's " +
                std::to_string(max_length_));
  }
  std::lock_guard lock(mu_);
  while (next_ <= n) compute_next();
  ready_.store(next_, std::memory_order_release);
  return cuts_[n];
}

// Smallest length n' >= from at which |N| = m - 1 satisfies g >= 0, or kNever. Relies on g(n',
// n' - m) growing with n' for a fixed |N| = m (more history, a better estimate of its mean):
// gallops forward, then bisects.
size_t OptwinThresholds::find_shrink(size_t from, size_t m) {
  if (m <= 2 || from > max_length_) return kNever;
  auto feasible = [&](size_t n) { return n >= m - 1 + 2 && evaluate(n, n - (m - 1)).g >= 0; };
  if (feasible(from)) return from;
  size_t lo = from, step = 1;  // lo: known infeasible
  for (;;) {
    size_t hi = std::min(lo + step, max_length_);
    if (hi == lo) return kNever;
    if (feasible(hi)) {
      while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        (feasible(mid) ? hi : lo) = mid;
      }
      return hi;
    }
    if (hi == max_length_) return kNever;
    lo = hi;
    step *= 2;
  }
}

void OptwinThresholds::compute_next() {
  const size_t n = next_;
  OptwinCut& c = cuts_[n];
  auto store = [&](size_t cut, const Evaluation& e) {
    c.cut = static_cast<uint32_t>(cut);
    c.phi = e.phi;
    c.t = e.t;
    c.df = e.df;
    c.t_warning = std::numeric_limits<double>::quiet_NaN();
    ++next_;
  };
  if (n < min_window_) {
    c = OptwinCut{};
    ++next_;
    return;
  }
  if (have_root_) {
    while (shrink_at_ <= n) {
      --m_;
      shrink_at_ = find_shrink(n, m_);
    }
    Evaluation e = evaluate(n, n - m_);
    if (e.g >= 0) return store(n - m_, e);
    // g(n, n - m) fell below zero although it held at n - 1: walk |N| up along the right branch
    // until g >= 0 again, or until g stops growing (we passed its peak: no root any more).
    while (n - m_ > 2) {
      Evaluation next = evaluate(n, n - (m_ + 1));
      if (next.g <= e.g && next.g < 0) break;
      ++m_;
      e = next;
      if (e.g >= 0) {
        shrink_at_ = find_shrink(n + 1, m_);
        return store(n - m_, e);
      }
    }
    have_root_ = false;
    peak_ = n / 2;
  }
  // No root at the previous length: find the peak of g over k by hill climbing from the last
  // peak (g is unimodal in k: small k leave H too short, large k leave N too short).
  const size_t lo = 2, hi = n - 2;
  size_t k = std::clamp(peak_ ? peak_ : n / 2, lo, hi);
  Evaluation ek = evaluate(n, k);
  bool moved = false;
  while (k < hi) {
    Evaluation e = evaluate(n, k + 1);
    if (!(e.g > ek.g)) break;
    ++k, ek = e, moved = true;
  }
  while (!moved && k > lo) {
    Evaluation e = evaluate(n, k - 1);
    if (!(e.g > ek.g)) break;
    --k, ek = e;
  }
  peak_ = k;
  if (ek.g < 0) {  // no root: the authors' fallback
    const size_t cut = n / 2 + 1;
    return store(cut, evaluate(n, cut));
  }
  // The largest k with g(k) >= 0, right of the peak, by bisection.
  size_t good = k, bad = hi + 1;
  Evaluation eg = ek;
  Evaluation eh = evaluate(n, hi);
  if (eh.g >= 0) {
    good = hi, eg = eh;
  } else {
    bad = hi;
    while (bad - good > 1) {
      size_t mid = good + (bad - good) / 2;
      Evaluation e = evaluate(n, mid);
      if (e.g >= 0) {
        good = mid, eg = e;
      } else {
        bad = mid;
      }
    }
  }
  have_root_ = true;
  m_ = n - good;
  shrink_at_ = find_shrink(n + 1, m_);
  store(good, eg);
}

double OptwinThresholds::t_warning(size_t n) {
  const OptwinCut& c = at(n);
  if (!std::isnan(c.t_warning)) return c.t_warning;
  if (!(c.df > 0)) return std::numeric_limits<double>::quiet_NaN();
  return t_quantile(kWarningConfidence, c.df);
}

namespace {

// Splits the table's single line into numbers.
std::vector<double> read_numbers(const std::filesystem::path& path) {
  FileReader reader(path);
  std::string text, chunk(1 << 16, '\0');
  for (size_t got; (got = reader.read(chunk.data(), chunk.size())) > 0;) text.append(chunk, 0, got);
  std::vector<double> out;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    const char* field_end = static_cast<const char*>(std::memchr(p, ',', end - p));
    if (!field_end) field_end = end;
    const char* b = p;
    const char* e = field_end;
    while (b < e && std::isspace(static_cast<unsigned char>(*b))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(e[-1]))) --e;
    if (b == e && field_end == end && !out.empty()) break;  // trailing newline or comma
    double v = 0;
    auto [ptr, ec] = std::from_chars(b, e, v);
    if (ec != std::errc() || ptr != e || b == e) {
      throw DataError(path.string() + ": field " + std::to_string(out.size() + 1) +
                      " is not a number: \"" + std::string(b, e - b).substr(0, 40) + "\"");
    }
    out.push_back(v);
    p = field_end + 1;
  }
  return out;
}

}  // namespace

std::shared_ptr<OptwinThresholds> OptwinThresholds::read_table(const std::filesystem::path& path) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<OptwinThresholds>> cache;
  std::string key = std::filesystem::absolute(path).lexically_normal().string();
  {
    std::lock_guard lock(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  if (!std::filesystem::exists(path)) {
    throw IoError("optwin table " + path.string() + " does not exist", ExitCode::kConfig);
  }
  std::vector<double> v = read_numbers(path);
  // c, rho, w_max, w_min, then four arrays of equal length L (w_max + 2 in the authors' files).
  if (v.size() < 8 || (v.size() - 4) % 4 != 0) {
    throw DataError(path.string() +
                    ": expected 4 header fields and 4 arrays of equal length, got " +
                    std::to_string(v.size()) + " fields");
  }
  const size_t len = (v.size() - 4) / 4;
  const double conf = v[0], rho = v[1];
  const double w_min = v[3];
  if (!(conf > 0 && conf < 1) || !(rho > 0) || !(w_min >= 8) || w_min != std::floor(w_min) ||
      w_min >= static_cast<double>(len)) {
    throw DataError(path.string() + ": bad header (confidence " + std::to_string(conf) + ", rho " +
                    std::to_string(rho) + ", w_min " + std::to_string(w_min) + ")");
  }
  auto table = std::make_shared<OptwinThresholds>(conf, rho, static_cast<size_t>(w_min), len - 1);
  table->from_file_ = true;
  for (size_t n = 0; n < len; ++n) {
    OptwinCut& c = table->cuts_[n];
    const double cut = v[4 + n];
    if (n >= table->min_window_ &&
        (cut != std::floor(cut) || cut < 2 || cut > static_cast<double>(n) - 2)) {
      throw DataError(path.string() + ": cut for window length " + std::to_string(n) + " is " +
                      std::to_string(cut) + ", outside [2, n-2]");
    }
    c.cut = n >= table->min_window_ ? static_cast<uint32_t>(cut) : 0;
    c.phi = v[4 + len + n];
    c.t = v[4 + 2 * len + n];
    c.t_warning = v[4 + 3 * len + n];
    c.df = std::numeric_limits<double>::quiet_NaN();
  }
  table->next_ = len;
  table->ready_.store(len, std::memory_order_release);
  std::lock_guard lock(mu);
  cache[key] = table;
  return table;
}

// ---- The detector -----------------------------------------------------------------------------

namespace {
// Added to both variances: the authors add 1e-6 to both standard deviations, so two constant
// parts compare as equal instead of 0/0.
constexpr double kNoiseVariance = 1e-12;
}  // namespace

Optwin::Optwin(OptwinParams params) : params_(std::move(params)) {
  if (!params_.table.empty()) {
    table_ = OptwinThresholds::read_table(params_.table);
    params_.confidence = table_->confidence();
    params_.rho = table_->rho();
    params_.min_window = table_->min_window();
    if (params_.w_length > table_->max_length()) {
      throw ConfigError("optwin parameter \"w_length\": " + std::to_string(params_.w_length) +
                        " is beyond the table " + params_.table.string() + " (up to " +
                        std::to_string(table_->max_length()) + ")");
    }
  } else {
    table_ = OptwinThresholds::shared(params_.confidence, params_.rho, params_.min_window,
                                      params_.w_length);
  }
  if (params_.w_length < params_.min_window) {
    throw ConfigError("optwin parameter \"w_length\" must be at least min_window");
  }
  sign_ = params_.common.direction == Direction::kDecrease ? -1.0 : 1.0;
  both_ = params_.common.direction == Direction::kBoth;
  test_variance_ = params_.detect == OptwinParams::Detect::kMeanAndVariance;
  cap_ = params_.w_length;
  buf_.assign(cap_, 0.0);
}

void Optwin::clear_window() {
  head_ = len_ = cut_ = 0;
  shift_ = h_sum_ = h_sq_ = n_sum_ = n_sq_ = 0;
  evictions_ = 0;
}

void Optwin::reset() {
  clear_window();
  values_ = detections_ = flushes_ = 0;
  last_drift_ = 0;
}

void Optwin::recompute_sums() {
  // Re-centre on the current mean and sum again from the stored values: running sums that
  // have added and removed w_length values each pass cannot drift.
  double mean = 0;
  for (size_t i = 0; i < len_; ++i) mean += at(i);
  mean /= static_cast<double>(len_);
  h_sum_ = h_sq_ = n_sum_ = n_sq_ = 0;
  for (size_t i = 0; i < len_; ++i) {
    size_t j = head_ + i;
    if (j >= cap_) j -= cap_;
    const double y = buf_[j] - mean;
    buf_[j] = y;
    if (i < cut_) {
      h_sum_ += y, h_sq_ += y * y;
    } else {
      n_sum_ += y, n_sq_ += y * y;
    }
  }
  shift_ += mean;
}

void Optwin::push(double x) {
  if (len_ == 0) shift_ = x;
  const double y = x - shift_;
  bool recompute = false;
  if (len_ == cap_) {  // full: the oldest value leaves H
    const double old = buf_[head_];
    h_sum_ -= old;
    h_sq_ -= old * old;
    --cut_;
    if (++head_ == cap_) head_ = 0;
    --len_;
    if (++evictions_ >= cap_) evictions_ = 0, recompute = true;
  }
  size_t j = head_ + len_;
  if (j >= cap_) j -= cap_;
  buf_[j] = y;
  ++len_;
  n_sum_ += y;
  n_sq_ += y * y;
  if (recompute) recompute_sums();
}

bool Optwin::update(double value) {
  const double x = sign_ * detail::checked_input(value, params_.common.input, "optwin");
  ++values_;
  push(x);
  if (len_ < params_.min_window) return false;

  const OptwinCut& c = table_->at(len_);
  while (cut_ < c.cut) {  // N's oldest values join H
    const double y = at(cut_);
    n_sum_ -= y, n_sq_ -= y * y;
    h_sum_ += y, h_sq_ += y * y;
    ++cut_;
  }
  while (cut_ > c.cut) {  // H's newest values join N
    --cut_;
    const double y = at(cut_);
    h_sum_ -= y, h_sq_ -= y * y;
    n_sum_ += y, n_sq_ += y * y;
  }
  const double nh = static_cast<double>(cut_);
  const double nn = static_cast<double>(len_ - cut_);
  const double mh = h_sum_ / nh, mn = n_sum_ / nn;
  const double vh = std::max(0.0, (h_sq_ - h_sum_ * mh) / (nh - 1)) + kNoiseVariance;
  const double vn = std::max(0.0, (n_sq_ - n_sum_ * mn) / (nn - 1)) + kNoiseVariance;
  const double d = mn - mh;
  // Welch: t = d / sqrt(vn/nn + vh/nh) > t_crit, without the square root.
  const bool watched = both_ || d > 0;
  if (watched && d * d > c.t * c.t * (vn / nn + vh / nh)) {
    ++detections_;
    last_drift_ = 1;
    clear_window();
    push(x);
    return true;
  }
  if (test_variance_ && vn > c.phi * vh) {
    clear_window();
    push(x);
    if (watched) {
      ++detections_;
      last_drift_ = 2;
      return true;
    }
    ++flushes_;  // variance up while the mean went the other way: start afresh, no report
  }
  return false;
}

nlohmann::json Optwin::state() const {
  nlohmann::json j = {{"values", values_},
                      {"detections", detections_},
                      {"window", len_},
                      {"flushes", flushes_},
                      {"last_drift", last_drift_ == 0   ? nlohmann::json(nullptr)
                                     : last_drift_ == 1 ? nlohmann::json("mean")
                                                        : nlohmann::json("variance")}};
  if (len_ < params_.min_window || cut_ < 2 || len_ - cut_ < 2) {
    for (const char* k : {"cut", "mean_hist", "mean_new", "sd_hist", "sd_new", "t_stat", "t_crit",
                          "f_ratio", "f_crit", "warning"}) {
      j[k] = nullptr;
    }
    return j;
  }
  const OptwinCut& c = table_->at(len_);
  const double nh = static_cast<double>(cut_);
  const double nn = static_cast<double>(len_ - cut_);
  const double mh = h_sum_ / nh, mn = n_sum_ / nn;
  const double vh = std::max(0.0, (h_sq_ - h_sum_ * mh) / (nh - 1));
  const double vn = std::max(0.0, (n_sq_ - n_sum_ * mn) / (nn - 1));
  const double t = (mn - mh) / std::sqrt((vn + kNoiseVariance) / nn + (vh + kNoiseVariance) / nh);
  const double t_warn = table_->t_warning(len_);
  j["cut"] = cut_;
  j["mean_hist"] = sign_ * (shift_ + mh);
  j["mean_new"] = sign_ * (shift_ + mn);
  j["sd_hist"] = std::sqrt(vh);
  j["sd_new"] = std::sqrt(vn);
  j["t_stat"] = t;
  j["t_crit"] = c.t;
  j["f_ratio"] = (vn + kNoiseVariance) / (vh + kNoiseVariance);
  j["f_crit"] = c.phi;
  j["warning"] = std::isnan(t_warn) ? false : (both_ ? std::abs(t) : t) > t_warn;
  return j;
}

// ---- Checkpoints ------------------------------------------------------------------------------

namespace {
constexpr uint32_t kOptwinLayout = 1;
}  // namespace

std::string Optwin::save_state() const {
  detail::DetectorStateWriter w(name(), kOptwinLayout, params().dump());
  w.put<uint64_t>(cut_);
  w.put<double>(shift_);
  w.put<double>(h_sum_);
  w.put<double>(h_sq_);
  w.put<double>(n_sum_);
  w.put<double>(n_sq_);
  w.put<uint64_t>(evictions_);
  w.put<uint64_t>(values_);
  w.put<uint64_t>(detections_);
  w.put<uint64_t>(flushes_);
  w.put<int32_t>(last_drift_);
  // The window oldest first (as stored: minus shift_); where it sat in the ring does not matter.
  std::vector<double> window(len_);
  for (size_t i = 0; i < len_; ++i) window[i] = at(i);
  w.put_doubles(window);
  return w.take();
}

void Optwin::load_state(std::string_view state) {
  detail::DetectorStateReader r(state, name(), kOptwinLayout, params().dump());
  const auto cut = r.get<uint64_t>();
  const auto shift = r.get<double>();
  const auto h_sum = r.get<double>(), h_sq = r.get<double>();
  const auto n_sum = r.get<double>(), n_sq = r.get<double>();
  const auto evictions = r.get<uint64_t>();
  const auto values = r.get<uint64_t>(), detections = r.get<uint64_t>(),
             flushes = r.get<uint64_t>();
  const auto last_drift = r.get<int32_t>();
  std::vector<double> window = r.get_doubles();
  r.expect_end();
  if (window.size() > cap_ || cut > window.size() || evictions >= cap_ || last_drift < 0 ||
      last_drift > 2 || window.size() > values) {
    r.fail("holds an impossible window (" + std::to_string(window.size()) + " values, cut " +
           std::to_string(cut) + ", w_length " + std::to_string(cap_) + ")");
  }
  clear_window();
  std::copy(window.begin(), window.end(), buf_.begin());
  len_ = window.size();
  cut_ = static_cast<size_t>(cut);
  shift_ = shift;
  h_sum_ = h_sum, h_sq_ = h_sq, n_sum_ = n_sum, n_sq_ = n_sq;
  evictions_ = static_cast<size_t>(evictions);
  values_ = values, detections_ = detections, flushes_ = flushes;
  last_drift_ = last_drift;
}

}  // namespace tensair::drift
