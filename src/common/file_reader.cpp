#include "tensair/common/file_reader.hpp"

#include <lzma.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "tensair/common/error.hpp"

namespace tensair {

const char* format_name(FileReader::Format f) {
  switch (f) {
    case FileReader::Format::kGzip: return "gzip";
    case FileReader::Format::kXz: return "xz";
    case FileReader::Format::kPlain: return "plain";
  }
  return "?";
}

// Turns the raw file into its uncompressed bytes, a chunk at a time.
struct FileReader::Decoder {
  virtual ~Decoder() = default;
  // Appends decoded bytes to `out`; returns false at the end of the data.
  virtual bool decode(std::string& out) = 0;
  // The uncompressed size when the format knows it without decoding (plain files only).
  virtual std::optional<uint64_t> size() { return std::nullopt; }
  // Random access (formats with a size() only): the next decode() starts at byte `position`,
  // which is at most size().
  virtual void seek(uint64_t /*position*/) {}
};

namespace {

constexpr size_t kChunk = 1 << 16;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what, uint64_t pos) {
  throw IoError(path.string() + ": " + what + " (after " + std::to_string(pos) +
                " uncompressed bytes)");
}

class RawFile {
 public:
  explicit RawFile(const std::filesystem::path& path) : path_(path) {
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) {
      throw IoError("cannot open " + path.string() + ": " + std::strerror(errno), ExitCode::kConfig);
    }
  }
  ~RawFile() {
    if (f_) std::fclose(f_);
  }
  size_t read(void* buf, size_t n) {
    size_t got = std::fread(buf, 1, n, f_);
    if (got < n && std::ferror(f_)) {
      throw IoError("cannot read " + path_.string() + ": " + std::strerror(errno));
    }
    return got;
  }
  uint64_t size() {
    struct stat st;
    if (::fstat(::fileno(f_), &st) != 0) {
      throw IoError("cannot stat " + path_.string() + ": " + std::strerror(errno));
    }
    return static_cast<uint64_t>(st.st_size);
  }
  void seek(uint64_t position) {
    if (::fseeko(f_, static_cast<off_t>(position), SEEK_SET) != 0) {
      throw IoError("cannot seek in " + path_.string() + ": " + std::strerror(errno));
    }
  }

 private:
  std::filesystem::path path_;
  FILE* f_ = nullptr;
};

class PlainDecoder final : public FileReader::Decoder {
 public:
  explicit PlainDecoder(const std::filesystem::path& path) : file_(path) {}
  bool decode(std::string& out) override {
    size_t old = out.size();
    out.resize(old + kChunk);
    size_t got = file_.read(out.data() + old, kChunk);
    out.resize(old + got);
    return got > 0;
  }
  std::optional<uint64_t> size() override { return file_.size(); }
  void seek(uint64_t position) override { file_.seek(position); }

 private:
  RawFile file_;
};

class GzipDecoder final : public FileReader::Decoder {
 public:
  GzipDecoder(const std::filesystem::path& path, const uint64_t* position)
      : path_(path), file_(path), position_(position) {
    std::memset(&z_, 0, sizeof z_);
    if (inflateInit2(&z_, 15 + 16) != Z_OK) throw IoError("zlib initialisation failed");
  }
  ~GzipDecoder() override { inflateEnd(&z_); }

  bool decode(std::string& out) override {
    for (;;) {
      if (z_.avail_in == 0) {
        size_t got = file_.read(in_, sizeof in_);
        if (got == 0) {
          if (in_member_) fail(path_, "truncated gzip stream", *position_);
          return false;
        }
        z_.next_in = reinterpret_cast<Bytef*>(in_);
        z_.avail_in = static_cast<uInt>(got);
      }
      size_t old = out.size();
      out.resize(old + kChunk);
      z_.next_out = reinterpret_cast<Bytef*>(out.data() + old);
      z_.avail_out = kChunk;
      in_member_ = true;
      int rc = inflate(&z_, Z_NO_FLUSH);
      out.resize(old + (kChunk - z_.avail_out));
      if (rc == Z_STREAM_END) {
        // Another gzip member may follow (concatenated files are valid gzip).
        in_member_ = false;
        inflateReset(&z_);
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail(path_, std::string("corrupt gzip data: ") + (z_.msg ? z_.msg : "inflate failed"),
             *position_ + (out.size() - old));
      }
      if (out.size() > old) return true;
    }
  }

 private:
  std::filesystem::path path_;
  RawFile file_;
  const uint64_t* position_;
  z_stream z_;
  char in_[kChunk];
  bool in_member_ = false;
};

