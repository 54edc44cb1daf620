// The report command of the tensair CLI:
//
//   tensair report OUT [--x time|step] [--open]
//
// Turns a run's output folder into something a person can look at: it runs
// `/usr/bin/python3 <script> OUT [--x ...]`, where <script> is scripts/report.py of the source
// tree (fixed at build time by the CMake cache variable TENSAIR_REPORT_SCRIPT; the environment
// variable of the same name overrides it, TENSAIR_PYTHON overrides the interpreter). The script
// reads OUT/metrics.jsonl and writes OUT/report.md and PNG plots in OUT/report/ (docs/report.md).
// On success the command prints where report.md is; --open then hands it to xdg-open when there
// is one. Errors are one line on stderr ("tensair: error: ..."): exit code 2 when OUT or
// OUT/metrics.jsonl does not exist or the arguments are wrong, 1 when the script fails (a line
// that is not JSON, python3 or matplotlib missing, a plot that cannot be written). Under mpirun
// only rank 0 writes the report; the other ranks exit 0 at once.
#pragma once

#include <CLI/CLI.hpp>

namespace tensair::apps {

// Adds the `report` subcommand to `app`. When it is parsed, its callback runs the command
// (during app.parse()) and stores its exit code in `exit_code`, which is left untouched
// otherwise; `exit_code` must outlive parsing.
void add_report_command(CLI::App& app, int& exit_code);

}  // namespace tensair::apps
