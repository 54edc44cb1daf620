// bench_transport: the engine's messaging against raw MPI on the same messages.
//
// Run with `mpirun -np 2 bench_transport [--quick] [--json PATH]`. For each message size
// (1 KiB ... 16 MiB) and three layers, each run in its own phase (only that layer's traffic;
// the layers take turns within each repeat) of this one program:
//   raw MPI    MPI_Send/MPI_Recv ping-pong; MPI_Isend/MPI_Irecv windows for streaming
//   transport  Transport::send of frames (one part of the message size), handled on the
//              transport's progress thread
//   dataflow   an Executor running a graph over the same transport: source (rank 0) -> sink
//              (rank 1), batches of one uint8 column of the message size, to_rank routing;
//              for latency a cycle pinger (rank 0) <-> echo (rank 1)
// it measures
//   (a) ping-pong latency: half the round-trip time, microseconds, rank 0's clock;
//   (b) one-way streaming bandwidth: rank 1 times the arrival of message 0 to the arrival of
//       message N-1 and reports (N-1) * size / time in GB/s (1e9 bytes/s). The sender keeps a
//       window of W messages (W * size <= 64 MiB, 4 <= W <= 64) in flight: raw MPI and the
//       transport send W messages and wait for a zero-byte acknowledgement (as osu_bw does);
//       the dataflow edge gets a credit of W * size bytes (its own flow control).
// Checks: every payload comes from a pool of 4 buffers of pseudo-random bytes per size, with
// a stamp in its first and last 8 bytes. Every received payload is checked for its size and
// both stamps (in order: message i must be pool buffer i % 4); in the warm-up run of every
// measurement, which is not timed, the CRC-32 of every received payload is also compared with
// the sender's CRC of that buffer (sent to rank 1 at start). Any mismatch: exit 1.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <zlib.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "bench_common.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/process.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/dataflow/operator_def.hpp"
#include "tensair/runtime/transport.hpp"

namespace {

using namespace tensair;
using Clock = std::chrono::steady_clock;
using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Context;
using dataflow::InstanceInfo;
using dataflow::Operator;
using dataflow::SourceState;

constexpr int kPool = 4;
constexpr int kTagData = 1;
constexpr int kTagAck = 2;
constexpr int kTagSetup = 3;
constexpr int kTagResults = 4;
constexpr double kWaitLimitS = 300;  // a benchmark that hangs this long has failed
constexpr int kLayers = 3;
const char* const kLayerNames[kLayers] = {"raw MPI", "transport", "dataflow"};
const char* const kLayerKeys[kLayers] = {"raw_mpi", "transport", "dataflow"};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_transport: error: %s\n", msg.c_str());
  std::fflush(stderr);
  std::_Exit(1);  // mpirun ends the other rank
}

