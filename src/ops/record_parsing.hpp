// Parsing of record fields shared by the file sources and the Kafka source: CSV lines (RFC 4180
// quoting), numbers as text into a column's dtype, and fixed-size little-endian values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tensair/dataflow/batch.hpp"

namespace tensair::ops {

// Splits one CSV line into fields (RFC 4180 quoting). Returns false for an unterminated quote.
bool split_csv(const std::string& line, char delim, std::vector<std::string>& fields);
// `s` without leading and trailing blanks and tabs.
std::string_view trim(std::string_view s);
// Parses `text` into the column's dtype (scalar) and appends it; false when it does not parse
// or does not fit the dtype.
bool append_parsed(dataflow::ColumnBuilder& col, std::string_view text);
// Appends one record of `elements` little-endian values of the column's dtype read from `p`.
void append_raw_values(dataflow::ColumnBuilder& col, const char* p, size_t elements);
// Elements in one record of `f` (the product of its record shape; 1 for a scalar).
size_t field_elements(const dataflow::ColumnSpec& f);

}  // namespace tensair::ops
