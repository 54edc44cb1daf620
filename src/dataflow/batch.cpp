#include "tensair/dataflow/batch.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <sstream>
#include <unordered_set>

namespace tensair::dataflow {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kFloat64: return 8;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
    case DType::kUInt8: return 1;
    case DType::kString: return 0;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kUInt8: return "uint8";
    case DType::kString: return "string";
  }
  return "unknown";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType t : {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64, DType::kUInt8,
                  DType::kString}) {
    if (dtype_name(t) == name) return t;
  }
  return std::nullopt;
}

Bytes Bytes::copy(const void* src, size_t size) {
  std::vector<std::byte> v(size);
  if (size) std::memcpy(v.data(), src, size);
  return adopt(std::move(v));
}

Bytes Bytes::adopt(std::vector<std::byte>&& bytes) {
  auto owner = std::make_shared<std::vector<std::byte>>(std::move(bytes));
  Bytes b;
  b.data = owner->data();
  b.size = owner->size();
  b.owner = std::move(owner);
  return b;
}

std::string ColumnSpec::to_string() const {
  std::string s = name + ": " + std::string(dtype_name(dtype));
  if (any_shape) return s + "[*]";
  if (!record_shape.empty()) {
    s += "[";
    for (size_t i = 0; i < record_shape.size(); ++i) {
      if (i) s += ",";
      s += record_shape[i] < 0 ? "*" : std::to_string(record_shape[i]);
    }
    s += "]";
  }
  return s;
}

std::string schema_to_string(const Schema& schema) {
  std::string s;
  for (size_t i = 0; i < schema.size(); ++i) {
    if (i) s += ", ";
    s += schema[i].to_string();
  }
  return s;
}

const ColumnSpec* find_column(const Schema& schema, std::string_view name) {
  for (const ColumnSpec& c : schema) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}
}  // namespace

ColumnSpec parse_column_spec(std::string_view text) {
  auto bad = [&](const std::string& why) {
    throw ConfigError("column \"" + std::string(text) + "\": " + why +
                      " (expected name:dtype or name:dtype[d1,d2,...])");
  };
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) bad("no dtype");
  ColumnSpec spec;
  spec.name = std::string(trim(text.substr(0, colon)));
  if (spec.name.empty()) bad("empty name");
  std::string_view rest = trim(text.substr(colon + 1));
  size_t bracket = rest.find('[');
  std::string_view type = trim(rest.substr(0, bracket));
  auto dtype = parse_dtype(type);
  if (!dtype) {
    bad("unknown dtype \"" + std::string(type) +
        "\" (known: float32, float64, int32, int64, uint8, string)");
  }
  spec.dtype = *dtype;
  if (bracket != std::string_view::npos) {
    size_t close = rest.find(']', bracket);
    if (close == std::string_view::npos || trim(rest.substr(close + 1)).size()) bad("bad shape");
    std::string_view dims = rest.substr(bracket + 1, close - bracket - 1);
    int64_t elements = 1;
    while (!dims.empty()) {
      size_t comma = dims.find(',');
      std::string_view d = trim(dims.substr(0, comma));
      int64_t v = 0;
      for (char c : d) {
        if (c < '0' || c > '9') bad("bad dimension \"" + std::string(d) + "\"");
        v = v * 10 + (c - '0');
        if (v > kMaxRecordElements) break;  // too large whatever follows
      }
      if (d.empty() || v <= 0) bad("bad dimension \"" + std::string(d) + "\"");
      elements *= v;
      if (v > kMaxRecordElements || elements > kMaxRecordElements) {
        throw ConfigError("column \"" + std::string(text) + "\": a record of more than " +
                          std::to_string(kMaxRecordElements) + " elements (the most a record may hold)");
      }
      spec.record_shape.push_back(v);
      if (comma == std::string_view::npos) break;
      dims.remove_prefix(comma + 1);
    }
    if (spec.dtype == DType::kString && !spec.record_shape.empty()) {
      bad("string columns hold one string per record and take no shape");
    }
  }
  return spec;
}

// Column --------------------------------------------------------------------------------------

