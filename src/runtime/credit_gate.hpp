// CreditGate: the sender's side of credit-based flow control on one channel.
//
// A channel may have at most `window` bytes in flight (sent but not yet consumed by the
// receiving operator). acquire() blocks until the bytes fit; a single message larger than the
// window is let through when nothing else is in flight, so any size can be sent. The receiver
// gives bytes back with release() once it has processed them. cancel() wakes every waiter,
// which then throws Cancelled.
//
// Senders that must never block (the model exchange, on a cycle) use try_acquire(): it takes
// the credit only if it fits at once, and otherwise remembers that the sender is waiting; the
// next release() after which the refused size fits calls the on-available callback (once per
// refusal, outside the gate's lock). force_acquire() takes credit whatever is in flight, for the
// few messages that must go regardless (bounded by the protocol that sends them).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
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
    auto fits = [&] { return cancelled_ || fits_locked(bytes); };
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

  // Reserves `bytes` if they fit now; otherwise reserves nothing, returns false, and arms the
  // on-available callback for this size.
  bool try_acquire(size_t bytes) {
    std::lock_guard lock(mu_);
    if (cancelled_) throw Cancelled();
    if (fits_locked(bytes)) {
      in_flight_ += bytes;
      return true;
    }
    waiting_for_ = bytes;
    notify_armed_ = true;
    return false;
  }

  // Reserves `bytes` whatever is in flight.
  void force_acquire(size_t bytes) {
    std::lock_guard lock(mu_);
    in_flight_ += bytes;
  }

  void release(size_t bytes) {
    bool notify = false;
    {
      std::lock_guard lock(mu_);
      in_flight_ = bytes > in_flight_ ? 0 : in_flight_ - bytes;
      if (notify_armed_ && fits_locked(waiting_for_)) {
        notify_armed_ = false;
        notify = true;
      }
    }
    cv_.notify_all();
    if (notify && on_available_) on_available_();
  }

  void cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
  }

  // Set before the channel is used.
  void set_on_available(std::function<void()> fn) { on_available_ = std::move(fn); }

  size_t window() const { return window_; }
  size_t in_flight() const {
    std::lock_guard lock(mu_);
    return in_flight_;
  }

 private:
  bool fits_locked(size_t bytes) const { return in_flight_ == 0 || in_flight_ + bytes <= window_; }

  const size_t window_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t in_flight_ = 0;       // guarded by mu_
  bool cancelled_ = false;     // guarded by mu_
  bool notify_armed_ = false;  // guarded by mu_
  size_t waiting_for_ = 0;     // guarded by mu_
  std::function<void()> on_available_;
};

}  // namespace tensair::runtime
