// MpiTransport: frames over MPI point-to-point, every MPI call on one progress thread.
//
// Invariants (the progress thread is the only thread touching MPI and the fields marked P):
// - Frames to one destination are posted in the order send() queued them; MPI's non-overtaking
//   rule then delivers header messages (tag kFrameTag) in order, and the part messages of a
//   frame (tag kPartTag) in order after the ones of the previous frame from the same source.
// - Frames from one source are handed to the handler strictly in arrival order, even when a
//   later small frame finishes receiving before an earlier large one (per-source FIFO).
// - A frame whose total size is at most pack_threshold travels as one message (header, meta,
//   parts packed). A larger one travels as a header message (header + meta) and one message per
//   non-empty part; each part is received straight into its aligned place in one buffer, so a
//   large tensor crosses the wire with MPI's own copies only.
// - Shutdown: once asked and every local send has completed, the ranks exchange how many frames
//   each sent to each other (MPI_Ialltoall) and keep receiving until every expected frame was
//   delivered. Only then does the loop end, so MPI_Finalize never meets an unmatched message.
// - Failure detection (watch_peers): a heartbeat frame (kind kHeartbeatKind, never handed to
//   the layer above) goes to every peer that was sent nothing for a heartbeat interval; any
//   message from a peer counts as a sign of life. A peer silent for the timeout, or (same host)
//   whose process no longer exists, is reported once. Heartbeats stop when shutdown is asked,
//   so the frame counts of the shutdown exchange stay fixed, and silence is no longer judged
//   then (a peer may reach the shutdown later); a vanished process still is.
// The C API only: keep Open MPI's deprecated C++ bindings out.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/runtime/transport.hpp"
#include "frame_assembly.hpp"

