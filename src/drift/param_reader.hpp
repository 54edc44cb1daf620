// ParamReader: checked reading of a detector's text parameters. Internal to src/drift.
#pragma once

#include <string>
#include <vector>

#include "tensair/drift/detector.hpp"

namespace tensair::drift {

class ParamReader {
 public:
  // Throws ConfigError for the first key not in `known` (which should list "input" and
  // "direction" too).
  ParamReader(std::string detector, const ParamMap& params, const std::vector<std::string>& known);

  bool has(const std::string& key) const { return params_.count(key) != 0; }
  // A finite number; lo/hi bounds are checked (exclusive when the flag says so).
  double number(const std::string& key, double def, double lo, double hi, bool lo_open = false,
                bool hi_open = false) const;
  // A whole number in [lo, hi].
  uint64_t integer(const std::string& key, uint64_t def, uint64_t lo, uint64_t hi) const;
  // One of `choices`; returns its index.
  size_t choice(const std::string& key, size_t def, const std::vector<std::string>& choices) const;
  std::string text(const std::string& key, const std::string& def) const;
  CommonParams common() const;

  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

 private:
  std::string detector_;
  const ParamMap& params_;
};

// "a, b, c"
std::string join(const std::vector<std::string>& items);

}  // namespace tensair::drift
