// The engine's guarantees, checked by counts and checksums at 1, 2 and 3 ranks: in-process
// (LocalCluster) in a plain test run, and over MPI when ctest starts this binary under mpirun.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "tensair/dataflow/batch_codec.hpp"
#include "tensair/ops/collect.hpp"
#include "testing/harness.hpp"
#include "testing/lambda_op.hpp"

namespace tensair {
namespace {

using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::ColumnBuilder;
using dataflow::Context;
using dataflow::DType;
using dataflow::Graph;
using dataflow::InstanceInfo;
using dataflow::Operator;
using dataflow::Placement;
using dataflow::Routing;
using dataflow::SourceState;
using testing::lambda_op;
using testing::LambdaSpec;

// This process runs rank 0 (always in-process; under mpirun only on rank 0).
bool hosts_rank0() { return !testing::under_mpi() || testing::mpi_transport().rank() == 0; }

// Emits `batches` batches of `rows` rows: src = instance index, seq = 0, 1, 2, ... per instance.
std::shared_ptr<const dataflow::OperatorDef> sequence_source(int64_t batches, int64_t rows) {
  struct Source final : Operator {
    Source(int src, int64_t b, int64_t r) : src(src), batches(b), rows(r) {}
    SourceState produce(Context& ctx) override {
      std::vector<int64_t> s(static_cast<size_t>(rows), src), q(static_cast<size_t>(rows));
      for (auto& v : q) v = next++;
      ctx.emit(0, testing::int64_batch({{"src", s}, {"seq", q}}));
      return ++emitted == batches ? SourceState::kDone : SourceState::kMore;
    }
    int src;
    int64_t batches, rows, emitted = 0, next = 0;
  };
  return lambda_op({"sequence", {}, {{"out"}}, [=](const InstanceInfo& info) {
                      return std::make_unique<Source>(info.instance, batches, rows);
                    }});
}

// Checks that every source's seq arrives in increasing order, optionally sleeping per batch to
// be a slow consumer; forwards its rows on "out" and one summary row on "summary" at the end.
std::shared_ptr<const dataflow::OperatorDef> fifo_checker(std::chrono::microseconds delay) {
  struct Checker final : Operator {
    explicit Checker(std::chrono::microseconds d) : delay(d) {}
    void process(int, const BatchPtr& b, Context& ctx) override {
      if (delay.count()) std::this_thread::sleep_for(delay);
      auto src = b->column("src").values<int64_t>();
      auto seq = b->column("seq").values<int64_t>();
      for (size_t i = 0; i < src.size(); ++i) {
        auto [it, fresh] = last.emplace(src[i], seq[i]);
        if (!fresh) {
          if (seq[i] <= it->second) violations++;
          it->second = seq[i];
        }
      }
      received += b->rows();
      ctx.emit(0, b);
    }
    void on_finish(Context& ctx) override {
      ctx.emit(1, testing::int64_batch({{"received", {received}}, {"violations", {violations}}}));
    }
    std::chrono::microseconds delay;
    std::map<int64_t, int64_t> last;
    int64_t received = 0, violations = 0;
  };
  return lambda_op({"fifo_checker", {{"in"}}, {{"out"}, {"summary"}},
                    [=](const InstanceInfo&) { return std::make_unique<Checker>(delay); }});
}

class EngineTest : public ::testing::TestWithParam<std::string> {};

// Per-edge FIFO, no loss and no duplicate under back-pressure from a slow consumer, and the
// bytes queued per channel never above the credit.
TEST_P(EngineTest, FifoNoLossNoDuplicateUnderBackPressure) {
  const std::string routing = GetParam();
  const int64_t kBatches = 200, kRows = 64;
  const size_t kCredit = 8 * 1024;  // ~10 batches of 768 bytes in flight per channel
  for (int ranks : testing::rank_counts()) {
    auto rows = std::make_shared<ops::Collection>();
    auto summary = std::make_shared<ops::Collection>();
    auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int) {
      g.add("source", sequence_source(kBatches, kRows));
      g.add("check", fifo_checker(std::chrono::microseconds(300)));
      g.add("rows", ops::collect(rows), Placement::on(0));
      g.add("summary", ops::collect(summary), Placement::on(0));
      g.connect("source", "check", routing == "key_hash" ? Routing::key_hash("seq") : Routing::round_robin(), kCredit);
      g.connect("check.out", "rows", Routing::to_rank(0));
      g.connect("check.summary", "summary", Routing::to_rank(0));
    });
    for (const auto& o : outcomes) {
      ASSERT_FALSE(o.error) << "rank " << o.rank << ": " << *o.error;
      for (const auto& s : o.stats) {
        if (s.name == "check") {
          EXPECT_LE(s.queued_bytes_peak, kCredit) << "ranks " << ranks << " rank " << o.rank;
          EXPECT_GT(s.queued_bytes_peak, 0u);
        }
        // The consumer is slower than the source: the source must have waited for credit.
        if (s.name == "source") {
          EXPECT_GT(s.credit_waits, 0u) << "ranks " << ranks;
        }
      }
    }
    if (!hosts_rank0()) continue;
    Batch all = rows->rows();
    ASSERT_EQ(all.rows(), ranks * kBatches * kRows) << "ranks " << ranks;
    std::set<std::pair<int64_t, int64_t>> seen;
    for (int64_t r = 0; r < all.rows(); ++r) {
      seen.emplace(all.column("src").at<int64_t>(r), all.column("seq").at<int64_t>(r));
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), all.rows()) << "duplicates, ranks " << ranks;
    EXPECT_EQ(seen.begin()->second, 0);
    EXPECT_EQ(seen.rbegin()->first, ranks - 1);
    EXPECT_EQ(seen.rbegin()->second, kBatches * kRows - 1);
    Batch s = summary->rows();
    int64_t received = 0, violations = 0;
    for (int64_t r = 0; r < s.rows(); ++r) {
      received += s.column("received").at<int64_t>(r);
      violations += s.column("violations").at<int64_t>(r);
    }
    EXPECT_EQ(received, ranks * kBatches * kRows);
    EXPECT_EQ(violations, 0) << "out-of-order rows, ranks " << ranks;
  }
}

