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
// A sender that chooses among several channels (least_loaded routing) reads free_bytes() and
// fits() of each, and waits on a CreditListener shared by their gates: every release() and
// cancel() of any of them bumps the listener's generation and wakes its waiter.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "tensair/common/error.hpp"

namespace tensair::runtime {

// Wakes a sender that waits for credit on any of several gates.
class CreditListener {
 public:
  // The count of releases and cancels so far; read it before looking at the gates.
  uint64_t generation() const {
    std::lock_guard lock(mu_);
    return generation_;
  }

  // Blocks until the generation differs from `seen`, i.e. until a gate released credit or was
  // cancelled after the caller read `seen`.
  void wait_past(uint64_t seen) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return generation_ != seen; });
  }

  void notify() {
    {
      std::lock_guard lock(mu_);
      ++generation_;
    }
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;  // guarded by mu_
};

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
    if (listener_) listener_->notify();
    if (notify && on_available_) on_available_();
  }

  void cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
    if (listener_) listener_->notify();
  }

  // Set before the channel is used.
  void set_on_available(std::function<void()> fn) { on_available_ = std::move(fn); }
  void set_listener(std::shared_ptr<CreditListener> listener) { listener_ = std::move(listener); }

  // Whether `bytes` would be admitted now, and the credit not in flight (0 when over).
  bool fits(size_t bytes) const {
    std::lock_guard lock(mu_);
    return fits_locked(bytes);
  }
  size_t free_bytes() const {
    std::lock_guard lock(mu_);
    return in_flight_ >= window_ ? 0 : window_ - in_flight_;
  }
  bool cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

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
  std::shared_ptr<CreditListener> listener_;
};

}  // namespace tensair::runtime
