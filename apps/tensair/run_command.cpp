#include "run_command.hpp"

#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/common/stop_signals.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/job/job.hpp"
#include "tensair/runtime/transport.hpp"

namespace tensair::apps {

int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
  }
  return 0;
}

namespace {

int report(const Error& e, bool print) {
  if (print) std::fprintf(stderr, "tensair: error: %s\n", e.what());
  return static_cast<int>(e.exit_code());
}

// mpirun binds each rank to one core by default (for np <= 2). A TensAIR rank runs several
// threads (operators, transport, checkpoint writer, LibTorch), which then share that core; on
// the machine this was written on it also stalled fsync (and so checkpoints) for seconds.
void warn_if_bound_to_one_core(int rank) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (rank != 0 || sched_getaffinity(0, sizeof mask, &mask) != 0) return;
  if (CPU_COUNT(&mask) == 1 && std::thread::hardware_concurrency() > 1) {
    log().warn(
        "this rank is bound to one core by its launcher, so all its threads share it; start "
        "TensAIR with "
        "`mpirun --bind-to none` (or --map-by slot:PE=<cores per rank>)");
  }
}

// After a rank was lost, MPI cannot be finalised (it would wait for that rank): flush what this
// process wrote and leave without it.
[[noreturn]] void leave_without_mpi(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

}  // namespace

void add_job_arguments(CLI::App* cmd, RunArgs& args) {
  cmd->add_option("job", args.job_file, "the job file (TOML)")->required();
  cmd->add_option("--set", args.overrides,
                  "override a job-file value: section.key=value (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
}

void add_run_options(CLI::App* cmd, RunArgs& args) {
  cmd->add_option(
      "--out", args.out_dir,
      "output folder for metrics, checkpoints and relative sink paths (default out/<job name>)");
  cmd->add_option(
         "--resume", args.resume,
         "resume the whole job from a checkpoint: \"latest\" (the newest usable one), a checkpoint "
         "folder, or a folder of checkpoints")
      ->type_name("latest|DIR");
  cmd->add_flag("--progress", args.progress,
                "show the progress line even when stderr is not a terminal");
  cmd->add_flag("--no-progress", args.no_progress, "never show the progress line");
}

int run_command(const RunArgs& args) {
  // First of all, so that a signal during start-up asks for a stop instead of killing.
  const std::atomic<int>& stop = install_stop_signals();
  const bool print_config_errors = launcher_rank() == 0;
  job::LoadOptions load;
  load.overrides = args.overrides;
  std::filesystem::path out_dir = args.out_dir;
  job::Job job;
  try {
    // A first load of the [job] table only, to name the default output folder.
    if (out_dir.empty()) {
      job::LoadOptions name_only = load;
      name_only.job_table_only = true;
      out_dir = std::filesystem::path("out") / job::load_job(args.job_file, name_only).name;
    }
    load.out_dir = out_dir;
    job = job::load_job(args.job_file, load);
  } catch (const Error& e) {
    return report(e, print_config_errors);
  }

  std::unique_ptr<runtime::Transport> transport;
  try {
    transport = runtime::make_mpi_transport();
  } catch (const Error& e) {
    return report(e, true);
  }
  const int rank = transport->rank();
  const int world = transport->world_size();
  set_log_rank(rank, world);
  warn_if_bound_to_one_core(rank);

  job.executor.progress = args.progress || (!args.no_progress && rank == 0 && isatty(2));
  job.executor.resume = args.resume;
  job.executor.stop_signal = &stop;
  const auto start = std::chrono::steady_clock::now();
  dataflow::RunOutcome outcome;
  int code = 0;
  try {
    dataflow::Executor executor(job.graph, *transport, job.executor);
    outcome = executor.run();
  } catch (const ConfigError& e) {
    code = report(e, rank == 0);  // every rank finds the same mistake in the job
  } catch (const Error& e) {
    code = report(e, !e.from_other_rank());
  }
  if (transport->abandoned()) leave_without_mpi(code != 0 ? code : 1);
  if (code != 0) return code;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string ranks = std::to_string(world) + (world == 1 ? " rank" : " ranks");
  if (outcome.status == dataflow::RunOutcome::Status::kStopped) {
    if (rank == 0) {
      std::string checkpoint;
      if (outcome.last_checkpoint) {
        checkpoint = "; last checkpoint " +
                     dataflow::checkpoint_folder_name(outcome.last_checkpoint) +
                     " (continue with --resume latest)";
      }
      std::fprintf(stderr, "tensair: job \"%s\" stopped by %s after %.2f s on %s%s; output in %s\n",
                   job.name.c_str(), signal_name(outcome.signal), s, ranks.c_str(),
                   checkpoint.c_str(), out_dir.string().c_str());
    }
    return 128 + outcome.signal;
  }
  if (rank == 0) {
    std::fprintf(stderr, "tensair: job \"%s\" finished in %.2f s on %s; output in %s\n",
                 job.name.c_str(), s, ranks.c_str(), out_dir.string().c_str());
  }
  return 0;
}

int validate_command(const RunArgs& args, int ranks) {
  try {
    job::LoadOptions load;
    load.overrides = args.overrides;
    job::Job job = job::load_job(args.job_file, load);
    job.graph.validate(ranks);
    std::cout << "job \"" << job.name << "\" (" << args.job_file << ") is valid for " << ranks
              << (ranks == 1 ? " rank" : " ranks") << "\n"
              << job.graph.describe(ranks);
    return 0;
  } catch (const Error& e) {
    return report(e, true);
  }
}

}  // namespace tensair::apps