INSTANTIATE_TEST_SUITE_P(Routings, EngineTest, ::testing::Values("round_robin", "key_hash"));

// 100,000 one-record batches from rank 0 to the last rank, in order: tiny batches use little
// credit (272 bytes each), so tens of thousands of sends are outstanding at once (Open MPI
// delivered them out of order beyond 65,536 outstanding sends to one peer before the transport
// bounded them).
TEST(EngineManyTinyBatches, HundredThousandOneRecordBatchesArriveInOrder) {
  const int64_t kBatches = 100000;
  for (int ranks : testing::rank_counts()) {
    auto summary = std::make_shared<ops::Collection>();
    auto sink = std::make_shared<ops::Collection>();
    auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int world) {
      g.add("source", sequence_source(kBatches, 1), Placement::on(0));
      g.add("check", fifo_checker(std::chrono::microseconds(0)), Placement::on(world - 1));
      g.add("drop", lambda_op({"drop", {{"in"}}, {}, [](const InstanceInfo&) {
                                 struct Drop final : Operator {};
                                 return std::make_unique<Drop>();
                               }}),
            Placement::on(world - 1));
      g.add("summary", ops::collect(summary), Placement::on(0));
      g.connect("source", "check", Routing::to_rank(world - 1));
      g.connect("check.out", "drop", Routing::forward());
      g.connect("check.summary", "summary", Routing::to_rank(0));
    });
    for (const auto& o : outcomes) ASSERT_FALSE(o.error) << "rank " << o.rank << ": " << *o.error;
    if (!hosts_rank0()) continue;
    Batch s = summary->rows();
    ASSERT_EQ(s.rows(), 1);
    EXPECT_EQ(s.column("received").at<int64_t>(0), kBatches) << "ranks " << ranks;
    EXPECT_EQ(s.column("violations").at<int64_t>(0), 0) << "ranks " << ranks;
  }
}

