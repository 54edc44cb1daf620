// The smallest complete TensAIR program: a graph built in C++, run on one rank or, under
// mpirun, on many. A generator emits numbers, a filter keeps the even ones, a map squares
// them, and every rank's results meet in one sink on rank 0.
//
//   build/bin/minimal                      # one process
//   mpirun -np 3 build/bin/minimal         # three ranks, same result
#include <cstdio>

#include "tensair/tensair.hpp"

using namespace tensair;
using dataflow::Batch;
using dataflow::ColumnBuilder;
using dataflow::DType;
using dataflow::Placement;
using dataflow::Routing;

int main() {
  tune_allocator();
  try {
    auto transport = runtime::make_mpi_transport();

    dataflow::Graph graph;
    graph.add("numbers", ops::generator_source({{{"n", "sequence"}}, /*count=*/1000, /*seed=*/1, {}}));
    graph.add("even", ops::filter([](const Batch& b, int64_t row) { return b.column("n").at<int64_t>(row) % 2 == 0; }));
    graph.add("square", ops::map(
                            [](const Batch& b) {
                              ColumnBuilder sq({"square", DType::kInt64, {}});
                              for (int64_t v : b.column("n").values<int64_t>()) sq.append<int64_t>(v * v);
                              return b.with_column(sq.finish());
                            },
                            dataflow::Schema{{"n", DType::kInt64, {}}, {"square", DType::kInt64, {}}}));
    auto results = std::make_shared<ops::Collection>();
    graph.add("results", ops::collect(results), Placement::on(0));
    graph.connect("numbers", "even");
    graph.connect("even", "square", Routing::forward());
    graph.connect("square", "results", Routing::to_rank(0));

    dataflow::Executor executor(graph, *transport);
    executor.run();

    if (transport->rank() == 0) {
      int64_t sum = 0;
      // A named batch: a span into a temporary's column would outlive the bytes it views.
      const Batch rows = results->rows();
      for (int64_t v : rows.column("square").values<int64_t>()) sum += v;
      // Sum of the squares of the even numbers below 1000.
      std::printf("%lld even squares, sum %lld (expected 500, 166167000)\n",
                  static_cast<long long>(results->num_rows()), static_cast<long long>(sum));
      return sum == 166167000 ? 0 : 1;
    }
    return 0;
  } catch (const Error& e) {
    // Every rank gets the job's error; the rank it arose on prints it.
    if (!e.from_other_rank()) std::fprintf(stderr, "minimal: error: %s\n", e.what());
    return static_cast<int>(e.exit_code());
  }
}
