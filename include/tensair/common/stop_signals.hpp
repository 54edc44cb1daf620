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

// The same handlers for the lifetime of one object, for a host program that runs several jobs
// and has handlers of its own (the Python module: Python's SIGINT handler raises
// KeyboardInterrupt). The constructor clears the flag and installs the handlers; the destructor
// puts the previous handlers back. One at a time, on the main thread.
class ScopedStopSignals {
 public:
  ScopedStopSignals();
  ~ScopedStopSignals();
  ScopedStopSignals(const ScopedStopSignals&) = delete;
  ScopedStopSignals& operator=(const ScopedStopSignals&) = delete;
  const std::atomic<int>& flag() const;

 private:
  struct Saved;
  Saved* saved_;
};

// "SIGINT", "SIGTERM", "SIGUSR1", or "signal N".
const char* signal_name(int signal);

}  // namespace tensair
