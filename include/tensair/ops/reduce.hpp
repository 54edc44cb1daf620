// Keyed, windowed aggregation (Reduce) and keyed, windowed equi-join (Join).
//
// Both are stateful per key. With several instances, the edge into them must route by the same
// key (Routing::key_hash on the grouping column) so that equal keys meet in one instance; each
// instance then emits its own keys, sorted by key within each window it closes.
//
// Checkpoints: both save everything they hold (reduce: every open window's groups with their
// accumulators; join: each side's rows per window) with the input schemas and the event-time
// watermark, so a restored instance fed the same batches emits exactly what the original would
// have. Processing-time tumbling windows cannot be exact across a restart, as they follow the
// clock: a restored reduce keeps its groups (the open window's records stay in that window)
// and restarts the clock, giving the open window its full `size` again from the restart.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::ops {

// How records are cut into windows.
struct WindowSpec {
  enum class Kind {
    kGlobal,    // one window: the whole stream; emitted when the input ends
    kCount,     // every `count` records of a key form one window (a partial last window is
                // emitted when the input ends)
    kTumbling,  // fixed, non-overlapping time windows of `size` seconds
  };
  Kind kind = Kind::kGlobal;
  int64_t count = 0;
  double size = 0;
  // Tumbling windows on event time: the numeric column holding each record's time in
  // seconds. Empty: processing time (the clock of the instance, from its start).
  std::string time_column;
  // Event time: a window [s, s+size) closes when the largest time seen reaches s+size+lateness.
  // A record of an already closed window is late: a dead letter, never silently dropped.
  double lateness = 0;

  std::string to_string() const;
};

// Parses "global", "count:N", "tumbling:SECONDS" (processing time) or
// "tumbling:SECONDS:COLUMN[:LATENESS]" (event time). Throws ConfigError.
WindowSpec parse_window(const std::string& text);

// One output column of a reduce: `function` over `column` into `output`.
//   count            rows in the group (no column); int64
//   sum, min, max    int64 for integer columns, float64 otherwise
//   mean             float64
//   first, last      the column's own type (first/last record of the group in arrival order)
struct Aggregation {
  std::string output;
  std::string function;
  std::string column;  // empty for count
};

// Parses "count", "sum(x)", "mean(price)" … into an aggregation named `output`.
Aggregation parse_aggregation(const std::string& output, const std::string& expression);

struct ReduceOptions {
  std::vector<std::string> group_by;  // scalar key columns (any dtype); empty: one group
  std::vector<Aggregation> aggregations;
  WindowSpec window;
};

// Input "in"; output "out" with the columns: group_by…, then for count windows `window` (int64:
// the key's window number, from 0) or for tumbling windows `window_start` and `window_end`
// (float64 seconds), then the aggregations in the given order (in job files, an `aggregate`
// table's entries come in alphabetical order of their names: TOML tables are unordered). Groups are emitted when their
// window closes (count: on its last record; tumbling: when time passes its end; global and
// every window still open: when the input ends), each window's groups sorted by key.
std::shared_ptr<const dataflow::OperatorDef> reduce(ReduceOptions options);

struct JoinOptions {
  std::vector<std::string> keys;  // key columns, present with the same names in both inputs
  WindowSpec window;              // global or tumbling (event-time columns in both inputs)
  // Output column names for non-key columns present on both sides.
  std::string left_prefix = "left_";
  std::string right_prefix = "right_";
};

// Inputs "left" and "right"; output "out": an inner equi-join emitted as matches are found
// (symmetric hash join), with the key columns, then the left's other columns, then the right's.
// A non-key column name present in both inputs gets the prefixes. Within a tumbling window
// only records of the same window join; a window's state is dropped when it closes.
std::shared_ptr<const dataflow::OperatorDef> join(JoinOptions options);

}  // namespace tensair::ops
