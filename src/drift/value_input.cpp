#include "tensair/drift/value_input.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "tensair/common/error.hpp"

namespace tensair::drift {

bool parse_detector_value(std::string_view text, const std::string& where, size_t line_no,
                          double& out) {
  size_t b = 0, e = text.size();
  while (b < e && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r')) ++b;
  while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r')) --e;
  if (b == e) return false;
  const char* first = text.data() + b;
  const char* last = text.data() + e;
  if (*first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, last, out);
  const std::string shown(text.substr(b, std::min<size_t>(e - b, 60)));
  const std::string at = where + ":" + std::to_string(line_no) + ": ";
  if (ec != std::errc() || ptr != last || first == last) {
    throw ConfigError(at + "not a number: " + shown);
  }
  if (!std::isfinite(out)) throw ConfigError(at + "not a finite number: " + shown);
  return true;
}

}  // namespace tensair::drift
