// The drift commands of the tensair CLI:
//
//   tensair detect --detector optwin|adwin|page-hinkley [--param KEY=VALUE ...] [--json] FILE
//   tensair drift-eval [--quick] [--json PATH] [--data DIR] [--seed N]
//
// `detect` reads one number per line from FILE (plain, gzip or xz; "-" = stdin; blank lines are
// skipped) and prints the 0-based index of each detection, one per line, as it happens; with
// --json it prints one JSON summary instead (detections, parameters, values, updates/s, final
// state). `drift-eval` runs every detector and a periodic yardstick over the synthetic and real
// labelled streams and prints a table per detector (docs/drift.md explains the scoring).
// Errors are one line on stderr ("tensair: error: FILE:LINE: not a number: abc"), exit code 2
// for bad arguments, parameters or input, 1 for failures while running.
#pragma once

#include <CLI/CLI.hpp>

namespace tensair::apps {

// Adds the `detect` and `drift-eval` subcommands to `app`. When one of them is parsed, its
// callback runs the command (during app.parse()) and stores its exit code in `exit_code`, which
// is left untouched otherwise; `exit_code` must outlive parsing.
void add_drift_commands(CLI::App& app, int& exit_code);

}  // namespace tensair::apps
