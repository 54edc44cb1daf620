// Fuzz target: the job-file loader — TOML, every operator type's keys, the graph's checks —
// and the CLI's --set overrides. Input: a job file, optionally followed by a line "--8<--" and
// one override per line. Seeds: the shipped examples/*.toml and jobs of the other types.
//
// Built with the model layer (g++: the replay in make test) it loads every type, `model`
// included. The libFuzzer binary is built without it (TENSAIR_FUZZ_NO_MODEL: clang 14-16 cannot
// compile Debian's LibTorch headers, docs/fuzzing.md), so there a `model` table is an unknown
// type and the fuzzing covers TOML, --set, every other type's keys and the graph's checks.
//
// Loading builds operators and may write what a job writes at build time (a vocabulary file),
// so the target keeps every path inside its scratch folder: TENSAIR_DATA points there, and an
// input that names an absolute path, another environment variable or a parent folder is
// skipped (the loader's own answer to those is tested in tests/job and tests/e2e).
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "tensair/drift/operator.hpp"
#include "tensair/io/types.hpp"
#include "tensair/job/job.hpp"
#ifndef TENSAIR_FUZZ_NO_MODEL
#include "tensair/model/model.hpp"
#endif

#ifndef TENSAIR_SOURCE_DIR
#error "TENSAIR_SOURCE_DIR must name the repository (for the seed examples)"
#endif

namespace tensair::fuzz {

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  for (const char* name : {"wordcount", "cifar10", "drift_demo", "elec2", "word2vec"}) {
    std::ifstream in(std::string(TENSAIR_SOURCE_DIR) + "/examples/" + name + ".toml");
    out.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  out.push_back(out[0] + "\n--8<--\njob.name=other\nsplit.batch_size=7\ncount.window=3");
  out.push_back("[job]\nname = \"x\"\n[a]\ntype = \"map\"\nfrom = \"b\"\n"
                "[b]\ntype = \"map\"\nfrom = \"a\"\n");
  // No model: a generator through reduce, join and a detector to sinks.
  out.push_back(R"TOML([job]
name = "pipeline"
max_dead_letters = 0.5
[checkpoint]
every_s = 2
[gen]
type = "generator"
count = 100
batch_size = 8
rate = 500
columns = { id = "sequence", x = "normal[3]", k = "randint(4)", loss = "uniform" }
[sum]
type = "reduce"
from = "gen"
group_by = ["k"]
aggregate = { n = "count", s = "sum(id)" }
window = "count:10"
[both]
type = "join"
keys = ["k"]
[both.inputs.left]
from = "gen"
routing = "key_hash"
key = "k"
[both.inputs.right]
from = "sum"
[drift]
type = "drift_detector"
from = "gen"
detector = "adwin"
params = { delta = 0.01 }
column = "loss"
watch = "all"
[out]
type = "csv_sink"
from = "both"
path = "out_{rank}.csv"
sort_by = "id"
[alarms]
type = "jsonl_sink"
from = "drift.drift"
path = "drifts.jsonl"
)TOML");
  return out;
}

namespace {

// Paths that could leave the scratch folder.
bool stays_inside(std::string_view text) {
  for (std::string_view bad : {"\"/", "'/", "..", "= /", "=/", "\\"}) {
    if (text.find(bad) != std::string_view::npos) return false;
  }
  for (size_t at = text.find("${"); at != std::string_view::npos; at = text.find("${", at + 1)) {
    if (text.substr(at, 15) != "${TENSAIR_DATA}") return false;
  }
  return true;
}

}  // namespace

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensair;
  static const bool setup = [] {
    ::setenv("TENSAIR_DATA", (fuzz::scratch_dir() / "data").c_str(), 1);
    io::register_job_types();
    drift::register_job_types();
#ifndef TENSAIR_FUZZ_NO_MODEL
    model::register_job_types();
#endif
    return true;
  }();
  (void)setup;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!fuzz::stays_inside(text)) return 0;
  const auto pieces = fuzz::split_pieces(text, 2);
  job::LoadOptions options;
  options.out_dir = fuzz::scratch_dir() / "out";
  if (pieces.size() == 2) {
    std::string_view rest = pieces[1];
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      options.overrides.emplace_back(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
  }
  const auto file = fuzz::write_scratch("job.toml", pieces[0]);
  fuzz::tolerate_errors([&] {
    job::Job j = job::load_job(file, options);
    j.graph.validate(2);
  });
  return 0;
}
