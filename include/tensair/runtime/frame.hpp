// Frames: the unit the transport moves between ranks. See docs/wire-format.md.
//
// A frame is a 64-byte header followed by a payload. The payload starts with `meta_bytes` of
// metadata and continues with zero or more "parts": large contiguous byte ranges, each starting
// at a 64-byte aligned offset (part 0 at align_up(meta_bytes), part k+1 at
// align_up(end of part k)). The receiver gets the whole frame in one 64-byte aligned buffer, so
// codecs can hand out aligned, zero-copy views of the parts.
//
// The transport owns the fields magic, version, parts, meta_bytes, payload_bytes, src_rank and
// crc; the fields kind, channel, seq and aux belong to the layer above and are carried unchanged.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tensair::runtime {

static_assert(std::endian::native == std::endian::little,
              "the wire format is little-endian; big-endian hosts are not supported");

inline constexpr uint32_t kFrameMagic = 0x524e5354;  // "TSNR" read as little-endian bytes
inline constexpr uint16_t kFrameVersion = 1;
inline constexpr size_t kFrameAlign = 64;
inline constexpr size_t kFrameHeaderBytes = 64;

constexpr size_t align_up(size_t n, size_t a = kFrameAlign) { return (n + a - 1) / a * a; }

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint16_t version = kFrameVersion;
  uint8_t kind = 0;  // meaning defined by the layer above (dataflow::FrameKind)
  uint8_t flags = 0;
  uint32_t channel = 0;  // layer above
  uint32_t parts = 0;    // part messages that follow on the wire (0: frame sent packed)
  uint64_t seq = 0;      // layer above (per-channel sequence number)
  uint64_t meta_bytes = 0;
  uint64_t payload_bytes = 0;  // meta + parts + alignment gaps
  uint64_t aux = 0;            // layer above
  uint32_t src_rank = 0;
  uint32_t reserved0 = 0;
  uint32_t reserved1 = 0;
  uint32_t crc = 0;  // CRC-32 (zlib) of the 60 bytes before it
};
static_assert(sizeof(FrameHeader) == kFrameHeaderBytes);

// CRC-32 of the header's first 60 bytes.
uint32_t header_crc(const FrameHeader& h);

// A contiguous range of bytes to send; the frame's keepalive owns it.
struct Segment {
  const std::byte* data = nullptr;
  size_t size = 0;
};

// A frame on its way out. The layer above fills header.kind/channel/seq/aux, meta and parts;
// the transport fills the rest. `keepalive` keeps the parts' memory valid until sent.
struct OutFrame {
  FrameHeader header;
  std::vector<std::byte> meta;
  std::vector<Segment> parts;
  std::shared_ptr<const void> keepalive;

  // meta + parts + alignment gaps, following the layout rule above.
  size_t payload_bytes() const;
};

// Offsets of each part inside the payload, following the layout rule above.
std::vector<size_t> part_offsets(size_t meta_bytes, const std::vector<size_t>& part_sizes);

// A received frame: the whole frame (header at offset 0, payload at offset 64) in one
// 64-byte aligned buffer that the frame co-owns.
struct InFrame {
  FrameHeader header;
  std::shared_ptr<std::byte> buffer;
  size_t size = 0;  // 64 + payload_bytes
  int src_rank = 0;

  const std::byte* payload() const { return buffer.get() + kFrameHeaderBytes; }
  size_t payload_size() const { return size - kFrameHeaderBytes; }
  std::shared_ptr<const void> owner() const { return buffer; }
};

// An aligned, uninitialised buffer of `bytes` bytes (at least 1).
std::shared_ptr<std::byte> allocate_aligned(size_t bytes);

// Writes the frame packed into one contiguous buffer (header, meta, zero gaps, parts). The
// header's transport fields are filled (parts = 0) and its CRC computed.
InFrame pack_frame(const OutFrame& frame, int src_rank);

// Fills the transport fields of the header for a frame sent with `parts` part messages.
void seal_header(FrameHeader& h, int src_rank, uint32_t parts, size_t meta_bytes,
                 size_t payload_bytes);

// Checks a header read from the wire: magic, version, CRC, sizes within `max_frame_bytes`,
// meta within payload, and the claimed source. Throws TransportError naming the sender and the
// first failed check.
void validate_header(const FrameHeader& h, int from_rank, size_t max_frame_bytes);

// Reads and validates the header at the start of a complete packed frame of `size` bytes
// received from `from_rank`; also checks that the size matches the header. Throws
// TransportError.
FrameHeader read_packed_header(const std::byte* data, size_t size, int from_rank,
                               size_t max_frame_bytes);

}  // namespace tensair::runtime
