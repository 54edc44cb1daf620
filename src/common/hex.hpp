// The bytes of a binary record as text, for a dead letter's `record` (docs/metrics.md).
#pragma once

#include <cstddef>
#include <string>

namespace tensair {

// A dead letter keeps the first 1024 characters of its record; in hex that is 512 bytes.
inline constexpr size_t kDeadLetterRecordBytes = 512;

// Lowercase hex of the first `kDeadLetterRecordBytes` of `size` bytes at `data` (two digits a
// byte, no separators: `xxd -r -p` turns it back into bytes).
inline std::string record_hex(const void* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(data);
  const size_t n = size < kDeadLetterRecordBytes ? size : kDeadLetterRecordBytes;
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

}  // namespace tensair
