// FrameAssembly: the receiving side of the frame layout (include/tensair/runtime/frame.hpp),
// apart from MPI so that it can be tested and fuzzed on bytes alone.
//
// A frame arrives either packed (one message: header, meta and parts) or as a header message
// (header + meta) followed by `header.parts` part messages. The transport receives each message;
// this class says where each part goes and decides whether the frame is complete or dropped:
//
//   FrameAssembly a(src, max_frame_bytes);
//   a.on_header(buf, size, allocate);          // the first message
//   while (a.wants_part()) {                   // parts, in the order they were sent
//     std::byte* at = a.place_part(count);     // receive `count` bytes there (nullptr: discard)
//   }
//   a.on_parts_received();                     // once every receive placed has completed
//   a.state()                                  // kComplete (take_frame) or kDropped
//
// Contract: nothing is ever written outside the buffer it allocates (a part that does not fit is
// discarded, never placed); a frame that announced parts consumes exactly that many part
// messages even when it is rejected, so the sender's sends complete and the next frame's parts
// are not mistaken for this one's; a rejection produces exactly one error message
// (take_error), naming the sender and the first failed check.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tensair/runtime/frame.hpp"

namespace tensair::runtime {

class FrameAssembly {
 public:
  enum class State { kHeader, kParts, kComplete, kDropped };
  // Allocates the whole frame's buffer (64-byte aligned, at least the bytes asked for).
  using Allocate = std::function<std::shared_ptr<std::byte>(size_t bytes)>;

  FrameAssembly(int src_rank, size_t max_frame_bytes)
      : src_(src_rank), max_frame_bytes_(max_frame_bytes) {}

  // The first message: `size` bytes at `message` (the assembly co-owns it). A packed frame is
  // complete at once; a header message allocates the frame through `allocate` and waits for parts.
  State on_header(std::shared_ptr<std::byte> message, size_t size, const Allocate& allocate);

  // True while part messages of this frame are still to be placed.
  bool wants_part() const { return state_ == State::kParts && parts_placed_ < header_.parts; }

  // Where the next part message, of `count` bytes, is to be received; nullptr when it is to be
  // received into scratch memory and discarded (a rejected frame, or a part that does not fit).
  // Only while wants_part().
  std::byte* place_part(size_t count);

  // Every placed receive has completed: checks the parts' layout; kComplete or kDropped.
  // No-op unless every part has been placed.
  State on_parts_received();

  State state() const { return state_; }
  const FrameHeader& header() const { return header_; }
  // A rejection's message, once (then empty).
  std::optional<std::string> take_error();

  // The complete frame (state kComplete).
  InFrame take_frame();

 private:
  void reject(const std::string& what);

  int src_;
  size_t max_frame_bytes_;
  State state_ = State::kHeader;
  FrameHeader header_;
  std::shared_ptr<std::byte> full_;  // header + payload; parts are received in place
  bool discarding_ = false;          // rejected: remaining parts are received and dropped
  uint32_t parts_placed_ = 0;
  size_t parts_end_ = 0;  // payload offset where the last placed part ends
  std::optional<std::string> error_;
};

}  // namespace tensair::runtime
