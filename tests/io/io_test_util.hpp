// Helpers shared by the io/ tests: temporary folders, small files, running a source into a
// collect sink at some number of in-process ranks.
#pragma once

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tensair/ops/collect.hpp"
#include "testing/files.hpp"
#include "testing/harness.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::io::test {

namespace fs = std::filesystem;
using tensair::testing::TempDir;

using tensair::testing::read_file;
using tensair::testing::write_file;
using tensair::testing::write_gzip;

struct RunResult {
  dataflow::Batch rows;                      // port "out" (collected on rank 0)
  dataflow::Batch holdout;                   // port "holdout", when connected
  std::vector<testing::RankOutcome> outcomes;
  std::vector<dataflow::BatchPtr> batches;  // "out" batches in arrival order
  std::string error() const {
    for (const auto& o : outcomes) {
      if (o.error) return *o.error;
    }
    return "";
  }
  uint64_t dead_letters() const {
    return testing::total(outcomes, "source", &dataflow::InstanceStats::dead_letters);
  }
};

// source -> collect on rank 0, at `ranks` in-process ranks; out_dir set when given.
inline RunResult run_source(int ranks, const std::shared_ptr<const dataflow::OperatorDef>& source,
                            const fs::path& out_dir = {}, bool holdout = false) {
  auto out = std::make_shared<ops::Collection>();
  auto held = std::make_shared<ops::Collection>();
  dataflow::ExecutorOptions options;
  options.out_dir = out_dir;
  RunResult r;
  r.outcomes = testing::run_graph(
      ranks,
      [&](dataflow::Graph& g, int, int) {
        g.add("source", source);
        g.add("out", ops::collect(out), dataflow::Placement::on(0));
        g.connect("source.out", "out", dataflow::Routing::to_rank(0));
        if (holdout) {
          g.add("held", ops::collect(held), dataflow::Placement::on(0));
          g.connect("source.holdout", "held", dataflow::Routing::to_rank(0));
        }
      },
      options);
  r.rows = out->rows();
  r.holdout = held->rows();
  r.batches = out->batches();
  return r;
}

// Runs a shell command and returns its standard output; "" and ok=false when it fails.
inline std::string run_command(const std::string& cmd, bool& ok) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    ok = false;
    return out;
  }
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ok = ::pclose(p) == 0;
  return out;
}

}  // namespace tensair::io::test
