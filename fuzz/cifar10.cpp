// Fuzz target: cifar10_source on any file (records of 1 label byte + 3072 pixel bytes; a label
// above 9 or a trailing partial record is a dead letter), with its shuffle buffer, layouts and
// concept changes.
#include "readers.hpp"

namespace tensair::fuzz {

namespace {

const std::vector<std::string> kConfigs = {
    "[src]\ntype = \"cifar10_source\"\npath = \"in.bin\"\nbatch_size = 2\n",
    "[src]\ntype = \"cifar10_source\"\npath = \"in.bin\"\nshuffle_buffer = 3\nlayout = \"hwc\"\n"
    "normalize = false\nreplay = 2\ncache = false\n",
    "[src]\ntype = \"cifar10_source\"\npath = \"in.bin\"\nbatch_size = 1\nreplay = 3\n"
    "concept_changes = [{ at = 1, permutation = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0] }]\n",
};

std::string record(uint8_t label, uint8_t fill) {
  return std::string(1, static_cast<char>(label)) + std::string(3072, static_cast<char>(fill));
}

}  // namespace

std::vector<std::string> seeds() {
  return {reader_seed(0, {record(3, 10) + record(12, 200) + record(0, 1).substr(0, 100)}),
          reader_seed(1, {record(9, 0) + record(1, 255)}), reader_seed(2, {record(5, 7)})};
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tensair::fuzz::run_reader(data, size, tensair::fuzz::kConfigs, {"in.bin"});
  return 0;
}
