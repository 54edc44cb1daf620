// Shared by the fuzz targets (fuzz/*.cpp): a scratch folder for inputs that readers take as
// files, and a driver that runs one source of a job file by hand.
//
// The contract every target checks: a decoder given any bytes either succeeds or throws a
// tensair::Error (one clear message); it never crashes, reads or writes out of bounds, or lets
// another exception (a raw std:: or LibTorch one) escape. A target catches tensair::Error only,
// so anything else ends the run as a finding.
#pragma once
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tensair/dataflow/batch.hpp"
#include "tensair/dataflow/graph.hpp"
#include "testing/recording_context.hpp"

namespace tensair::fuzz {

// This process's scratch folder (created on first use under $TMPDIR, removed at exit).
const std::filesystem::path& scratch_dir();

// Writes `bytes` to scratch_dir()/name and returns the path.
std::filesystem::path write_scratch(const std::string& name, std::string_view bytes);

// Runs `fn`, ignoring a tensair::Error it throws (the clean refusal every decoder may give).
void tolerate_errors(const std::function<void()>& fn);

// A fresh instance of a job's operator, as the engine makes one (a single instance, output
// folder in the scratch folder), with a context that records what it does.
struct Instance {
  explicit Instance(const dataflow::OperatorNode& node);
  testing::RecordingContext ctx;
  std::unique_ptr<dataflow::Operator> op;
};

// The frame payload encode_batch + pack_frame make of `batch` (a seed for payload decoders).
std::string payload_of(const dataflow::Batch& batch);

// What one source produced.
struct SourceRun {
  int64_t rows = 0;
  int64_t batches = 0;
  int64_t dead_letters = 0;
};

// Loads `job_toml` (written to the scratch folder; `${SCRATCH}` in it is replaced by the scratch
// folder), instantiates its operator named `source` and calls produce() until it is done or
// `max_calls` calls were made. Throws what loading or producing throws.
SourceRun run_source(const std::string& job_toml, const std::string& source = "src",
                     int max_calls = 10000);

// Bytes split into pieces by a separator line (for targets that take several files or a file
// plus overrides from one input): "a\n--8<--\nb" -> {"a", "b"}.
std::vector<std::string_view> split_pieces(std::string_view data, size_t max_pieces);

// Takes values off the front of a fuzz input (what clang's FuzzedDataProvider does, kept here
// so that the replay binaries build with any compiler). Past the end, values read as zero.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <class T>
  T take() {
    T v{};
    const size_t n = std::min(sizeof v, size_);
    std::memcpy(&v, data_, n);
    data_ += n;
    size_ -= n;
    return v;
  }
  bool take_bool() { return (take<uint8_t>() & 1) != 0; }
  // A value in [lo, hi].
  size_t take_in(size_t lo, size_t hi) { return lo + take<uint32_t>() % (hi - lo + 1); }
  // Up to `n` bytes.
  std::string take_bytes(size_t n) {
    n = std::min(n, size_);
    std::string s(reinterpret_cast<const char*>(data_), n);
    data_ += n;
    size_ -= n;
    return s;
  }
  std::string take_rest() { return take_bytes(size_); }
  size_t remaining() const { return size_; }

 private:
  const uint8_t* data_;
  size_t size_;
};

// `s` gzip-compressed (for seeds of readers that take compressed files).
std::string gzip(const std::string& s);

// A 64-byte aligned copy of `data` (decoders hand out aligned views), kept alive by the
// returned pointer.
std::shared_ptr<std::byte> aligned_copy(const uint8_t* data, size_t size);

}  // namespace tensair::fuzz
