#include "tensair/drift/detector.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "drift/param_reader.hpp"
#include "tensair/common/error.hpp"
#include "tensair/drift/adwin.hpp"
#include "tensair/drift/optwin.hpp"
#include "tensair/drift/page_hinkley.hpp"

namespace tensair::drift {

const char* to_string(Input input) {
  switch (input) {
    case Input::kLoss:
      return "loss";
    case Input::kError:
      return "error";
    case Input::kCorrect:
      return "correct";
  }
  return "?";
}

const char* to_string(Direction direction) {
  switch (direction) {
    case Direction::kIncrease:
      return "increase";
    case Direction::kDecrease:
      return "decrease";
    case Direction::kBoth:
      return "both";
  }
  return "?";
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

namespace {

// A number in full, or a short form for messages.
std::string show(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string canonical_name(const std::string& name) {
  if (name == "optwin") return "optwin";
  if (name == "adwin") return "adwin";
  if (name == "page-hinkley" || name == "page_hinkley" || name == "ph") return "page-hinkley";
  throw ConfigError("unknown detector \"" + name + "\" (known: " + join(detector_names()) + ")");
}

}  // namespace

ParamReader::ParamReader(std::string detector, const ParamMap& params,
                         const std::vector<std::string>& known)
    : detector_(std::move(detector)), params_(params) {
  for (const auto& [key, value] : params_) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      throw ConfigError("unknown parameter \"" + key + "\" for " + detector_ +
                        " (known: " + join(known) + ")");
    }
  }
}

void ParamReader::fail(const std::string& key, const std::string& message) const {
  throw ConfigError(detector_ + " parameter \"" + key + "\": " + message);
}

// The characters of a number in `text`: without surrounding blanks and a leading '+'.
static std::pair<const char*, const char*> number_text(const std::string& text) {
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  while (begin < end && (*begin == ' ' || *begin == '\t')) ++begin;
  while (end > begin && (end[-1] == ' ' || end[-1] == '\t')) --end;
  if (begin < end && *begin == '+') ++begin;
  return {begin, end};
}

double ParamReader::number(const std::string& key, double def, double lo, double hi, bool lo_open,
                           bool hi_open) const {
  auto it = params_.find(key);
  if (it == params_.end()) return def;
  const std::string& text = it->second;
  double v = 0;
  auto [begin, end] = number_text(text);
  auto [ptr, ec] = std::from_chars(begin, end, v);
  if (ec != std::errc() || ptr != end || begin == end || !std::isfinite(v)) {
    fail(key, "expected a number, got \"" + text + "\"");
  }
  bool below = lo_open ? !(v > lo) : !(v >= lo);
  bool above = hi_open ? !(v < hi) : !(v <= hi);
  if (below || above) {
    std::string range = std::string(lo_open ? "(" : "[") + show(lo) + ", " +
                        (std::isinf(hi) ? std::string("inf") : show(hi)) + (hi_open ? ")" : "]");
    fail(key, "must be in " + range + ", got " + text);
  }
  return v;
}

uint64_t ParamReader::integer(const std::string& key, uint64_t def, uint64_t lo,
                              uint64_t hi) const {
  auto it = params_.find(key);
  if (it == params_.end()) return def;
  const std::string& text = it->second;
  uint64_t v = 0;
  auto [begin, end] = number_text(text);
  auto [ptr, ec] = std::from_chars(begin, end, v);
  if (ec != std::errc() || ptr != end || begin == end) {
    fail(key, "expected a whole number, got \"" + text + "\"");
  }
  if (v < lo || v > hi) {
    fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + text);
  }
  return v;
}

size_t ParamReader::choice(const std::string& key, size_t def,
                           const std::vector<std::string>& choices) const {
  auto it = params_.find(key);
  if (it == params_.end()) return def;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (choices[i] == it->second) return i;
  }
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "\"" : ", \"") + c + "\"";
  fail(key, "expected one of " + list + ", got \"" + it->second + "\"");
}

std::string ParamReader::text(const std::string& key, const std::string& def) const {
  auto it = params_.find(key);
  return it == params_.end() ? def : it->second;
}

CommonParams ParamReader::common() const {
  CommonParams c;
  c.input = static_cast<Input>(choice("input", 0, {"loss", "error", "correct"}));
  c.direction = static_cast<Direction>(choice("direction", 0, {"increase", "decrease", "both"}));
  return c;
}

namespace detail {

void throw_bad_input(const char* detector, Input input, double value) {
  if (input == Input::kLoss) {
    throw DataError(std::string(detector) + ": input value is " + show(value) +
                    " (a loss must be a finite number)");
  }
  throw DataError(std::string(detector) + ": input value is " + show(value) + " (input = \"" +
                  to_string(input) + "\" takes only 0 or 1)");
}

}  // namespace detail

std::vector<std::string> detector_names() { return {"optwin", "adwin", "page-hinkley"}; }

std::vector<std::string> known_parameters(const std::string& name) {
  std::string n = canonical_name(name);
  if (n == "optwin") return OptwinParams::keys();
  if (n == "adwin") return AdwinParams::keys();
  return PageHinkleyParams::keys();
}

std::unique_ptr<Detector> make_detector(const std::string& name, const ParamMap& params) {
  std::string n = canonical_name(name);
  if (n == "optwin") return std::make_unique<Optwin>(OptwinParams::parse(params));
  if (n == "adwin") return std::make_unique<Adwin>(AdwinParams::parse(params));
  return std::make_unique<PageHinkley>(PageHinkleyParams::parse(params));
}

}  // namespace tensair::drift
