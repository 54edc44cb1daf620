#include "tensair/common/stop_signals.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <iterator>

namespace tensair {
namespace {

std::atomic<int> g_stop{0};

// Async-signal-safe: an atomic store, write(2) and _exit(2) only.
void on_signal(int sig) {
  int expected = 0;
  if (g_stop.compare_exchange_strong(expected, sig)) {
    static const char msg[] = "tensair: stopping cleanly (a second signal exits at once)\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    return;
  }
  _exit(128 + sig);
}

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGUSR1};

void install(struct sigaction* previous) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < std::size(kStopSignals); ++i) {
    sigaction(kStopSignals[i], &sa, previous ? &previous[i] : nullptr);
  }
}

}  // namespace

struct ScopedStopSignals::Saved {
  struct sigaction previous[std::size(kStopSignals)];
};

ScopedStopSignals::ScopedStopSignals() : saved_(new Saved) {
  g_stop.store(0);
  install(saved_->previous);
}

ScopedStopSignals::~ScopedStopSignals() {
  for (size_t i = 0; i < std::size(kStopSignals); ++i) {
    sigaction(kStopSignals[i], &saved_->previous[i], nullptr);
  }
  delete saved_;
}

const std::atomic<int>& ScopedStopSignals::flag() const { return g_stop; }

const std::atomic<int>& install_stop_signals() {
  static const bool installed = [] {
    install(nullptr);
    return true;
  }();
  (void)installed;
  return g_stop;
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "a signal";
  }
}

}  // namespace tensair
