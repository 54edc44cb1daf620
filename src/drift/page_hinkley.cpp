#include "tensair/drift/page_hinkley.hpp"

#include <algorithm>
#include <limits>

#include "drift/detector_state.hpp"
#include "drift/param_reader.hpp"
#include "tensair/common/error.hpp"

namespace tensair::drift {

std::vector<std::string> PageHinkleyParams::keys() {
  return {"min_instances", "delta", "threshold", "alpha", "input", "direction"};
}

PageHinkleyParams PageHinkleyParams::parse(const ParamMap& params) {
  ParamReader r("page-hinkley", params, keys());
  PageHinkleyParams p;
  p.common = r.common();
  p.min_instances = static_cast<uint32_t>(r.integer("min_instances", p.min_instances, 1, 1u << 30));
  const double inf = std::numeric_limits<double>::infinity();
  p.delta = r.number("delta", p.delta, 0, inf, false, true);
  p.threshold = r.number("threshold", p.threshold, 0, inf, true, true);
  p.alpha = r.number("alpha", p.alpha, 0, 1, true, false);
  return p;
}

nlohmann::json PageHinkleyParams::to_json() const {
  return {{"min_instances", min_instances},   {"delta", delta},
          {"threshold", threshold},           {"alpha", alpha},
          {"input", to_string(common.input)}, {"direction", to_string(common.direction)}};
}

PageHinkley::PageHinkley(PageHinkleyParams params) : params_(std::move(params)) {
  if (params_.min_instances < 1 || !(params_.delta >= 0) || !(params_.threshold > 0) ||
      !(params_.alpha > 0 && params_.alpha <= 1)) {
    throw ConfigError(
        "page-hinkley: bad parameters (need min_instances >= 1, delta >= 0, "
        "threshold > 0, 0 < alpha <= 1)");
  }
  up_ = params_.common.direction != Direction::kDecrease;
  down_ = params_.common.direction != Direction::kIncrease;
  clear();
}

void PageHinkley::clear() {
  count_ = 0;
  mean_ = sum_up_ = sum_down_ = 0;
}

void PageHinkley::reset() {
  clear();
  values_ = detections_ = 0;
}

bool PageHinkley::update(double value) {
  const double x = detail::checked_input(value, params_.common.input, "page-hinkley");
  ++values_;
  ++count_;
  mean_ += (x - mean_) / static_cast<double>(count_);
  const double dev = x - mean_;
  if (up_) sum_up_ = std::max(0.0, params_.alpha * sum_up_ + dev - params_.delta);
  if (down_) sum_down_ = std::max(0.0, params_.alpha * sum_down_ - dev - params_.delta);
  if (count_ < params_.min_instances) return false;
  if (sum_up_ >= params_.threshold || sum_down_ >= params_.threshold) {
    ++detections_;
    clear();
    return true;
  }
  return false;
}

nlohmann::json PageHinkley::state() const {
  return {{"values", values_}, {"detections", detections_}, {"count", count_},
          {"mean", mean_},     {"sum_increase", sum_up_},   {"sum_decrease", sum_down_}};
}

namespace {
constexpr uint32_t kPageHinkleyLayout = 1;
}  // namespace

std::string PageHinkley::save_state() const {
  detail::DetectorStateWriter w(name(), kPageHinkleyLayout, params().dump());
  w.put<uint64_t>(count_);
  w.put<double>(mean_);
  w.put<double>(sum_up_);
  w.put<double>(sum_down_);
  w.put<uint64_t>(values_);
  w.put<uint64_t>(detections_);
  return w.take();
}

void PageHinkley::load_state(std::string_view state) {
  detail::DetectorStateReader r(state, name(), kPageHinkleyLayout, params().dump());
  const auto count = r.get<uint64_t>();
  const auto mean = r.get<double>(), up = r.get<double>(), down = r.get<double>();
  const auto values = r.get<uint64_t>(), detections = r.get<uint64_t>();
  r.expect_end();
  if (count > values || !(up >= 0) || !(down >= 0)) {
    r.fail("holds impossible sums (" + std::to_string(count) + " values since the last reset of " +
           std::to_string(values) + ")");
  }
  count_ = count;
  mean_ = mean, sum_up_ = up, sum_down_ = down;
  values_ = values, detections_ = detections;
}

}  // namespace tensair::drift