#define MPI_OK(call)                                       \
  do {                                                     \
    if ((call) != MPI_SUCCESS) die(#call " failed");       \
  } while (0)

// What one message size is measured with.
struct Case {
  size_t bytes = 0;
  int window = 0;      // messages in flight while streaming
  int messages = 0;    // per timed streaming run (a multiple of window)
  int verify_messages = 0;  // in the warm-up streaming run
  int pingpongs = 0;   // timed round trips per latency run
  int warm_pingpongs = 0;
};

std::vector<Case> plan(bool quick) {
  const size_t stream_bytes = quick ? (size_t{32} << 20) : (size_t{1} << 30);
  const size_t max_messages = quick ? 1000 : 20000;
  const size_t pingpong_bytes = quick ? (size_t{16} << 20) : (size_t{256} << 20);
  const size_t max_pingpongs = quick ? 200 : 2000;
  std::vector<Case> cases;
  for (size_t kib : {1, 4, 16, 64, 256, 1024, 4096, 16384}) {
    Case c;
    c.bytes = kib << 10;
    c.window = static_cast<int>(std::clamp<size_t>((size_t{64} << 20) / c.bytes, 4, 64));
    size_t n = std::clamp<size_t>(stream_bytes / c.bytes, 4 * c.window, max_messages);
    n = (n + c.window - 1) / c.window * c.window;
    c.messages = static_cast<int>(n);
    c.verify_messages = std::min(c.messages, std::max(2 * c.window, 16));
    c.pingpongs = static_cast<int>(std::clamp<size_t>(pingpong_bytes / c.bytes, 10, max_pingpongs));
    c.warm_pingpongs = std::max(2, c.pingpongs / 10);
    cases.push_back(c);
  }
  return cases;
}

// The payloads of one size: kPool aligned buffers of pseudo-random bytes, each with a stamp in
// its first and last 8 bytes. Rank 0 holds the buffers; both ranks hold stamps and CRCs.
struct Pool {
  size_t bytes = 0;
  std::vector<std::shared_ptr<std::byte>> buf;  // rank 0 only
  uint64_t stamp[kPool] = {};
  uint32_t crc[kPool] = {};
  std::vector<BatchPtr> batches;  // rank 0: one uint8 column (one record of `bytes`) per buffer
};

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint32_t crc_of(const std::byte* p, size_t n) {
  return static_cast<uint32_t>(
      crc32_z(0L, reinterpret_cast<const Bytef*>(p), static_cast<z_size_t>(n)));
}

Pool make_pool(size_t bytes) {
  Pool p;
  p.bytes = bytes;
  for (int k = 0; k < kPool; ++k) {
    auto b = runtime::allocate_aligned(bytes);
    uint64_t state = bytes * 131 + static_cast<uint64_t>(k);
    for (size_t off = 0; off + 8 <= bytes; off += 8) {
      uint64_t v = splitmix(state);
      std::memcpy(b.get() + off, &v, 8);
    }
    p.stamp[k] = splitmix(state) | 1;
    std::memcpy(b.get(), &p.stamp[k], 8);
    std::memcpy(b.get() + bytes - 8, &p.stamp[k], 8);
    p.crc[k] = crc_of(b.get(), bytes);
    dataflow::Column col("blob", dataflow::DType::kUInt8, {static_cast<int64_t>(bytes)}, 1,
                         dataflow::Bytes{b, b.get(), bytes});
    p.batches.push_back(dataflow::share(Batch({std::move(col)})));
    p.buf.push_back(std::move(b));
  }
  return p;
}

// Counts payloads that are not what the sender sent. Thread-safe.
class Checker {
 public:
  // Checks received message `index` (0-based, in arrival order) against pool buffer index % 4:
  // its size and stamps; with `full`, also its CRC-32.
  void check(const Pool& p, const std::byte* data, size_t n, uint64_t index, bool full,
             const char* where) {
    const int k = static_cast<int>(index % kPool);
    uint64_t head = 0, tail = 0;
    if (n == p.bytes) {
      std::memcpy(&head, data, 8);
      std::memcpy(&tail, data + n - 8, 8);
    }
    std::string why;
    if (n != p.bytes) {
      why = std::to_string(n) + " bytes, expected " + std::to_string(p.bytes);
    } else if (head != p.stamp[k] || tail != p.stamp[k]) {
      why = "stamp mismatch (lost, duplicated, reordered or torn message)";
    } else if (full && crc_of(data, n) != p.crc[k]) {
      why = "CRC-32 differs from the sender's";
    }
    if (why.empty()) return;
    if (errors_.fetch_add(1) < 5) {
      std::fprintf(stderr, "bench_transport: error: %s, %s, message %llu: %s\n", where,
                   bench::size_name(p.bytes).c_str(), static_cast<unsigned long long>(index),
                   why.c_str());
    }
  }
  uint64_t errors() const { return errors_.load(); }

 private:
  std::atomic<uint64_t> errors_{0};
};

// Samples of one figure per (layer, size).
using Samples = std::vector<std::vector<std::vector<double>>>;  // [layer][size][repeat]

// Raw MPI ---------------------------------------------------------------------------------------

// Half round trip in microseconds (rank 0; 0 on rank 1).
double raw_pingpong(int rank, const Case& c, const Pool& p, Checker& check, bool verify) {
  auto rbuf = runtime::allocate_aligned(c.bytes);
  const int n = static_cast<int>(c.bytes);
  const int total = c.warm_pingpongs + c.pingpongs;
  Clock::time_point t0;
  for (int i = 0; i < total; ++i) {
    if (rank == 0) {
      if (i == c.warm_pingpongs) t0 = Clock::now();
      MPI_OK(MPI_Send(p.buf[i % kPool].get(), n, MPI_BYTE, 1, kTagData, MPI_COMM_WORLD));
      MPI_OK(MPI_Recv(rbuf.get(), n, MPI_BYTE, 1, kTagData, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
      check.check(p, rbuf.get(), c.bytes, static_cast<uint64_t>(i), verify, "raw MPI ping-pong");
    } else {
      MPI_OK(MPI_Recv(rbuf.get(), n, MPI_BYTE, 0, kTagData, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
      MPI_OK(MPI_Send(rbuf.get(), n, MPI_BYTE, 0, kTagData, MPI_COMM_WORLD));
    }
  }
  if (rank != 0) return 0;
  return bench::seconds_since(t0) / c.pingpongs / 2 * 1e6;
}

// GB/s measured on rank 1 (0 on rank 0).
double raw_stream(int rank, const Case& c, const Pool& p, Checker& check, int messages,
                  bool verify) {
  const int n = static_cast<int>(c.bytes);
  std::vector<MPI_Request> reqs(static_cast<size_t>(c.window));
  if (rank == 0) {
    for (int i = 0; i < messages; i += c.window) {
      for (int j = 0; j < c.window; ++j) {
        MPI_OK(MPI_Isend(p.buf[(i + j) % kPool].get(), n, MPI_BYTE, 1, kTagData, MPI_COMM_WORLD,
                         &reqs[static_cast<size_t>(j)]));
      }
      MPI_OK(MPI_Waitall(c.window, reqs.data(), MPI_STATUSES_IGNORE));
      MPI_OK(MPI_Recv(nullptr, 0, MPI_BYTE, 1, kTagAck, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    }
    return 0;
  }
  std::vector<std::shared_ptr<std::byte>> rbuf;
  for (int j = 0; j < c.window; ++j) rbuf.push_back(runtime::allocate_aligned(c.bytes));
  Clock::time_point first, last;
  for (int i = 0; i < messages; i += c.window) {
    for (int j = 0; j < c.window; ++j) {
      MPI_OK(MPI_Irecv(rbuf[static_cast<size_t>(j)].get(), n, MPI_BYTE, 0, kTagData,
                       MPI_COMM_WORLD, &reqs[static_cast<size_t>(j)]));
    }
    if (i == 0) {
      MPI_OK(MPI_Wait(&reqs[0], MPI_STATUS_IGNORE));
      first = Clock::now();
    }
    MPI_OK(MPI_Waitall(c.window, reqs.data(), MPI_STATUSES_IGNORE));
    if (i + c.window >= messages) last = Clock::now();
    for (int j = 0; j < c.window; ++j) {
      check.check(p, rbuf[static_cast<size_t>(j)].get(), c.bytes, static_cast<uint64_t>(i + j),
                  verify, "raw MPI stream");
    }
    MPI_OK(MPI_Send(nullptr, 0, MPI_BYTE, 0, kTagAck, MPI_COMM_WORLD));
  }
  return static_cast<double>(messages - 1) * static_cast<double>(c.bytes) /
         std::chrono::duration<double>(last - first).count() / 1e9;
}

// Transport -------------------------------------------------------------------------------------

enum Kind : uint8_t { kPing = 1, kPong = 2, kData = 3, kAck = 4 };

runtime::OutFrame pool_frame(const Pool& p, uint64_t i, uint8_t kind) {
  runtime::OutFrame f;
  f.header.kind = kind;
  f.header.seq = i;
  const int k = static_cast<int>(i % kPool);
  f.parts.push_back({p.buf[static_cast<size_t>(k)].get(), p.bytes});
  f.keepalive = p.buf[static_cast<size_t>(k)];
  return f;
}

// State shared between a rank's main thread and the transport's progress thread.
struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t received = 0;  // progress thread
  uint64_t acks = 0;      // guarded by mu
  bool done = false;      // guarded by mu
  std::string error;      // guarded by mu
  Clock::time_point t0, t1;

  void finish() {
    {
      std::lock_guard lock(mu);
      done = true;
    }
    cv.notify_all();
  }
  void fail(const std::string& e) {
    {
      std::lock_guard lock(mu);
      if (error.empty()) error = e;
      done = true;
    }
    cv.notify_all();
  }
  // Waits for `pred` (under mu); dies after kWaitLimitS.
  template <class Pred>
  void wait(Pred pred, const char* what) {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::duration<double>(kWaitLimitS),
                     [&] { return pred() || !error.empty(); })) {
      die(std::string(what) + ": timed out");
    }
    if (!error.empty()) die(std::string(what) + ": " + error);
  }
};

double transport_pingpong(runtime::Transport& tp, const Case& c, const Pool& p, Checker& check,
                          bool verify) {
  Shared s;
  const uint64_t total = static_cast<uint64_t>(c.warm_pingpongs + c.pingpongs);
  const int rank = tp.rank();
  tp.start(
      [&](runtime::InFrame&& f) {
        if (rank == 1) {  // echo the frame's payload, without copying it
          runtime::OutFrame out;
          out.header.kind = kPong;
          out.header.seq = f.header.seq;
          out.parts.push_back({f.payload(), f.payload_size()});
          out.keepalive = f.owner();
          tp.send(0, std::move(out));
          if (++s.received == total) s.finish();
          return;
        }
        const uint64_t i = s.received++;
        check.check(p, f.payload(), f.payload_size(), i, verify, "transport ping-pong");
        if (i + 1 == static_cast<uint64_t>(c.warm_pingpongs)) s.t0 = Clock::now();
        if (i + 1 < total) {
          tp.send(1, pool_frame(p, i + 1, kPing));
        } else {
          s.t1 = Clock::now();
          s.finish();
        }
      },
      [&](const std::string& e) { s.fail(e); });
  if (rank == 0) tp.send(1, pool_frame(p, 0, kPing));
  s.wait([&] { return s.done; }, "transport ping-pong");
  tp.shutdown();
  if (rank != 0) return 0;
  return std::chrono::duration<double>(s.t1 - s.t0).count() / c.pingpongs / 2 * 1e6;
}

double transport_stream(runtime::Transport& tp, const Case& c, const Pool& p, Checker& check,
                        int messages, bool verify) {
  Shared s;
  const int rank = tp.rank();
  const uint64_t total = static_cast<uint64_t>(messages);
  tp.start(
      [&](runtime::InFrame&& f) {
        if (rank == 0) {  // an acknowledgement of a window
          {
            std::lock_guard lock(s.mu);
            s.acks++;
          }
          s.cv.notify_all();
          return;
        }
        const uint64_t i = s.received++;
        if (i == 0) s.t0 = Clock::now();
        check.check(p, f.payload(), f.payload_size(), i, verify, "transport stream");
        if ((i + 1) % static_cast<uint64_t>(c.window) == 0) {
          runtime::OutFrame ack;
          ack.header.kind = kAck;
          tp.send(0, std::move(ack));
        }
        if (i + 1 == total) {
          s.t1 = Clock::now();
          s.finish();
        }
      },
      [&](const std::string& e) { s.fail(e); });
  if (rank == 0) {
    for (int i = 0; i < messages; i += c.window) {
      for (int j = 0; j < c.window; ++j) tp.send(1, pool_frame(p, static_cast<uint64_t>(i + j), kData));
      const uint64_t want = static_cast<uint64_t>(i / c.window + 1);
      s.wait([&] { return s.acks >= want; }, "transport stream");
    }
  } else {
    s.wait([&] { return s.done; }, "transport stream");
  }
  tp.shutdown();
  if (rank != 1) return 0;
  return static_cast<double>(messages - 1) * static_cast<double>(c.bytes) /
         std::chrono::duration<double>(s.t1 - s.t0).count() / 1e9;
}

// Dataflow --------------------------------------------------------------------------------------

// What the operators of this rank saw; read by main after Executor::run().
struct Observed {
  uint64_t received = 0;
  Clock::time_point t0, t1;
};

dataflow::ExecutorOptions executor_options() {
  dataflow::ExecutorOptions o;
  o.metrics_interval_s = 3600;
  o.job_name = "bench_transport";
  return o;
}

void run_graph(const dataflow::Graph& g, runtime::Transport& tp, const char* what) {
  try {
    dataflow::Executor ex(g, tp, executor_options());
    ex.run();
  } catch (const std::exception& e) {
    die(std::string(what) + ": " + e.what());
  }
}

double dataflow_pingpong(runtime::Transport& tp, const Case& c, const Pool& p, Checker& check,
                         bool verify) {
  using dataflow::Placement;
  using dataflow::Routing;
  Observed seen;
  const uint64_t total = static_cast<uint64_t>(c.warm_pingpongs + c.pingpongs);
  struct Kick final : Operator {
    SourceState produce(Context& ctx) override {
      dataflow::ColumnBuilder b({"go", dataflow::DType::kInt64, {}});
      b.append<int64_t>(1);
      ctx.emit(0, Batch({b.finish()}));
      return SourceState::kDone;
    }
  };
  struct Pinger final : Operator {
    Pinger(const Case& c, const Pool& p, Checker& ch, bool v, Observed& o, uint64_t t)
        : c(c), p(p), check(ch), verify(v), seen(o), total(t) {}
    void process(int port, const BatchPtr& b, Context& ctx) override {
      if (port == 0) {  // start
        ctx.emit(0, p.batches[0]);
        return;
      }
      const uint64_t i = seen.received++;
      const auto v = b->column("blob").values<uint8_t>();
      check.check(p, reinterpret_cast<const std::byte*>(v.data()), v.size(), i, verify,
                  "dataflow ping-pong");
      if (i + 1 == static_cast<uint64_t>(c.warm_pingpongs)) seen.t0 = Clock::now();
      if (i + 1 < total) {
        ctx.emit(0, p.batches[(i + 1) % kPool]);
      } else {
        seen.t1 = Clock::now();
      }
    }
    const Case& c;
    const Pool& p;
    Checker& check;
    bool verify;
    Observed& seen;
    uint64_t total;
  };
  struct Echo final : Operator {
    void process(int, const BatchPtr& b, Context& ctx) override { ctx.emit(0, b); }
  };
  dataflow::Graph g;
  g.add("kick", dataflow::operator_def({"kick", {}, {{"out"}}, [](const InstanceInfo&) {
                                 return std::make_unique<Kick>();
                               }}),
        Placement::on(0));
  g.add("pinger", dataflow::operator_def({"pinger", {{"start"}, {"pong"}}, {{"ping"}},
                                 [&](const InstanceInfo&) {
                                   return std::make_unique<Pinger>(c, p, check, verify, seen,
                                                                   total);
                                 }}),
        Placement::on(0));
  g.add("echo", dataflow::operator_def({"echo", {{"in"}}, {{"out"}}, [](const InstanceInfo&) {
                                 return std::make_unique<Echo>();
                               }}),
        Placement::on(1));
  g.connect("kick", "pinger.start", Routing::forward());
  g.connect("pinger.ping", "echo", Routing::to_rank(1));
  g.connect("echo", "pinger.pong", Routing::to_rank(0));
  run_graph(g, tp, "dataflow ping-pong");
  if (tp.rank() != 0) return 0;
  if (seen.received != total) {
    die("dataflow ping-pong: " + std::to_string(seen.received) + " pongs, expected " +
        std::to_string(total));
  }
  return std::chrono::duration<double>(seen.t1 - seen.t0).count() / c.pingpongs / 2 * 1e6;
}

double dataflow_stream(runtime::Transport& tp, const Case& c, const Pool& p, Checker& check,
                       int messages, bool verify) {
  using dataflow::Placement;
  using dataflow::Routing;
  Observed seen;
  struct Source final : Operator {
    Source(const Pool& p, int n) : p(p), n(n) {}
    SourceState produce(Context& ctx) override {
      ctx.emit(0, p.batches[static_cast<size_t>(i % kPool)]);
      return ++i < n ? SourceState::kMore : SourceState::kDone;
    }
    const Pool& p;
    int n;
    int i = 0;
  };
  struct Sink final : Operator {
    Sink(const Pool& p, Checker& ch, bool v, Observed& o, uint64_t n)
        : p(p), check(ch), verify(v), seen(o), n(n) {}
    void process(int, const BatchPtr& b, Context&) override {
      const uint64_t i = seen.received++;
      if (i == 0) seen.t0 = Clock::now();
      const auto v = b->column("blob").values<uint8_t>();
      check.check(p, reinterpret_cast<const std::byte*>(v.data()), v.size(), i, verify,
                  "dataflow stream");
      if (i + 1 == n) seen.t1 = Clock::now();
    }
    const Pool& p;
    Checker& check;
    bool verify;
    Observed& seen;
    uint64_t n;
  };
  dataflow::Graph g;
  g.add("source", dataflow::operator_def({"source", {}, {{"out"}}, [&](const InstanceInfo&) {
                                   return std::make_unique<Source>(p, messages);
                                 }}),
        Placement::on(0));
  g.add("sink", dataflow::operator_def({"sink", {{"in"}}, {}, [&](const InstanceInfo&) {
                                 return std::make_unique<Sink>(p, check, verify, seen,
                                                               static_cast<uint64_t>(messages));
                               }}),
        Placement::on(1));
  g.connect("source", "sink", Routing::to_rank(1), static_cast<size_t>(c.window) * c.bytes);
  run_graph(g, tp, "dataflow stream");
  if (tp.rank() != 1) return 0;
  if (seen.received != static_cast<uint64_t>(messages)) {
    die("dataflow stream: " + std::to_string(seen.received) + " batches, expected " +
        std::to_string(messages));
  }
  return static_cast<double>(messages - 1) * static_cast<double>(c.bytes) /
         std::chrono::duration<double>(seen.t1 - seen.t0).count() / 1e9;
}

// Main ------------------------------------------------------------------------------------------

// Sends rank 0's stamps and CRCs of every size to rank 1.
void share_checksums(int rank, std::vector<Pool>& pools) {
  std::vector<uint64_t> v;
  for (auto& p : pools) {
    for (int k = 0; k < kPool; ++k) v.push_back(p.stamp[k]), v.push_back(p.crc[k]);
  }
  if (rank == 0) {
    MPI_OK(MPI_Send(v.data(), static_cast<int>(v.size()), MPI_UINT64_T, 1, kTagSetup,
                    MPI_COMM_WORLD));
    return;
  }
  MPI_OK(MPI_Recv(v.data(), static_cast<int>(v.size()), MPI_UINT64_T, 0, kTagSetup,
                  MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  size_t at = 0;
  for (auto& p : pools) {
    for (int k = 0; k < kPool; ++k) {
      p.stamp[k] = v[at++];
      p.crc[k] = static_cast<uint32_t>(v[at++]);
    }
  }
}

// Rank 1 measured the bandwidths: send its samples to rank 0.
void gather_to_rank0(int rank, Samples& s) {
  std::vector<double> flat;
  for (auto& layer : s)
    for (auto& size : layer)
      for (double v : size) flat.push_back(v);
  if (rank == 1) {
    MPI_OK(MPI_Send(flat.data(), static_cast<int>(flat.size()), MPI_DOUBLE, 0, kTagResults,
                    MPI_COMM_WORLD));
    return;
  }
  MPI_OK(MPI_Recv(flat.data(), static_cast<int>(flat.size()), MPI_DOUBLE, 1, kTagResults,
                  MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  size_t at = 0;
  for (auto& layer : s)
    for (auto& size : layer)
      for (double& v : size) v = flat[at++];
}

std::string mpi_library() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, static_cast<size_t>(len));
  if (auto nl = s.find_first_of(",\n"); nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  tensair::tune_allocator();
  const auto args = bench::parse_args(
      argc, argv, "bench_transport",
      "Ping-pong latency and streaming bandwidth of raw MPI, the TensAIR transport and the "
      "dataflow layer, 1 KiB to 16 MiB. Run under mpirun -np 2.");
  int provided = 0;
  MPI_OK(MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided));
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world != 2) {
    if (rank == 0) {
      std::fprintf(stderr,
                   "bench_transport: error: needs exactly 2 ranks, got %d (run it as "
                   "mpirun -np 2 bench_transport)\n",
                   world);
    }
    MPI_Finalize();
    return 2;
  }
  const std::vector<Case> cases = plan(args.quick);
  const int repeats = args.repeats();
  const auto t_start = Clock::now();
  const std::string load_at_start = bench::load_average();

  std::vector<Pool> pools;
  for (const Case& c : cases) {
    if (rank == 0) {
      pools.push_back(make_pool(c.bytes));
    } else {
      Pool p;
      p.bytes = c.bytes;
      pools.push_back(std::move(p));
    }
  }
  share_checksums(rank, pools);

  const size_t nsizes = cases.size();
  Samples lat(kLayers, std::vector<std::vector<double>>(nsizes));
  Samples bw(kLayers, std::vector<std::vector<double>>(nsizes));
  Checker check;
  auto tp = runtime::make_mpi_transport();

  // Per size: a warm-up run of every layer and measurement (full CRC checks, not timed), then
  // the repeats. Each run is its own phase (one layer's traffic only); the layers take turns
  // within a repeat so that a change in machine load does not fall on one layer alone.
  for (size_t s = 0; s < nsizes; ++s) {
    const Case& c = cases[s];
    const Pool& p = pools[s];
    for (int r = 0; r <= repeats; ++r) {
      const bool verify = r == 0;
      for (int layer = 0; layer < kLayers; ++layer) {
        double l = 0;
        if (layer == 0) {
          l = raw_pingpong(rank, c, p, check, verify);
        } else if (layer == 1) {
          l = transport_pingpong(*tp, c, p, check, verify);
        } else {
          l = dataflow_pingpong(*tp, c, p, check, verify);
        }
        if (!verify) lat[static_cast<size_t>(layer)][s].push_back(l);
      }
      const int n = verify ? c.verify_messages : c.messages;
      for (int layer = 0; layer < kLayers; ++layer) {
        double b = 0;
        if (layer == 0) {
          b = raw_stream(rank, c, p, check, n, verify);
        } else if (layer == 1) {
          b = transport_stream(*tp, c, p, check, n, verify);
        } else {
          b = dataflow_stream(*tp, c, p, check, n, verify);
        }
        if (!verify) bw[static_cast<size_t>(layer)][s].push_back(b);
      }
    }
  }
  const auto tstats = tp->stats();
  tp.reset();

  gather_to_rank0(rank, bw);
  uint64_t errors = check.errors(), all_errors = 0;
  MPI_OK(MPI_Allreduce(&errors, &all_errors, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
  const std::string mpi_version = mpi_library();
  MPI_Finalize();
  if (rank != 0) return all_errors ? 1 : 0;

  bench::Report report("transport");
  report.settings["allocator"] = tensair::allocator_description();
  report.settings["load_average_at_start"] = load_at_start;
  report.settings["ranks"] = 2;
  report.settings["mpi"] = mpi_version;
  report.settings["build"] = bench::build_type();
  report.settings["quick"] = args.quick;
  report.settings["repeats"] = repeats;
  report.settings["threads"] =
      "raw MPI: 1 thread per rank; transport: main + progress thread per rank; dataflow: "
      "main, progress and one thread per operator instance";
  report.settings["transport"] = "MpiTransportOptions defaults (pack_threshold 64 KiB)";
  nlohmann::json plan_json = nlohmann::json::array();
  for (const Case& c : cases) {
    plan_json.push_back({{"bytes", c.bytes},
                         {"window", c.window},
                         {"stream_messages", c.messages},
                         {"pingpongs", c.pingpongs}});
  }
  report.settings["sizes"] = plan_json;

  std::vector<std::vector<std::string>> lat_rows, bw_rows;
  for (size_t s = 0; s < nsizes; ++s) {
    const std::string size = bench::size_name(cases[s].bytes);
    const double lraw = bench::median(lat[0][s]);
    const double braw = bench::median(bw[0][s]);
    std::vector<std::string> lrow{size}, brow{size};
    double lv[kLayers], bv[kLayers];
    for (int layer = 0; layer < kLayers; ++layer) {
      const auto L = static_cast<size_t>(layer);
      lv[layer] = bench::median(lat[L][s]);
      bv[layer] = bench::median(bw[L][s]);
      bench::Result rl{"pingpong_latency_" + std::string(kLayerKeys[layer]) + "_" + size,
                       lv[layer], "us", false, std::nullopt, std::nullopt,
                       "half round trip; " + bench::spread(lat[L][s])};
      bench::Result rb{"stream_bw_" + std::string(kLayerKeys[layer]) + "_" + size, bv[layer],
                       "GB/s", true, std::nullopt, std::nullopt,
                       "window " + std::to_string(cases[s].window) + " x " + size + ", " +
                           std::to_string(cases[s].messages) + " messages; " +
                           bench::spread(bw[L][s])};
      if (layer > 0) {
        rl.baseline = rb.baseline = "raw MPI";
        rl.baseline_value = lraw;
        rb.baseline_value = braw;
      }
      report.add(rl);
      report.add(rb);
      lrow.push_back(bench::fmt(lv[layer]));
      brow.push_back(bench::fmt(bv[layer]));
    }
    lrow.push_back(bench::fmt(lv[1] / lv[0]));
    lrow.push_back(bench::fmt(lv[2] / lv[0]));
    brow.push_back(bench::fmt(100 * bv[1] / bv[0]) + " %");
    brow.push_back(bench::fmt(100 * bv[2] / bv[0]) + " %");
    lat_rows.push_back(lrow);
    bw_rows.push_back(brow);
  }

  std::printf("## bench_transport: %s, %s, %s, %s, load average at start %s%s\n\n",
              bench::machine_description().c_str(), mpi_version.c_str(),
              tensair::allocator_description(), bench::build_type(), load_at_start.c_str(),
              args.quick ? ", --quick" : "");
  std::printf("Ping-pong latency, half round trip (us), median of %d:\n\n", repeats);
  std::fputs(bench::markdown_table({"size", "raw MPI", "transport", "dataflow",
                                    "transport / raw", "dataflow / raw"},
                                   lat_rows)
                 .c_str(),
             stdout);
  std::printf("\nOne-way streaming bandwidth (GB/s = 1e9 B/s), median of %d:\n\n", repeats);
  std::fputs(bench::markdown_table({"size", "raw MPI", "transport", "dataflow",
                                    "transport / raw", "dataflow / raw"},
                                   bw_rows)
                 .c_str(),
             stdout);
  std::printf("\n%s: %llu frames / %.1f MiB sent by rank 0's transport; %.1f s in all\n",
              all_errors ? "FAILED" : "data checked",
              static_cast<unsigned long long>(tstats.frames_sent),
              static_cast<double>(tstats.bytes_sent) / (1 << 20), bench::seconds_since(t_start));
  report.write(args.json_path);
  if (all_errors) {
    std::fprintf(stderr, "bench_transport: error: %llu payloads differ from what was sent\n",
                 static_cast<unsigned long long>(all_errors));
    return 1;
  }
  return 0;
}
