// DetectorStateWriter and DetectorStateReader: the small binary format of a detector's saved
// state (Detector::save_state). Internal to src/drift, which stays free of the dataflow layer.
//
// Layout: the detector's name, a layout version and its parameters (params() as JSON text),
// then the detector's values as plain little-endian bytes, in the order written. The reader
// checks the header against the detector loading it and every read against the bytes left, so
// a damaged state, or one saved by another detector or with other parameters, is a DataError
// of one line ("optwin state: ..."), never a crash or a silently different detector.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tensair/common/error.hpp"

namespace tensair::drift::detail {

class DetectorStateWriter {
 public:
  DetectorStateWriter(std::string_view detector, uint32_t version, std::string_view params) {
    put_string(detector);
    put(version);
    put_string(params);
  }
  template <class T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_.append(s);
  }
  void put_doubles(const std::vector<double>& v) { put_doubles(v.data(), v.size()); }
  void put_doubles(const double* v, size_t n) {
    put<uint64_t>(n);
    out_.append(reinterpret_cast<const char*>(v), n * sizeof(double));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class DetectorStateReader {
 public:
  // Reads and checks the header; throws DataError when it is not `detector`'s at `version`
  // with these parameters.
  DetectorStateReader(std::string_view data, std::string_view detector, uint32_t version,
                      std::string_view params)
      : data_(data), detector_(detector) {
    const std::string name = get_string();
    if (name != detector) {
      fail("was saved by a \"" + name.substr(0, 40) + "\" detector, not by " + detector_);
    }
    const auto v = get<uint32_t>();
    if (v != version) {
      fail("has layout version " + std::to_string(v) + ", this build reads version " +
           std::to_string(version));
    }
    const std::string saved = get_string();
    if (saved != params) {
      fail("was saved with the parameters " + saved.substr(0, 300) + ", this detector has " +
           std::string(params));
    }
  }

  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, take(sizeof value), sizeof value);
    return value;
  }
  std::string get_string() {
    const uint64_t n = get_count(1);
    return std::string(take(static_cast<size_t>(n)), static_cast<size_t>(n));
  }
  std::vector<double> get_doubles() {
    const uint64_t n = get_count(sizeof(double));
    std::vector<double> v(static_cast<size_t>(n));
    if (n > 0) std::memcpy(v.data(), take(v.size() * sizeof(double)), v.size() * sizeof(double));
    return v;
  }
  // A count of elements of `element_bytes` each, checked against the bytes left.
  uint64_t get_count(size_t element_bytes) {
    const auto n = get<uint64_t>();
    if (n > (data_.size() - pos_) / element_bytes) {
      fail("a length of " + std::to_string(n) + " does not fit in the " +
           std::to_string(data_.size() - pos_) + " bytes left");
    }
    return n;
  }
  // Throws DataError unless every byte was read.
  void expect_end() const {
    if (pos_ != data_.size()) {
      fail("has " + std::to_string(data_.size() - pos_) + " bytes left over");
    }
  }
  [[noreturn]] void fail(const std::string& message) const {
    throw DataError(detector_ + " state: " + message);
  }

 private:
  const char* take(size_t n) {
    if (n > data_.size() - pos_) {
      fail("ends early (" + std::to_string(n) + " bytes needed at offset " + std::to_string(pos_) +
           ", " + std::to_string(data_.size() - pos_) + " left)");
    }
    const char* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }

  std::string_view data_;
  size_t pos_ = 0;
  std::string detector_;
};

}  // namespace tensair::drift::detail
