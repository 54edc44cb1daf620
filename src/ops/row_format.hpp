// Rows as text: the value formatting of the CSV and JSON-lines sinks, shared with the Kafka
// sink. Numbers are written in their shortest exact form; a non-finite number is null in JSON and
// nan/inf/-inf in CSV; a record with a shape is [v1,v2,...].
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tensair/dataflow/batch.hpp"

namespace tensair::ops {

enum class Format { kCsv, kJson };

// Appends the value of record `row` of `c` (CSV: quoted where needed for `delim`).
void append_value(std::string& out, const dataflow::Column& c, int64_t row, Format f, char delim);
// Appends `s` as one CSV field (RFC 4180 quoting where needed).
void append_csv_text(std::string& out, std::string_view s, char delim);
// Appends record `row` of `cols` as one JSON object {"name": value, ...} (no newline).
void append_json_object(std::string& out, const std::vector<const dataflow::Column*>& cols,
                        int64_t row);

}  // namespace tensair::ops
