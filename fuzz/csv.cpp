// Fuzz target: csv_source (RFC 4180 quoting, dtypes, header, delimiter, select) on any file,
// plain or compressed (FileReader detects gzip and xz from the first bytes).
#include "readers.hpp"

namespace tensair::fuzz {

namespace {

const std::vector<std::string> kConfigs = {
    "[src]\ntype = \"csv_source\"\npath = \"in.csv\"\nheader = false\nbatch_size = 3\n"
    "columns = [\"a:int64\", \"b:float64\", \"c:string\", \"d:int32\", \"e:float32\"]\n",
    "[src]\ntype = \"csv_source\"\npath = \"in.csv\"\nbatch_size = 2\n",
    "[src]\ntype = \"csv_source\"\npath = \"in.csv\"\ndelimiter = \"\\t\"\ndtype = \"int64\"\n"
    "select = [\"y\", \"x\"]\n",
    "[src]\ntype = \"csv_source\"\npath = \"in.csv\"\ndtype = \"string\"\nlimit = 5\n",
};

}  // namespace

std::vector<std::string> seeds() {
  const std::string typed = "1,2.5,hello,3,4.5\n-7,1e9,\"a,\"\"b\"\"\",0,-0\n\n9,x,y,1,2\n"
                            "1,2\n\"open,1,2,3,4\n";
  return {reader_seed(0, {typed}), reader_seed(1, {"x,y,z\n1,2,3\n4,,6\n+7, 8 ,9e2\n"}),
          reader_seed(2, {"x\ty\n1\t2\n3\t99999999999999999999\n"}),
          reader_seed(3, {"h\n\"multi\nline\"\nplain\n"}), reader_seed(1, {gzip("x,y\n1,2\n")})};
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tensair::fuzz::run_reader(data, size, tensair::fuzz::kConfigs, {"in.csv"});
  return 0;
}
