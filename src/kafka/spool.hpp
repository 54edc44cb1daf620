// The Kafka sink's write-ahead spool: the messages of one checkpoint interval in a segment file,
// so that a transaction can be produced (again) from disk after a crash. A segment is a sequence
// of records [u32 key length, or 0xFFFFFFFF for no key][key][u32 value length][value], little
// endian. Internal to src/kafka; tested in tests/kafka/spool_test.cpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tensair::kafka {

// Appends messages to one segment file (created, or truncated, on construction).
class SegmentWriter {
 public:
  explicit SegmentWriter(std::filesystem::path path);
  ~SegmentWriter();
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  void append(std::optional<std::string_view> key, std::string_view value);
  // Writes the buffer to the file; returns the file descriptor (for an fsync by the engine at
  // the checkpoint) and the segment's length.
  int flush();
  uint64_t bytes() const { return bytes_; }
  uint64_t messages() const { return messages_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::string buffer_;
  uint64_t bytes_ = 0;
  uint64_t messages_ = 0;
};

// Calls `each(key, value)` for every message of the first `bytes` of segment `path`. Throws
// IoError naming the file when it is missing, shorter than `bytes` or damaged.
void read_segment(const std::filesystem::path& path, uint64_t bytes,
                  const std::function<void(std::optional<std::string_view>, std::string_view)>& each);

}  // namespace tensair::kafka