Column::Column(std::string name, DType dtype, std::vector<int64_t> record_shape, int64_t rows,
               Bytes values, Bytes offsets)
    : name_(std::move(name)),
      dtype_(dtype),
      record_shape_(std::move(record_shape)),
      rows_(rows),
      values_(std::move(values)),
      offsets_(std::move(offsets)) {
  auto fail = [&](const std::string& why) {
    throw DataError("column \"" + name_ + "\": " + why);
  };
  if (rows_ < 0) fail("negative row count");
  // Sizes come from the wire too: every product is checked, never allowed to overflow.
  record_elements_ = 1;
  for (int64_t d : record_shape_) {
    if (d < 0) fail("negative dimension");
    if (__builtin_mul_overflow(record_elements_, d, &record_elements_)) fail("record shape too large");
  }
  if (dtype_ == DType::kString) {
    if (!record_shape_.empty()) fail("string columns take no record shape");
    size_t want = 0;
    if (__builtin_mul_overflow(static_cast<size_t>(rows_) + 1, sizeof(int64_t), &want) ||
        offsets_.size != want) {
      fail(std::to_string(offsets_.size) + " offset bytes for " + std::to_string(rows_) +
           " strings, expected " + std::to_string(want));
    }
    const int64_t* off = reinterpret_cast<const int64_t*>(offsets_.data);
    for (int64_t i = 0; i < rows_; ++i) {
      if (off[i] < 0 || off[i + 1] < off[i]) fail("string offsets decrease at row " + std::to_string(i));
    }
    if (off[0] < 0 || static_cast<uint64_t>(off[rows_]) > values_.size) {
      fail("string offsets run past the " + std::to_string(values_.size) + " bytes of data");
    }
  } else {
    size_t want = 0;
    if (__builtin_mul_overflow(static_cast<size_t>(rows_), static_cast<size_t>(record_elements_), &want) ||
        __builtin_mul_overflow(want, dtype_size(dtype_), &want)) {
      fail(std::to_string(rows_) + " records of " + spec().to_string() + " is too large");
    }
    if (values_.size != want) {
      fail(std::to_string(values_.size) + " bytes for " + std::to_string(rows_) + " records of " +
           spec().to_string() + ", expected " + std::to_string(want));
    }
    if (offsets_.size != 0) fail("offsets on a non-string column");
  }
}

std::vector<int64_t> Column::shape() const {
  std::vector<int64_t> s{rows_};
  s.insert(s.end(), record_shape_.begin(), record_shape_.end());
  return s;
}

void Column::check_dtype(DType expected) const {
  if (dtype_ != expected) {
    throw DataError("column \"" + name_ + "\" is " + std::string(dtype_name(dtype_)) + ", read as " +
                    std::string(dtype_name(expected)));
  }
}

std::string_view Column::str(int64_t row) const {
  check_dtype(DType::kString);
  const int64_t* off = reinterpret_cast<const int64_t*>(offsets_.data);
  return {reinterpret_cast<const char*>(values_.data) + off[row],
          static_cast<size_t>(off[row + 1] - off[row])};
}

double Column::as_double(int64_t row) const {
  size_t i = static_cast<size_t>(row * record_elements_);
  switch (dtype_) {
    case DType::kFloat32: return reinterpret_cast<const float*>(values_.data)[i];
    case DType::kFloat64: return reinterpret_cast<const double*>(values_.data)[i];
    case DType::kInt32: return reinterpret_cast<const int32_t*>(values_.data)[i];
    case DType::kInt64: return static_cast<double>(reinterpret_cast<const int64_t*>(values_.data)[i]);
    case DType::kUInt8: return reinterpret_cast<const uint8_t*>(values_.data)[i];
    case DType::kString: break;
  }
  throw DataError("column \"" + name_ + "\" is a string column, a number was expected");
}

int64_t Column::as_int64(int64_t row) const {
  size_t i = static_cast<size_t>(row * record_elements_);
  switch (dtype_) {
    case DType::kInt32: return reinterpret_cast<const int32_t*>(values_.data)[i];
    case DType::kInt64: return reinterpret_cast<const int64_t*>(values_.data)[i];
    case DType::kUInt8: return reinterpret_cast<const uint8_t*>(values_.data)[i];
    default: break;
  }
  throw DataError("column \"" + name_ + "\" is " + std::string(dtype_name(dtype_)) +
                  ", an integer column was expected");
}

