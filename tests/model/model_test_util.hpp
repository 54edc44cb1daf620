// Helpers of the model tests: seeded batches, a per-rank source that checkpoints its position
// (and can fail or ask for a stop on cue), and a run of source -> model over in-process ranks
// that returns every replica's exported weights and summary.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "model/delta.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/model/model.hpp"
#include "testing/harness.hpp"
#include "testing/lambda_op.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::model {

// A batch of `rows` records: x float32[shape...], y int64 in [0, classes); seeded.
inline dataflow::Batch make_batch(uint64_t seed, int64_t rows, std::vector<int64_t> shape,
                                  int64_t classes) {
  torch::manual_seed(seed);
  std::vector<int64_t> full{rows};
  full.insert(full.end(), shape.begin(), shape.end());
  at::Tensor x = torch::randn(full);
  // Labels that depend on x, so there is something to learn.
  at::Tensor y = x.reshape({rows, -1}).sum(1).mul(3).floor().remainder(classes).to(at::kLong);
  return dataflow::Batch({tensor_column("x", x, shape, rows), tensor_column("y", y, {}, rows)});
}

inline std::vector<dataflow::Batch> batches(uint64_t seed, int n, int64_t rows,
                                            std::vector<int64_t> shape, int64_t classes) {
  std::vector<dataflow::Batch> out;
  for (int i = 0; i < n; ++i)
    out.push_back(make_batch(seed * 1000 + static_cast<uint64_t>(i), rows, shape, classes));
  return out;
}

inline dataflow::Schema xy_schema(std::vector<int64_t> shape) {
  return {{"x", dataflow::DType::kFloat32, shape}, {"y", dataflow::DType::kInt64, {}}};
}

inline ModelOptions mlp_options(std::vector<int64_t> layers, double lr = 0.1) {
  ModelOptions o;
  o.network.kind = "mlp";
  o.network.layers = std::move(layers);
  o.inputs = {"x"};
  o.label = "y";
  o.optimizer.lr = lr;
  o.seed = 7;
  o.threads = 1;
  return o;
}

inline double max_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

// Cues for a run of rank_source: rank 0's source fails, or asks for a stop, once it has emitted
// that many batches (-1: never) and a checkpoint has completed (so there is one to resume from);
// it holds its next batch until one has.
struct SourceCues {
  std::atomic<int64_t> fail_after{-1};
  std::atomic<int64_t> stop_after{-1};
  std::atomic<int> stop{0};         // ExecutorOptions::stop_signal
  std::atomic<int64_t> emitted{0};  // batches emitted by all ranks in the run
};

// Emits, on each rank r, the batches per_rank[r] (a rank beyond the list emits nothing), each
// after a pause of delay_ms[r] milliseconds when that is given. Its state: the next batch.
inline std::shared_ptr<const dataflow::OperatorDef> rank_source(
    std::vector<std::vector<dataflow::Batch>> per_rank, dataflow::Schema schema,
    std::vector<int> delay_ms = {}, std::shared_ptr<SourceCues> cues = nullptr) {
  struct Src final : dataflow::Operator {
    std::vector<dataflow::Batch> b;
    size_t i = 0;
    int delay_ms = 0;
    int rank = 0;
    uint64_t completed = 0;
    std::shared_ptr<SourceCues> cues;
    dataflow::SourceState produce(dataflow::Context& ctx) override {
      if (i == b.size()) return dataflow::SourceState::kDone;
      if (holding_for_checkpoint()) {
        // A fault is due but no checkpoint has completed yet (a loaded machine): wait for one
        // rather than run to the end, so that the run always has a checkpoint to resume from.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return dataflow::SourceState::kMore;
      }
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      ctx.emit(0, b[i++]);
      if (cues) {
        cues->emitted++;
        const auto n = static_cast<int64_t>(i);
        if (rank == 0 && completed > 0 && cues->fail_after >= 0 && n >= cues->fail_after) {
          throw DataError("injected failure");
        }
        if (rank == 0 && completed > 0 && cues->stop_after >= 0 && n >= cues->stop_after)
          cues->stop = SIGINT;
      }
      return dataflow::SourceState::kMore;
    }
    bool holding_for_checkpoint() const {
      if (!cues || rank != 0 || completed > 0) return false;
      const auto next = static_cast<int64_t>(i) + 1;
      return (cues->fail_after >= 0 && next >= cues->fail_after) ||
             (cues->stop_after >= 0 && next >= cues->stop_after);
    }
    void on_checkpoint_complete(uint64_t, dataflow::Context&) override { ++completed; }
    void snapshot(dataflow::StateWriter& w, dataflow::Context&) override { w.put<uint64_t>(i); }
    void restore(dataflow::StateReader& r, dataflow::Context&) override { i = r.get<uint64_t>(); }
  };
  return testing::lambda_op({"rank_source",
                             {},
                             {{"out", schema}},
                             [per_rank, delay_ms, cues](const dataflow::InstanceInfo& info) {
                               auto s = std::make_unique<Src>();
                               if (static_cast<size_t>(info.rank) < per_rank.size())
                                 s->b = per_rank[static_cast<size_t>(info.rank)];
                               if (static_cast<size_t>(info.rank) < delay_ms.size())
                                 s->delay_ms = delay_ms[static_cast<size_t>(info.rank)];
                               s->rank = info.rank;
                               s->cues = cues;
                               return s;
                             }});
}

