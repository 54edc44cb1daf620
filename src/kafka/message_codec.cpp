#include "kafka/message_codec.hpp"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "ops/record_parsing.hpp"
#include "ops/row_format.hpp"
#include "tensair/common/error.hpp"
#include "tensair/dataflow/batch_codec.hpp"

namespace tensair::kafka {

using dataflow::Batch;
using dataflow::BatchBuilder;
using dataflow::ColumnBuilder;
using dataflow::ColumnSpec;
using dataflow::DType;
using nlohmann::json;

std::optional<Format> parse_format(const std::string& name) {
  if (name == "json") return Format::kJson;
  if (name == "csv") return Format::kCsv;
  if (name == "raw") return Format::kRaw;
  if (name == "tensair") return Format::kTensair;
  return std::nullopt;
}

const char* format_name(Format f) {
  switch (f) {
    case Format::kJson: return "json";
    case Format::kCsv: return "csv";
    case Format::kRaw: return "raw";
    case Format::kTensair: return "tensair";
  }
  return "?";
}

MessageDecoder::MessageDecoder(Format format, dataflow::Schema fields, char delimiter)
    : format_(format), fields_(std::move(fields)), delimiter_(delimiter) {
  if (fields_.empty()) throw ConfigError("list the fields of a message, e.g. [\"x:float32[4]\", \"y:int64\"]");
  for (const ColumnSpec& f : fields_) {
    if (format_ == Format::kRaw && f.dtype == DType::kString)
      throw ConfigError("field \"" + f.name + "\": a raw message cannot hold strings");
    if (format_ == Format::kCsv && !f.record_shape.empty())
      throw ConfigError("field \"" + f.name + "\": a csv message holds scalars only");
    raw_bytes_ += ops::field_elements(f) * dataflow::dtype_size(f.dtype);
  }
  scratch_ = std::make_unique<BatchBuilder>(fields_);
}

int64_t MessageDecoder::decode(std::string_view payload, BatchBuilder& out, std::string& why) {
  if (format_ == Format::kTensair) return decode_tensair(payload, out, why);
  bool ok = false;
  switch (format_) {
    case Format::kJson: ok = decode_json(payload, why); break;
    case Format::kCsv: ok = decode_csv(payload, why); break;
    case Format::kRaw: ok = decode_raw(payload, why); break;
    case Format::kTensair: break;
  }
  if (!ok) {
    scratch_ = std::make_unique<BatchBuilder>(fields_);  // drops a partial record
    return -1;
  }
  const Batch row = scratch_->finish();
  for (size_t k = 0; k < fields_.size(); ++k) out.column(k).append_from(row.columns()[k], 0);
  return 1;
}

namespace {

// Appends a JSON number to a numeric column of dtype `t`, checking that it fits.
bool append_json_number(ColumnBuilder& col, const json& v) {
  const DType t = col.spec().dtype;
  if (t == DType::kFloat32 || t == DType::kFloat64) {
    const double d = v.get<double>();
    switch (t) {
      case DType::kFloat32: {
        const float f = static_cast<float>(d);
        if (std::isinf(f) && !std::isinf(d)) return false;
        col.append<float>(f);
        return true;
      }
      default: col.append<double>(d); return true;
    }
  }
  if (!v.is_number_integer()) return false;
  int64_t i = 0;
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    i = static_cast<int64_t>(v.get<uint64_t>());
  } else {
    i = v.get<int64_t>();
  }
  switch (t) {
    case DType::kInt64: col.append<int64_t>(i); return true;
    case DType::kInt32:
      if (i < INT32_MIN || i > INT32_MAX) return false;
      col.append<int32_t>(static_cast<int32_t>(i));
      return true;
    case DType::kUInt8:
      if (i < 0 || i > 255) return false;
      col.append<uint8_t>(static_cast<uint8_t>(i));
      return true;
    default: return false;
  }
}

// Flattens a (possibly nested) JSON array of numbers.
bool flatten(const json& v, std::vector<const json*>& out, int depth) {
  if (depth > 32) return false;
  if (v.is_array()) {
    for (const json& e : v) {
      if (!flatten(e, out, depth + 1)) return false;
    }
    return true;
  }
  if (!v.is_number()) return false;
  out.push_back(&v);
  return true;
}

}  // namespace

