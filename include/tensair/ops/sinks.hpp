// Sinks: operators with one input port "in" and no outputs that write rows out.
//
// File sinks write to `path`, in which "{rank}" and "{instance}" are replaced; a sink with
// several instances must use one of them (each instance writes its own file). Rows are
// written as they arrive and flushed at the end of the stream; with `sort_by`, rows are held
// until the end and written sorted by that column (ascending, stable), which suits finite
// streams only. Numbers are written in their shortest exact form; arrays (columns with a record
// shape) as [v1,v2,...].
//
// Checkpoints: a file sink's checkpoint writes out what it has (the engine fsyncs the file
// before the checkpoint completes, Context::sync_at_checkpoint) and saves the file's length (and,
// with sort_by, the rows it holds). Restored, it opens the existing file without truncating it,
// cuts it back to that length and appends from there, so its file equals that of an uninterrupted
// run: output is exactly-once across a restore. A file that is missing or shorter than the saved
// length is an IoError naming the path and both lengths. A fresh (not restored) sink truncates its
// file when it opens. stdout_sink saves the rows it wrote (for `limit`); what reached standard
// output cannot be taken back, so its rows after a checkpoint appear again after a restore
// (at-least-once).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::ops {

struct FileSinkOptions {
  std::filesystem::path path;
  std::vector<std::string> columns;  // written columns, in order; empty: all
  std::string sort_by;               // empty: arrival order
  bool header = true;                // CSV only
  char delimiter = ',';              // CSV only
};

// CSV with a header line of column names (RFC 4180 quoting where needed).
std::shared_ptr<const dataflow::OperatorDef> csv_sink(FileSinkOptions options);
// One JSON object per line.
std::shared_ptr<const dataflow::OperatorDef> jsonl_sink(FileSinkOptions options);

// Rows to standard output, as "csv" (with a header) or "json" lines; at most `limit` rows per
// instance (0: all).
struct StdoutSinkOptions {
  std::string format = "csv";
  std::vector<std::string> columns;
  int64_t limit = 0;
};
std::shared_ptr<const dataflow::OperatorDef> stdout_sink(StdoutSinkOptions options);

}  // namespace tensair::ops
