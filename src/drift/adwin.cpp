#include "tensair/drift/adwin.hpp"

#include <cmath>

#include "drift/detector_state.hpp"
#include "drift/param_reader.hpp"
#include "tensair/common/error.hpp"

namespace tensair::drift {

std::vector<std::string> AdwinParams::keys() {
  return {"delta",        "clock", "max_buckets", "min_window_length",
          "grace_period", "input", "direction"};
}

AdwinParams AdwinParams::parse(const ParamMap& params) {
  ParamReader r("adwin", params, keys());
  AdwinParams p;
  p.common = r.common();
  p.delta = r.number("delta", p.delta, 0, 1, true, true);
  p.clock = static_cast<uint32_t>(r.integer("clock", p.clock, 1, 1u << 30));
  p.max_buckets = static_cast<uint32_t>(r.integer("max_buckets", p.max_buckets, 2, 1000));
  p.min_window_length =
      static_cast<uint32_t>(r.integer("min_window_length", p.min_window_length, 1, 1u << 30));
  p.grace_period = static_cast<uint32_t>(r.integer("grace_period", p.grace_period, 0, 1u << 30));
  return p;
}

nlohmann::json AdwinParams::to_json() const {
  return {{"delta", delta},
          {"clock", clock},
          {"max_buckets", max_buckets},
          {"min_window_length", min_window_length},
          {"grace_period", grace_period},
          {"input", to_string(common.input)},
          {"direction", to_string(common.direction)}};
}

Adwin::Adwin(AdwinParams params) : params_(std::move(params)) {
  if (!(params_.delta > 0 && params_.delta < 1) || params_.clock < 1 || params_.max_buckets < 2 ||
      params_.min_window_length < 1) {
    throw ConfigError(
        "adwin: bad parameters (need 0 < delta < 1, clock >= 1, max_buckets >= 2, "
        "min_window_length >= 1)");
  }
  sign_ = params_.common.direction == Direction::kDecrease ? -1.0 : 1.0;
  both_ = params_.common.direction == Direction::kBoth;
  rows_.reserve(64);
  reset();
}

void Adwin::reset() {
  rows_.clear();
  rows_.push_back(Row{0, std::vector<double>(params_.max_buckets + 1),
                      std::vector<double>(params_.max_buckets + 1)});
  width_ = 0;
  total_ = variance_ = 0;
  tick_ = 0;
  values_ = detections_ = shrinks_ = 0;
}

size_t Adwin::buckets() const {
  size_t n = 0;
  for (const Row& r : rows_) n += r.count;
  return n;
}

void Adwin::insert(double x) {
  Row& r0 = rows_[0];
  r0.total[r0.count] = x;
  r0.variance[r0.count] = 0;
  ++r0.count;
  ++width_;
  if (width_ > 1) {
    const double w = static_cast<double>(width_);
    const double dev = x - total_ / (w - 1);
    variance_ += (w - 1) * dev * dev / w;
  }
  total_ += x;
  compress();
}

void Adwin::compress() {
  const uint32_t max = params_.max_buckets;
  for (size_t i = 0; i < rows_.size() && rows_[i].count > max; ++i) {
    if (i + 1 == rows_.size()) {
      rows_.push_back(Row{0, std::vector<double>(max + 1), std::vector<double>(max + 1)});
    }
    Row& r = rows_[i];
    Row& next = rows_[i + 1];
    const double n = std::ldexp(1.0, static_cast<int>(i));  // values per bucket of row i
    const double mu1 = r.total[0] / n, mu2 = r.total[1] / n;
    next.total[next.count] = r.total[0] + r.total[1];
    next.variance[next.count] =
        r.variance[0] + r.variance[1] + n * n * (mu1 - mu2) * (mu1 - mu2) / (2 * n);
    ++next.count;
    for (uint32_t k = 2; k < r.count; ++k) {
      r.total[k - 2] = r.total[k];
      r.variance[k - 2] = r.variance[k];
    }
    r.count -= 2;
  }
}

uint64_t Adwin::delete_oldest() {
  const size_t i = rows_.size() - 1;
  Row& r = rows_[i];
  const uint64_t n = uint64_t{1} << i;
  const double nd = static_cast<double>(n);
  width_ -= n;
  total_ -= r.total[0];
  if (width_ > 0) {
    const double w = static_cast<double>(width_);
    const double mu = r.total[0] / nd, mu_w = total_ / w;
    variance_ -= r.variance[0] + nd * w * (mu - mu_w) * (mu - mu_w) / (nd + w);
    if (variance_ < 0) variance_ = 0;
  } else {
    total_ = variance_ = 0;
  }
  for (uint32_t k = 1; k < r.count; ++k) {
    r.total[k - 1] = r.total[k];
    r.variance[k - 1] = r.variance[k];
  }
  --r.count;
  if (r.count == 0 && rows_.size() > 1) rows_.pop_back();
  return n;
}

bool Adwin::significant(double n0, double n1, double diff, double dd, double v) const {
  const double l = static_cast<double>(params_.min_window_length);
  const double m = 1.0 / (n0 - l + 1) + 1.0 / (n1 - l + 1);
  const double eps = std::sqrt(2 * m * v * dd) + 2.0 / 3.0 * dd * m;
  return std::abs(diff) > eps;
}

bool Adwin::detect_change() {
  ++tick_;
  if (tick_ % params_.clock != 0 || width_ <= params_.grace_period) return false;
  const double l = static_cast<double>(params_.min_window_length);
  for (bool again = true; again;) {
    again = false;
    double n0 = 0, n1 = static_cast<double>(width_), u0 = 0, u1 = total_;
    // epsilon's terms that depend on the whole window: d' = ln(2 ln|W| / delta), v = var(W).
    const double dd = std::log(2 * std::log(n1) / params_.delta);
    const double v = variance_ / n1;
    // Splits at every bucket boundary, oldest bucket first (MOA's loop: every bucket of a row).
    for (size_t i = rows_.size(); i-- > 0 && !again;) {
      const Row& r = rows_[i];
      const double n2 = std::ldexp(1.0, static_cast<int>(i));
      for (uint32_t k = 0; k < r.count; ++k) {
        n0 += n2, n1 -= n2;
        u0 += r.total[k], u1 -= r.total[k];
        if (i == 0 && k + 1 == r.count) break;  // W1 would be empty
        if (n0 < l || n1 < l) continue;
        const double diff = u1 / n1 - u0 / n0;  // newer minus older
        if (!significant(n0, n1, diff, dd, v)) continue;
        if (both_ || diff > 0) return true;
        delete_oldest();  // a change the other way: drop old values as ADWIN does, unreported
        ++shrinks_;
        again = width_ > 0;
        break;
      }
    }
  }
  return false;
}

bool Adwin::update(double value) {
  const double x = sign_ * detail::checked_input(value, params_.common.input, "adwin");
  ++values_;
  insert(x);
  if (!detect_change()) return false;
  // Reported: start afresh (the counters survive).
  const uint64_t values = values_, detections = detections_ + 1, shrinks = shrinks_;
  reset();
  values_ = values, detections_ = detections, shrinks_ = shrinks;
  return true;
}

nlohmann::json Adwin::state() const {
  return {{"values", values_},    {"detections", detections_}, {"width", width_},
          {"mean", mean()},       {"variance", variance()},    {"buckets", buckets()},
          {"rows", rows_.size()}, {"shrinks", shrinks_}};
}

// ---- Checkpoints ------------------------------------------------------------------------------

namespace {
constexpr uint32_t kAdwinLayout = 1;
}  // namespace

std::string Adwin::save_state() const {
  detail::DetectorStateWriter w(name(), kAdwinLayout, params().dump());
  w.put<uint64_t>(width_);
  w.put<double>(total_);
  w.put<double>(variance_);
  w.put<uint64_t>(tick_);
  w.put<uint64_t>(values_);
  w.put<uint64_t>(detections_);
  w.put<uint64_t>(shrinks_);
  // The buckets, newest row first; only a row's first `count` slots hold buckets.
  w.put<uint64_t>(rows_.size());
  for (const Row& row : rows_) {
    w.put_doubles(row.total.data(), row.count);
    w.put_doubles(row.variance.data(), row.count);
  }
  return w.take();
}

void Adwin::load_state(std::string_view state) {
  detail::DetectorStateReader r(state, name(), kAdwinLayout, params().dump());
  const auto width = r.get<uint64_t>();
  const auto total = r.get<double>(), variance = r.get<double>();
  const auto tick = r.get<uint64_t>();
  const auto values = r.get<uint64_t>(), detections = r.get<uint64_t>(),
             shrinks = r.get<uint64_t>();
  const uint64_t n = r.get_count(16);
  if (n < 1 || n > 64) r.fail("holds " + std::to_string(n) + " bucket rows");
  std::vector<Row> rows;
  uint64_t summarised = 0;
  for (uint64_t i = 0; i < n; ++i) {
    std::vector<double> totals = r.get_doubles(), variances = r.get_doubles();
    if (totals.size() != variances.size() || totals.size() > params_.max_buckets) {
      r.fail("holds a bucket row of " + std::to_string(totals.size()) + " buckets (max_buckets " +
             std::to_string(params_.max_buckets) + ")");
    }
    summarised += totals.size() << i;
    Row row{static_cast<uint32_t>(totals.size()), std::vector<double>(params_.max_buckets + 1),
            std::vector<double>(params_.max_buckets + 1)};
    std::copy(totals.begin(), totals.end(), row.total.begin());
    std::copy(variances.begin(), variances.end(), row.variance.begin());
    rows.push_back(std::move(row));
  }
  r.expect_end();
  if (summarised != width) {
    r.fail("holds buckets of " + std::to_string(summarised) + " values for a window of " +
           std::to_string(width));
  }
  rows_ = std::move(rows);
  width_ = width;
  total_ = total, variance_ = variance;
  tick_ = tick;
  values_ = values, detections_ = detections, shrinks_ = shrinks;
}

}  // namespace tensair::drift