Column Column::renamed(std::string name) const {
  Column c = *this;
  c.name_ = std::move(name);
  return c;
}

Column Column::slice(int64_t begin, int64_t count) const {
  TENSAIR_ASSERT(begin >= 0 && count >= 0 && begin + count <= rows_, "slice out of range");
  Column c = *this;
  c.rows_ = count;
  if (dtype_ == DType::kString) {
    c.offsets_.data = offsets_.data + begin * static_cast<int64_t>(sizeof(int64_t));
    c.offsets_.size = static_cast<size_t>(count + 1) * sizeof(int64_t);
  } else {
    size_t rec = static_cast<size_t>(record_elements_) * dtype_size(dtype_);
    c.values_.data = values_.data + static_cast<size_t>(begin) * rec;
    c.values_.size = static_cast<size_t>(count) * rec;
  }
  return c;
}

// Batch ---------------------------------------------------------------------------------------

Batch::Batch(std::vector<Column> columns) : columns_(std::move(columns)) {
  rows_ = columns_.empty() ? 0 : columns_[0].rows();
  std::unordered_set<std::string_view> names;
  for (const Column& c : columns_) {
    if (c.rows() != rows_) {
      throw DataError("column \"" + c.name() + "\" has " + std::to_string(c.rows()) +
                      " rows, column \"" + columns_[0].name() + "\" has " + std::to_string(rows_));
    }
    if (!names.insert(c.name()).second) throw DataError("duplicate column \"" + c.name() + "\"");
  }
}

const Column* Batch::find(std::string_view name) const {
  for (const Column& c : columns_) {
    if (c.name() == name) return &c;
  }
  return nullptr;
}

const Column& Batch::column(std::string_view name) const {
  if (const Column* c = find(name)) return *c;
  std::string have;
  for (const Column& c : columns_) have += (have.empty() ? "" : ", ") + c.name();
  throw DataError("no column \"" + std::string(name) + "\" (columns: " + have + ")");
}

Schema Batch::schema() const {
  Schema s;
  for (const Column& c : columns_) s.push_back(c.spec());
  return s;
}

size_t Batch::byte_size() const {
  size_t n = 0;
  for (const Column& c : columns_) n += c.byte_size();
  return n;
}

Batch Batch::slice(int64_t begin, int64_t count) const {
  std::vector<Column> cols;
  cols.reserve(columns_.size());
  for (const Column& c : columns_) cols.push_back(c.slice(begin, count));
  Batch b(std::move(cols));
  b.rows_ = count;
  return b;
}

Batch Batch::take(std::span<const int64_t> rows) const {
  std::vector<Column> cols;
  cols.reserve(columns_.size());
  for (const Column& c : columns_) {
    ColumnBuilder b(c.spec());
    b.reserve(static_cast<int64_t>(rows.size()));
    for (int64_t r : rows) b.append_from(c, r);
    cols.push_back(b.finish());
  }
  Batch out(std::move(cols));
  out.rows_ = static_cast<int64_t>(rows.size());
  return out;
}

Batch Batch::with_column(Column column) const {
  std::vector<Column> cols;
  bool replaced = false;
  for (const Column& c : columns_) {
    if (c.name() == column.name()) {
      cols.push_back(column);
      replaced = true;
    } else {
      cols.push_back(c);
    }
  }
  if (!replaced) cols.push_back(std::move(column));
  return Batch(std::move(cols));
}

Batch concat_batches(const std::vector<BatchPtr>& batches) {
  if (batches.empty()) return Batch();
  const Schema schema = batches[0]->schema();
  BatchBuilder out(schema);
  for (const BatchPtr& b : batches) {
    if (b->num_columns() != schema.size()) {
      throw DataError("cannot concatenate batches with columns {" + schema_to_string(schema) +
                      "} and {" + schema_to_string(b->schema()) + "}");
    }
    for (size_t c = 0; c < schema.size(); ++c) {
      const Column& col = b->columns()[c];
      if (col.name() != schema[c].name || col.dtype() != schema[c].dtype ||
          col.record_shape() != schema[c].record_shape) {
        throw DataError("cannot concatenate batches with columns {" + schema_to_string(schema) +
                        "} and {" + schema_to_string(b->schema()) + "}");
      }
      ColumnBuilder& cb = out.column(c);
      for (int64_t r = 0; r < col.rows(); ++r) cb.append_from(col, r);
    }
  }
  return out.finish();
}

