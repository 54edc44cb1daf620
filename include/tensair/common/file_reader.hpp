// FileReader: sequential reading of a file that is plain, gzip- or xz-compressed; the format is
// detected from the first bytes, so a caller never needs to know.
//
// Errors throw IoError naming the file: a missing or unreadable file (exit code 2, since it is
// the user's to fix), a corrupt or truncated compressed stream, with the uncompressed position
// where reading stopped, and a line longer than max_line_bytes() (a file that is not text, such
// as /dev/zero, would otherwise grow one line without bound). Not thread-safe; one reader per
// thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace tensair {

class FileReader {
 public:
  enum class Format { kPlain, kGzip, kXz };

  explicit FileReader(std::filesystem::path path);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  // Reads up to n bytes; returns 0 only at the end of the data.
  size_t read(void* buf, size_t n);
  // Reads exactly n bytes unless the data ends first; returns the count read.
  size_t read_full(void* buf, size_t n);
  // Reads the next line without its '\n' (and without a '\r' before it). False at the end.
  // A line of more than max_line_bytes() throws IoError "FILE: line N is longer than X bytes"
  // (N counted from the start, or "the line at byte P" after a seek()).
  bool read_line(std::string& line);
  // The longest line read_line() accepts; kMaxLineBytes unless set (tests set less).
  static constexpr size_t kMaxLineBytes = size_t{256} << 20;
  size_t max_line_bytes() const { return max_line_; }
  void set_max_line_bytes(size_t n) { max_line_ = n; }
  // Back to the first byte (reopens the file).
  void rewind();
  // Moves to uncompressed byte `position` (a value position() reported), so that the next read
  // starts there; for resuming a source from a checkpoint. A plain file seeks (O(1)); gzip and
  // xz streams have no random access, so they are rewound and decompressed up to `position`,
  // the bytes before it discarded (O(position)). Throws IoError naming the file when the data
  // ends before `position` (the file changed since the position was taken).
  void seek(uint64_t position);

  Format format() const { return format_; }
  // Uncompressed bytes delivered so far.
  uint64_t position() const { return position_; }
  const std::filesystem::path& path() const { return path_; }

  struct Decoder;  // plain, gzip or xz (file_reader.cpp)

 private:
  void open();
  bool fill();  // refills buf_; false at the end

  std::filesystem::path path_;
  Format format_ = Format::kPlain;
  std::unique_ptr<Decoder> decoder_;
  std::string buf_;
  size_t buf_pos_ = 0;
  uint64_t position_ = 0;
  size_t max_line_ = kMaxLineBytes;
  int64_t lines_ = 0;  // lines read since the start; -1 after a seek (then unknown)
};

// "gzip", "xz", "plain"
const char* format_name(FileReader::Format f);

}  // namespace tensair
