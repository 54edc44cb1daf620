// The wire codec of record batches (version 1). See docs/wire-format.md.
//
// encode_batch() describes a batch as frame metadata (a descriptor per column) plus one frame
// part per column buffer, so the transport can send large columns without copying them.
// decode_batch() validates everything it reads (magic, version, dtypes, sizes, offsets,
// alignment, string offsets) before building columns that point into the received buffer:
// no copy, and never a read outside the buffer. Failures throw DataError.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tensair/dataflow/batch.hpp"
#include "tensair/runtime/frame.hpp"

namespace tensair::dataflow {

inline constexpr uint32_t kBatchMagic = 0x54414254;  // "TBAT"
inline constexpr uint16_t kBatchVersion = 1;

// Fills frame.meta, frame.parts and frame.keepalive (the batch) for `batch`.
void encode_batch(const BatchPtr& batch, runtime::OutFrame& frame);

// Decodes a payload produced by encode_batch (laid out by the frame rule). `owner` keeps
// `payload` alive and is shared by the returned columns.
Batch decode_batch(std::shared_ptr<const void> owner, const std::byte* payload, size_t size);

// The same payload as one contiguous byte string (checkpoint state, Kafka messages of format
// "tensair"), and back: decode_batch_bytes copies `bytes` into an aligned buffer the columns
// share, and throws DataError as decode_batch does.
std::string encode_batch_bytes(const BatchPtr& batch);
Batch decode_batch_bytes(std::string_view bytes);

}  // namespace tensair::dataflow