// Credit bounds the number of batches queued, not only their bytes: a slow consumer of
// one-record batches (16 bytes) behind 4 KiB of credit never has more than 4096 / (16 + 256)
// = 15 of them waiting (counting column bytes alone would let 256 wait).
TEST(EngineManyTinyBatches, CreditBoundsHowManyTinyBatchesWait) {
  const size_t kCredit = 4096;
  const int64_t kMaxQueued = static_cast<int64_t>(kCredit / (16 + dataflow::kBatchCreditCharge));
  for (int ranks : testing::rank_counts()) {
    auto deepest = std::make_shared<ops::Collection>();
    auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int world) {
      g.add("source", sequence_source(400, 1), Placement::on(0));
      g.add("slow", lambda_op({"slow", {{"in"}}, {{"out"}}, [](const InstanceInfo&) {
                                 struct Slow final : Operator {
                                   void process(int, const BatchPtr&, Context& ctx) override {
                                     deepest = std::max(deepest, static_cast<int64_t>(ctx.queued(0)));
                                     std::this_thread::sleep_for(std::chrono::microseconds(200));
                                   }
                                   void on_finish(Context& ctx) override {
                                     ctx.emit(0, testing::int64_batch({{"deepest", {deepest}}}));
                                   }
                                   int64_t deepest = 0;
                                 };
                                 return std::make_unique<Slow>();
                               }}),
            Placement::on(world - 1));
      g.add("deepest", ops::collect(deepest), Placement::on(0));
      g.connect("source", "slow", Routing::to_rank(world - 1), kCredit);
      g.connect("slow", "deepest", Routing::to_rank(0));
    });
    for (const auto& o : outcomes) ASSERT_FALSE(o.error) << "rank " << o.rank << ": " << *o.error;
    if (!hosts_rank0()) continue;
    Batch d = deepest->rows();
    ASSERT_EQ(d.rows(), 1);
    std::cout << "ranks " << ranks << ": at most " << d.column("deepest").at<int64_t>(0) << " batches waited (bound "
              << kMaxQueued << ")\n";
    EXPECT_LE(d.column("deepest").at<int64_t>(0), kMaxQueued) << "ranks " << ranks;
  }
}

// least_loaded: the receiving instance on rank 0 holds its first batch until the source (also
// on rank 0) has emitted everything; the source never waits for it, the other instances take
// every batch it has no credit for, and nothing is lost or duplicated. (round_robin would stall
// the source on the blocked instance's credit.)
std::atomic<bool> g_source_done{false};

