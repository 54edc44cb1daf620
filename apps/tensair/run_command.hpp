// The run and validate commands of the tensair CLI:
//
//   tensair run JOB.toml [--set section.key=value ...] [--out DIR] [--resume latest|DIR]
//                        [--progress|--no-progress]
//   tensair validate JOB.toml [--set ...] [--ranks N]
//
// run: one process is a one-rank job; under mpirun/srun every rank runs the same command.
// Exit codes: 0 the job finished; 1 it failed while running (an operator's error, a rank lost);
// 2 a bad command line, job file, input or checkpoint (nothing was run); 128 + N after a clean
// stop on signal N (130 SIGINT, 143 SIGTERM, 138 SIGUSR1). Errors are one line on stderr,
// printed by the rank they arose on ("tensair: error: ..."); a configuration mistake, found by
// every rank alike, is printed by rank 0. After a rank was lost the process ends without
// finalising MPI (that would wait for the lost rank).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace tensair::apps {

struct RunArgs {
  std::string job_file;
  std::vector<std::string> overrides;
  std::string out_dir;
  std::string resume;
  bool progress = false;
  bool no_progress = false;
};

// Adds the job file and --set to `cmd` (shared by run, validate and launch).
void add_job_arguments(CLI::App* cmd, RunArgs& args);
// Adds --out, --resume, --progress and --no-progress to `cmd` (run and launch).
void add_run_options(CLI::App* cmd, RunArgs& args);

// Runs the job; returns the process exit code.
int run_command(const RunArgs& args);
int validate_command(const RunArgs& args, int ranks);

// This process's rank as the launcher announced it (before MPI is initialised).
int launcher_rank();

}  // namespace tensair::apps
