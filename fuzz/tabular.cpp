// Fuzz target: tabular_source — a data file (separator detected or given, optional header,
// feature selection, standardisation) with labels from a second file or from a column.
// Input: the data file, then a "--8<--" line and the label file.
#include "readers.hpp"

namespace tensair::fuzz {

namespace {

const std::vector<std::string> kConfigs = {
    "[src]\ntype = \"tabular_source\"\ndata = \"in.dat\"\nlabels = \"in.lab\"\nbatch_size = 2\n",
    "[src]\ntype = \"tabular_source\"\ndata = \"in.dat\"\nlabel_column = 2\nheader = true\n"
    "standardize = true\n",
    "[src]\ntype = \"tabular_source\"\ndata = \"in.dat\"\nlabels = \"in.lab\"\n"
    "features = [0, 2]\nseparator = \",\"\n",
};

}  // namespace

std::vector<std::string> seeds() {
  return {reader_seed(0, {"1 2 3\n4 5 6\n7 8 9\n", "0\n1\n1\n"}),
          reader_seed(1, {"a,b,c\n0.5,1.5,0\n2,3,1\nnan,1,0\n", ""}),
          reader_seed(2, {"1,2,3\n4,5\n", "1\n7\n"})};
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tensair::fuzz::run_reader(data, size, tensair::fuzz::kConfigs, {"in.dat", "in.lab"});
  return 0;
}
