// Fuzz target: a frame as the receiving rank gets it — a header message, then the part
// messages it announces — put together by FrameAssembly, and a complete data frame's payload
// decoded as a record batch. Input: [reseal: 1 byte][header size: 4][header message]
// then per part [size: 4][bytes]. With `reseal` odd, the header's checksum is recomputed so
// that mutations reach the checks behind it.
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "runtime/frame_assembly.hpp"
#include "tensair/dataflow/batch_codec.hpp"

namespace tensair::fuzz {

using runtime::FrameAssembly;
using runtime::FrameHeader;
using runtime::kFrameHeaderBytes;

namespace {

std::string le32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }

std::string input(const std::string& header_message, const std::vector<std::string>& parts,
                  bool reseal) {
  std::string s(1, reseal ? '\1' : '\0');
  s += le32(static_cast<uint32_t>(header_message.size())) + header_message;
  for (const auto& p : parts) s += le32(static_cast<uint32_t>(p.size())) + p;
  return s;
}

}  // namespace

std::vector<std::string> seeds() {
  using namespace dataflow;
  runtime::OutFrame f;
  f.header.kind = 1;
  std::vector<int64_t> x = {1, 2, 3, 4};
  std::vector<float> y = {0.5f, 1.5f};
  Column cx("x", DType::kInt64, {}, 4, Bytes::copy(x.data(), 32));
  Column cy("y", DType::kFloat32, {2}, 1, Bytes::copy(y.data(), 8));
  encode_batch(share(Batch({cx.slice(0, 1), cy})), f);
  runtime::InFrame packed = runtime::pack_frame(f, 0);
  std::string whole(reinterpret_cast<const char*>(packed.buffer.get()), packed.size);
  // The same frame as a header message and its parts.
  FrameHeader h = f.header;
  runtime::seal_header(h, 0, static_cast<uint32_t>(f.parts.size()), f.meta.size(),
                       f.payload_bytes());
  std::string header(reinterpret_cast<const char*>(&h), kFrameHeaderBytes);
  header.append(reinterpret_cast<const char*>(f.meta.data()), f.meta.size());
  std::vector<std::string> parts;
  for (const auto& s : f.parts) parts.emplace_back(reinterpret_cast<const char*>(s.data), s.size);
  return {input(whole, {}, false), input(header, parts, false), input(header, parts, true),
          input(header.substr(0, 64), {std::string(100, 'p')}, true)};
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensair;
  using runtime::FrameAssembly;
  using runtime::FrameHeader;
  using runtime::kFrameHeaderBytes;
  fuzz::ByteReader in(data, size);
  const bool reseal = in.take_bool();
  std::string header = in.take_bytes(in.take<uint32_t>() % 4096);
  if (reseal && header.size() >= kFrameHeaderBytes) {
    FrameHeader h;
    std::memcpy(&h, header.data(), kFrameHeaderBytes);
    h.crc = runtime::header_crc(h);
    std::memcpy(header.data(), &h, kFrameHeaderBytes);
  }
  constexpr size_t kMaxFrame = size_t{1} << 20;
  FrameAssembly a(0, kMaxFrame);
  a.on_header(fuzz::aligned_copy(reinterpret_cast<const uint8_t*>(header.data()),
                                 header.size()),
              header.size(), runtime::allocate_aligned);
  // At most 64 parts are simulated; a frame announcing more stays incomplete, as it would on
  // the wire until its parts arrive.
  for (int i = 0; i < 64 && a.wants_part(); ++i) {
    const std::string part = in.take_bytes(in.take<uint32_t>() % 8192);
    std::byte* at = a.place_part(part.size());
    if (at && !part.empty()) std::memcpy(at, part.data(), part.size());
  }
  a.on_parts_received();
  a.take_error();
  if (a.state() != FrameAssembly::State::kComplete) return 0;
  runtime::InFrame frame = a.take_frame();
  if (frame.size != kFrameHeaderBytes + frame.header.payload_bytes || frame.size > kMaxFrame) {
    std::abort();  // the assembly's contract: a complete frame is exactly what it announced
  }
  fuzz::tolerate_errors([&] {
    dataflow::decode_batch(frame.owner(), frame.payload(), frame.payload_size());
  });
  return 0;
}
