// tabular_source: rows of numbers from a delimited text file (plain, gzip or xz), with the class
// labels in a separate, row-aligned label file (the drift benchmark layout) or in a column of the
// data. One record per row, in file order.
//
// Output port "out":
//   id: int64        the row's index (0-based over the data rows, all passes and instances)
//   x: float32[d]    the kept feature fields, in the order of `features`
//   y: int64         the class label
// d is found when the source is defined, from the first data row, so `tensair validate` shows it.
//
// Separator: "auto" (default) looks at the first data row: a comma makes it comma-separated,
// otherwise fields are separated by runs of spaces and tabs. Also "comma" (or ","), "whitespace"
// (or "space"), "tab", or any single character. Fields are trimmed of spaces and tabs.
//
// standardize: each feature is replaced by (v - mean) / std, mean and std being the running
// statistics (Welford) of that feature over the rows this instance has emitted so far,
// including the current one (0 while std is still 0, e.g. for the first row). Only features are
// standardised, never the label.
//
// Errors and dead letters:
// - a data row that does not have the first row's number of fields, or a field (or label) that
//   is not a number, is a dead letter "FILE:LINE: ..." (counted, written to
//   OUT/dead_letters.jsonl); its label line is consumed so the files stay aligned. A label must
//   be an integer (1.0 is read as 1). A feature that reads as nan or inf is a dead letter too,
//   and, when `classes` is given, a label outside 0..classes-1 ("d.csv:4: label 7 is outside
//   0..1 (classes = 2)"): the reader names the file and line, where a model names only the id.
// - a label file with fewer rows than the data file ends the job with a DataError naming both
//   files and the first row without a label; a label file with more rows than the data file
//   (seen at the end of a complete pass) is a DataError too. Blank lines at the very end of
//   either file are ignored. Other blank data lines: without a label file they are not rows;
//   with one they are rows (dead letters, "0 fields"), so that data and labels stay aligned.
// - a missing file is an IoError (exit code 2) at definition; a truncated gzip/xz stream is an
//   IoError naming the file.
//
// Checkpoints: the positions in both files and their line numbers, and the running statistics
// of `standardize`, so a restored source emits the same rows with the same standardised values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensair/dataflow/operator.hpp"
#include "tensair/ops/sources.hpp"

namespace tensair::io {

struct TabularOptions {
  std::filesystem::path data;
  std::filesystem::path labels;          // empty: the label is field `label_column` of the data
  std::optional<int64_t> label_column;   // 0-based field index; negative counts from the end (-1: last)
  std::string separator = "auto";
  std::vector<int64_t> features;         // 0-based field indices to keep; empty: every field but the label
  bool standardize = false;
  bool header = false;                   // the data file starts with a header line (skipped)
  int64_t classes = 0;                   // > 0: labels outside 0..classes-1 are dead letters
  ops::SourceOptions source;
};

// Throws ConfigError for inconsistent options (no labels, a feature or label column out of
// range of the first row, an unknown separator, classes < 0), IoError for a missing or empty
// data file.
std::shared_ptr<const dataflow::OperatorDef> tabular_source(TabularOptions options);

}  // namespace tensair::io
