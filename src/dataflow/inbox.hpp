// Inbox: the queue in front of one operator instance.
//
// Items arrive from local senders (their threads) and from the progress thread (remote
// senders); the instance's thread pops them. Each input port has its own FIFO of the items its
// channels deliver in order (batches, end-of-stream markers, checkpoint barriers), so
// per-channel order is kept. pop() serves, among ports that are not paused, the highest
// priority first and, at equal priority, the item that arrived first. Control items that belong
// to no port (the end of a cycle, checkpoint triggers and completions, credit coming back) are
// served before anything else, in order.
//
// Checkpoint barriers overtake: a barrier goes to the head of its port's queue (a paused port
// still serves a barrier at its head), ahead of the batches of its channel that were queued
// before it, and takes a reference to each of them along (InboxItem::overtaken), and notes an
// end of stream it overtook (a barrier can follow the end of a channel: a finished sender still
// forwards later checkpoints' barriers). What it overtook is in flight in the cut: the instance
// saves it with its snapshot, and still processes it afterwards as usual. So a checkpoint never
// waits for a deep queue to drain, and what it records is bounded by the credit.
//
// The inbox never blocks a pusher: credit-based flow control bounds what senders may push.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "tensair/dataflow/batch.hpp"

namespace tensair::dataflow {

struct InboxItem {
  enum class Kind : uint8_t {
    // Port items, in channel order:
    kData,         // a batch from `channel`
    kEndOfStream,  // `channel` has ended
    kBarrier,      // checkpoint `id`'s barrier on `channel`
    // Control items:
    kFinish,              // the instance's cycle has terminated: finish now
    kTrigger,             // the rank learned of checkpoint `id`
    kCheckpointComplete,  // checkpoint `id` is complete on every rank
    kCredit,              // output `port` has credit again towards receiving instance `id`
  };
  Kind kind = Kind::kData;
  int port = 0;
  uint32_t channel = 0;
  BatchPtr batch;
  size_t bytes = 0;
  uint64_t id = 0;
  bool restored = false;  // re-delivered from a checkpoint: no credit to return for it
  std::vector<BatchPtr> overtaken;  // barrier: the batches of its channel queued before it
  bool overtook_end = false;        // barrier: ... and the channel's end of stream
  uint64_t stamp = 0;     // arrival order, set by push

  bool on_port() const {
    return kind == Kind::kData || kind == Kind::kEndOfStream || kind == Kind::kBarrier;
  }
};

class Inbox {
 public:
  explicit Inbox(std::vector<int> port_priorities)
      : priorities_(std::move(port_priorities)),
        queues_(priorities_.size()),
        paused_(priorities_.size(), false) {}

  void push(InboxItem item) {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return;
      item.stamp = next_stamp_++;
      if (item.kind == InboxItem::Kind::kBarrier) {
        auto& q = queues_[static_cast<size_t>(item.port)];
        for (const InboxItem& queued : q) {
          if (queued.channel != item.channel) continue;
          if (queued.kind == InboxItem::Kind::kData) item.overtaken.push_back(queued.batch);
          if (queued.kind == InboxItem::Kind::kEndOfStream) item.overtook_end = true;
        }
        item.stamp = 0;  // first among the ports of its priority too
        q.push_front(std::move(item));
        depth_++;
      } else if (item.on_port()) {
        queues_[static_cast<size_t>(item.port)].push_back(std::move(item));
        depth_++;
      } else {
        control_.push_back(std::move(item));
      }
    }
    cv_.notify_one();
  }

  enum class Pop {
    kItem,       // `out` holds the next item
    kTimeout,    // the deadline passed first
    kCancelled,  // the job is stopping
  };

  // Waits for the next servable item, up to `deadline` when given.
  Pop pop(InboxItem& out, std::optional<std::chrono::steady_clock::time_point> deadline) {
    std::unique_lock lock(mu_);
    for (;;) {
      if (cancelled_) return Pop::kCancelled;
      if (!control_.empty()) {
        out = std::move(control_.front());
        control_.pop_front();
        return Pop::kItem;
      }
      int best = -1;
      for (size_t p = 0; p < queues_.size(); ++p) {
        if (!servable_port_locked(p)) continue;
        if (best < 0 || priorities_[p] > priorities_[static_cast<size_t>(best)] ||
            (priorities_[p] == priorities_[static_cast<size_t>(best)] &&
             queues_[p].front().stamp < queues_[static_cast<size_t>(best)].front().stamp)) {
          best = static_cast<int>(p);
        }
      }
      if (best >= 0) {
        out = std::move(queues_[static_cast<size_t>(best)].front());
        queues_[static_cast<size_t>(best)].pop_front();
        depth_--;
        return Pop::kItem;
      }
      if (deadline) {
        if (cv_.wait_until(lock, *deadline) == std::cv_status::timeout) {
          // Re-check once: an item may have arrived exactly at the deadline.
          if (!cancelled_ && control_.empty() && !servable_locked()) return Pop::kTimeout;
        }
      } else {
        cv_.wait(lock);
      }
    }
  }

  void pause(int port) {
    std::lock_guard lock(mu_);
    paused_[static_cast<size_t>(port)] = true;
  }

  void resume(int port) {
    {
      std::lock_guard lock(mu_);
      paused_[static_cast<size_t>(port)] = false;
    }
    cv_.notify_one();
  }

  // Wakes the consumer; every later pop() returns kCancelled and pushes are dropped.
  void cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
  }

  // Port items waiting, over all ports.
  size_t depth() const {
    std::lock_guard lock(mu_);
    return depth_;
  }

  // Batches waiting on one port (markers and barriers are not counted).
  size_t queued(int port) const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const InboxItem& i : queues_[static_cast<size_t>(port)])
      n += i.kind == InboxItem::Kind::kData ? 1 : 0;
    return n;
  }

 private:
  bool servable_port_locked(size_t p) const {
    if (queues_[p].empty()) return false;
    return !paused_[p] || queues_[p].front().kind == InboxItem::Kind::kBarrier;
  }
  bool servable_locked() const {
    for (size_t p = 0; p < queues_.size(); ++p) {
      if (servable_port_locked(p)) return true;
    }
    return false;
  }

  const std::vector<int> priorities_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<InboxItem>> queues_;  // guarded by mu_
  std::deque<InboxItem> control_;              // guarded by mu_
  std::vector<bool> paused_;                   // guarded by mu_
  size_t depth_ = 0;                           // guarded by mu_
  uint64_t next_stamp_ = 0;                    // guarded by mu_
  bool cancelled_ = false;                     // guarded by mu_
};

}  // namespace tensair::dataflow
