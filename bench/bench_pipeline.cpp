// bench_pipeline: records/s of generator source -> map -> counting sink, against a plain C++
// loop doing the same work.
//
// Run with `mpirun -np 2 bench_pipeline [--quick] [--json PATH]` (alone, without mpirun, it
// measures the one-process pipeline only). The pipeline:
//   source  ops::generator_source, column x = "sequence" (int64: 0, 1, ..., N-1)
//   map     ops::map, y = x * 2 + 1 as a float64 column (a new batch per batch)
//   sink    counts records and sums y
// for batch sizes 1, 64, 1024 and 8192 records, in three deployments:
//   1 process        every operator in one process (an in-process one-rank cluster; rank 1 of
//                    the mpirun job sleeps meanwhile)
//   2 ranks, cross   source on rank 0 -> map and sink on rank 1 (to_rank, then forward): every
//                    batch crosses MPI once
//   2 ranks, split   every operator on both ranks, sharded source, forward edges: two
//                    independent pipelines sharing the machine (records/s is their sum)
// The baseline is a plain C++ loop over the same batches: fill x, compute y, sum y (arrays
// materialised, buffers reused: a ceiling, not what an engine can reach). Time is the wall
// time of Executor::run() on rank 0 (start-up and shutdown included), after a barrier. The
// check: exactly N records reach the sinks and the sum of y is N^2, else exit 1.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "bench_common.hpp"
#include "tensair/common/process.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/dataflow/operator_def.hpp"
#include "tensair/ops/functional.hpp"
#include "tensair/ops/sources.hpp"
#include "tensair/runtime/transport.hpp"

namespace {

using namespace tensair;
using Clock = std::chrono::steady_clock;
using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Context;
using dataflow::DType;
using dataflow::InstanceInfo;
using dataflow::Operator;
using dataflow::Placement;
using dataflow::Routing;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_pipeline: error: %s\n", msg.c_str());
  std::fflush(stderr);
  std::_Exit(1);  // under mpirun, this ends the other rank too
}

enum class Mode { kOneProcess = 0, kCross = 1, kSplit = 2 };
constexpr int kModes = 3;
const char* const kModeNames[kModes] = {"1 process", "2 ranks, cross", "2 ranks, split"};
const char* const kModeKeys[kModes] = {"1proc", "2ranks_cross", "2ranks_split"};

struct Case {
  int64_t batch = 0;
  int64_t records = 0;  // per run
};

std::vector<Case> plan(bool quick) {
  std::vector<Case> cases;
  for (int64_t b : {1, 64, 1024, 8192}) {
    const int64_t batches = quick ? 5000 : 100000;
    const int64_t max_records = quick ? 2'000'000 : 20'000'000;
    cases.push_back({b, std::min(b * batches, max_records)});
  }
  return cases;
}

// What the sinks of this process saw.
struct Tally {
  std::atomic<int64_t> records{0};
  std::mutex mu;
  double sum = 0;  // guarded by mu
};

// y = x * 2 + 1, as a new float64 column.
Batch times_two_plus_one(const Batch& in) {
  const auto x = in.column("x").values<int64_t>();
  const size_t n = x.size();
  auto buf = runtime::allocate_aligned(n * sizeof(double));
  double* y = reinterpret_cast<double*>(buf.get());
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<double>(x[i]) * 2 + 1;
  return Batch({dataflow::Column("y", DType::kFloat64, {}, static_cast<int64_t>(n),
                                 dataflow::Bytes{buf, buf.get(), n * sizeof(double)})});
}

std::shared_ptr<const dataflow::OperatorDef> counting_sink(Tally& tally) {
  struct Sink final : Operator {
    explicit Sink(Tally& t) : t(t) {}
    void process(int, const BatchPtr& b, Context&) override {
      const auto y = b->column("y").values<double>();
      for (double v : y) sum += v;
      records += static_cast<int64_t>(y.size());
    }
    void on_finish(Context&) override {
      t.records += records;
      std::lock_guard lock(t.mu);
      t.sum += sum;
    }
    Tally& t;
    double sum = 0;
    int64_t records = 0;
  };
  return dataflow::operator_def({"counting_sink",
                        {{"in", dataflow::Schema{{"y", DType::kFloat64, {}}}}},
                        {},
                        [&tally](const InstanceInfo&) { return std::make_unique<Sink>(tally); }});
}

