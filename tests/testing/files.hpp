// Small files for tests: write and read bytes, gzip- and xz-compress. The compressed writers
// use zlib and the xz command line tool (as the data sets were made).
#pragma once

#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace tensair::testing {

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_gzip(const std::filesystem::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

// Writes `bytes` xz-compressed to `p` (through a temporary plain file next to it).
inline void write_xz(const std::filesystem::path& p, const std::string& bytes) {
  const std::filesystem::path plain = p.string() + ".plain";
  write_file(plain, bytes);
  const std::string cmd = "xz -c " + plain.string() + " > " + p.string();
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
  std::filesystem::remove(plain);
}

}  // namespace tensair::testing
