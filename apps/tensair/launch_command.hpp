// The launch command of the tensair CLI: a job that restarts itself after a failure.
//
//   tensair launch [-n|--np N] [--restarts K] [--launcher "CMD"] JOB.toml [run options]
//
// Starts `mpirun -np N <tensair> run JOB.toml [run options]` (or `CMD <tensair> run ...` with
// --launcher, where "{np}" in CMD becomes N, e.g. --launcher "srun -n {np}") and waits for it.
// When the job fails (any exit but 0, 2 and a clean stop), it is started again with
// `--resume latest` when a complete checkpoint exists (from the beginning otherwise), up to K
// times; each restart is logged on stderr with the exit code and the checkpoint it resumes
// from, like torchrun's --max-restarts. Exit code: the job's last one.
//
// Signals: the job runs in its own process group, so a Ctrl-C reaches only this command, which
// asks the job for a clean stop by sending SIGUSR1 to mpirun (mpirun forwards it to every rank,
// where it means what SIGINT means to `tensair run`); a stopped job is not restarted, and this
// command exits 128 + the signal it got. A second signal terminates the job at once.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "run_command.hpp"

namespace tensair::apps {

struct LaunchArgs {
  RunArgs run;
  int np = 1;
  int restarts = 0;
  std::string launcher;
};

void add_launch_options(CLI::App* cmd, LaunchArgs& args);

// Runs the job until it finishes, stops, fails for good or fails with no restart left.
int launch_command(const LaunchArgs& args);

}  // namespace tensair::apps
