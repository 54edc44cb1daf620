#include "tensair/dataflow/state.hpp"

#include "tensair/dataflow/batch_codec.hpp"
#include "tensair/runtime/frame.hpp"

namespace tensair::dataflow {

void StateWriter::put_string(std::string_view s) { put_bytes(s.data(), s.size()); }

void StateWriter::put_bytes(const void* data, size_t size) {
  put<uint64_t>(size);
  if (size > 0) append(data, size);
}

// A batch is its wire payload (meta, then the parts at their aligned offsets), length-prefixed,
// so the reader can hand it to the validating decoder unchanged.
void StateWriter::put_batch(const BatchPtr& batch) {
  put<uint8_t>(batch ? 1 : 0);
  if (!batch) return;
  const std::string payload = encode_batch_bytes(batch);
  put<uint64_t>(payload.size());
  if (!payload.empty()) append(payload.data(), payload.size());
}

const char* StateReader::take(size_t n) {
  if (n > data_.size() - pos_) {
    fail("ends early (" + std::to_string(n) + " bytes needed at offset " + std::to_string(pos_) +
         ", " + std::to_string(data_.size() - pos_) + " left)");
  }
  const char* p = data_.data() + pos_;
  pos_ += n;
  return p;
}

uint64_t StateReader::get_count(size_t element_bytes) {
  const auto n = get<uint64_t>();
  if (element_bytes > 0 && n > remaining() / element_bytes) {
    fail("a length of " + std::to_string(n) + " does not fit in the " +
         std::to_string(remaining()) + " bytes left at offset " + std::to_string(pos_));
  }
  return n;
}

std::string StateReader::get_string() { return std::string(get_bytes()); }

std::string_view StateReader::get_bytes() {
  const uint64_t n = get_count(1);
  const char* p = take(static_cast<size_t>(n));
  return {p, static_cast<size_t>(n)};
}

BatchPtr StateReader::get_batch() {
  const auto present = get<uint8_t>();
  if (present == 0) return nullptr;
  if (present != 1) fail("bad batch marker " + std::to_string(present));
  const uint64_t n = get_count(1);
  const char* p = take(static_cast<size_t>(n));
  try {
    return share(decode_batch_bytes({p, static_cast<size_t>(n)}));
  } catch (const Error& e) {
    fail(std::string("holds a damaged batch: ") + e.what());
  }
}

void StateReader::expect_end() const {
  if (!at_end()) {
    fail("has " + std::to_string(remaining()) +
         " bytes left over (written by another version of the operator?)");
  }
}

void StateReader::fail(const std::string& message) const {
  throw DataError(what_ + ": " + message);
}

}  // namespace tensair::dataflow