TEST(EngineLeastLoaded, BlockedReceiverGetsOnlyItsCreditAndTheSourceGoesOn) {
  const int64_t kBatches = 300, kRows = 16;  // 256 + 256 bytes of credit charge per batch
  const size_t kCredit = 2 * (kRows * 2 * 8 + dataflow::kBatchCreditCharge);  // two batches
  for (int ranks : testing::rank_counts()) {
    if (ranks < 2) continue;
    g_source_done = false;
    auto counts = std::make_shared<ops::Collection>();
    auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int) {
      struct Source final : Operator {
        SourceState produce(Context& ctx) override {
          std::vector<int64_t> s(kRows, 0), q(kRows);
          for (auto& v : q) v = next++;
          ctx.emit(0, testing::int64_batch({{"src", s}, {"seq", q}}));
          if (++emitted < kBatches) return SourceState::kMore;
          g_source_done = true;
          return SourceState::kDone;
        }
        int64_t emitted = 0, next = 0;
      };
      struct Receiver final : Operator {
        explicit Receiver(int instance) : instance(instance) {}
        void process(int, const BatchPtr& b, Context&) override {
          // Instance 0 holds its first batch until the source is done (60 s at most, then the
          // counts below fail).
          if (instance == 0 && batches == 0) {
            for (int i = 0; i < 60000 && !g_source_done; ++i) {
              std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            held_until_done = g_source_done ? 1 : 0;
          }
          batches++;
          rows += b->rows();
          for (int64_t v : b->column("seq").values<int64_t>()) checksum += v;
        }
        void on_finish(Context& ctx) override {
          ctx.emit(0, testing::int64_batch({{"instance", {instance}}, {"batches", {batches}},
                                            {"rows", {rows}}, {"checksum", {checksum}},
                                            {"held", {held_until_done}}}));
        }
        int instance;
        int64_t batches = 0, rows = 0, checksum = 0, held_until_done = -1;
      };
      g.add("source", lambda_op({"source", {}, {{"out"}}, [](const InstanceInfo&) {
                                   return std::make_unique<Source>();
                                 }}),
            Placement::on(0));
      g.add("receive", lambda_op({"receive", {{"in"}}, {{"out"}}, [](const InstanceInfo& info) {
                                    return std::make_unique<Receiver>(info.instance);
                                  }}));
      g.add("counts", ops::collect(counts), Placement::on(0));
      g.connect("source", "receive", Routing::least_loaded(), kCredit);
      g.connect("receive", "counts", Routing::to_rank(0));
    });
    for (const auto& o : outcomes) ASSERT_FALSE(o.error) << "rank " << o.rank << ": " << *o.error;
    if (!hosts_rank0()) continue;
    Batch c = counts->rows();
    ASSERT_EQ(c.rows(), ranks);
    int64_t rows = 0, checksum = 0;
    for (int64_t r = 0; r < c.rows(); ++r) {
      rows += c.column("rows").at<int64_t>(r);
      checksum += c.column("checksum").at<int64_t>(r);
      if (c.column("instance").at<int64_t>(r) != 0) continue;
      EXPECT_EQ(c.column("held").at<int64_t>(r), 1) << "the source did not finish, ranks " << ranks;
      // Its first batch, plus what its credit admitted while it held it.
      EXPECT_LE(c.column("batches").at<int64_t>(r), 3) << "ranks " << ranks;
    }
    const int64_t n = kBatches * kRows;
    EXPECT_EQ(rows, n) << "ranks " << ranks;
    EXPECT_EQ(checksum, n * (n - 1) / 2) << "ranks " << ranks;
  }
}

// validate prints the name a job file spells.
TEST(EngineLeastLoaded, PrintsItsJobFileName) {
  EXPECT_EQ(Routing::least_loaded().to_string(), "least_loaded");
}

uint8_t pattern_byte(size_t i) { return static_cast<uint8_t>((i * 131 + 7) ^ (i >> 13)); }

