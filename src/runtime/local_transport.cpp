// LocalCluster: N ranks in one process, for tests.
//
// Every frame is packed into one buffer exactly as it would cross the wire and validated on
// arrival, then handed to the destination rank's handler on that rank's own delivery thread
// (its "progress thread"), in per-source FIFO order (one queue per destination).
//
// Shutdown mirrors the MPI transport: it returns on every rank once all ranks have called it
// and no frame is queued or being handled anywhere.
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "tensair/common/error.hpp"
#include "tensair/runtime/transport.hpp"

namespace tensair::runtime {

struct LocalCluster::Hub {
  struct Raw {
    int src = 0;
    InFrame frame;                // a packed frame, or
    std::vector<std::byte> bytes;  // raw bytes injected by a test
    bool raw = false;
  };

  std::mutex mu;
  std::condition_variable cv;
  int world = 0;
  int in_shutdown = 0;  // ranks that called shutdown()
  int in_flight = 0;    // frames queued or being handled
  uint64_t generation = 0;  // completed shutdowns (runs)
  std::vector<std::deque<Raw>> queues;
  std::vector<bool> stop;
  std::vector<std::unique_ptr<Transport>> transports;
};

namespace {

class LocalTransport final : public Transport {
 public:
  LocalTransport(LocalCluster::Hub* hub, int rank) : hub_(hub), rank_(rank) {}

  ~LocalTransport() override {
    if (thread_.joinable()) {
      {
        std::lock_guard lock(hub_->mu);
        hub_->stop[static_cast<size_t>(rank_)] = true;
      }
      hub_->cv.notify_all();
      thread_.join();
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return hub_->world; }
  size_t max_frame_bytes() const override { return size_t{4} << 30; }

  void start(FrameHandler on_frame, ErrorHandler on_error) override {
    TENSAIR_ASSERT(!thread_.joinable(), "start() while running");
    on_frame_ = std::move(on_frame);
    on_error_ = std::move(on_error);
    {
      std::lock_guard lock(hub_->mu);
      hub_->stop[static_cast<size_t>(rank_)] = false;
    }
    thread_ = std::thread([this] { loop(); });
  }

  void send(int dst, OutFrame frame) override {
    if (dst < 0 || dst >= hub_->world) {
      throw TransportError("send to rank " + std::to_string(dst) + " of a " +
                           std::to_string(hub_->world) + "-rank job");
    }
    InFrame packed = pack_frame(frame, rank_);
    frames_sent_++;
    bytes_sent_ += packed.size;
    {
      std::lock_guard lock(hub_->mu);
      hub_->queues[static_cast<size_t>(dst)].push_back({rank_, std::move(packed), {}, false});
      hub_->in_flight++;
    }
    hub_->cv.notify_all();
  }

  void send_raw(int dst, std::vector<std::byte> bytes) override {
    {
      std::lock_guard lock(hub_->mu);
      LocalCluster::Hub::Raw raw;
      raw.src = rank_;
      raw.bytes = std::move(bytes);
      raw.raw = true;
      hub_->queues.at(static_cast<size_t>(dst)).push_back(std::move(raw));
      hub_->in_flight++;
    }
    hub_->cv.notify_all();
  }

  void shutdown() override {
    {
      std::unique_lock lock(hub_->mu);
      const uint64_t generation = hub_->generation;
      hub_->in_shutdown++;
      hub_->cv.notify_all();
      hub_->cv.wait(lock, [&] {
        return hub_->generation != generation ||
               (hub_->in_shutdown == hub_->world && hub_->in_flight == 0);
      });
      if (hub_->generation == generation) {
        // First to see everyone drained: close this round for all (a barrier).
        hub_->generation++;
        hub_->in_shutdown = 0;
        hub_->cv.notify_all();
      }
      hub_->stop[static_cast<size_t>(rank_)] = true;
    }
    hub_->cv.notify_all();
    thread_.join();
  }

  TransportStats stats() const override {
    return {frames_sent_.load(), frames_received_.load(), bytes_sent_.load(),
            bytes_received_.load()};
  }

 private:
  void loop() {
    for (;;) {
      LocalCluster::Hub::Raw item;
      {
        std::unique_lock lock(hub_->mu);
        auto& q = hub_->queues[static_cast<size_t>(rank_)];
        hub_->cv.wait(lock, [&] { return hub_->stop[static_cast<size_t>(rank_)] || !q.empty(); });
        if (q.empty()) return;
        item = std::move(q.front());
        q.pop_front();
      }
      try {
        InFrame frame;
        if (item.raw) {
          frame.size = item.bytes.size();
          frame.buffer = allocate_aligned(frame.size);
          if (frame.size) std::memcpy(frame.buffer.get(), item.bytes.data(), frame.size);
        } else {
          frame = std::move(item.frame);
        }
        frame.header =
            read_packed_header(frame.buffer.get(), frame.size, item.src, max_frame_bytes());
        frame.src_rank = item.src;
        frames_received_++;
        bytes_received_ += frame.size;
        on_frame_(std::move(frame));
      } catch (const std::exception& e) {
        if (on_error_) on_error_(e.what());
      }
      {
        std::lock_guard lock(hub_->mu);
        hub_->in_flight--;
      }
      hub_->cv.notify_all();
    }
  }

  LocalCluster::Hub* hub_;
  int rank_;
  FrameHandler on_frame_;
  ErrorHandler on_error_;
  std::thread thread_;
  std::atomic<uint64_t> frames_sent_{0}, frames_received_{0}, bytes_sent_{0}, bytes_received_{0};
};

}  // namespace

LocalCluster::LocalCluster(int world_size) : hub_(std::make_shared<Hub>()) {
  TENSAIR_ASSERT(world_size >= 1, "a cluster needs at least one rank");
  hub_->world = world_size;
  hub_->queues.resize(static_cast<size_t>(world_size));
  hub_->stop.assign(static_cast<size_t>(world_size), false);
  for (int r = 0; r < world_size; ++r) {
    hub_->transports.push_back(std::make_unique<LocalTransport>(hub_.get(), r));
  }
}

LocalCluster::~LocalCluster() { hub_->transports.clear(); }

int LocalCluster::world_size() const { return hub_->world; }

Transport& LocalCluster::transport(int rank) { return *hub_->transports.at(static_cast<size_t>(rank)); }

}  // namespace tensair::runtime
