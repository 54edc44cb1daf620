#include "tensair/common/paths.hpp"

#include <cstdlib>

#include "tensair/common/error.hpp"

#ifndef TENSAIR_DEFAULT_DATA_DIR
#define TENSAIR_DEFAULT_DATA_DIR "../shared/data"
#endif

namespace tensair {

std::filesystem::path data_dir() {
  if (const char* env = std::getenv("TENSAIR_DATA"); env && *env) return env;
  return TENSAIR_DEFAULT_DATA_DIR;
}

std::string expand_vars(const std::string& text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 2, "${") == 0) {
      size_t end = text.find('}', i + 2);
      if (end == std::string::npos) {
        throw ConfigError("unterminated ${ in \"" + text + "\"");
      }
      std::string name = text.substr(i + 2, end - i - 2);
      const char* value = std::getenv(name.c_str());
      if (value) {
        out += value;
      } else if (name == "TENSAIR_DATA") {
        out += data_dir().string();
      } else {
        throw ConfigError("environment variable ${" + name + "} in \"" + text + "\" is not set");
      }
      i = end + 1;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::filesystem::path resolve_path(const std::string& text, const std::filesystem::path& base) {
  std::filesystem::path p = expand_vars(text);
  if (p.is_relative() && !base.empty()) p = base / p;
  return p.lexically_normal();
}

}  // namespace tensair
