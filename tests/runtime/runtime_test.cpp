// Frames, credit gates and the in-process transport.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "runtime/credit_gate.hpp"
#include "runtime/frame_assembly.hpp"
#include "tensair/runtime/transport.hpp"

namespace tensair::runtime {
namespace {

OutFrame frame_with(std::vector<std::byte> meta, const std::vector<std::vector<std::byte>*>& parts) {
  OutFrame f;
  f.header.kind = 7;
  f.header.channel = 3;
  f.header.seq = 99;
  f.header.aux = 1234;
  f.meta = std::move(meta);
  for (auto* p : parts) f.parts.push_back({p->data(), p->size()});
  return f;
}

TEST(FrameTest, PackedLayoutFollowsTheAlignmentRule) {
  std::vector<std::byte> a(100, std::byte{1}), b(3, std::byte{2});
  OutFrame f = frame_with(std::vector<std::byte>(10, std::byte{9}), {&a, &b});
  auto offsets = part_offsets(10, {100, 3});
  EXPECT_EQ(offsets, (std::vector<size_t>{64, 192}));
  EXPECT_EQ(f.payload_bytes(), 195u);
  InFrame in = pack_frame(f, 2);
  EXPECT_EQ(in.size, 64u + 195u);
  FrameHeader h = read_packed_header(in.buffer.get(), in.size, 2, 1 << 20);
  EXPECT_EQ(h.kind, 7);
  EXPECT_EQ(h.channel, 3u);
  EXPECT_EQ(h.seq, 99u);
  EXPECT_EQ(h.aux, 1234u);
  EXPECT_EQ(h.src_rank, 2u);
  EXPECT_EQ(in.payload()[64], std::byte{1});
  EXPECT_EQ(in.payload()[192], std::byte{2});
  EXPECT_EQ(in.payload()[63], std::byte{0});
}

std::string header_error(std::vector<std::byte> bytes, int from = 0, size_t max = 1 << 20) {
  try {
    read_packed_header(bytes.data(), bytes.size(), from, max);
  } catch (const TransportError& e) {
    return e.what();
  }
  return "(valid)";
}

std::vector<std::byte> packed(int src = 0) {
  std::vector<std::byte> a(40, std::byte{5});
  InFrame in = pack_frame(frame_with({}, {&a}), src);
  return std::vector<std::byte>(in.buffer.get(), in.buffer.get() + in.size);
}

TEST(FrameTest, ValidationNamesSenderAndCheck) {
  EXPECT_EQ(header_error(packed()), "(valid)");
  auto b = packed();
  b[0] = std::byte{0};
  EXPECT_EQ(header_error(b).rfind("invalid frame from rank 0: bad magic 0x", 0), 0u);
  b = packed();
  b[4] = std::byte{2};
  EXPECT_EQ(header_error(b), "invalid frame from rank 0: unsupported version 2 (this build reads version 1)");
  b = packed();
  b[9] ^= std::byte{1};
  EXPECT_EQ(header_error(b), "invalid frame from rank 0: header checksum mismatch");
  EXPECT_EQ(header_error(packed(1), 0), "invalid frame from rank 0: header claims source rank 1");
  b = packed();
  b.push_back(std::byte{0});
  EXPECT_EQ(header_error(b), "invalid frame from rank 0: header says 104 bytes, received 105");
  EXPECT_EQ(header_error(packed(), 0, 100),
            "invalid frame from rank 0: frame with a payload of 40 bytes exceeds the limit of 100 bytes");
  EXPECT_EQ(header_error(std::vector<std::byte>(3)), "invalid frame from rank 0: 3 bytes is shorter than the 64-byte header");
}

// A payload near 2^64 once wrapped payload + header below the limit: a 64-byte buffer was
// allocated and the part message received past it (heap corruption).
TEST(FrameTest, PayloadSizeNearTwoToTheSixtyFourIsRefusedNotWrapped) {
  for (uint64_t payload : {~uint64_t{0} - 63, ~uint64_t{0}, (uint64_t{1} << 63) + 1,
                           uint64_t{1} << 30}) {
    FrameHeader h;
    h.kind = 1;
    seal_header(h, 0, 1, 0, payload);
    try {
      validate_header(h, 0, size_t{1} << 30);
      ADD_FAILURE() << "payload " << payload << " accepted";
    } catch (const TransportError& e) {
      EXPECT_EQ(std::string(e.what()), "invalid frame from rank 0: frame with a payload of " +
                                           std::to_string(payload) +
                                           " bytes exceeds the limit of 1073741824 bytes");
    }
  }
  FrameHeader ok;
  ok.kind = 1;
  seal_header(ok, 0, 1, 0, (size_t{1} << 30) - kFrameHeaderBytes);
  EXPECT_NO_THROW(validate_header(ok, 0, size_t{1} << 30));
  EXPECT_THROW(validate_header(ok, 0, kFrameHeaderBytes - 1), TransportError);
}

// FrameAssembly: a multi-part frame put together from its messages, byte for byte.
struct Assembled {
  FrameAssembly::State state;
  std::vector<std::string> errors;
  std::vector<bool> placed;  // per part: received into the frame (true) or discarded
  InFrame frame;
};

std::shared_ptr<std::byte> copy_of(const std::vector<std::byte>& b) {
  auto p = allocate_aligned(b.size());
  if (!b.empty()) std::memcpy(p.get(), b.data(), b.size());
  return p;
}

Assembled assemble(const std::vector<std::byte>& header_message,
                   const std::vector<std::vector<std::byte>>& parts, size_t max = 1 << 20) {
  Assembled out;
  FrameAssembly a(0, max);
  auto note = [&] {
    if (auto e = a.take_error()) out.errors.push_back(*e);
  };
  a.on_header(copy_of(header_message), header_message.size(), allocate_aligned);
  note();
  for (const auto& p : parts) {
    if (!a.wants_part()) break;
    std::byte* at = a.place_part(p.size());
    note();
    out.placed.push_back(at != nullptr);
    if (at && !p.empty()) std::memcpy(at, p.data(), p.size());
  }
  a.on_parts_received();
  note();
  out.state = a.state();
  if (out.state == FrameAssembly::State::kComplete) out.frame = a.take_frame();
  return out;
}

// The header message of a frame sent in parts: header + meta, as pack_frame lays it out.
std::vector<std::byte> header_message(const OutFrame& f) {
  FrameHeader h = f.header;
  seal_header(h, 0, static_cast<uint32_t>(f.parts.size()), f.meta.size(), f.payload_bytes());
  std::vector<std::byte> b(kFrameHeaderBytes + f.meta.size());
  std::memcpy(b.data(), &h, kFrameHeaderBytes);
  if (!f.meta.empty()) std::memcpy(b.data() + kFrameHeaderBytes, f.meta.data(), f.meta.size());
  return b;
}

TEST(FrameAssemblyTest, PartsLandWherePackFrameWouldPutThem) {
  std::vector<std::byte> a(100, std::byte{1}), b(3, std::byte{2});
  OutFrame f = frame_with(std::vector<std::byte>(10, std::byte{9}), {&a, &b});
  Assembled got = assemble(header_message(f), {a, b});
  ASSERT_EQ(got.state, FrameAssembly::State::kComplete) << ::testing::PrintToString(got.errors);
  EXPECT_TRUE(got.errors.empty());
  InFrame want = pack_frame(f, 0);
  ASSERT_EQ(got.frame.size, want.size);
  for (size_t off : part_offsets(10, {100, 3})) {
    EXPECT_EQ(got.frame.payload()[off], want.payload()[off]) << off;
  }
  EXPECT_EQ(std::memcmp(got.frame.payload(), want.payload(), 10), 0);
  EXPECT_EQ(got.frame.header.seq, 99u);
}

TEST(FrameAssemblyTest, PackedFrameIsCompleteAtOnce) {
  Assembled got = assemble(packed(), {});
  EXPECT_EQ(got.state, FrameAssembly::State::kComplete);
  EXPECT_EQ(got.frame.size, packed().size());
}

TEST(FrameAssemblyTest, RejectedFramesConsumeEveryAnnouncedPartAndReportOnce) {
  auto sealed = [](uint32_t parts, size_t meta, uint64_t payload) {
    FrameHeader h;
    seal_header(h, 0, parts, meta, payload);
    std::vector<std::byte> b(kFrameHeaderBytes + meta);
    std::memcpy(b.data(), &h, kFrameHeaderBytes);
    return b;
  };
  const std::vector<std::byte> big(4096), small(64);
  struct Case {
    std::vector<std::byte> header;
    std::vector<std::vector<std::byte>> parts;
    std::vector<bool> placed;
    std::string error;
  };
  const std::vector<Case> cases = {
      {sealed(2, 0, 128), {big, small}, {false, false},
       "invalid frame from rank 0: part of 4096 bytes runs past the announced payload of 128 "
       "bytes"},
      {sealed(2, 0, 128), {small, big}, {true, false},
       "invalid frame from rank 0: part of 4096 bytes runs past the announced payload of 128 "
       "bytes"},
      {sealed(1, 0, 4096), {small}, {true},
       "invalid frame from rank 0: parts end at byte 64, header announced 4096"},
      {sealed(3, 100, 50), {small, small, small}, {false, false, false},
       "invalid frame from rank 0: meta_bytes 100 exceeds payload_bytes 50"},
      {sealed(1, 0, ~uint64_t{0} - 63), {small}, {false},
       "invalid frame from rank 0: frame with a payload of 18446744073709551552 bytes exceeds "
       "the limit of 1048576 bytes"},
      // A header message longer than header + meta.
      {[&] { auto b = sealed(1, 0, 64); b.resize(80); return b; }(), {small}, {false},
       "invalid frame from rank 0: header message of 80 bytes, header says 64"},
  };
  for (const Case& c : cases) {
    Assembled got = assemble(c.header, c.parts);
    EXPECT_EQ(got.state, FrameAssembly::State::kDropped) << c.error;
    EXPECT_EQ(got.placed, c.placed) << c.error;
    EXPECT_EQ(got.errors, std::vector<std::string>{c.error});
  }
  // A header that fails its checksum cannot say how many parts follow: dropped at once.
  auto b = sealed(2, 0, 128);
  b[30] ^= std::byte{1};
  Assembled got = assemble(b, {small, small});
  EXPECT_EQ(got.state, FrameAssembly::State::kDropped);
  EXPECT_TRUE(got.placed.empty());
  EXPECT_EQ(got.errors, std::vector<std::string>{"invalid frame from rank 0: header checksum mismatch"});
}

TEST(CreditGateTest, BlocksBeyondTheWindowAndLetsAnOversizedMessageThroughAlone) {
  CreditGate gate(100);
  EXPECT_EQ(gate.acquire(60).count(), 0);
  EXPECT_EQ(gate.acquire(40).count(), 0);
  std::atomic<bool> passed{false};
  std::thread t([&] {
    gate.acquire(10);
    passed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(passed.load());
  gate.release(60);
  t.join();
  EXPECT_TRUE(passed.load());
  EXPECT_EQ(gate.in_flight(), 50u);
  gate.release(50);
  EXPECT_EQ(gate.acquire(1000).count(), 0);  // larger than the window, nothing in flight
  EXPECT_EQ(gate.in_flight(), 1000u);
}

TEST(CreditGateTest, CancelWakesWaiters) {
  CreditGate gate(10);
  gate.acquire(10);
  std::thread t([&] { EXPECT_THROW(gate.acquire(5), Cancelled); });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  gate.cancel();
  t.join();
}

TEST(LocalClusterTest, DeliversInOrderAndShutsDownCollectively) {
  for (int world : {1, 2, 3}) {
    LocalCluster cluster(world);
    std::vector<std::vector<uint64_t>> got(static_cast<size_t>(world));
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r) {
      threads.emplace_back([&, r] {
        Transport& t = cluster.transport(r);
        t.start([&, r](InFrame&& f) { got[static_cast<size_t>(r)].push_back(f.header.seq * 10 + static_cast<uint64_t>(f.src_rank)); },
                [](const std::string& m) { ADD_FAILURE() << m; });
        for (int i = 0; i < 100; ++i) {
          for (int dst = 0; dst < world; ++dst) {
            OutFrame f;
            f.header.seq = static_cast<uint64_t>(i);
            t.send(dst, std::move(f));
          }
        }
        t.shutdown();
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < world; ++r) {
      const auto& g = got[static_cast<size_t>(r)];
      ASSERT_EQ(g.size(), static_cast<size_t>(100 * world));
      std::vector<uint64_t> last(static_cast<size_t>(world), 0);
      std::vector<bool> seen(static_cast<size_t>(world), false);
      for (uint64_t v : g) {
        size_t src = v % 10;
        uint64_t seq = v / 10;
        if (seen[src]) {
          EXPECT_EQ(seq, last[src] + 1);
        }
        seen[src] = true;
        last[src] = seq;
      }
    }
  }
}

}  // namespace
}  // namespace tensair::runtime
