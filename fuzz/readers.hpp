// The four reader targets (csv.cpp, text.cpp, cifar10.cpp, tabular.cpp) share one shape: the
// first input byte picks one of a few job-file settings of the reader, the rest is the file it
// reads (or, for two-file readers, the files split by a "--8<--" line). Every record must be
// emitted or become a dead letter; nothing else may escape but a tensair::Error.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

namespace tensair::fuzz {

// Runs the source in `configs[data[0] % configs.size()]` (a job file whose source is named
// "src") after writing the rest of the input to the scratch files named in `files` (split by
// "--8<--" lines when there are several).
inline void run_reader(const uint8_t* data, size_t size, const std::vector<std::string>& configs,
                       const std::vector<std::string>& files) {
  if (size == 0) return;
  const std::string& config = configs[data[0] % configs.size()];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto pieces = split_pieces(rest, files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    write_scratch(files[i], i < pieces.size() ? pieces[i] : std::string_view());
  }
  tolerate_errors([&] { run_source(config); });
}

// A seed: the config index byte, then the files joined by "--8<--" lines.
inline std::string reader_seed(uint8_t config, const std::vector<std::string>& files) {
  std::string s(1, static_cast<char>(config));
  for (size_t i = 0; i < files.size(); ++i) s += (i ? "\n--8<--\n" : "") + files[i];
  return s;
}

}  // namespace tensair::fuzz
