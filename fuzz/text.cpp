// Fuzz target: the text readers — text_source (lines), skipgram_source (vocabulary, then
// skip-gram pairs with subsampling and negatives, held-out lines) and w2v_pairs_source (the
// original TensAIR's pair files, text and eval formats).
#include "readers.hpp"

namespace tensair::fuzz {

namespace {

const std::vector<std::string> kConfigs = {
    "[src]\ntype = \"text_source\"\npath = \"in.txt\"\nindex_column = \"n\"\nbatch_size = 4\n",
    "[src]\ntype = \"skipgram_source\"\npath = \"in.txt\"\nmin_count = 1\nwindow = 2\n"
    "negatives = 2\nbatch_size = 16\nholdout_fraction = 0.25\nsample = 0.01\n",
    "[src]\ntype = \"skipgram_source\"\npath = \"in.txt\"\nmin_count = 2\nmax_vocab = 5\n"
    "sentence = \"paragraph\"\nbatch_size = 8\n",
    "[src]\ntype = \"w2v_pairs_source\"\npath = \"in.txt\"\nbatch_size = 4\n",
    "[src]\ntype = \"w2v_pairs_source\"\npath = \"in.txt\"\nformat = \"eval\"\n",
};

}  // namespace

std::vector<std::string> seeds() {
  const std::string prose =
      "The quick brown fox jumps over the lazy dog.\nThe dog sleeps; the fox runs.\n\n"
      "A fox, a dog and a cat.\nthe the the the\n";
  return {reader_seed(0, {prose}), reader_seed(1, {prose}), reader_seed(2, {prose}),
          reader_seed(3, {"1 2\n3 4\n5 x\n"}), reader_seed(4, {"1 2 3 4 5\n6 7\n"})};
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tensair::fuzz::run_reader(data, size, tensair::fuzz::kConfigs, {"in.txt"});
  return 0;
}
