#include "run_job.hpp"

#define OMPI_SKIP_MPICXX 1  // the C API only
#include <mpi.h>

#include <chrono>
#include <exception>
#include <memory>

#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/common/stop_signals.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/job/job.hpp"
#include "tensair/runtime/transport.hpp"

namespace py = pybind11;

namespace tensair::python {
namespace {

bool g_owns_mpi = false;
bool g_rank_lost = false;

void ensure_mpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    throw TransportError("MPI_Init_thread failed");
  }
  g_owns_mpi = true;
}

py::dict instance_dict(const dataflow::InstanceStats& s) {
  py::dict d;
  d["operator"] = s.name;
  d["instance"] = s.instance;
  d["rank"] = s.rank;
  d["records_in"] = s.records_in;
  d["records_out"] = s.records_out;
  d["bytes_in"] = s.bytes_in;
  d["bytes_out"] = s.bytes_out;
  d["batches_in"] = s.batches_in;
  d["batches_out"] = s.batches_out;
  d["dead_letters"] = s.dead_letters;
  d["busy_s"] = s.busy_s;
  d["credit_waits"] = s.credit_waits;
  d["credit_wait_s"] = s.credit_wait_s;
  return d;
}

}  // namespace

py::dict run_job(const RunRequest& request) {
  job::LoadOptions load;
  load.overrides = request.overrides;
  load.out_dir = request.out_dir;
  load.base_dir = request.base_dir;
  job::Job job = job::load_job(request.job_file, load);  // with the GIL: it names Python functions

  ensure_mpi();
  ScopedStopSignals signals;
  std::unique_ptr<runtime::Transport> transport = runtime::make_mpi_transport();
  const int rank = transport->rank();
  const int world = transport->world_size();
  set_log_rank(rank, world);
  job.executor.progress = request.progress && rank == 0;
  job.executor.resume = request.resume;
  job.executor.stop_signal = &signals.flag();

  dataflow::RunOutcome outcome;
  std::vector<dataflow::InstanceStats> stats;
  std::exception_ptr error;
  const auto start = std::chrono::steady_clock::now();
  {
    py::gil_scoped_release no_gil;
    try {
      dataflow::Executor executor(job.graph, *transport, job.executor);
      outcome = executor.run();
      stats = executor.stats();
    } catch (...) {
      error = std::current_exception();
    }
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (transport->abandoned()) g_rank_lost = true;
  transport.reset();
  if (error) std::rethrow_exception(error);

  py::dict result;
  const bool stopped = outcome.status == dataflow::RunOutcome::Status::kStopped;
  result["status"] = stopped ? "stopped" : "finished";
  result["signal"] = outcome.signal;
  result["rank"] = rank;
  result["world_size"] = world;
  result["resumed_from"] = outcome.resumed_from;
  result["last_checkpoint"] = outcome.last_checkpoint;
  result["elapsed_s"] = elapsed;
  py::list instances;
  for (const auto& s : stats) instances.append(instance_dict(s));
  result["instances"] = instances;
  return result;
}

std::string validate_job(const std::string& job_file, const std::vector<std::string>& overrides,
                         int ranks, const std::string& base_dir) {
  job::LoadOptions load;
  load.overrides = overrides;
  load.base_dir = base_dir;
  job::Job job = job::load_job(job_file, load);
  job.graph.validate(ranks);
  return "job \"" + job.name + "\" (" + job_file + ") is valid for " + std::to_string(ranks) +
         (ranks == 1 ? " rank" : " ranks") + "\n" + job.graph.describe(ranks);
}

void finalize_mpi() {
  if (!g_owns_mpi || g_rank_lost) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  g_owns_mpi = false;
}

}  // namespace tensair::python
