// Path helpers for job files and data sets.
#pragma once

#include <filesystem>
#include <string>

namespace tensair {

// The data-set folder: $TENSAIR_DATA if set, else ../shared/data beside the source tree.
std::filesystem::path data_dir();

// Expands ${NAME} from the environment; ${TENSAIR_DATA} falls back to data_dir(). An unknown
// variable is a ConfigError naming it.
std::string expand_vars(const std::string& text);

// Expands variables, then makes a relative path absolute against `base` (a directory).
std::filesystem::path resolve_path(const std::string& text, const std::filesystem::path& base);

}  // namespace tensair