// One record with a 64 MiB column crosses from rank 0 to the last rank intact (a message far
// larger than the channel's credit, so it also proves oversize messages pass alone).
TEST(EngineLargeMessage, SixtyFourMiBArrivesIntact) {
  const size_t kBytes = size_t{64} << 20;
  for (int ranks : testing::rank_counts()) {
    auto got = std::make_shared<ops::Collection>();
    auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int world) {
      struct Big final : Operator {
        SourceState produce(Context& ctx) override {
          std::vector<uint8_t> bytes(kBytes);
          for (size_t i = 0; i < kBytes; ++i) bytes[i] = pattern_byte(i);
          ColumnBuilder b({"blob", DType::kUInt8, {static_cast<int64_t>(kBytes)}});
          b.append_values(bytes.data(), bytes.size());
          ColumnBuilder name({"name", DType::kString, {}});
          name.append_string("sixty-four");
          ctx.emit(0, Batch({b.finish(), name.finish()}));
          return SourceState::kDone;
        }
      };
      struct Check final : Operator {
        void process(int, const BatchPtr& b, Context& ctx) override {
          auto v = b->column("blob").values<uint8_t>();
          uLong crc = crc32(0L, v.data(), static_cast<uInt>(v.size()));
          ctx.emit(0, testing::int64_batch({{"bytes", {static_cast<int64_t>(v.size())}},
                                            {"crc", {static_cast<int64_t>(crc)}},
                                            {"name_ok", {b->column("name").str(0) == "sixty-four"}}}));
        }
      };
      g.add("big", lambda_op({"big", {}, {{"out"}}, [](const InstanceInfo&) { return std::make_unique<Big>(); }}),
            Placement::on(0));
      g.add("check", lambda_op({"check", {{"in"}}, {{"out"}}, [](const InstanceInfo&) { return std::make_unique<Check>(); }}),
            Placement::on(world - 1));
      g.add("result", ops::collect(got), Placement::on(0));
      g.connect("big", "check", Routing::to_rank(world - 1));
      g.connect("check", "result", Routing::to_rank(0));
    });
    for (const auto& o : outcomes) ASSERT_FALSE(o.error) << *o.error;
    if (!hosts_rank0()) continue;
    std::vector<uint8_t> expect(kBytes);
    for (size_t i = 0; i < kBytes; ++i) expect[i] = pattern_byte(i);
    Batch r = got->rows();
    ASSERT_EQ(r.rows(), 1);
    EXPECT_EQ(r.column("bytes").at<int64_t>(0), static_cast<int64_t>(kBytes));
    EXPECT_EQ(r.column("crc").at<int64_t>(0),
              static_cast<int64_t>(crc32(0L, expect.data(), static_cast<uInt>(kBytes))));
    EXPECT_EQ(r.column("name_ok").at<int64_t>(0), 1);
  }
}

// A graph with cycles ends by itself with no error: a ring that forwards tokens with a
// time-to-live, and an all-to-all exchange between instances (the shape of the model's
// gradient exchange). Every message sent on the cycles is processed exactly once.
TEST(EngineCycle, GraphWithCyclesTerminates) {
  const int64_t kTtl = 3;
  for (int ranks : testing::rank_counts()) {
    auto counts = std::make_shared<ops::Collection>();
    auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int) {
      struct Seed final : Operator {
        SourceState produce(Context& ctx) override {
          ctx.emit(0, testing::int64_batch({{"ttl", {kTtl}}}));
          return SourceState::kDone;
        }
      };
      // Receives seeds on "in" and tokens on "peers"; forwards tokens with ttl-1 to every other
      // instance; counts what it processed from the cycle.
      struct Peer final : Operator {
        void process(int port, const BatchPtr& b, Context& ctx) override {
          if (port == 1) processed++;
          int64_t ttl = b->column("ttl").at<int64_t>(0);
          if (ttl > 0) ctx.emit(0, testing::int64_batch({{"ttl", {ttl - 1}}}));
        }
        void on_finish(Context& ctx) override { ctx.emit(1, testing::int64_batch({{"processed", {processed}}})); }
        int64_t processed = 0;
      };
      g.add("seed", lambda_op({"seed", {}, {{"out"}}, [](const InstanceInfo&) { return std::make_unique<Seed>(); }}));
      g.add("peer", lambda_op({"peer", {{"in"}, {"peers"}}, {{"out"}, {"count"}},
                               [](const InstanceInfo&) { return std::make_unique<Peer>(); },
                               "", /*supports_cycles=*/true}));
      g.add("counts", ops::collect(counts), Placement::on(0));
      g.connect("seed", "peer.in", Routing::forward());
      g.connect("peer.out", "peer.peers", Routing::broadcast(false));
      g.connect("peer.count", "counts", Routing::to_rank(0));
    });
    for (const auto& o : outcomes) ASSERT_FALSE(o.error) << "ranks " << ranks << ": " << *o.error;
    if (!hosts_rank0()) continue;
    // Each of the `ranks` seeds spawns (ranks-1)^k messages at hop k = 1..ttl.
    int64_t expect = 0, fan = 1;
    for (int64_t k = 1; k <= kTtl; ++k) expect += ranks * (fan *= (ranks - 1));
    Batch c = counts->rows();
    ASSERT_EQ(c.rows(), ranks);
    int64_t processed = 0;
    for (int64_t r = 0; r < c.rows(); ++r) processed += c.column("processed").at<int64_t>(r);
    EXPECT_EQ(processed, expect) << "ranks " << ranks;
  }
}

