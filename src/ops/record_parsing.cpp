#include "ops/record_parsing.hpp"

#include <charconv>
#include <climits>
#include <cstdint>

namespace tensair::ops {

using dataflow::ColumnBuilder;
using dataflow::ColumnSpec;
using dataflow::DType;

// Splits one CSV line into fields (RFC 4180 quoting). Returns false for an unterminated quote.
bool split_csv(const std::string& line, char delim, std::vector<std::string>& fields) {
  fields.clear();
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else if (c == delim) {
      fields.push_back(std::move(field));
      field.clear();
    } else {
      field += c;
    }
  }
  if (quoted) return false;
  fields.push_back(std::move(field));
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses `text` into the column's dtype and appends it; false when it does not parse.
bool append_parsed(ColumnBuilder& col, std::string_view text) {
  const DType t = col.spec().dtype;
  if (t == DType::kString) {
    col.append_string(text);
    return true;
  }
  text = trim(text);
  if (text.empty()) return false;
  const char* b = text.data();
  const char* e = text.data() + text.size();
  if (t == DType::kFloat32 || t == DType::kFloat64) {
    double v = 0;
    auto r = std::from_chars(b, e, v);
    if (r.ec != std::errc() || r.ptr != e) {
      // from_chars rejects a leading '+'; accept it as people write it.
      if (*b != '+') return false;
      r = std::from_chars(b + 1, e, v);
      if (r.ec != std::errc() || r.ptr != e) return false;
    }
    col.append_number(v);
    return true;
  }
  int64_t v = 0;
  auto r = std::from_chars(b, e, v);
  if (r.ec != std::errc() || r.ptr != e) return false;
  switch (t) {
    case DType::kInt64: col.append<int64_t>(v); return true;
    case DType::kInt32:
      if (v < INT32_MIN || v > INT32_MAX) return false;
      col.append<int32_t>(static_cast<int32_t>(v));
      return true;
    case DType::kUInt8:
      if (v < 0 || v > 255) return false;
      col.append<uint8_t>(static_cast<uint8_t>(v));
      return true;
    default: return false;
  }
}

void append_raw_values(ColumnBuilder& col, const char* p, size_t elements) {
  switch (col.spec().dtype) {
    case DType::kFloat32: col.append_values(reinterpret_cast<const float*>(p), elements); break;
    case DType::kFloat64: col.append_values(reinterpret_cast<const double*>(p), elements); break;
    case DType::kInt32: col.append_values(reinterpret_cast<const int32_t*>(p), elements); break;
    case DType::kInt64: col.append_values(reinterpret_cast<const int64_t*>(p), elements); break;
    case DType::kUInt8: col.append_values(reinterpret_cast<const uint8_t*>(p), elements); break;
    case DType::kString: break;
  }
}

size_t field_elements(const ColumnSpec& f) {
  size_t n = 1;
  for (int64_t d : f.record_shape) n *= static_cast<size_t>(d);
  return n;
}

}  // namespace tensair::ops