bool MessageDecoder::decode_json(std::string_view payload, std::string& why) {
  const json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    why = "not JSON";
    return false;
  }
  if (!j.is_object()) {
    why = "not a JSON object";
    return false;
  }
  std::vector<const json*> values;
  for (size_t k = 0; k < fields_.size(); ++k) {
    const ColumnSpec& f = fields_[k];
    ColumnBuilder& col = scratch_->column(k);
    auto it = j.find(f.name);
    if (it == j.end()) {
      why = "no field \"" + f.name + "\"";
      return false;
    }
    const std::string bad = "field \"" + f.name + "\": not a " + f.to_string().substr(f.name.size() + 2);
    if (f.dtype == DType::kString) {
      if (!it->is_string()) {
        why = bad;
        return false;
      }
      col.append_string(it->get_ref<const std::string&>());
      continue;
    }
    if (f.record_shape.empty()) {
      if (!it->is_number() || !append_json_number(col, *it)) {
        why = bad;
        return false;
      }
      continue;
    }
    values.clear();
    if (!it->is_array() || !flatten(*it, values, 0) || values.size() != ops::field_elements(f)) {
      why = bad + " (" + std::to_string(ops::field_elements(f)) + " numbers)";
      return false;
    }
    // One record of a shaped column: its elements through a one-element column each would
    // break the record count, so they are converted here and appended as one record.
    std::vector<double> d(values.size());
    for (size_t e = 0; e < values.size(); ++e) d[e] = values[e]->get<double>();
    switch (f.dtype) {
      case DType::kFloat32: {
        std::vector<float> v(d.begin(), d.end());
        col.append_values(v.data(), v.size());
        break;
      }
      case DType::kFloat64: col.append_values(d.data(), d.size()); break;
      default: {
        // Integers: every element must be an integer in range.
        std::vector<int64_t> v(d.size());
        for (size_t e = 0; e < values.size(); ++e) {
          if (!values[e]->is_number_integer()) {
            why = bad;
            return false;
          }
          v[e] = values[e]->get<int64_t>();
        }
        if (f.dtype == DType::kInt64) {
          col.append_values(v.data(), v.size());
        } else if (f.dtype == DType::kInt32) {
          std::vector<int32_t> w(v.size());
          for (size_t e = 0; e < v.size(); ++e) {
            if (v[e] < INT32_MIN || v[e] > INT32_MAX) {
              why = bad;
              return false;
            }
            w[e] = static_cast<int32_t>(v[e]);
          }
          col.append_values(w.data(), w.size());
        } else {
          std::vector<uint8_t> w(v.size());
          for (size_t e = 0; e < v.size(); ++e) {
            if (v[e] < 0 || v[e] > 255) {
              why = bad;
              return false;
            }
            w[e] = static_cast<uint8_t>(v[e]);
          }
          col.append_values(w.data(), w.size());
        }
      }
    }
  }
  return true;
}

bool MessageDecoder::decode_csv(std::string_view payload, std::string& why) {
  line_.assign(payload);
  while (!line_.empty() && (line_.back() == '\n' || line_.back() == '\r')) line_.pop_back();
  if (!ops::split_csv(line_, delimiter_, cells_)) {
    why = "unterminated quote";
    return false;
  }
  if (cells_.size() != fields_.size()) {
    why = std::to_string(cells_.size()) + " fields, expected " + std::to_string(fields_.size());
    return false;
  }
  for (size_t k = 0; k < fields_.size(); ++k) {
    if (!ops::append_parsed(scratch_->column(k), cells_[k])) {
      why = "field \"" + fields_[k].name + "\": cannot read \"" + cells_[k].substr(0, 100) +
            "\" as " + std::string(dataflow::dtype_name(fields_[k].dtype));
      return false;
    }
  }
  return true;
}

bool MessageDecoder::decode_raw(std::string_view payload, std::string& why) {
  if (payload.size() != raw_bytes_) {
    why = std::to_string(payload.size()) + " bytes, a record of the fields has " +
          std::to_string(raw_bytes_);
    return false;
  }
  const char* p = payload.data();
  for (size_t k = 0; k < fields_.size(); ++k) {
    const size_t n = ops::field_elements(fields_[k]);
    ops::append_raw_values(scratch_->column(k), p, n);
    p += n * dataflow::dtype_size(fields_[k].dtype);
  }
  return true;
}

int64_t MessageDecoder::decode_tensair(std::string_view payload, BatchBuilder& out,
                                       std::string& why) {
  Batch b;
  try {
    b = dataflow::decode_batch_bytes(payload);
  } catch (const Error& e) {
    why = std::string("not a TensAIR batch: ") + e.what();
    return -1;
  }
  std::vector<const dataflow::Column*> cols;
  for (const ColumnSpec& f : fields_) {
    const dataflow::Column* c = b.find(f.name);
    if (!c || c->dtype() != f.dtype || c->record_shape() != f.record_shape) {
      why = "the batch has no column " + f.to_string() +
            " (it has " + dataflow::schema_to_string(b.schema()) + ")";
      return -1;
    }
    cols.push_back(c);
  }
  for (size_t k = 0; k < cols.size(); ++k) {
    for (int64_t r = 0; r < b.rows(); ++r) out.column(k).append_from(*cols[k], r);
  }
  return b.rows();
}

std::string encode_json_row(const std::vector<const dataflow::Column*>& columns, int64_t row) {
  std::string out;
  ops::append_json_object(out, columns, row);
  return out;
}

std::string encode_tensair(const dataflow::BatchPtr& batch) {
  return dataflow::encode_batch_bytes(batch);
}

}  // namespace tensair::kafka
