#include "frame_assembly.hpp"

#include <cstring>
#include <new>
#include <utility>

#include "tensair/common/error.hpp"

namespace tensair::runtime {

FrameAssembly::State FrameAssembly::on_header(std::shared_ptr<std::byte> message, size_t size,
                                              const Allocate& allocate) {
  const std::string from = "invalid frame from rank " + std::to_string(src_) + ": ";
  if (size < kFrameHeaderBytes) {
    reject(from + std::to_string(size) + " bytes is shorter than the 64-byte header");
    state_ = State::kDropped;
    return state_;
  }
  std::memcpy(&header_, message.get(), kFrameHeaderBytes);
  try {
    validate_header(header_, src_, max_frame_bytes_);
    if (header_.parts == 0) {
      read_packed_header(message.get(), size, src_, max_frame_bytes_);
      full_ = std::move(message);
      state_ = State::kComplete;
      return state_;
    }
    if (size != kFrameHeaderBytes + header_.meta_bytes) {
      throw TransportError(from + "header message of " + std::to_string(size) +
                           " bytes, header says " +
                           std::to_string(kFrameHeaderBytes + header_.meta_bytes));
    }
    try {
      full_ = allocate(kFrameHeaderBytes + header_.payload_bytes);
    } catch (const std::bad_alloc&) {
      throw TransportError(from + "no memory for a frame of " +
                           std::to_string(header_.payload_bytes) + " bytes");
    }
    std::memcpy(full_.get(), message.get(), size);
    parts_end_ = header_.meta_bytes;
    state_ = State::kParts;
  } catch (const TransportError& e) {
    reject(e.what());
    // When the header is as the sender sealed it (magic and checksum hold; the size or layout
    // is what is wrong), its part messages are received and discarded in their turn, so that
    // the sender's sends complete. A header that does not hold its checksum cannot say how
    // many parts follow.
    const bool sealed = header_.magic == kFrameMagic && header_.crc == header_crc(header_);
    if (sealed && header_.parts > 0) {
      discarding_ = true;
      state_ = State::kParts;
    } else {
      state_ = State::kDropped;
    }
  }
  return state_;
}

std::byte* FrameAssembly::place_part(size_t count) {
  if (!wants_part()) return nullptr;
  parts_placed_++;
  if (discarding_) return nullptr;
  const size_t at = align_up(parts_end_);
  // at <= payload_bytes is not given (meta may end within the last alignment gap), so compare
  // without adding: count comes from the wire.
  if (at > header_.payload_bytes || count > header_.payload_bytes - at) {
    reject("invalid frame from rank " + std::to_string(src_) + ": part of " +
           std::to_string(count) + " bytes runs past the announced payload of " +
           std::to_string(header_.payload_bytes) + " bytes");
    discarding_ = true;
    return nullptr;
  }
  parts_end_ = at + count;
  return full_.get() + kFrameHeaderBytes + at;
}

FrameAssembly::State FrameAssembly::on_parts_received() {
  if (state_ != State::kParts || parts_placed_ < header_.parts) return state_;
  if (!discarding_ && parts_end_ != header_.payload_bytes) {
    reject("invalid frame from rank " + std::to_string(src_) + ": parts end at byte " +
           std::to_string(parts_end_) + ", header announced " +
           std::to_string(header_.payload_bytes));
    discarding_ = true;
  }
  if (discarding_) {
    full_.reset();
    state_ = State::kDropped;
  } else {
    state_ = State::kComplete;
  }
  return state_;
}

std::optional<std::string> FrameAssembly::take_error() { return std::exchange(error_, {}); }

InFrame FrameAssembly::take_frame() {
  InFrame frame;
  frame.header = header_;
  frame.buffer = std::move(full_);
  frame.size = kFrameHeaderBytes + header_.payload_bytes;
  frame.src_rank = src_;
  return frame;
}

void FrameAssembly::reject(const std::string& what) {
  if (discarding_ || state_ == State::kDropped) return;  // one message per frame
  error_ = what;
}

}  // namespace tensair::runtime
