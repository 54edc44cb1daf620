// Test harness: one test body, run at several rank counts.
//
// In a plain test run, run_graph() runs the graph in-process on a fresh LocalCluster of the
// given number of ranks (one thread per rank). When the test binary is started by mpirun,
// it runs the graph once, on this process's rank, over the process-wide MPI transport, and the
// rank count is mpirun's. rank_counts() gives the counts a body should loop over: {1, 2, 3}
// in-process, {world size} under mpirun.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tensair/dataflow/executor.hpp"
#include "tensair/runtime/transport.hpp"

namespace tensair::testing {

bool under_mpi();
// The MPI transport shared by all tests of this process (created by the test main).
runtime::Transport& mpi_transport();
std::vector<int> rank_counts();

// What one rank saw.
struct RankOutcome {
  int rank = 0;
  std::vector<dataflow::InstanceStats> stats;
  std::optional<std::string> error;  // the exception message run() threw, if any
  int exit_code = 0;
  ErrorKind error_kind = ErrorKind::kError;  // its kind
  int error_origin = -1;                     // Error::origin_rank(): -1 when it arose on this rank
  dataflow::RunOutcome outcome;              // when run() returned
};

// Builds the graph with `build(graph, rank, world)` on every rank and runs it. Returns one
// outcome per rank run by this process (all ranks in-process; this rank under mpirun).
std::vector<RankOutcome> run_graph(
    int ranks, const std::function<void(dataflow::Graph&, int rank, int world)>& build,
    dataflow::ExecutorOptions options = {});

// Runs `body(transport)` on every rank (threads in-process, or this rank under mpirun) and
// rethrows the first exception.
void run_ranks(int ranks, const std::function<void(runtime::Transport&)>& body);

// Sum of a counter over the outcomes of all ranks of this process.
uint64_t total(const std::vector<RankOutcome>& outcomes, const std::string& op,
               uint64_t dataflow::InstanceStats::*field);

}  // namespace tensair::testing
