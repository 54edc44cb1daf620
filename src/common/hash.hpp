// Stable 64-bit hashes for key routing. Stable means: the same value hashes the same in every
// process and every build, so all ranks agree on where a key goes.
#pragma once

#include <cstdint>
#include <string_view>

namespace tensair {

// splitmix64 finaliser: a fast, well-mixed hash of a 64-bit integer.
inline uint64_t hash_u64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a over the bytes, then the splitmix64 finaliser (FNV alone mixes the high bits poorly).
inline uint64_t hash_bytes(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return hash_u64(h);
}

}  // namespace tensair
