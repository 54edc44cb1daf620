// StateWriter and StateReader: the bytes of an operator instance's checkpointed state.
//
// An operator writes its state at a checkpoint barrier (Operator::snapshot) and reads it back
// into a fresh instance on restore (Operator::restore), in the same order. The format is a
// plain little-endian sequence of the values written, with no field names; each operator
// versions its own layout when it needs to (write a version number first).
//
// A StateReader checks every read against the bytes it has: reading past the end, a length
// that does not fit, or a batch that fails the wire codec's validation throws DataError naming
// the state (`what`), so a damaged checkpoint is one clear line, never a crash. The checkpoint
// files carry CRC-32 checksums as well (docs/fault-tolerance.md); these checks are the second
// line for what a checksum cannot catch (a state written by another version of an operator).
//
// Not thread-safe; one writer or reader per instance thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tensair/dataflow/batch.hpp"

namespace tensair::dataflow {

class StateWriter {
 public:
  // Any trivially copyable value (integers, doubles, bools, PODs), as its bytes.
  template <class T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>, "put() takes trivially copyable values");
    append(&value, sizeof value);
  }
  void put_string(std::string_view s);
  // A length-prefixed byte string.
  void put_bytes(const void* data, size_t size);
  // A vector of trivially copyable values, length-prefixed.
  template <class T>
  void put_vector(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>, "put_vector() takes trivially copyable values");
    put<uint64_t>(v.size());
    if (!v.empty()) append(v.data(), v.size() * sizeof(T));
  }
  // A batch through the wire codec (null allowed).
  void put_batch(const BatchPtr& batch);

  const std::string& bytes() const { return out_; }
  std::string take() { return std::move(out_); }
  size_t size() const { return out_.size(); }

 private:
  void append(const void* data, size_t size) { out_.append(static_cast<const char*>(data), size); }
  std::string out_;
};

class StateReader {
 public:
  // `what` names the state in messages, e.g. "checkpoint ckpt-000004, operator \"count\"".
  StateReader(std::string_view data, std::string what) : data_(data), what_(std::move(what)) {}

  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>, "get() takes trivially copyable values");
    T value;
    std::memcpy(&value, take(sizeof value), sizeof value);
    return value;
  }
  std::string get_string();
  // A length-prefixed byte string, as a view into the reader's data (valid while it is).
  std::string_view get_bytes();
  template <class T>
  std::vector<T> get_vector() {
    static_assert(std::is_trivially_copyable_v<T>, "get_vector() takes trivially copyable values");
    const uint64_t n = get_count(sizeof(T));
    std::vector<T> v(static_cast<size_t>(n));
    if (n > 0)
      std::memcpy(v.data(), take(static_cast<size_t>(n) * sizeof(T)),
                  static_cast<size_t>(n) * sizeof(T));
    return v;
  }
  BatchPtr get_batch();
  // A count read before `element_bytes`-sized elements; checked against the bytes left.
  uint64_t get_count(size_t element_bytes = 1);

  bool at_end() const { return pos_ == data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }
  // Throws DataError unless every byte was read (a layout mismatch shows up here).
  void expect_end() const;
  // Throws DataError "<what>: <message>".
  [[noreturn]] void fail(const std::string& message) const;
  const std::string& what() const { return what_; }

 private:
  const char* take(size_t n);

  std::string_view data_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace tensair::dataflow
