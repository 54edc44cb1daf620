// Logging: one spdlog logger named "tensair" writing to stderr as
//   tensair: [rank 1] warning: message
// The rank prefix appears once the runtime knows the rank (set_log_rank). Level from the
// TENSAIR_LOG environment variable (trace|debug|info|warn|error|off), default info.
#pragma once

#include <spdlog/spdlog.h>

namespace tensair {

// The project logger; created on first use. Thread-safe.
spdlog::logger& log();

// Adds "[rank R] " to every line from now on when world_size > 1.
void set_log_rank(int rank, int world_size);

}  // namespace tensair
