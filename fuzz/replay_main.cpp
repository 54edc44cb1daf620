// main() of the replay binaries (fuzz_<target>_replay): runs a fuzz target over files, without
// libFuzzer, so that the committed corpus and every regression input run in the ordinary test
// suite (ctest fuzz_<target>_regressions), with any compiler and under ASan/UBSan in CI.
//
//   fuzz_<target>_replay PATH...             each file, or each file in each folder
//   fuzz_<target>_replay --write-seeds DIR   writes the target's seed inputs (fuzz/corpus/)
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace tensair::fuzz {
// Each target's seed inputs, built with the encoders the product uses.
std::vector<std::string> seeds();
}  // namespace tensair::fuzz

namespace fs = std::filesystem;

namespace {

int run_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", p.c_str());
    return 1;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "--write-seeds") {
    fs::create_directories(args[1]);
    const auto seeds = tensair::fuzz::seeds();
    for (size_t i = 0; i < seeds.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "seed-%02zu", i);
      std::ofstream(fs::path(args[1]) / name, std::ios::binary) << seeds[i];
    }
    std::printf("%zu seeds written to %s\n", seeds.size(), args[1].c_str());
    return 0;
  }
  size_t files = 0;
  for (const auto& a : args) {
    if (fs::is_directory(a)) {
      std::vector<fs::path> paths;
      for (const auto& e : fs::directory_iterator(a)) {
        if (e.is_regular_file() && e.path().filename() != "README.md") paths.push_back(e.path());
      }
      std::sort(paths.begin(), paths.end());
      for (const auto& p : paths) {
        if (run_file(p) != 0) return 1;
        ++files;
      }
    } else if (fs::exists(a)) {
      if (run_file(a) != 0) return 1;
      ++files;
    }  // a missing folder (no regressions yet) is no input
  }
  std::printf("replayed %zu inputs: no crash, no unexpected exception\n", files);
  return files > 0 ? 0 : 1;
}
