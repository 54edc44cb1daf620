// Fuzz target: what a resumed job reads of a checkpoint — the rank file
// (dataflow/rank_file.hpp), each instance's entry (engine state and recorded channel state,
// batches through the wire codec), the manifest, and the operators' own states restored into
// fresh instances of the built-in operators (sources, reduce, join, sinks, baselines).
// Input: [mode: 1 byte] then
//   mode 0: a rank file (rank 0 of 1, checkpoint 1);
//   mode 1: a MANIFEST.json, read and its files verified (they live in the scratch folder);
//   mode 2: [operator: 1 byte] an operator state, restored into that operator, which then runs.
// The model's state (LibTorch's serialisation of weights and optimizer) is not fuzzed here:
// its bytes are covered by the checkpoint's CRC-32 before LibTorch sees them.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "dataflow/executor_impl.hpp"
#include "dataflow/rank_file.hpp"
#include "fuzz_support.hpp"
#include "tensair/dataflow/checkpoint.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/io/types.hpp"
#include "tensair/job/job.hpp"

namespace tensair::fuzz {

namespace {

using dataflow::detail::RecordedItem;

const char* kJob = R"TOML(
[gen]
type = "generator"
columns = { n = "sequence", x = "uniform[2]", k = "randint(3)" }
count = 20
[csv]
type = "csv_source"
path = "in.csv"
dtype = "int64"
[text]
type = "text_source"
path = "in.txt"
[bin]
type = "binary_source"
path = "in.bin"
fields = ["a:int32", "b:float32[2]"]
[red]
type = "reduce"
from = "gen"
group_by = ["k"]
aggregate = { n = "count", s = "sum(n)", f = "first(n)" }
window = "count:3"
[join]
type = "join"
keys = ["n"]
[join.inputs.left]
from = "gen"
[join.inputs.right]
from = "csv"
[sink]
type = "csv_sink"
from = "red"
path = "out.csv"
[jsonl]
type = "jsonl_sink"
from = "gen"
path = "out.jsonl"
)TOML";

struct Ops {
  job::Job job;
  std::vector<std::string> names;
};

Ops& ops() {
  static Ops* ops = [] {
    io::register_job_types();
    write_scratch("in.csv", "n,b\n1,2\n3,4\n5,6\n");
    write_scratch("in.txt", "one\ntwo\nthree\n");
    write_scratch("in.bin", std::string(12 * 4, '\1'));
    auto* o = new Ops;
    const auto file = write_scratch("ckpt-job.toml", kJob);
    job::LoadOptions options;
    options.out_dir = scratch_dir() / "out";
    try {
      o->job = job::load_job(file, options);
    } catch (const Error& e) {
      std::fprintf(stderr, "checkpoint fuzz target: its job does not load: %s\n", e.what());
      std::abort();
    }
    for (const auto& node : o->job.graph.operators()) o->names.push_back(node.name);
    return o;
  }();
  return *ops;
}

// Restores `state` into a fresh instance of operator `index`, then lets it run a little.
void restore_operator(size_t index, std::string_view state) {
  const auto& node = ops().job.graph.operators()[index % ops().names.size()];
  Instance in(node);
  dataflow::StateReader r(state, "fuzz state");
  in.op->restore(r, in.ctx);
  r.expect_end();
  in.op->open(in.ctx);
  if (node.inputs.empty()) {
    for (int i = 0; i < 50; ++i) {
      if (in.op->produce(in.ctx) == dataflow::SourceState::kDone) break;
    }
  } else {
    for (size_t p = 0; p < node.inputs.size(); ++p) {
      in.op->on_input_done(static_cast<int>(p), in.ctx);
    }
  }
  in.op->on_finish(in.ctx);
}

std::string snapshot_of(size_t index, int produce_calls) {
  const auto& node = ops().job.graph.operators()[index];
  Instance in(node);
  in.op->open(in.ctx);
  if (node.inputs.empty()) {
    for (int i = 0; i < produce_calls; ++i) in.op->produce(in.ctx);
  }
  dataflow::StateWriter w;
  in.op->snapshot(w, in.ctx);
  return w.take();
}

}  // namespace

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  std::vector<std::string> entries;
  for (size_t i = 0; i < ops().names.size(); ++i) {
    const std::string state = snapshot_of(i, 1);
    out.push_back(std::string(1, '\2') + std::string(1, static_cast<char>(i)) + state);
    std::vector<RecordedItem> items(1);
    items[0].channel = 0;
    items[0].end_of_stream = true;
    entries.push_back(dataflow::detail::encode_instance_entry("engine", items, state));
  }
  std::vector<std::pair<int32_t, const std::string*>> listed;
  for (size_t i = 0; i < entries.size(); ++i) listed.emplace_back(static_cast<int32_t>(i), &entries[i]);
  listed.emplace_back(99, nullptr);
  out.push_back(std::string(1, '\0') + dataflow::detail::encode_rank_file(0, 1, 1, listed));
  dataflow::CheckpointManifest m;
  m.job = "fuzz";
  m.id = 1;
  m.ranks = 1;
  m.reason = "stop";
  m.operators.push_back({"gen", "generator", 1});
  m.files.push_back({"in.csv", 0, 16, dataflow::checksum("n,b\n1,2\n3,4\n5,6\n")});
  out.push_back(std::string(1, '\1') + m.to_json().dump());
  return out;
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensair;
  if (size == 0) return 0;
  fuzz::ops();
  const uint8_t mode = data[0] % 3;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  fuzz::tolerate_errors([&] {
    if (mode == 0) {
      for (const auto& e : dataflow::detail::parse_rank_file(rest, "fuzz", 0, 1, 1)) {
        if (e.finished) continue;
        auto ri = dataflow::detail::decode_instance_entry(e.state, "fuzz entry");
        for (const dataflow::detail::RecordedItem& item : ri.items) {
          if (!item.end_of_stream && !item.batch) std::abort();  // the reader refuses those
        }
        fuzz::restore_operator(static_cast<size_t>(static_cast<uint32_t>(e.instance)),
                               ri.operator_state);
      }
    } else if (mode == 1) {
      fuzz::write_scratch(dataflow::kManifestName, rest);
      const auto m = dataflow::read_manifest(fuzz::scratch_dir());
      for (const auto& f : m.files) dataflow::verify_checkpoint_file(fuzz::scratch_dir(), f);
    } else if (rest.size() >= 1) {
      fuzz::restore_operator(static_cast<uint8_t>(rest[0]), rest.substr(1));
    }
  });
  return 0;
}
