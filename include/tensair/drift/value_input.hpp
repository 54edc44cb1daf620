// The input of `tensair detect`: one number per line (blank lines skipped), parsed strictly.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace tensair::drift {

// One line: true with `out` set for a number (surrounding blanks and a leading '+' allowed),
// false for a blank line. Anything else — text, a number followed by more, nan, inf, a value
// out of double's range — throws ConfigError "WHERE:LINE: not a (finite) number: TEXT" with
// the text cut to 60 characters.
bool parse_detector_value(std::string_view text, const std::string& where, size_t line_no,
                          double& out);

}  // namespace tensair::drift
