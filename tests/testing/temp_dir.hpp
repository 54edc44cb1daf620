// A fresh directory under the system's temporary directory for one test, removed with
// everything in it when the object goes out of scope. Names hold the process id and a counter,
// so test binaries running at the same time (ctest -j) never share one.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace tensair::testing {

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("tensair_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

}  // namespace tensair::testing
