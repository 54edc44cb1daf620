// Clean stops on SIGINT, SIGTERM and SIGUSR1.
//
// install_stop_signals() makes the first of these signals only set a flag, which the executor
// polls (ExecutorOptions::stop_signal): the job then stops its sources, drains, takes a last
// checkpoint, flushes its sinks and ends with exit code 128 + the signal number (130 for SIGINT,
// 143 for SIGTERM, 138 for SIGUSR1). A second signal ends the process at once with that code.
// SIGUSR1 is there for mpirun, which forwards it to every rank (it turns SIGINT and SIGTERM into
// its own kill sequence instead: docs/fault-tolerance.md).
#pragma once

#include <atomic>

namespace tensair {

// Installs the handlers (idempotent) and returns the flag: 0, or the first signal's number.
const std::atomic<int>& install_stop_signals();

// "SIGINT", "SIGTERM", "SIGUSR1", or "signal N".
const char* signal_name(int signal);

}  // namespace tensair
