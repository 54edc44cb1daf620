#include "kafka/spool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "tensair/common/error.hpp"

namespace tensair::kafka {
namespace {

constexpr uint32_t kNoKey = 0xFFFFFFFFu;
constexpr size_t kFlushAt = size_t{1} << 20;

void put_u32(std::string& out, uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

}  // namespace

SegmentWriter::SegmentWriter(std::filesystem::path path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("cannot create the spool file " + path_.string() + ": " + std::strerror(errno));
}

SegmentWriter::~SegmentWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void SegmentWriter::append(std::optional<std::string_view> key, std::string_view value) {
  if (value.size() >= kNoKey || (key && key->size() >= kNoKey))
    throw DataError("a Kafka message of 4 GiB or more");
  put_u32(buffer_, key ? static_cast<uint32_t>(key->size()) : kNoKey);
  if (key) buffer_ += *key;
  put_u32(buffer_, static_cast<uint32_t>(value.size()));
  buffer_ += value;
  messages_++;
  if (buffer_.size() >= kFlushAt) flush();
}

int SegmentWriter::flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot write the spool file " + path_.string() + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  bytes_ += buffer_.size();
  buffer_.clear();
  return fd_;
}

void read_segment(const std::filesystem::path& path, uint64_t bytes,
                  const std::function<void(std::optional<std::string_view>, std::string_view)>& each) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("the spool file " + path.string() + " is missing");
  std::vector<char> data(bytes);
  in.read(data.data(), static_cast<std::streamsize>(bytes));
  if (static_cast<uint64_t>(in.gcount()) != bytes) {
    throw IoError("the spool file " + path.string() + " has " + std::to_string(in.gcount()) +
                  " bytes, the checkpoint recorded " + std::to_string(bytes));
  }
  size_t at = 0;
  auto u32 = [&](uint32_t& v) {
    if (bytes - at < 4) return false;
    std::memcpy(&v, data.data() + at, 4);
    at += 4;
    return true;
  };
  while (at < bytes) {
    uint32_t klen = 0, vlen = 0;
    const bool ok_key = u32(klen);
    std::optional<std::string_view> key;
    if (ok_key && klen != kNoKey) {
      if (bytes - at < klen) throw IoError("the spool file " + path.string() + " is damaged");
      key = std::string_view(data.data() + at, klen);
      at += klen;
    }
    if (!ok_key || !u32(vlen) || bytes - at < vlen)
      throw IoError("the spool file " + path.string() + " is damaged at byte " + std::to_string(at));
    each(key, std::string_view(data.data() + at, vlen));
    at += vlen;
  }
}

}  // namespace tensair::kafka
