// Running and validating a job from Python: the C++ side of tensair.Job.run and Job.validate.
//
// MPI: the first run initialises MPI unless something else did (mpi4py, imported first); MPI is
// finalised at interpreter exit by finalize_mpi() only when this module initialised it, so a
// script can run several jobs, and mpi4py keeps ownership of an MPI it started.
//
// Signals: while a job runs, SIGINT, SIGTERM and SIGUSR1 ask for the clean stop of the CLI
// (docs/fault-tolerance.md); Python's own handlers are back when run_job returns, and the Python
// layer turns a stop by SIGINT into KeyboardInterrupt.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace tensair::python {

struct RunRequest {
  std::string job_file;
  std::vector<std::string> overrides;  // "section.key=value"
  std::string base_dir;  // where relative input paths resolve ("": the job file's directory)
  std::string out_dir;
  std::string resume;  // "", "latest" or a checkpoint folder
  bool progress = false;
};

// Runs the job with the GIL released; returns {"status": "finished"|"stopped", "signal",
// "rank", "world_size", "resumed_from", "last_checkpoint", "elapsed_s", "instances": [this
// rank's final counters per operator instance]}. Throws the job's tensair::Error.
pybind11::dict run_job(const RunRequest& request);

// What `tensair validate FILE --ranks N` prints.
std::string validate_job(const std::string& job_file, const std::vector<std::string>& overrides,
                         int ranks, const std::string& base_dir);

// Finalises MPI if run_job initialised it and no rank was lost (finalising would wait for it).
void finalize_mpi();

}  // namespace tensair::python
