#include "ops/row_format.hpp"

#include <charconv>
#include <cmath>

#include <nlohmann/json.hpp>

namespace tensair::ops {

using dataflow::Column;
using dataflow::DType;

namespace {

void append_number(std::string& out, const Column& c, size_t i, Format f) {
  char buf[64];
  std::to_chars_result r{};
  switch (c.dtype()) {
    case DType::kFloat32: {
      float v = c.values<float>()[i];
      if (!std::isfinite(v)) {
        out += f == Format::kJson ? "null" : (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
        return;
      }
      r = std::to_chars(buf, buf + sizeof buf, v);
      break;
    }
    case DType::kFloat64: {
      double v = c.values<double>()[i];
      if (!std::isfinite(v)) {
        out += f == Format::kJson ? "null" : (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
        return;
      }
      r = std::to_chars(buf, buf + sizeof buf, v);
      break;
    }
    case DType::kInt32: r = std::to_chars(buf, buf + sizeof buf, c.values<int32_t>()[i]); break;
    case DType::kInt64: r = std::to_chars(buf, buf + sizeof buf, c.values<int64_t>()[i]); break;
    case DType::kUInt8: r = std::to_chars(buf, buf + sizeof buf, static_cast<int>(c.values<uint8_t>()[i])); break;
    case DType::kString: return;
  }
  out.append(buf, r.ptr);
}

}  // namespace

void append_csv_text(std::string& out, std::string_view s, char delim) {
  bool quote = s.find_first_of(std::string{delim, '"', '\n', '\r'}) != std::string_view::npos;
  if (!quote) {
    out += s;
    return;
  }
  out += '"';
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  out += '"';
}

// Appends the value of record `row` of `c`.
void append_value(std::string& out, const Column& c, int64_t row, Format f, char delim) {
  if (c.dtype() == DType::kString) {
    if (f == Format::kCsv) {
      append_csv_text(out, c.str(row), delim);
    } else {
      out += nlohmann::json(std::string(c.str(row))).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    return;
  }
  const int64_t n = c.record_elements();
  const size_t base = static_cast<size_t>(row * n);
  if (c.record_shape().empty()) {
    append_number(out, c, base, f);
    return;
  }
  std::string arr = "[";
  for (int64_t e = 0; e < n; ++e) {
    if (e) arr += ',';
    append_number(arr, c, base + static_cast<size_t>(e), f);
  }
  arr += ']';
  if (f == Format::kCsv) {
    append_csv_text(out, arr, delim);
  } else {
    out += arr;
  }
}

void append_json_object(std::string& out, const std::vector<const Column*>& cols, int64_t row) {
  out += '{';
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i) out += ',';
    out += nlohmann::json(cols[i]->name()).dump();
    out += ':';
    append_value(out, *cols[i], row, Format::kJson, ',');
  }
  out += '}';
}

}  // namespace tensair::ops