dataflow::Graph pipeline(const Case& c, Mode mode, Tally& tally) {
  ops::GeneratorSourceOptions gen;
  gen.columns = {{"x", "sequence"}};
  gen.count = c.records;
  gen.source.batch_size = c.batch;
  dataflow::Graph g;
  const bool cross = mode == Mode::kCross;
  g.add("source", ops::generator_source(gen), cross ? Placement::on(0) : Placement::all());
  g.add("map",
        ops::map(times_two_plus_one, dataflow::Schema{{"y", DType::kFloat64, {}}}, "y = x*2+1"),
        cross ? Placement::on(1) : Placement::all());
  g.add("sink", counting_sink(tally), cross ? Placement::on(1) : Placement::all());
  g.connect("source", "map", cross ? Routing::to_rank(1) : Routing::forward());
  g.connect("map", "sink", Routing::forward());
  return g;
}

dataflow::ExecutorOptions executor_options() {
  dataflow::ExecutorOptions o;
  o.metrics_interval_s = 3600;
  o.job_name = "bench_pipeline";
  return o;
}

// A barrier that sleeps instead of spinning, so a waiting rank leaves the CPU to the other.
void sleeping_barrier() {
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  for (int done = 0;;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Runs the pipeline once; returns rank 0's seconds. Checks the records and the sum.
double run_once(const Case& c, Mode mode, runtime::Transport* mpi) {
  Tally tally;
  dataflow::Graph g = pipeline(c, mode, tally);
  double seconds = 0;
  try {
    if (mode == Mode::kOneProcess) {
      runtime::LocalCluster cluster(1);
      dataflow::Executor ex(g, cluster.transport(0), executor_options());
      const auto t0 = Clock::now();
      ex.run();
      seconds = bench::seconds_since(t0);
    } else {
      dataflow::Executor ex(g, *mpi, executor_options());
      MPI_Barrier(MPI_COMM_WORLD);
      const auto t0 = Clock::now();
      ex.run();
      seconds = bench::seconds_since(t0);
    }
  } catch (const std::exception& e) {
    die(std::string(kModeNames[static_cast<int>(mode)]) + ", batch " + std::to_string(c.batch) +
        ": " + e.what());
  }
  int64_t records = tally.records.load();
  double sum = tally.sum;
  if (mode != Mode::kOneProcess) {
    int64_t r = records;
    double s = sum;
    MPI_Allreduce(&r, &records, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&s, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  }
  const double expect = static_cast<double>(c.records) * static_cast<double>(c.records);
  if (records != c.records || sum != expect) {
    die(std::string(kModeNames[static_cast<int>(mode)]) + ", batch " + std::to_string(c.batch) +
        ": " + std::to_string(records) + " records with sum " + bench::fmt(sum) + ", expected " +
        std::to_string(c.records) + " with sum " + bench::fmt(expect));
  }
  return seconds;
}

// The plain C++ loop: the same batches, x filled, y computed, y summed. Returns seconds.
double run_loop(const Case& c) {
  std::vector<int64_t> x(static_cast<size_t>(c.batch));
  std::vector<double> y(static_cast<size_t>(c.batch));
  double sum = 0;
  const auto t0 = Clock::now();
  for (int64_t base = 0; base < c.records; base += c.batch) {
    const size_t m = static_cast<size_t>(std::min(c.batch, c.records - base));
    for (size_t j = 0; j < m; ++j) x[j] = base + static_cast<int64_t>(j);
    asm volatile("" : : "r"(x.data()) : "memory");  // keep the stages apart, as in the pipeline
    for (size_t j = 0; j < m; ++j) y[j] = static_cast<double>(x[j]) * 2 + 1;
    asm volatile("" : : "r"(y.data()) : "memory");
    for (size_t j = 0; j < m; ++j) sum += y[j];
  }
  const double seconds = bench::seconds_since(t0);
  const double expect = static_cast<double>(c.records) * static_cast<double>(c.records);
  if (sum != expect) die("C++ loop: sum " + bench::fmt(sum) + ", expected " + bench::fmt(expect));
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  tensair::tune_allocator();
  const auto args = bench::parse_args(
      argc, argv, "bench_pipeline",
      "Records/s of generator -> map (y = x*2+1) -> counting sink for batch sizes 1..8192, in "
      "one process and on 2 ranks, against a plain C++ loop. Run under mpirun -np 2.");
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world > 2) {
    if (rank == 0) {
      std::fprintf(stderr, "bench_pipeline: error: runs on 1 or 2 ranks, got %d\n", world);
    }
    MPI_Finalize();
    return 2;
  }
  const auto cases = plan(args.quick);
  const int repeats = args.repeats();
  const auto t_start = Clock::now();
  const std::string load_at_start = bench::load_average();
  const size_t n = cases.size();
  // [mode][case][repeat] seconds; loop[case][repeat]
  std::vector<std::vector<std::vector<double>>> secs(kModes, std::vector<std::vector<double>>(n));
  std::vector<std::vector<double>> loop(n);

  // Per batch size: a warm-up of everything (r = 0), then the repeats. Within a repeat the
  // loop and the one-process pipeline run on rank 0 while rank 1 sleeps, then the 2-rank
  // deployments; taking turns keeps a change in machine load from falling on one alone.
  std::unique_ptr<runtime::Transport> tp;
  if (world == 2) tp = runtime::make_mpi_transport();
  for (size_t i = 0; i < n; ++i) {
    for (int r = 0; r <= repeats; ++r) {
      if (rank == 0) {
        const double l = run_loop(cases[i]);
        const double s = run_once(cases[i], Mode::kOneProcess, nullptr);
        if (r > 0) {
          loop[i].push_back(l);
          secs[0][i].push_back(s);
        }
      }
      if (world == 2) {
        sleeping_barrier();
        for (int m = 1; m < kModes; ++m) {
          const double s = run_once(cases[i], static_cast<Mode>(m), tp.get());
          if (r > 0) secs[static_cast<size_t>(m)][i].push_back(s);
        }
      }
    }
  }
  tp.reset();
  MPI_Finalize();
  if (rank != 0) return 0;

  bench::Report report("pipeline");
  report.settings["allocator"] = tensair::allocator_description();
  report.settings["load_average_at_start"] = load_at_start;
  report.settings["ranks"] = world;
  report.settings["build"] = bench::build_type();
  report.settings["quick"] = args.quick;
  report.settings["repeats"] = repeats;
  report.settings["credit_bytes"] = executor_options().credit_bytes;
  report.settings["threads"] =
      "per rank: main, transport progress, one per operator instance (source, map, sink)";
  report.settings["map"] = "y = x*2+1, int64 -> float64, a new batch per batch";

  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < n; ++i) {
    const Case& c = cases[i];
    const std::string b = "b" + std::to_string(c.batch);
    const double batches = std::ceil(static_cast<double>(c.records) / static_cast<double>(c.batch));
    std::vector<double> loop_rate;
    for (double s : loop[i]) loop_rate.push_back(static_cast<double>(c.records) / s);
    const double base = bench::median(loop_rate);
    report.add({"cpp_loop_records_per_s_" + b, base, "records/s", true, std::nullopt,
                std::nullopt,
                std::to_string(c.records) + " records; " + bench::spread(loop_rate)});
    std::vector<std::string> row{std::to_string(c.batch), bench::fmt(base / 1e6)};
    for (int m = 0; m < kModes; ++m) {
      const auto& v = secs[static_cast<size_t>(m)][i];
      if (v.empty()) {
        row.push_back("-");
        continue;
      }
      std::vector<double> rate;
      for (double s : v) rate.push_back(static_cast<double>(c.records) / s);
      const double med = bench::median(rate);
      report.add({std::string("pipeline_records_per_s_") + kModeKeys[m] + "_" + b, med,
                  "records/s", true, "plain C++ loop", base,
                  std::string(kModeNames[m]) + ", " + std::to_string(c.records) + " records; " +
                      bench::spread(rate)});
      row.push_back(bench::fmt(med / 1e6));
      if (m == 0) {
        row.push_back(bench::fmt(100 * med / base) + " %");
        // Time per batch beyond the loop's: what the engine costs per batch.
        const double over_us = (bench::median(v) - bench::median(loop[i])) / batches * 1e6;
        report.add({"pipeline_overhead_per_batch_1proc_" + b, over_us, "us", false, std::nullopt,
                    std::nullopt, "(pipeline time - loop time) / batches, 1 process"});
        row.push_back(bench::fmt(over_us));
      }
    }
    rows.push_back(row);
  }
  std::printf("## bench_pipeline: %s, %d rank(s), %s, %s, load average at start %s%s\n\n",
              bench::machine_description().c_str(), world, tensair::allocator_description(),
              bench::build_type(), load_at_start.c_str(), args.quick ? ", --quick" : "");
  std::printf(
      "generator -> map (y = x*2+1) -> counting sink; million records/s, median of %d "
      "(sum of y checked)\n\n",
      repeats);
  std::fputs(bench::markdown_table({"batch", "C++ loop", "1 process", "1 process / loop",
                                    "overhead us/batch", "2 ranks, cross", "2 ranks, split"},
                                   rows)
                 .c_str(),
             stdout);
  if (world == 1) std::printf("\n(2-rank columns: run under mpirun -np 2)\n");
  std::printf("\nall sums checked; %.1f s in all\n", bench::seconds_since(t_start));
  report.write(args.json_path);
  return 0;
}