// Builders ------------------------------------------------------------------------------------

ColumnBuilder::ColumnBuilder(ColumnSpec spec) : spec_(std::move(spec)) {
  TENSAIR_ASSERT(!spec_.any_shape, "cannot build a column of unspecified shape");
  for (int64_t d : spec_.record_shape) {
    TENSAIR_ASSERT(d >= 0, "cannot build a column with a wildcard dimension");
    record_elements_ *= d;
  }
  if (spec_.dtype == DType::kString) offsets_.push_back(0);
}

void ColumnBuilder::reserve(int64_t rows) {
  if (spec_.dtype == DType::kString) {
    offsets_.reserve(static_cast<size_t>(rows + 1));
  } else {
    values_.reserve(static_cast<size_t>(rows * record_elements_) * dtype_size(spec_.dtype));
  }
}

void ColumnBuilder::append_raw(const void* data, size_t bytes, size_t elements) {
  TENSAIR_ASSERT(static_cast<int64_t>(elements) == record_elements_,
                 "record of " + std::to_string(elements) + " elements appended to " +
                     spec_.to_string());
  const std::byte* p = static_cast<const std::byte*>(data);
  values_.insert(values_.end(), p, p + bytes);
  rows_++;
}

void ColumnBuilder::append_string(std::string_view s) {
  TENSAIR_ASSERT(spec_.dtype == DType::kString, "string appended to " + spec_.to_string());
  const std::byte* p = reinterpret_cast<const std::byte*>(s.data());
  values_.insert(values_.end(), p, p + s.size());
  offsets_.push_back(static_cast<int64_t>(values_.size()));
  rows_++;
}

void ColumnBuilder::append_from(const Column& src, int64_t row) {
  if (spec_.dtype == DType::kString) {
    append_string(src.str(row));
    return;
  }
  TENSAIR_ASSERT(src.dtype() == spec_.dtype && src.record_elements() == record_elements_,
                 "append_from " + src.spec().to_string() + " into " + spec_.to_string());
  size_t rec = static_cast<size_t>(record_elements_) * dtype_size(spec_.dtype);
  const std::byte* p = src.value_bytes().data + static_cast<size_t>(row) * rec;
  values_.insert(values_.end(), p, p + rec);
  rows_++;
}

void ColumnBuilder::append_number(double v) {
  switch (spec_.dtype) {
    case DType::kFloat32: append(static_cast<float>(v)); return;
    case DType::kFloat64: append(v); return;
    case DType::kInt32: append(static_cast<int32_t>(v)); return;
    case DType::kInt64: append(static_cast<int64_t>(v)); return;
    case DType::kUInt8: append(static_cast<uint8_t>(v)); return;
    case DType::kString: break;
  }
  TENSAIR_ASSERT(false, "append_number to string column " + spec_.name);
}

Column ColumnBuilder::finish() {
  Bytes offsets;
  if (spec_.dtype == DType::kString) {
    offsets = Bytes::copy(offsets_.data(), offsets_.size() * sizeof(int64_t));
    offsets_.assign(1, 0);
  }
  Column c(spec_.name, spec_.dtype, spec_.record_shape, rows_, Bytes::adopt(std::move(values_)),
           std::move(offsets));
  values_ = {};
  rows_ = 0;
  return c;
}

BatchBuilder::BatchBuilder(const Schema& schema) {
  columns_.reserve(schema.size());
  for (const ColumnSpec& s : schema) columns_.emplace_back(s);
}

ColumnBuilder& BatchBuilder::column(std::string_view name) {
  for (ColumnBuilder& c : columns_) {
    if (c.spec().name == name) return c;
  }
  throw DataError("batch builder has no column \"" + std::string(name) + "\"");
}

Batch BatchBuilder::finish() {
  std::vector<Column> cols;
  cols.reserve(columns_.size());
  for (ColumnBuilder& c : columns_) cols.push_back(c.finish());
  return Batch(std::move(cols));
}

}  // namespace tensair::dataflow
