// Job files: a dataflow described in TOML. See docs/job-files.md for every key.
//
//   [job]                     settings of the whole job (name, credit, metrics interval,
//                             heartbeat timeout)
//   [checkpoint]              job-wide checkpoints (every_s, every_records, dir, keep)
//   [<operator name>]         one table per operator, with `type` and its parameters, and
//     from = "op[.port]"      the upstream of its input port "in" (or [op.inputs.<port>]
//     routing = "key_hash"    tables for operators with several inputs), the edge's routing,
//     key = "word"            key column (key_hash) or rank (to_rank), and
//     placement = 0           where its instances run: "all" (default), a rank, or a list.
//
// Every rank loads the same file the same way. Errors are ConfigError with one line naming the
// file, line and key: "examples/wordcount.toml:14: [count] unknown key \"windw\"".
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tensair/dataflow/executor.hpp"
#include "tensair/dataflow/graph.hpp"

namespace tensair::job {

struct LoadOptions {
  // "section.key=value" overrides (the CLI's --set); the value is read as a TOML value (number,
  // boolean, "string", [array]) and otherwise as a plain string.
  std::vector<std::string> overrides;
  // Where relative output paths (sinks, exports) go. Relative input paths resolve against the
  // job file's directory, or the working directory for values given as overrides.
  std::filesystem::path out_dir = "out";
  // Where relative input paths resolve; empty: the job file's directory. The Python layer
  // writes a job it built (from a file) into the output folder and points here at the
  // directory the paths were written for.
  std::filesystem::path base_dir;
  // Read only the file and its [job] table (name, settings) and build no operator: what the
  // CLI needs to name the default output folder without building the job twice.
  bool job_table_only = false;
};

struct Job {
  std::string name;
  std::filesystem::path file;
  dataflow::Graph graph;
  dataflow::ExecutorOptions executor;  // out_dir, credit, metrics interval, job name
};

// Parses and builds the job. Throws ConfigError (exit code 2) for any mistake in the file or
// the overrides, IoError for an unreadable job file or a missing input file.
Job load_job(const std::filesystem::path& file, const LoadOptions& options);

// The operator types a job file may use, each with a one-line description.
std::vector<std::pair<std::string, std::string>> operator_types();

}  // namespace tensair::job