class XzDecoder final : public FileReader::Decoder {
 public:
  XzDecoder(const std::filesystem::path& path, const uint64_t* position)
      : path_(path), file_(path), position_(position) {
    if (lzma_stream_decoder(&s_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
      throw IoError("liblzma initialisation failed");
    }
  }
  ~XzDecoder() override { lzma_end(&s_); }

  bool decode(std::string& out) override {
    if (ended_) return false;
    for (;;) {
      lzma_action action = LZMA_RUN;
      if (s_.avail_in == 0 && !eof_) {
        size_t got = file_.read(in_, sizeof in_);
        s_.next_in = reinterpret_cast<const uint8_t*>(in_);
        s_.avail_in = got;
        eof_ = got == 0;
      }
      if (eof_) action = LZMA_FINISH;
      size_t old = out.size();
      out.resize(old + kChunk);
      s_.next_out = reinterpret_cast<uint8_t*>(out.data() + old);
      s_.avail_out = kChunk;
      lzma_ret rc = lzma_code(&s_, action);
      out.resize(old + (kChunk - s_.avail_out));
      if (rc == LZMA_STREAM_END) {
        ended_ = true;
        return out.size() > old;
      }
      if (rc == LZMA_BUF_ERROR && eof_) fail(path_, "truncated xz stream", *position_ + (out.size() - old));
      if (rc != LZMA_OK && rc != LZMA_BUF_ERROR) {
        fail(path_, "corrupt xz data (liblzma error " + std::to_string(rc) + ")",
             *position_ + (out.size() - old));
      }
      if (out.size() > old) return true;
    }
  }

 private:
  std::filesystem::path path_;
  RawFile file_;
  const uint64_t* position_;
  lzma_stream s_ = LZMA_STREAM_INIT;
  char in_[kChunk];
  bool eof_ = false;
  bool ended_ = false;
};

}  // namespace

FileReader::FileReader(std::filesystem::path path) : path_(std::move(path)) {
  std::error_code ec;
  if (std::filesystem::is_directory(path_, ec)) {
    throw IoError(path_.string() + " is a directory, a file was expected", ExitCode::kConfig);
  }
  open();
}

FileReader::~FileReader() = default;

void FileReader::open() {
  unsigned char magic[6] = {0};
  size_t got = RawFile(path_).read(magic, sizeof magic);
  if (got >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    format_ = Format::kGzip;
    decoder_ = std::make_unique<GzipDecoder>(path_, &position_);
  } else if (got == 6 && std::memcmp(magic, "\xfd" "7zXZ\0", 6) == 0) {
    format_ = Format::kXz;
    decoder_ = std::make_unique<XzDecoder>(path_, &position_);
  } else {
    format_ = Format::kPlain;
    decoder_ = std::make_unique<PlainDecoder>(path_);
  }
  buf_.clear();
  buf_pos_ = 0;
  position_ = 0;
  lines_ = 0;
}

void FileReader::rewind() { open(); }

void FileReader::seek(uint64_t position) {
  if (std::optional<uint64_t> size = decoder_->size()) {
    if (position > *size) {
      throw IoError("cannot resume reading " + path_.string() + " at byte " +
                    std::to_string(position) + ": the file has only " + std::to_string(*size) +
                    " bytes (did it change?)");
    }
    decoder_->seek(position);
    buf_.clear();
    buf_pos_ = 0;
    position_ = position;
    lines_ = position == 0 ? 0 : -1;
    return;
  }
  // No random access in a compressed stream: decompress and discard, from the start when going
  // back, else from where the reader is.
  if (position < position_) rewind();
  while (position_ < position) {
    if (buf_pos_ == buf_.size() && !fill()) {
      throw IoError("cannot resume reading " + path_.string() + " at uncompressed byte " +
                    std::to_string(position) + ": the data ends after " +
                    std::to_string(position_) + " bytes (did the file change?)");
    }
    const size_t k =
        static_cast<size_t>(std::min<uint64_t>(position - position_, buf_.size() - buf_pos_));
    buf_pos_ += k;
    position_ += k;
  }
  lines_ = position == 0 ? 0 : -1;
}

bool FileReader::fill() {
  if (buf_pos_ > 0) {
    buf_.erase(0, buf_pos_);
    buf_pos_ = 0;
  }
  return decoder_->decode(buf_);
}

size_t FileReader::read(void* out, size_t n) {
  if (buf_pos_ == buf_.size() && !fill()) return 0;
  size_t k = std::min(n, buf_.size() - buf_pos_);
  std::memcpy(out, buf_.data() + buf_pos_, k);
  buf_pos_ += k;
  position_ += k;
  return k;
}

size_t FileReader::read_full(void* out, size_t n) {
  size_t total = 0;
  while (total < n) {
    size_t k = read(static_cast<char*>(out) + total, n - total);
    if (k == 0) break;
    total += k;
  }
  return total;
}

bool FileReader::read_line(std::string& line) {
  line.clear();
  const uint64_t start = position_;
  // Checked before appending, so that the line never holds more than max_line_ (+ a '\r').
  auto check = [&](size_t more) {
    if (line.size() + more <= max_line_ + 1) return;  // + 1: a '\r' that is not kept
    const std::string which = lines_ >= 0 ? "line " + std::to_string(lines_ + 1)
                                          : "the line at byte " + std::to_string(start);
    throw IoError(path_.string() + ": " + which + " is longer than " + std::to_string(max_line_) +
                  " bytes (is it a text file?)");
  };
  for (;;) {
    size_t nl = buf_.find('\n', buf_pos_);
    if (nl != std::string::npos) {
      check(nl - buf_pos_);
      line.append(buf_, buf_pos_, nl - buf_pos_);
      position_ += nl + 1 - buf_pos_;
      buf_pos_ = nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() > max_line_) check(2);
      if (lines_ >= 0) lines_++;
      return true;
    }
    check(buf_.size() - buf_pos_);
    line.append(buf_, buf_pos_, std::string::npos);
    position_ += buf_.size() - buf_pos_;
    buf_pos_ = buf_.size();
    if (!fill()) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() > max_line_) check(2);
      if (line.empty()) return false;
      if (lines_ >= 0) lines_++;
      return true;
    }
  }
}

}  // namespace tensair