struct RunResult {
  std::map<int, std::vector<at::Tensor>> weights;  // by rank, from the exported modules
  std::map<int, nlohmann::json> summary;           // model_summary events by rank
  std::vector<testing::RankOutcome> outcomes;

  std::optional<std::string> error() const {
    for (const auto& oc : outcomes) {
      if (oc.error) return oc.error;
    }
    return std::nullopt;
  }
};

// A run of rank_source -> model (forward routing unless `source_on` places the source on one
// rank), writing into `dir`.
struct ModelRun {
  int ranks = 1;
  std::vector<std::vector<dataflow::Batch>> per_rank;
  dataflow::Schema schema;
  ModelOptions options;
  std::vector<int> delay_ms;
  std::optional<int> source_on;  // place the source on this rank only
  dataflow::ExecutorOptions executor;
  std::shared_ptr<SourceCues> cues;
};

inline RunResult run_model(ModelRun spec, const testing::TempDir& dir) {
  namespace fs = std::filesystem;
  spec.options.export_path = (dir / "model_{rank}.pt").string();
  spec.executor.out_dir = dir.path();
  spec.executor.metrics_interval_s = 60;
  if (spec.cues) spec.executor.stop_signal = &spec.cues->stop;
  RunResult r;
  r.outcomes = testing::run_graph(
      spec.ranks,
      [&](dataflow::Graph& g, int, int) {
        auto placement =
            spec.source_on ? dataflow::Placement::on(*spec.source_on) : dataflow::Placement::all();
        g.add("src", rank_source(spec.per_rank, spec.schema, spec.delay_ms, spec.cues), placement);
        g.add("model", model_operator(spec.options));
        g.connect("src", "model.train", dataflow::Routing::forward());
      },
      spec.executor);
  if (r.error()) return r;
  for (int rank = 0; rank < spec.ranks; ++rank) {
    fs::path p = dir / ("model_" + std::to_string(rank) + ".pt");
    if (!fs::exists(p)) continue;  // under mpirun, other processes' files
    torch::jit::Module m = torch::jit::load(p.string());
    for (const auto& t : m.parameters()) r.weights[rank].push_back(t.detach().clone());
  }
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.value("kind", "") == "model_summary") r.summary[j["rank"].get<int>()] = j;
  }
  return r;
}

inline RunResult run_model(int ranks, std::vector<std::vector<dataflow::Batch>> per_rank,
                           dataflow::Schema schema, ModelOptions o, const testing::TempDir& dir,
                           std::vector<int> delay_ms = {}) {
  ModelRun spec;
  spec.ranks = ranks;
  spec.per_rank = std::move(per_rank);
  spec.schema = std::move(schema);
  spec.options = std::move(o);
  spec.delay_ms = std::move(delay_ms);
  return run_model(std::move(spec), dir);
}

}  // namespace tensair::model