namespace tensair::runtime {
namespace {

constexpr int kFrameTag = 7;
constexpr int kPartTag = 8;
// FrameHeader::kind of the transport's own heartbeat frames (the layer above never sees them).
constexpr uint8_t kHeartbeatKind = 0xff;

// MPI sends posted to one destination and not yet complete, at most. With ~100,000 small frames
// posted at once (bench_pipeline: batches of 1 record, whose 8 bytes hardly use the credit),
// Open MPI 4.1 delivered a frame exactly 65,536 places early ("frame 66235 arrived where frame
// 699 was due"), which fits its ob1 layer numbering the messages to a peer with 16 bits. Frames
// beyond this bound wait, in order, in backlog_. It also keeps test_sends() cheap:
// MPI_Testsome scans every outstanding request.
constexpr size_t kMaxSendsInFlight = 1024;

// How long abandon() goes on sending what is queued to the peers still there (the error frame
// that tells them why this rank leaves, above all) before it stops.
constexpr auto kAbandonDrain = std::chrono::seconds(1);

[[noreturn]] void throw_mpi_error(int rc, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw TransportError(std::string(call) + " failed (" + file + ":" + std::to_string(line) +
                       "): " + std::string(text, static_cast<size_t>(len)));
}

#define TENSAIR_MPI_CHECK(call)                                                   \
  do {                                                                            \
    int tensair_rc_ = (call);                                                     \
    if (tensair_rc_ != MPI_SUCCESS) throw_mpi_error(tensair_rc_, #call, __FILE__, __LINE__); \
  } while (0)

using Clock = std::chrono::steady_clock;

// Receive buffers of large frames are recycled. glibc serves a large allocation made on the
// progress thread from a fresh mmap'd heap of that thread's arena and unmaps the heap when the
// buffer is freed, so every 16 MiB frame used to arrive into ~4000 newly faulted pages
// (bench_transport: 4 MiB streaming at 50-60 % of raw MPI, 16 MiB ping-pong taking 1.4-2.3x
// raw MPI's time; both at par after this cache). A buffer freed by its
// last owner (often a batch on an operator thread, possibly after the transport is gone: the
// deleter keeps the cache alive) returns here while the cache holds less than kCacheBytes; the
// progress thread reuses a cached buffer whose capacity is at least the frame's size and at
// most twice it.
class RecvBufferCache : public std::enable_shared_from_this<RecvBufferCache> {
 public:
  static constexpr size_t kMinBytes = 256 * 1024;  // smaller frames: plain allocation
  static constexpr size_t kCacheBytes = size_t{256} << 20;

  ~RecvBufferCache() {
    for (auto& [cap, p] : free_) std::free(p);
  }

  std::shared_ptr<std::byte> allocate(size_t bytes) {
    if (bytes < kMinBytes) return allocate_aligned(bytes);
    std::byte* p = nullptr;
    size_t cap = 0;
    {
      std::lock_guard lock(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i) {
        const size_t c = free_[i].first;
        if (c >= bytes && c / 2 <= bytes && (best == free_.size() || c < free_[best].first)) {
          best = i;
        }
      }
      if (best < free_.size()) {
        std::tie(cap, p) = free_[best];
        free_bytes_ -= cap;
        free_[best] = free_.back();
        free_.pop_back();
      }
    }
    if (!p) {
      cap = align_up(bytes, 4096);
      p = static_cast<std::byte*>(std::aligned_alloc(kFrameAlign, cap));
      if (!p) throw std::bad_alloc();
    }
    return std::shared_ptr<std::byte>(
        p, [cache = shared_from_this(), cap](std::byte* q) { cache->release(q, cap); });
  }

 private:
  void release(std::byte* p, size_t cap) {
    {
      std::lock_guard lock(mu_);
      if (free_bytes_ + cap <= kCacheBytes) {
        free_.emplace_back(cap, p);
        free_bytes_ += cap;
        return;
      }
    }
    std::free(p);
  }

  std::mutex mu_;
  std::vector<std::pair<size_t, std::byte*>> free_;  // (capacity, buffer), guarded by mu_
  size_t free_bytes_ = 0;                             // guarded by mu_
};

class MpiTransport final : public Transport {
 public:
  explicit MpiTransport(MpiTransportOptions options) : options_(options) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      TENSAIR_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided));
      owns_mpi_ = true;
      if (provided < MPI_THREAD_SERIALIZED) {
        throw TransportError("the MPI library offers thread level " + std::to_string(provided) +
                             ", TensAIR needs MPI_THREAD_SERIALIZED");
      }
    } else {
      int provided = 0;
      MPI_Query_thread(&provided);
      if (provided < MPI_THREAD_SERIALIZED) {
        throw TransportError(
            "MPI was initialised with a thread level below MPI_THREAD_SERIALIZED; initialise it "
            "with MPI_Init_thread (mpi4py does so by default)");
      }
    }
    TENSAIR_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    TENSAIR_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    TENSAIR_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    TENSAIR_MPI_CHECK(MPI_Comm_size(comm_, &world_));
    exchange_identities();
    sent_to_.assign(static_cast<size_t>(world_), 0);
    delivered_from_.assign(static_cast<size_t>(world_), 0);
    expected_from_.assign(static_cast<size_t>(world_), 0);
    incoming_.resize(static_cast<size_t>(world_));
    backlog_.resize(static_cast<size_t>(world_));
    inflight_.assign(static_cast<size_t>(world_), 0);
  }

  ~MpiTransport() override {
    if (thread_.joinable()) {
      {
        std::lock_guard lock(mu_);
        stop_now_ = true;
      }
      cv_.notify_all();
      thread_.join();
    }
    if (abandoned_) return;  // a peer was lost: finalising would wait for it forever
    if (broken_) {
      // MPI itself failed; finalising could hang. Not a normal path.
      if (owns_mpi_) MPI_Abort(MPI_COMM_WORLD, 1);
      return;
    }
    MPI_Comm_free(&comm_);
    if (owns_mpi_) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  size_t max_frame_bytes() const override { return options_.max_frame_bytes; }

  void watch_peers(double timeout_s, PeerLostHandler on_lost) override {
    watch_timeout_ = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    // A heartbeat every tenth of the timeout (at most 1 s, at least 50 ms) leaves room for a
    // busy machine to be late several times before a healthy peer looks silent.
    heartbeat_every_ = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(std::clamp(timeout_s / 10, 0.05, 1.0)));
    on_lost_ = std::move(on_lost);
  }

  void abandon(const std::vector<int>& lost) override {
    {
      std::lock_guard lock(mu_);
      abandoning_ = true;
      abandon_lost_ = lost;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    abandoned_ = true;
  }
  bool abandoned() const override { return abandoned_; }

  void start(FrameHandler on_frame, ErrorHandler on_error) override {
    if (thread_.joinable()) thread_.join();  // the previous run's loop has ended
    TENSAIR_ASSERT(!broken_ && !abandoned_, "start() on a broken or abandoned MPI transport");
    on_frame_ = std::move(on_frame);
    on_error_ = std::move(on_error);
    {
      std::lock_guard lock(mu_);
      shutdown_requested_ = false;
      loop_done_ = false;
    }
    std::fill(sent_to_.begin(), sent_to_.end(), 0);
    std::fill(delivered_from_.begin(), delivered_from_.end(), 0);
    std::fill(expected_from_.begin(), expected_from_.end(), 0);
    alltoall_posted_ = alltoall_done_ = barrier_posted_ = false;
    const auto now = Clock::now();
    last_heard_.assign(static_cast<size_t>(world_), now);
    last_sent_.assign(static_cast<size_t>(world_), now);
    lost_.assign(static_cast<size_t>(world_), false);
    next_liveness_check_ = now;
    thread_ = std::thread([this] { progress_loop(); });
  }

  void send(int dst, OutFrame frame) override {
    if (dst < 0 || dst >= world_) {
      throw TransportError("send to rank " + std::to_string(dst) + " of a " +
                           std::to_string(world_) + "-rank job");
    }
    const size_t total = kFrameHeaderBytes + frame.payload_bytes();
    if (total > options_.max_frame_bytes) {
      throw TransportError("frame of " + std::to_string(total) + " bytes exceeds the limit of " +
                           std::to_string(options_.max_frame_bytes) + " bytes");
    }
    for (const Segment& s : frame.parts) {
      if (s.size > static_cast<size_t>(INT_MAX)) {
        throw TransportError("a frame part of " + std::to_string(s.size) +
                             " bytes exceeds MPI's 2 GiB message limit");
      }
    }
    {
      std::lock_guard lock(mu_);
      TENSAIR_ASSERT(!shutdown_requested_, "send() after shutdown()");
      queue_.push_back({dst, std::move(frame), nullptr, nullptr});
    }
    cv_.notify_all();
  }

  void send_raw(int dst, std::vector<std::byte> bytes) override {
    send_raw_parts(dst, std::move(bytes), {});
  }

  void send_raw_parts(int dst, std::vector<std::byte> header_message,
                      std::vector<std::vector<std::byte>> parts) override {
    TENSAIR_ASSERT(dst >= 0 && dst < world_, "send_raw to a rank outside the job");
    {
      std::lock_guard lock(mu_);
      Queued q{dst, OutFrame{}, nullptr, nullptr};
      q.raw = std::make_shared<std::vector<std::byte>>(std::move(header_message));
      if (!parts.empty())
        q.raw_parts = std::make_shared<std::vector<std::vector<std::byte>>>(std::move(parts));
      queue_.push_back(std::move(q));
    }
    cv_.notify_all();
  }

  void shutdown() override {
    std::unique_lock lock(mu_);
    shutdown_requested_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return loop_done_; });
  }

  TransportStats stats() const override {
    TransportStats s;
    s.frames_sent = frames_sent_.load();
    s.frames_received = frames_received_.load();
    s.bytes_sent = bytes_sent_.load();
    s.bytes_received = bytes_received_.load();
    return s;
  }

 private:
  struct Queued {
    int dst;
    OutFrame frame;
    std::shared_ptr<std::vector<std::byte>> raw;  // send_raw(): bytes sent as they are
    std::shared_ptr<std::vector<std::vector<std::byte>>> raw_parts;  // send_raw_parts()
  };

  // A frame being sent: its requests and the memory they read.
  struct SendSlot {
    int remaining = 0;
    std::shared_ptr<std::byte> header;  // header + meta, or the whole packed frame
    std::shared_ptr<const void> keepalive;
    std::shared_ptr<const void> keepalive_parts;  // send_raw_parts()
  };

  using State = FrameAssembly::State;

  // A frame being received from one source: the MPI side of a FrameAssembly.
  struct Incoming {
    explicit Incoming(FrameAssembly a) : assembly(std::move(a)) {}
    MPI_Request header_req = MPI_REQUEST_NULL;
    std::shared_ptr<std::byte> header_buf;
    size_t header_size = 0;
    FrameAssembly assembly;
    std::vector<MPI_Request> part_reqs;
    State state() const { return assembly.state(); }
  };

  void report_error(const std::string& message) {
    if (on_error_) on_error_(message);
  }

  void progress_loop() {
    try {
      run_loop();
    } catch (const std::exception& e) {
      broken_ = true;
      report_error(std::string("MPI transport stopped: ") + e.what());
    }
    std::lock_guard lock(mu_);
    loop_done_ = true;
    cv_.notify_all();
  }

  void run_loop() {
    auto last_activity = Clock::now();
    int sleep_us = 10;
    std::vector<Queued> batch;
    for (;;) {
      bool work = false;
      bool shutdown_requested = false;
      {
        std::lock_guard lock(mu_);
        if (stop_now_) return;
        if (abandoning_) break;
        batch.swap(queue_);
        shutdown_requested = shutdown_requested_;
      }
      for (Queued& q : batch) {
        dispatch(std::move(q));
        work = true;
      }
      batch.clear();

      if (world_ > 1 && !barrier_posted_) {
        work |= test_sends();
        work |= drain_backlog();
        work |= match_incoming();
        work |= progress_incoming();
      }
      if (on_lost_ && world_ > 1) watch(shutdown_requested);
      work |= deliver_loopback();

      if (shutdown_requested && advance_shutdown()) return;

      if (work) {
        last_activity = Clock::now();
        sleep_us = 10;
        continue;
      }
      const bool in_flight = !send_reqs_.empty() || any_incoming() ||
                             (shutdown_requested && world_ > 1);
      if (world_ == 1) {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] {
          return stop_now_ || abandoning_ || !queue_.empty() || shutdown_requested_ ||
                 !loopback_.empty() || !loopback_raw_.empty();
        });
        continue;
      }
      if (in_flight ||
          Clock::now() - last_activity < std::chrono::microseconds(options_.spin_us)) {
        std::this_thread::yield();
        continue;
      }
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::microseconds(sleep_us), [this] {
        return stop_now_ || abandoning_ || !queue_.empty() || shutdown_requested_ ||
               !loopback_.empty();
      });
      sleep_us = std::min(sleep_us * 2, options_.max_sleep_us);
    }
    if (world_ > 1) drain_for_abandon();
  }

  // abandon(): the frames queued for peers that are not known to be lost are sent, and their
  // sends (those to lost peers aside) completed, for at most kAbandonDrain. Without it a rank
  // that saw a peer fail could leave before its error frame reached the others, which would
  // then each report this rank's exit as a second failure.
  void drain_for_abandon() {
    const auto deadline = Clock::now() + kAbandonDrain;
    std::vector<Queued> batch;
    for (;;) {
      {
        std::lock_guard lock(mu_);
        batch.swap(queue_);
        for (int r : abandon_lost_) {
          if (r >= 0 && r < world_) lost_[static_cast<size_t>(r)] = true;
        }
      }
      for (Queued& q : batch) {
        if (!lost_[static_cast<size_t>(q.dst)]) dispatch(std::move(q));
      }
      batch.clear();
      for (size_t d = 0; d < backlog_.size(); ++d) {
        if (lost_[d]) backlog_[d].clear();
      }
      drain_backlog();
      test_sends();
      bool pending = false;
      for (size_t d = 0; d < backlog_.size(); ++d) {
        const bool live = static_cast<int>(d) != rank_ && !lost_[d];
        if (live && (inflight_[d] > 0 || !backlog_[d].empty())) pending = true;
      }
      if (!pending || Clock::now() >= deadline) return;
      std::this_thread::yield();
    }
  }

  // Sends -------------------------------------------------------------------------------------

  // Posts a queued frame now, or keeps it behind the earlier ones to its destination while that
  // destination has kMaxSendsInFlight sends outstanding (per-destination order is kept).
  void dispatch(Queued&& q) {
    if (q.dst != rank_) {
      auto& waiting = backlog_[static_cast<size_t>(q.dst)];
      if (!waiting.empty() || inflight_[static_cast<size_t>(q.dst)] >= kMaxSendsInFlight) {
        waiting.push_back(std::move(q));
        return;
      }
    }
    post_queued(std::move(q));
  }

  void post_queued(Queued&& q) {
    if (q.raw) {
      post_raw(q.dst, std::move(q.raw), std::move(q.raw_parts));
    } else {
      post(q.dst, std::move(q.frame));
    }
  }

  bool drain_backlog() {
    bool work = false;
    for (size_t d = 0; d < backlog_.size(); ++d) {
      auto& waiting = backlog_[d];
      while (!waiting.empty() && inflight_[d] < kMaxSendsInFlight) {
        Queued q = std::move(waiting.front());
        waiting.pop_front();
        post_queued(std::move(q));
        work = true;
      }
    }
    return work;
  }

  bool any_backlog() const {
    for (const auto& waiting : backlog_) {
      if (!waiting.empty()) return true;
    }
    return false;
  }

  void post(int dst, OutFrame frame) {
    const size_t payload = frame.payload_bytes();
    frames_sent_.fetch_add(1, std::memory_order_relaxed);
    bytes_sent_.fetch_add(kFrameHeaderBytes + payload, std::memory_order_relaxed);
    if (dst == rank_) {
      std::lock_guard lock(mu_);
      loopback_.push_back(pack_frame(frame, rank_));
      return;
    }
    sent_to_[static_cast<size_t>(dst)]++;
    if (!last_sent_.empty()) last_sent_[static_cast<size_t>(dst)] = Clock::now();
    SendSlot slot;
    slot.keepalive = std::move(frame.keepalive);
    if (kFrameHeaderBytes + payload <= options_.pack_threshold || frame.parts.empty()) {
      InFrame packed = pack_frame(frame, rank_);
      slot.header = packed.buffer;
      slot.remaining = 1;
      uint32_t id = add_slot(std::move(slot));
      isend(packed.buffer.get(), packed.size, dst, kFrameTag, id);
      return;
    }
    uint32_t nparts = 0;
    for (const Segment& s : frame.parts) nparts += s.size > 0 ? 1 : 0;
    const size_t header_size = kFrameHeaderBytes + frame.meta.size();
    slot.header = allocate_aligned(header_size);
    seal_header(frame.header, rank_, nparts, frame.meta.size(), payload);
    std::memcpy(slot.header.get(), &frame.header, kFrameHeaderBytes);
    if (!frame.meta.empty()) {
      std::memcpy(slot.header.get() + kFrameHeaderBytes, frame.meta.data(), frame.meta.size());
    }
    slot.remaining = static_cast<int>(1 + nparts);
    std::byte* header_ptr = slot.header.get();
    uint32_t id = add_slot(std::move(slot));
    isend(header_ptr, header_size, dst, kFrameTag, id);
    for (const Segment& s : frame.parts) {
      if (s.size > 0) isend(s.data, s.size, dst, kPartTag, id);
    }
  }

  void post_raw(int dst, std::shared_ptr<std::vector<std::byte>> bytes,
                std::shared_ptr<std::vector<std::vector<std::byte>>> parts) {
    if (dst == rank_) {  // to ourselves: the header message alone
      std::lock_guard lock(mu_);
      loopback_raw_.push_back(std::move(bytes));
      return;
    }
    sent_to_[static_cast<size_t>(dst)]++;
    SendSlot slot;
    slot.remaining = 1 + (parts ? static_cast<int>(parts->size()) : 0);
    slot.keepalive = bytes;
    slot.keepalive_parts = parts;
    uint32_t id = add_slot(std::move(slot));
    isend(bytes->data(), bytes->size(), dst, kFrameTag, id);
    if (parts) {
      for (const auto& part : *parts) isend(part.data(), part.size(), dst, kPartTag, id);
    }
  }

  uint32_t add_slot(SendSlot slot) {
    uint32_t id = next_slot_++;
    slots_.emplace(id, std::move(slot));
    return id;
  }

  void isend(const void* data, size_t size, int dst, int tag, uint32_t slot) {
    MPI_Request req;
    TENSAIR_MPI_CHECK(MPI_Isend(data, static_cast<int>(size), MPI_BYTE, dst, tag, comm_, &req));
    send_reqs_.push_back(req);
    send_owner_.push_back(slot);
    send_dst_.push_back(dst);
    inflight_[static_cast<size_t>(dst)]++;
  }

  bool test_sends() {
    if (send_reqs_.empty()) return false;
    int outcount = 0;
    done_idx_.resize(send_reqs_.size());
    TENSAIR_MPI_CHECK(MPI_Testsome(static_cast<int>(send_reqs_.size()), send_reqs_.data(),
                                   &outcount, done_idx_.data(), MPI_STATUSES_IGNORE));
    if (outcount <= 0) return false;
    for (int i = 0; i < outcount; ++i) {
      const auto done = static_cast<size_t>(done_idx_[static_cast<size_t>(i)]);
      inflight_[static_cast<size_t>(send_dst_[done])]--;
      uint32_t id = send_owner_[done];
      auto it = slots_.find(id);
      if (--it->second.remaining == 0) slots_.erase(it);
    }
    // Compact: completed requests were set to MPI_REQUEST_NULL.
    size_t w = 0;
    for (size_t r = 0; r < send_reqs_.size(); ++r) {
      if (send_reqs_[r] != MPI_REQUEST_NULL) {
        send_reqs_[w] = send_reqs_[r];
        send_owner_[w] = send_owner_[r];
        send_dst_[w] = send_dst_[r];
        ++w;
      }
    }
    send_reqs_.resize(w);
    send_owner_.resize(w);
    send_dst_.resize(w);
    return true;
  }

  // Receives ----------------------------------------------------------------------------------

  bool any_incoming() const {
    for (const auto& q : incoming_) {
      if (!q.empty()) return true;
    }
    return false;
  }

  // Matches newly arrived header messages (probe, then allocate exactly what arrived).
  bool match_incoming() {
    bool work = false;
    for (;;) {
      int flag = 0;
      MPI_Message msg;
      MPI_Status status;
      TENSAIR_MPI_CHECK(MPI_Improbe(MPI_ANY_SOURCE, kFrameTag, comm_, &flag, &msg, &status));
      if (!flag) break;
      work = true;
      int count = 0;
      TENSAIR_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
      if (!last_heard_.empty()) last_heard_[static_cast<size_t>(status.MPI_SOURCE)] = Clock::now();
      Incoming in(FrameAssembly(status.MPI_SOURCE, options_.max_frame_bytes));
      in.header_size = static_cast<size_t>(count);
      in.header_buf = allocate_aligned(in.header_size);
      TENSAIR_MPI_CHECK(
          MPI_Imrecv(in.header_buf.get(), count, MPI_BYTE, &msg, &in.header_req));
      incoming_[static_cast<size_t>(status.MPI_SOURCE)].push_back(std::move(in));
    }
    return work;
  }

  bool progress_incoming() {
    bool work = false;
    for (int src = 0; src < world_; ++src) {
      auto& q = incoming_[static_cast<size_t>(src)];
      if (q.empty()) continue;
      bool parts_blocked = false;  // an earlier frame still waits for part messages
      for (Incoming& in : q) {
        if (in.state() == State::kHeader) {
          int done = 0;
          TENSAIR_MPI_CHECK(MPI_Test(&in.header_req, &done, MPI_STATUS_IGNORE));
          if (!done) continue;
          work = true;
          in.assembly.on_header(std::move(in.header_buf), in.header_size,
                                [this](size_t n) { return recv_cache_->allocate(n); });
          report_assembly_error(in);
        }
        if (in.state() == State::kParts) {
          if (!parts_blocked) work |= match_parts(src, in);
          if (in.assembly.wants_part()) parts_blocked = true;
          work |= test_parts(in);
        }
      }
      while (!q.empty() &&
             (q.front().state() == State::kComplete || q.front().state() == State::kDropped)) {
        Incoming in = std::move(q.front());
        q.pop_front();
        delivered_from_[static_cast<size_t>(src)]++;
        work = true;
        if (in.state() == State::kComplete) deliver(in.assembly.take_frame());
      }
    }
    return work;
  }

  void report_assembly_error(Incoming& in) {
    if (auto error = in.assembly.take_error()) report_error(*error);
  }

  // Matches the part messages of `in` that have arrived, in order, receiving each where the
  // assembly places it (or into scratch memory when it says to discard it).
  bool match_parts(int src, Incoming& in) {
    bool work = false;
    while (in.assembly.wants_part()) {
      int flag = 0;
      MPI_Message msg;
      MPI_Status status;
      TENSAIR_MPI_CHECK(MPI_Improbe(src, kPartTag, comm_, &flag, &msg, &status));
      if (!flag) break;
      work = true;
      int count = 0;
      TENSAIR_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
      if (!last_heard_.empty()) last_heard_[static_cast<size_t>(src)] = Clock::now();
      std::byte* at = in.assembly.place_part(static_cast<size_t>(count));
      report_assembly_error(in);
      if (!at) {
        std::vector<std::byte> sink(static_cast<size_t>(count));
        TENSAIR_MPI_CHECK(MPI_Mrecv(sink.data(), count, MPI_BYTE, &msg, MPI_STATUS_IGNORE));
        continue;
      }
      MPI_Request req;
      TENSAIR_MPI_CHECK(MPI_Imrecv(at, count, MPI_BYTE, &msg, &req));
      in.part_reqs.push_back(req);
    }
    return work;
  }

  // Once every part is matched and every receive into the frame has completed (a dropped
  // frame's buffer is released only then), lets the assembly decide.
  bool test_parts(Incoming& in) {
    if (in.assembly.wants_part()) return false;
    int done = 0;
    TENSAIR_MPI_CHECK(MPI_Testall(static_cast<int>(in.part_reqs.size()), in.part_reqs.data(),
                                  &done, MPI_STATUSES_IGNORE));
    if (!done) return false;
    in.assembly.on_parts_received();
    report_assembly_error(in);
    return true;
  }

  void deliver(InFrame&& frame) {
    frames_received_.fetch_add(1, std::memory_order_relaxed);
    bytes_received_.fetch_add(frame.size, std::memory_order_relaxed);
    handle(std::move(frame));
  }

  void handle(InFrame&& frame) {
    if (frame.header.kind == kHeartbeatKind) return;  // a sign of life, already noted
    try {
      on_frame_(std::move(frame));
    } catch (const std::exception& e) {
      report_error(e.what());
    }
  }

  bool deliver_loopback() {
    std::deque<InFrame> frames;
    std::deque<std::shared_ptr<std::vector<std::byte>>> raw;
    {
      std::lock_guard lock(mu_);
      if (loopback_.empty() && loopback_raw_.empty()) return false;
      frames.swap(loopback_);
      raw.swap(loopback_raw_);
    }
    for (auto& bytes : raw) {
      // Raw test bytes to ourselves get the validation any received frame gets.
      try {
        InFrame f;
        f.size = bytes->size();
        f.buffer = allocate_aligned(f.size);
        if (f.size) std::memcpy(f.buffer.get(), bytes->data(), f.size);
        f.header = read_packed_header(f.buffer.get(), f.size, rank_, options_.max_frame_bytes);
        f.src_rank = rank_;
        frames.push_back(std::move(f));
      } catch (const TransportError& e) {
        report_error(e.what());
      }
    }
    for (InFrame& f : frames) {
      frames_received_.fetch_add(1, std::memory_order_relaxed);
      bytes_received_.fetch_add(f.size, std::memory_order_relaxed);
      handle(std::move(f));
    }
    return true;
  }

  // Failure detection -------------------------------------------------------------------------

  // Every rank learns every other's process id and host, to check same-host peers directly.
  void exchange_identities() {
    struct Identity {
      int64_t pid;
      char host[MPI_MAX_PROCESSOR_NAME + 1];
    };
    Identity mine{};
    mine.pid = static_cast<int64_t>(::getpid());
    int len = 0;
    MPI_Get_processor_name(mine.host, &len);
    std::vector<Identity> all(static_cast<size_t>(world_));
    TENSAIR_MPI_CHECK(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, comm_));
    peer_pid_.resize(static_cast<size_t>(world_));
    same_host_.resize(static_cast<size_t>(world_));
    for (int r = 0; r < world_; ++r) {
      peer_pid_[static_cast<size_t>(r)] = static_cast<pid_t>(all[static_cast<size_t>(r)].pid);
      same_host_[static_cast<size_t>(r)] = std::strncmp(all[static_cast<size_t>(r)].host, mine.host, sizeof mine.host) == 0;
    }
  }

  // Does process `pid` of this host still run? A zombie (dead, not yet reaped) does not.
  static bool process_alive(pid_t pid) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    FILE* f = std::fopen(path, "r");
    if (!f) return errno != ENOENT;
    char buf[512];
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* paren = std::strrchr(buf, ')');  // the state follows the command name
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
  }

  void lose(int r, const std::string& what) {
    lost_[static_cast<size_t>(r)] = true;
    on_lost_(r, what);
  }

  // Sends heartbeats where due and judges every peer's liveness (progress thread).
  void watch(bool shutdown_requested) {
    const auto now = Clock::now();
    if (!shutdown_requested) {
      for (int r = 0; r < world_; ++r) {
        if (r == rank_ || lost_[static_cast<size_t>(r)]) continue;
        if (now - last_sent_[static_cast<size_t>(r)] >= heartbeat_every_) {
          OutFrame hb;
          hb.header.kind = kHeartbeatKind;
          dispatch({r, std::move(hb), nullptr, nullptr});
          last_sent_[static_cast<size_t>(r)] = now;
        }
      }
    }
    if (now < next_liveness_check_) return;
    next_liveness_check_ = now + std::chrono::milliseconds(100);
    for (int r = 0; r < world_; ++r) {
      if (r == rank_ || lost_[static_cast<size_t>(r)]) continue;
      if (same_host_[static_cast<size_t>(r)] && !process_alive(peer_pid_[static_cast<size_t>(r)])) {
        lose(r, "is gone (its process " + std::to_string(peer_pid_[static_cast<size_t>(r)]) + " has exited)");
        continue;
      }
      const auto silent = now - last_heard_[static_cast<size_t>(r)];
      if (!shutdown_requested && silent > watch_timeout_) {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.1f", std::chrono::duration<double>(silent).count());
        lose(r, std::string("stopped responding: nothing arrived from it for ") + secs +
                    " s (heartbeat_timeout; a stopped or hung process?)");
      }
    }
  }

  // Shutdown ----------------------------------------------------------------------------------

  // Returns true when this rank's part of the collective shutdown is complete.
  bool advance_shutdown() {
    {
      std::lock_guard lock(mu_);
      if (!queue_.empty() || !loopback_.empty() || !loopback_raw_.empty()) return false;
    }
    if (world_ == 1) return true;
    if (!alltoall_posted_) {
      if (any_backlog()) return false;  // sent_to_ counts posted frames only
      TENSAIR_MPI_CHECK(MPI_Ialltoall(sent_to_.data(), 1, MPI_UINT64_T, expected_from_.data(), 1,
                                      MPI_UINT64_T, comm_, &alltoall_req_));
      alltoall_posted_ = true;
    }
    if (!alltoall_done_) {
      int done = 0;
      TENSAIR_MPI_CHECK(MPI_Test(&alltoall_req_, &done, MPI_STATUS_IGNORE));
      if (!done) return false;
      alltoall_done_ = true;
    }
    if (!barrier_posted_) {
      if (!send_reqs_.empty() || any_incoming()) return false;
      for (int src = 0; src < world_; ++src) {
        if (src == rank_) continue;
        if (delivered_from_[static_cast<size_t>(src)] < expected_from_[static_cast<size_t>(src)]) {
          return false;
        }
      }
      // Everything addressed to this rank has arrived. The barrier keeps any rank from starting
      // a next run (and sending its frames) before every rank has drained this one.
      TENSAIR_MPI_CHECK(MPI_Ibarrier(comm_, &barrier_req_));
      barrier_posted_ = true;
    }
    int done = 0;
    TENSAIR_MPI_CHECK(MPI_Test(&barrier_req_, &done, MPI_STATUS_IGNORE));
    return done != 0;
  }

  MpiTransportOptions options_;
  bool owns_mpi_ = false;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int world_ = 1;
  FrameHandler on_frame_;
  ErrorHandler on_error_;
  std::thread thread_;
  std::atomic<bool> broken_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Queued> queue_;    // guarded by mu_
  std::deque<InFrame> loopback_;  // guarded by mu_
  std::deque<std::shared_ptr<std::vector<std::byte>>> loopback_raw_;  // guarded by mu_
  bool shutdown_requested_ = false;  // guarded by mu_
  bool stop_now_ = false;            // guarded by mu_
  bool abandoning_ = false;          // guarded by mu_: abandon() was called
  std::vector<int> abandon_lost_;    // guarded by mu_: the lost peers abandon() was told of
  bool loop_done_ = false;           // guarded by mu_

  // P: progress thread only.
  std::vector<MPI_Request> send_reqs_;
  std::vector<uint32_t> send_owner_;
  std::vector<int> send_dst_;                // destination of each send request
  std::vector<size_t> inflight_;             // send requests outstanding per destination
  std::vector<std::deque<Queued>> backlog_;  // frames waiting for inflight_ to drop
  std::vector<int> done_idx_;
  std::unordered_map<uint32_t, SendSlot> slots_;
  std::shared_ptr<RecvBufferCache> recv_cache_ = std::make_shared<RecvBufferCache>();
  uint32_t next_slot_ = 0;
  std::vector<std::deque<Incoming>> incoming_;
  std::vector<uint64_t> sent_to_;
  std::vector<uint64_t> delivered_from_;
  std::vector<uint64_t> expected_from_;
  MPI_Request alltoall_req_ = MPI_REQUEST_NULL;
  bool alltoall_posted_ = false;
  bool alltoall_done_ = false;
  MPI_Request barrier_req_ = MPI_REQUEST_NULL;
  bool barrier_posted_ = false;

  std::atomic<uint64_t> frames_sent_{0}, frames_received_{0}, bytes_sent_{0}, bytes_received_{0};

  // Failure detection (P, set before start()).
  PeerLostHandler on_lost_;
  Clock::duration watch_timeout_{};
  Clock::duration heartbeat_every_{};
  std::vector<pid_t> peer_pid_;
  std::vector<bool> same_host_;
  std::vector<Clock::time_point> last_heard_, last_sent_;
  std::vector<bool> lost_;
  Clock::time_point next_liveness_check_{};
  std::atomic<bool> abandoned_{false};
};

}  // namespace

std::unique_ptr<Transport> make_mpi_transport(MpiTransportOptions options) {
  return std::make_unique<MpiTransport>(options);
}

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"}) {
    if (const char* v = std::getenv(name); v && *v) return std::max(1, std::atoi(v));
  }
  return 1;
}

}  // namespace tensair::runtime
