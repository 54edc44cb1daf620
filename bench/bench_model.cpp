// bench_model: training speed of the reference CIFAR-10 CNN (122,570 parameters).
//
//  1. steps/s of the Model operator (one rank, mode local) against a plain LibTorch loop
//     (torch::nn modules + torch::optim::Adam) on the same batches, with 1 and 2 torch threads;
//  2. samples/s of 2 replicas (DASGD and sync; one torch thread each) against 1 replica with one
//     thread and 1 replica with two threads.
// Ranks are in-process (runtime::LocalCluster, one thread per rank): the transport is shared
// memory, not MPI; the 490 KB dense delta per step is small next to a CNN step here.
// Checks: every batch was trained on (train rows counted) and every loss is finite.
#include <torch/torch.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "bench_common.hpp"
#include "model/delta.hpp"
#include "tensair/common/process.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/dataflow/operator_def.hpp"
#include "tensair/model/model.hpp"
#include "tensair/ops/collect.hpp"
#include "tensair/runtime/transport.hpp"

namespace {

using namespace tensair;
using dataflow::Batch;
using dataflow::DType;

constexpr int64_t kRows = 32;

std::vector<Batch> make_batches(int n) {
  torch::manual_seed(1);
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) {
    at::Tensor x = torch::randn({kRows, 3, 32, 32});
    at::Tensor y = torch::randint(0, 10, {kRows}, torch::kLong);
    out.push_back(Batch({model::tensor_column("image", x, {3, 32, 32}, kRows), model::tensor_column("label", y, {}, kRows)}));
  }
  return out;
}

struct PlainCnn : torch::nn::Module {
  torch::nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr};
  torch::nn::Linear f1{nullptr}, f2{nullptr};
  PlainCnn()
      : c1(register_module("c1", torch::nn::Conv2d(3, 32, 3))),
        c2(register_module("c2", torch::nn::Conv2d(32, 64, 3))),
        c3(register_module("c3", torch::nn::Conv2d(64, 64, 3))),
        f1(register_module("f1", torch::nn::Linear(1024, 64))),
        f2(register_module("f2", torch::nn::Linear(64, 10))) {}
  at::Tensor forward(at::Tensor x) {
    x = torch::max_pool2d(torch::relu(c1(x)), 2);
    x = torch::max_pool2d(torch::relu(c2(x)), 2);
    x = torch::relu(c3(x)).flatten(1);
    return f2(torch::relu(f1(x)));
  }
};

// Samples/s of a plain loop over `batches`.
double plain_loop(const std::vector<Batch>& batches, int threads) {
  at::set_num_threads(threads);
  PlainCnn net;
  torch::optim::Adam opt(net.parameters(), torch::optim::AdamOptions(1e-3));
  auto step = [&](const Batch& b) {
    opt.zero_grad();
    at::Tensor loss = torch::nll_loss(torch::log_softmax(net.forward(model::column_tensor(b.column("image"))), 1),
                                      model::column_tensor(b.column("label")));
    loss.backward();
    opt.step();
    if (!std::isfinite(loss.item<double>())) {
      std::cerr << "bench_model: error: plain loop loss is not finite\n";
      std::exit(1);
    }
  };
  for (int i = 0; i < 5; ++i) step(batches[static_cast<size_t>(i)]);  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  for (const Batch& b : batches) step(b);
  return static_cast<double>(batches.size() * kRows) / bench::seconds_since(t0);
}