// Bytes that are not a valid frame are rejected with an error naming the sender and the
// failed check; every rank stops, the receiving rank reports it, the others end quietly.
struct Corruption {
  std::string name;
  std::function<std::vector<std::byte>()> bytes;
  std::string expect;
  // Part messages sent after `bytes` as the frame's header message (MPI only; in-process ranks
  // get the header message alone): a multi-part frame whose header lies.
  std::vector<size_t> part_sizes = {};
  // The fault lies in the parts: only MPI ranks other than the receiver can send them.
  bool mpi_only = false;
};

// The header message of a multi-part frame: a sealed 64-byte header, as given.
std::vector<std::byte> multipart_header(uint32_t parts, size_t meta, uint64_t payload) {
  runtime::FrameHeader h;
  h.kind = 1;
  runtime::seal_header(h, 0, parts, meta, payload);
  std::vector<std::byte> b(runtime::kFrameHeaderBytes + meta);
  std::memcpy(b.data(), &h, runtime::kFrameHeaderBytes);
  return b;
}

std::vector<std::byte> valid_data_frame() {
  runtime::OutFrame f;
  f.header.kind = 1;  // data
  f.header.channel = 0;
  dataflow::encode_batch(dataflow::share(testing::int64_batch({{"x", {1, 2, 3}}})), f);
  runtime::InFrame packed = runtime::pack_frame(f, 0);
  return std::vector<std::byte>(packed.buffer.get(), packed.buffer.get() + packed.size);
}

class CorruptFrameTest : public ::testing::TestWithParam<int> {};

const std::vector<Corruption>& corruptions() {
  static const std::vector<Corruption> all = {
      {"bad_magic", [] { auto b = valid_data_frame(); b[0] = std::byte{0x42}; return b; }, "bad magic"},
      {"bad_checksum", [] { auto b = valid_data_frame(); b[20] ^= std::byte{1}; return b; }, "header checksum mismatch"},
      {"truncated", [] { auto b = valid_data_frame(); b.resize(b.size() - 8); return b; }, "header says"},
      {"short", [] { return std::vector<std::byte>(10, std::byte{7}); }, "shorter than the 64-byte header"},
      {"bad_batch", [] {
         auto b = valid_data_frame();
         b[runtime::kFrameHeaderBytes] ^= std::byte{0xff};  // the batch's magic, inside a valid frame
         return b;
       }, "invalid batch: bad magic"},
      // Once wrapped the size check (heap corruption); now one line, and the sender's 1 MiB
      // part message is received and discarded, so that it does not wait on it forever.
      {"wrapping_payload", [] { return multipart_header(1, 0, ~uint64_t{0} - 63); },
       "bytes exceeds the limit of", {size_t{1} << 20}},
      {"lying_multipart", [] { return multipart_header(2, 100, 50); },
       "meta_bytes 100 exceeds payload_bytes 50", {size_t{64} << 10, size_t{64} << 10}},
      // A part larger than the payload announced: discarded, never received into the frame's
      // buffer, and the frame's later parts are discarded with it (not taken for the next one's).
      {"part_past_payload", [] { return multipart_header(2, 0, 128); },
       "runs past the announced payload of 128 bytes", {size_t{1} << 20, 64}, true},
      {"parts_short_of_payload", [] { return multipart_header(1, 0, 4096); },
       "parts end at byte 100, header announced 4096", {100}, true},
  };
  return all;
}

