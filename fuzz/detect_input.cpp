// Fuzz target: `tensair detect`'s input — a file (plain, gzip or xz, detected by FileReader)
// of one number per line — parsed as the command parses it and fed to a detector (the first
// byte picks OPTWIN, ADWIN or Page-Hinkley).
#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/drift/detector.hpp"
#include "tensair/drift/value_input.hpp"

namespace tensair::fuzz {

std::vector<std::string> seeds() {
  std::string losses;
  for (int i = 0; i < 300; ++i) losses += std::to_string(i < 200 ? 0.1 * (i % 3) : 2.0) + "\n";
  return {std::string(1, '\0') + losses, std::string(1, '\1') + " +1.5\n\n-2e3\t\r\n0x10\n",
          std::string(1, '\2') + gzip(losses), std::string(1, '\0') + "1\nnan\n"};
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensair;
  if (size == 0) return 0;
  static const char* kDetectors[] = {"optwin", "adwin", "page-hinkley"};
  const char* name = kDetectors[data[0] % 3];
  const auto path = fuzz::write_scratch(
      "values", std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  fuzz::tolerate_errors([&] {
    auto det = drift::make_detector(name);
    FileReader reader(path);
    std::string line;
    size_t line_no = 0;
    while (reader.read_line(line)) {
      double v;
      if (drift::parse_detector_value(line, "values", ++line_no, v)) det->update(v);
    }
  });
  return 0;
}
