#include "testing/harness.hpp"

#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "tensair/common/error.hpp"

namespace tensair::testing {

std::unique_ptr<runtime::Transport>& mpi_slot() {
  static std::unique_ptr<runtime::Transport> transport;
  return transport;
}

bool under_mpi() { return runtime::launcher_world_size() > 1 || std::getenv("OMPI_COMM_WORLD_SIZE"); }

runtime::Transport& mpi_transport() {
  auto& t = mpi_slot();
  if (!t) t = runtime::make_mpi_transport();
  return *t;
}

std::vector<int> rank_counts() {
  if (under_mpi()) return {mpi_transport().world_size()};
  return {1, 2, 3};
}

void run_ranks(int ranks, const std::function<void(runtime::Transport&)>& body) {
  if (under_mpi()) {
    body(mpi_transport());
    return;
  }
  runtime::LocalCluster cluster(ranks);
  std::vector<std::thread> threads;
  std::exception_ptr first;
  std::mutex mu;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      try {
        body(cluster.transport(r));
      } catch (...) {
        std::lock_guard lock(mu);
        if (!first) first = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

std::vector<RankOutcome> run_graph(
    int ranks, const std::function<void(dataflow::Graph&, int rank, int world)>& build,
    dataflow::ExecutorOptions options) {
  std::mutex mu;
  std::vector<RankOutcome> outcomes;
  run_ranks(ranks, [&](runtime::Transport& t) {
    RankOutcome out;
    out.rank = t.rank();
    dataflow::Graph graph;
    build(graph, t.rank(), t.world_size());
    try {
      dataflow::Executor executor(graph, t, options);
      try {
        out.outcome = executor.run();
      } catch (const Error& e) {
        out.error = e.what();
        out.exit_code = static_cast<int>(e.exit_code());
        out.error_kind = e.kind();
        out.error_origin = e.origin_rank();
      }
      out.stats = executor.stats();
    } catch (const Error& e) {
      // Construction failed (validation): nothing ran on any rank.
      out.error = e.what();
      out.exit_code = static_cast<int>(e.exit_code());
    }
    std::lock_guard lock(mu);
    outcomes.push_back(std::move(out));
  });
  std::sort(outcomes.begin(), outcomes.end(),
            [](const RankOutcome& a, const RankOutcome& b) { return a.rank < b.rank; });
  return outcomes;
}

uint64_t total(const std::vector<RankOutcome>& outcomes, const std::string& op,
               uint64_t dataflow::InstanceStats::*field) {
  uint64_t sum = 0;
  for (const auto& o : outcomes) {
    for (const auto& s : o.stats) {
      if (s.name == op) sum += s.*field;
    }
  }
  return sum;
}

}  // namespace tensair::testing
