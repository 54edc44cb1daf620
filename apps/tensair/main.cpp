// The tensair command line. It parses arguments and calls the library, nothing more.
//
//   tensair run JOB.toml [--set section.key=value ...] [--out DIR] [--resume latest|DIR]
//                        [--progress|--no-progress]                           (run_command.hpp)
//   tensair launch [-n N] [--restarts K] [--launcher CMD] JOB.toml [run options] (launch_command.hpp)
//   tensair validate JOB.toml [--set ...] [--ranks N]
//   tensair operators
//   tensair detect --detector NAME [--param K=V ...] [--json] FILE   (drift_commands.hpp)
//   tensair drift-eval [--quick] [--json PATH]
//   tensair report OUT [--x time|step] [--open]                      (report_command.hpp)
//   tensair kafka-mock [--port P] [--topic NAME:PARTITIONS ...]    (kafka_mock_command.hpp)
//
// Exit codes: 0 success, 1 the job failed while running, 2 bad command line, job file or input
// (nothing was run), 128 + N after a clean stop on signal N. Errors are one line on stderr:
// "tensair: error: <what and where>". Under mpirun every rank runs the same command; only rank
// 0 prints configuration errors, and only the rank where a runtime error arose prints it.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "drift_commands.hpp"
#include "kafka_mock_command.hpp"
#include "launch_command.hpp"
#include "report_command.hpp"
#include "run_command.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/log.hpp"
#include "tensair/common/process.hpp"
#include "tensair/dataflow/executor.hpp"
#include "tensair/job/job.hpp"
#include "tensair/drift/operator.hpp"
#include "tensair/io/types.hpp"
#include "tensair/kafka/kafka.hpp"
#include "tensair/model/model.hpp"
#include "tensair/runtime/transport.hpp"

namespace {

constexpr const char* kVersion = "0.1.0";

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
  tensair::kafka::register_job_types();
  CLI::App app{"TensAIR: train and serve neural networks online, from data streams, over MPI.\n"
               "Run a job in one process with `tensair run JOB.toml`, on N ranks with\n"
               "`mpirun -np N tensair run JOB.toml`."};
  app.name("tensair");
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);

  tensair::apps::RunArgs run_args;
  CLI::App* run = app.add_subcommand("run", "run a job (under mpirun: on every rank)");
  tensair::apps::add_job_arguments(run, run_args);
  tensair::apps::add_run_options(run, run_args);

  tensair::apps::LaunchArgs launch_args;
  CLI::App* launch =
      app.add_subcommand("launch", "run a job under mpirun (or --launcher) and restart it from its latest checkpoint "
                                   "when it fails");
  tensair::apps::add_launch_options(launch, launch_args);

  tensair::apps::RunArgs validate_args;
  int ranks = std::max(1, tensair::runtime::launcher_world_size());
  CLI::App* validate = app.add_subcommand("validate", "check a job file and print its graph");
  tensair::apps::add_job_arguments(validate, validate_args);
  validate->add_option("--ranks", ranks, "check placement for this many ranks (default 1)")
      ->check(CLI::Range(1, 1 << 20));

  app.add_subcommand("operators", "list the operator types job files may use");

  int drift_exit = -1;  // set by detect / drift-eval, which run while parsing
  tensair::apps::add_drift_commands(app, drift_exit);
  int report_exit = -1;  // set by report, which runs while parsing
  tensair::apps::add_report_command(app, report_exit);
  int kafka_mock_exit = -1;  // set by kafka-mock, which runs while parsing
  tensair::apps::add_kafka_mock_command(app, kafka_mock_exit);

  const std::string first = argc > 1 ? argv[1] : "";
  if (!first.empty() && first[0] != '-' && first != "run" && first != "launch" && first != "validate" &&
      first != "operators" && first != "detect" && first != "drift-eval" && first != "report" &&
      first != "kafka-mock") {
    if (tensair::apps::launcher_rank() == 0) {
      std::fprintf(stderr,
                   "tensair: error: unknown command \"%s\" (commands: run, launch, validate, operators, detect, "
                   "drift-eval, report, kafka-mock; see tensair --help)\n",
                   argv[1]);
    }
    return 2;
  }
  // `tensair launch -np N`, as mpirun spells it: CLI11 would read -np as -n p.
  std::vector<std::string> args(argv + 1, argv + argc);
  if (first == "launch") {
    for (auto& a : args) {
      if (a == "-np") a = "--np";
    }
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (tensair::apps::launcher_rank() == 0) {
      std::fprintf(stderr, "tensair: error: %s (see tensair --help)\n", e.what());
    }
    return 2;
  }
  if (drift_exit >= 0) return drift_exit;
  if (report_exit >= 0) return report_exit;
  if (kafka_mock_exit >= 0) return kafka_mock_exit;
  try {
    if (run->parsed()) return tensair::apps::run_command(run_args);
    if (launch->parsed()) return tensair::apps::launch_command(launch_args);
    if (validate->parsed()) return tensair::apps::validate_command(validate_args, ranks);
    return operators_command();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tensair: error: %s\n", e.what());
    return 1;
  }
}
