// The tensair command line. It parses arguments and calls the library, nothing more.
//
//   tensair run JOB.toml [--set section.key=value ...] [--out DIR] [--progress|--no-progress]
//   tensair validate JOB.toml [--set ...] [--ranks N]
//   tensair operators
//   tensair detect --detector NAME [--param K=V ...] [--json] FILE   (drift_commands.hpp)
//   tensair drift-eval [--quick] [--json PATH]
//   tensair report OUT [--x time|step] [--open]                      (report_command.hpp)
//
// Exit codes: 0 success, 1 the job failed while running, 2 bad command line, job file or input
// (nothing was run). Errors are one line on stderr: "tensair: error: <what and where>". Under
// mpirun every rank runs the same command; only rank 0 prints configuration errors, and only
// the rank where a runtime error arose prints it.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "drift_commands.hpp"
#include "report_command.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/common/process.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/job/job.hpp"
#include "tensair/drift/operator.hpp"
#include "tensair/io/types.hpp"
#include "tensair/model/model.hpp"
#include "tensair/runtime/transport.hpp"

namespace {

constexpr const char* kVersion = "0.1.0";

// This process's rank as the launcher announced it (before MPI is initialised).
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
  }
  return 0;
}

int report(const tensair::Error& e, bool print) {
  if (print) std::fprintf(stderr, "tensair: error: %s\n", e.what());
  return static_cast<int>(e.exit_code());
}

struct Common {
  std::string job_file;
  std::vector<std::string> overrides;
};

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("job", c.job_file, "the job file (TOML)")->required();
  cmd->add_option("--set", c.overrides,
                  "override a job-file value: section.key=value (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
}

int run_command(const Common& c, const std::string& out_arg, const std::string& resume, int progress_flag) {
  const bool print_config_errors = launcher_rank() == 0;
  tensair::job::LoadOptions load;
  load.overrides = c.overrides;
  load.resume = resume;
  std::filesystem::path out_dir = out_arg;
  tensair::job::Job job;
  try {
    // A first load to learn the job's name for the default output folder.
    if (out_dir.empty()) {
      tensair::job::LoadOptions name_only = load;
      name_only.job_table_only = true;
      out_dir = std::filesystem::path("out") / tensair::job::load_job(c.job_file, name_only).name;
    }
    load.out_dir = out_dir;
    job = tensair::job::load_job(c.job_file, load);
  } catch (const tensair::Error& e) {
    return report(e, print_config_errors);
  }

  std::unique_ptr<tensair::runtime::Transport> transport;
  try {
    transport = tensair::runtime::make_mpi_transport();
  } catch (const tensair::Error& e) {
    return report(e, true);
  }
  const int rank = transport->rank();
  const int world = transport->world_size();
  tensair::set_log_rank(rank, world);

  job.executor.progress = progress_flag > 0 || (progress_flag == 0 && rank == 0 && isatty(2));
  const auto start = std::chrono::steady_clock::now();
  try {
    tensair::dataflow::Executor executor(job.graph, *transport, job.executor);
    executor.run();
  } catch (const tensair::ConfigError& e) {
    return report(e, rank == 0);  // every rank finds the same mistake in the job
  } catch (const tensair::Error& e) {
    return report(e, !e.from_other_rank());
  }
  if (rank == 0) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "tensair: job \"%s\" finished in %.2f s on %d rank%s; output in %s\n",
                 job.name.c_str(), s, world, world == 1 ? "" : "s", out_dir.string().c_str());
  }
  return 0;
}

int validate_command(const Common& c, int ranks) {
  try {
    tensair::job::LoadOptions load;
    load.overrides = c.overrides;
    tensair::job::Job job = tensair::job::load_job(c.job_file, load);
    job.graph.validate(ranks);
    std::cout << "job \"" << job.name << "\" (" << c.job_file << ") is valid for " << ranks
              << (ranks == 1 ? " rank" : " ranks") << "\n"
              << job.graph.describe(ranks);
    return 0;
  } catch (const tensair::Error& e) {
    return report(e, true);
  }
}

int operators_command() {
  std::cout << "operator types for job files (docs/job-files.md has their keys):\n";
  for (const auto& [name, description] : tensair::job::operator_types()) {
    std::printf("  %-22s %s\n", name.c_str(), description.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tensair::tune_allocator();
  tensair::model::register_job_types();
  tensair::io::register_job_types();
  tensair::drift::register_job_types();
  CLI::App app{"TensAIR: train and serve neural networks online, from data streams, over MPI.\n"
               "Run a job in one process with `tensair run JOB.toml`, on N ranks with\n"
               "`mpirun -np N tensair run JOB.toml`."};
  app.name("tensair");
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);

  Common run_args;
  std::string out_dir;
  bool progress = false, no_progress = false;
  CLI::App* run = app.add_subcommand("run", "run a job (under mpirun: on every rank)");
  add_common(run, run_args);
  run->add_option("--out", out_dir, "output folder for metrics and relative sink paths (default out/<job name>)");
  std::string resume;
  run->add_option("--resume", resume, "start the job's models from the checkpoints in this folder");
  run->add_flag("--progress", progress, "show the progress line even when stderr is not a terminal");
  run->add_flag("--no-progress", no_progress, "never show the progress line");

  Common validate_args;
  int ranks = std::max(1, tensair::runtime::launcher_world_size());
  CLI::App* validate = app.add_subcommand("validate", "check a job file and print its graph");
  add_common(validate, validate_args);
  validate->add_option("--ranks", ranks, "check placement for this many ranks (default 1)")->check(CLI::PositiveNumber);

  app.add_subcommand("operators", "list the operator types job files may use");

  int drift_exit = -1;  // set by detect / drift-eval, which run while parsing
  tensair::apps::add_drift_commands(app, drift_exit);
  int report_exit = -1;  // set by report, which runs while parsing
  tensair::apps::add_report_command(app, report_exit);

  const std::string first = argc > 1 ? argv[1] : "";
  if (!first.empty() && first[0] != '-' && first != "run" && first != "validate" && first != "operators" &&
      first != "detect" && first != "drift-eval" && first != "report") {
    if (launcher_rank() == 0) {
      std::fprintf(stderr, "tensair: error: unknown command \"%s\" (commands: run, validate, operators, detect, drift-eval, report; see tensair --help)\n",
                   argv[1]);
    }
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (launcher_rank() == 0) {
      std::fprintf(stderr, "tensair: error: %s (see tensair --help)\n", e.what());
    }
    return 2;
  }
  if (drift_exit >= 0) return drift_exit;
  if (report_exit >= 0) return report_exit;
  try {
    if (run->parsed()) return run_command(run_args, out_dir, resume, progress ? 1 : (no_progress ? -1 : 0));
    if (validate->parsed()) return validate_command(validate_args, ranks);
    return operators_command();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tensair: error: %s\n", e.what());
    return 1;
  }
}