TEST_P(CorruptFrameTest, RejectedWithAnError) {
  const Corruption& c = corruptions()[static_cast<size_t>(GetParam())];
  if (c.mpi_only && (!testing::under_mpi() || testing::rank_counts().front() < 2)) {
    GTEST_SKIP() << "needs part messages between two MPI ranks";
  }
  for (int ranks : testing::rank_counts()) {
    std::vector<testing::RankOutcome> outcomes;
    std::mutex mu;
    testing::run_ranks(ranks, [&](runtime::Transport& t) {
      const int victim = t.world_size() - 1;
      if (t.rank() == 0) {
        std::vector<std::vector<std::byte>> parts;
        for (size_t n : c.part_sizes) parts.emplace_back(n, std::byte{0x5a});
        t.send_raw_parts(victim, c.bytes(), std::move(parts));
      }
      Graph g;
      // A job that would run for a while: the bad frame ends it.
      g.add("source", sequence_source(1000000, 16), Placement::on(0));
      g.add("sink", ops::collect(std::make_shared<ops::Collection>()), Placement::on(victim));
      g.connect("source", "sink", Routing::to_rank(victim));
      testing::RankOutcome out;
      out.rank = t.rank();
      dataflow::Executor ex(g, t);
      try {
        ex.run();
      } catch (const Error& e) {
        out.error = (e.from_other_rank() ? std::string("peer: ") : std::string()) + e.what();
      }
      std::lock_guard lock(mu);
      outcomes.push_back(out);
    });
    for (const auto& o : outcomes) {
      ASSERT_TRUE(o.error) << c.name << ": rank " << o.rank << " finished without error";
      const bool victim = o.rank == ranks - 1;
      if (victim) {
        EXPECT_NE(o.error->find("invalid frame from rank 0"), std::string::npos) << *o.error;
        EXPECT_NE(o.error->find(c.expect), std::string::npos) << *o.error;
      } else {
        // The same error, of the same kind, arrives on every rank, marked as another rank's.
        EXPECT_EQ(o.error->rfind("peer: ", 0), 0u) << *o.error;
        EXPECT_NE(o.error->find("invalid frame from rank 0"), std::string::npos) << *o.error;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, CorruptFrameTest, ::testing::Range(0, static_cast<int>(corruptions().size())),
                         [](const auto& info) { return corruptions()[static_cast<size_t>(info.param)].name; });

// An operator's exception ends the job on every rank, with the operator, instance and rank
// named once: every rank rethrows it as the same kind (DataError here), and all but the rank it
// arose on know it came from that rank.
TEST(EngineErrors, OperatorExceptionStopsEveryRank) {
  for (int ranks : testing::rank_counts()) {
    auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int world) {
      struct Boom final : Operator {
        void process(int, const BatchPtr& b, Context&) override {
          if (b->column("seq").at<int64_t>(0) >= 640) throw DataError("value out of range");
        }
      };
      g.add("source", sequence_source(100000, 64));
      g.add("boom", lambda_op({"boom", {{"in"}}, {}, [](const InstanceInfo&) { return std::make_unique<Boom>(); }}),
            Placement::on(world - 1));
      g.connect("source", "boom", Routing::to_rank(world - 1));
    });
    int reported = 0;
    for (const auto& o : outcomes) {
      ASSERT_TRUE(o.error) << "rank " << o.rank;
      EXPECT_NE(o.error->find("operator \"boom\": value out of range"), std::string::npos) << *o.error;
      EXPECT_EQ(o.error_kind, ErrorKind::kData) << "rank " << o.rank;
      if (o.error_origin < 0) {
        reported++;
      } else {
        EXPECT_EQ(o.error_origin, ranks - 1);
      }
      EXPECT_EQ(o.exit_code, 1);
    }
    if (!testing::under_mpi()) {
      EXPECT_EQ(reported, 1);
    }
  }
}

}  // namespace
}  // namespace tensair
