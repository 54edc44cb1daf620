#include "tensair/runtime/frame.hpp"

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "tensair/common/error.hpp"

namespace tensair::runtime {

uint32_t header_crc(const FrameHeader& h) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(&h), offsetof(FrameHeader, crc)));
}

std::vector<size_t> part_offsets(size_t meta_bytes, const std::vector<size_t>& part_sizes) {
  std::vector<size_t> offsets;
  offsets.reserve(part_sizes.size());
  size_t end = meta_bytes;
  for (size_t size : part_sizes) {
    size_t at = align_up(end);
    offsets.push_back(at);
    end = at + size;
  }
  return offsets;
}

size_t OutFrame::payload_bytes() const {
  size_t end = meta.size();
  for (const Segment& s : parts) end = align_up(end) + s.size;
  return end;
}

std::shared_ptr<std::byte> allocate_aligned(size_t bytes) {
  size_t n = align_up(bytes == 0 ? 1 : bytes);
  void* p = std::aligned_alloc(kFrameAlign, n);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

void seal_header(FrameHeader& h, int src_rank, uint32_t parts, size_t meta_bytes,
                 size_t payload_bytes) {
  h.magic = kFrameMagic;
  h.version = kFrameVersion;
  h.parts = parts;
  h.meta_bytes = meta_bytes;
  h.payload_bytes = payload_bytes;
  h.src_rank = static_cast<uint32_t>(src_rank);
  h.reserved0 = 0;
  h.reserved1 = 0;
  h.crc = header_crc(h);
}

InFrame pack_frame(const OutFrame& frame, int src_rank) {
  const size_t payload = frame.payload_bytes();
  InFrame in;
  in.size = kFrameHeaderBytes + payload;
  in.buffer = allocate_aligned(in.size);
  in.src_rank = src_rank;
  in.header = frame.header;
  seal_header(in.header, src_rank, 0, frame.meta.size(), payload);
  std::byte* out = in.buffer.get();
  std::memcpy(out, &in.header, kFrameHeaderBytes);
  std::byte* p = out + kFrameHeaderBytes;
  if (!frame.meta.empty()) std::memcpy(p, frame.meta.data(), frame.meta.size());
  size_t end = frame.meta.size();
  for (const Segment& s : frame.parts) {
    size_t at = align_up(end);
    std::memset(p + end, 0, at - end);
    if (s.size) std::memcpy(p + at, s.data, s.size);
    end = at + s.size;
  }
  return in;
}

void validate_header(const FrameHeader& h, int from_rank, size_t max_frame_bytes) {
  auto fail = [&](const std::string& what) {
    throw TransportError("invalid frame from rank " + std::to_string(from_rank) + ": " + what);
  };
  if (h.magic != kFrameMagic) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%08x", h.magic);
    fail(std::string("bad magic ") + buf);
  }
  if (h.version != kFrameVersion) {
    fail("unsupported version " + std::to_string(h.version) + " (this build reads version " +
         std::to_string(kFrameVersion) + ")");
  }
  if (h.crc != header_crc(h)) fail("header checksum mismatch");
  if (h.meta_bytes > h.payload_bytes) {
    fail("meta_bytes " + std::to_string(h.meta_bytes) + " exceeds payload_bytes " +
         std::to_string(h.payload_bytes));
  }
  // Compared without adding: payload_bytes comes from the wire, and payload + header would
  // wrap for a payload near 2^64 (a 64-byte buffer, then a part received past it).
  if (max_frame_bytes < kFrameHeaderBytes ||
      h.payload_bytes > max_frame_bytes - kFrameHeaderBytes) {
    fail("frame with a payload of " + std::to_string(h.payload_bytes) +
         " bytes exceeds the limit of " + std::to_string(max_frame_bytes) + " bytes");
  }
  if (static_cast<int>(h.src_rank) != from_rank) {
    fail("header claims source rank " + std::to_string(h.src_rank));
  }
}

FrameHeader read_packed_header(const std::byte* data, size_t size, int from_rank,
                               size_t max_frame_bytes) {
  if (size < kFrameHeaderBytes) {
    throw TransportError("invalid frame from rank " + std::to_string(from_rank) + ": " +
                         std::to_string(size) + " bytes is shorter than the 64-byte header");
  }
  FrameHeader h;
  std::memcpy(&h, data, kFrameHeaderBytes);
  validate_header(h, from_rank, max_frame_bytes);
  if (h.parts != 0) {
    throw TransportError("invalid frame from rank " + std::to_string(from_rank) +
                         ": packed frame announces " + std::to_string(h.parts) + " parts");
  }
  if (kFrameHeaderBytes + h.payload_bytes != size) {
    throw TransportError("invalid frame from rank " + std::to_string(from_rank) + ": header says " +
                         std::to_string(kFrameHeaderBytes + h.payload_bytes) +
                         " bytes, received " + std::to_string(size));
  }
  return h;
}

}  // namespace tensair::runtime
