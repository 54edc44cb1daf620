// CreditGate: the sender's side of credit-based flow control on one channel.
//
// A channel may have at most `window` bytes in flight (sent but not yet consumed by the
// receiving operator). acquire() blocks until the bytes fit; a single message larger than the
// window is let through when nothing else is in flight, so any size can be sent. The receiver
// gives bytes back with release() once it has processed them. cancel() wakes every waiter,
// which then throws Cancelled.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

#include "tensair/common/error.hpp"

namespace tensair::runtime {

class CreditGate {
 public:
  explicit CreditGate(size_t window) : window_(window) {}

  // Blocks until `bytes` may be sent and reserves them. Returns how long it waited (zero when
  // credit was available at once). Throws Cancelled after cancel().
  std::chrono::nanoseconds acquire(size_t bytes) {
    std::unique_lock lock(mu_);
    auto fits = [&] { return cancelled_ || in_flight_ == 0 || in_flight_ + bytes <= window_; };
    std::chrono::nanoseconds waited{0};
    if (!fits()) {
      auto start = std::chrono::steady_clock::now();
      cv_.wait(lock, fits);
      waited = std::chrono::steady_clock::now() - start;
    }
    if (cancelled_) throw Cancelled();
    in_flight_ += bytes;
    return waited;
  }

  void release(size_t bytes) {
    {
      std::lock_guard lock(mu_);
      in_flight_ = bytes > in_flight_ ? 0 : in_flight_ - bytes;
    }
    cv_.notify_all();
  }

  void cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
  }

  size_t window() const { return window_; }
  size_t in_flight() const {
    std::lock_guard lock(mu_);
    return in_flight_;
  }

 private:
  const size_t window_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t in_flight_ = 0;   // guarded by mu_
  bool cancelled_ = false;  // guarded by mu_
};

}  // namespace tensair::runtime