// Samples/s of the Model operator: a source on rank 0 deals `batches` round-robin to `ranks`
// replicas. Timed from the executor's start to its end (set-up included: a few ms).
double tensair_run(const std::vector<Batch>& batches, int ranks, int threads, const std::string& mode) {
  model::ModelOptions o;
  o.network.kind = "cifar_cnn";
  o.inputs = {"image"};
  o.label = "label";
  o.optimizer.kind = model::OptimizerKind::kAdam;
  o.optimizer.lr = 1e-3;
  o.threads = threads;
  o.mode = model::parse_mode(mode);
  o.log_every = 1000000;
  auto model = model::model_operator(o);
  struct Src final : dataflow::Operator {
    const std::vector<Batch>* b;
    size_t i = 0;
    dataflow::SourceState produce(dataflow::Context& ctx) override {
      if (i == b->size()) return dataflow::SourceState::kDone;
      ctx.emit(0, (*b)[i++]);
      return dataflow::SourceState::kMore;
    }
  };
  auto src = dataflow::operator_def({"batches", {}, {{"out", batches[0].schema()}}, [&batches](const dataflow::InstanceInfo&) {
                                       auto s = std::make_unique<Src>();
                                       s->b = &batches;
                                       return s;
                                     }});
  auto rows = std::make_shared<ops::Collection>();
  runtime::LocalCluster cluster(ranks);
  std::vector<std::thread> threads_of_ranks;
  std::mutex mu;
  std::string error;
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < ranks; ++r) {
    threads_of_ranks.emplace_back([&, r] {
      try {
        dataflow::Graph g;
        g.add("src", src, dataflow::Placement::on(0));
        g.add("model", model);
        g.add("rows", ops::collect(rows), dataflow::Placement::on(0));
        g.connect("src", "model.train", dataflow::Routing::round_robin());
        g.connect("model.metrics", "rows", dataflow::Routing::to_rank(0));
        dataflow::ExecutorOptions eo;
        eo.metrics_interval_s = 3600;
        dataflow::Executor(g, cluster.transport(r), eo).run();
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        error = e.what();
      }
    });
  }
  for (auto& t : threads_of_ranks) t.join();
  double seconds = bench::seconds_since(t0);
  if (!error.empty()) {
    std::cerr << "bench_model: error: " << error << "\n";
    std::exit(1);
  }
  // Every batch trained on once, with a finite loss.
  Batch all = rows->rows();
  int64_t trained = 0;
  for (int64_t i = 0; i < all.rows(); ++i) {
    if (all.column("phase").str(i) != "train") continue;
    trained += all.column("samples").at<int64_t>(i);
    if (!std::isfinite(all.column("loss").at<double>(i))) {
      std::cerr << "bench_model: error: a non-finite loss\n";
      std::exit(1);
    }
  }
  // (sync rows report the samples of the whole step, all replicas: not comparable.)
  int64_t expected = static_cast<int64_t>(batches.size()) * kRows;
  if (mode != "sync" && trained != expected) {
    std::cerr << "bench_model: error: " << trained << " samples trained, expected " << expected << "\n";
    std::exit(1);
  }
  return static_cast<double>(batches.size() * kRows) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  tensair::tune_allocator();
  auto args = bench::parse_args(argc, argv, "bench_model",
                                "CIFAR CNN training speed: the Model operator vs a plain LibTorch loop, and 1 vs 2 replicas");
  const int n = args.quick ? 40 : 300;
  std::vector<Batch> batches = make_batches(n);
  bench::Report report("model");
  report.settings["allocator"] = allocator_description();
  report.settings["network"] = "cifar_cnn (122,570 parameters), Adam lr 1e-3, batch 32";
  report.settings["batches"] = n;
  report.settings["ranks"] = "in-process (LocalCluster), one thread per rank";
  report.settings["plain_loop"] = "torch::nn Conv2d/Linear + torch::optim::Adam, same process, same allocator";
  auto measure = [&](auto fn) {
    std::vector<double> v;
    for (int i = 0; i < args.repeats(); ++i) v.push_back(fn());
    return bench::median(v);
  };
  double plain1 = measure([&] { return plain_loop(batches, 1); });
  double plain2 = measure([&] { return plain_loop(batches, 2); });
  double t1 = measure([&] { return tensair_run(batches, 1, 1, "local"); });
  double t2 = measure([&] { return tensair_run(batches, 1, 2, "local"); });
  double dasgd = measure([&] { return tensair_run(batches, 2, 1, "dasgd"); });
  double sync = measure([&] { return tensair_run(batches, 2, 1, "sync"); });
  report.add({"cnn_1rank_1thread", t1, "samples/s", true, std::string("plain LibTorch loop, 1 thread"), plain1,
              "goal: ratio >= 0.95"});
  report.add({"cnn_1rank_2threads", t2, "samples/s", true, std::string("plain LibTorch loop, 2 threads"), plain2, ""});
  report.add({"cnn_dasgd_2ranks_1thread", dasgd, "samples/s", true, std::string("TensAIR 1 rank, 1 thread"), t1,
              "goal: ratio >= 1.8"});
  report.add({"cnn_dasgd_vs_1rank_2threads", dasgd, "samples/s", true, std::string("TensAIR 1 rank, 2 threads"), t2,
              "goal: ratio > 1"});
  report.add({"cnn_sync_2ranks_1thread", sync, "samples/s", true, std::string("TensAIR 1 rank, 1 thread"), t1, ""});
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : report.results()) {
    rows.push_back({r.name, bench::fmt(r.value), r.unit, r.baseline.value_or("-"),
                    r.baseline_value ? bench::fmt(*r.baseline_value) : "-",
                    r.baseline_value ? bench::fmt(r.value / *r.baseline_value) : "-", r.note});
  }
  std::cout << "bench_model: " << allocator_description() << "; median of " << args.repeats() << " runs of " << n
            << " batches of 32\n\n"
            << bench::markdown_table({"measurement", "value", "unit", "baseline", "baseline value", "ratio", "note"}, rows);
  report.write(args.json_path);
  return 0;
}
