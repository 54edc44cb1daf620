// The data currency of TensAIR: an immutable record batch of named, typed columns.
//
// A Column holds `rows` records of one dtype; each record has the same shape (record_shape,
// empty for scalars), so a float32 column with record_shape {32,32,3} and 128 rows is exactly
// the tensor float32[128,32,32,3]. String columns hold one string per record (offsets + bytes).
//
// Ownership: a column's bytes are shared, immutable memory (a `Bytes` view keeps its owner
// alive). Batches are passed between operators on one rank by shared pointer without copying,
// decoded from the wire without copying, and wrapped as tensors by the model layer without
// copying. Nothing ever writes to a column's bytes after the column is built.
//
// Thread-safety: a Batch is immutable after construction and may be read from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tensair/common/error.hpp"

namespace tensair::dataflow {

enum class DType : uint8_t {
  kFloat32 = 1,
  kFloat64 = 2,
  kInt32 = 3,
  kInt64 = 4,
  kUInt8 = 5,
  kString = 6,  // variable-length bytes (UTF-8 by convention), one per record
};

// Bytes per element; 0 for kString.
size_t dtype_size(DType t);
// "float32", "float64", "int32", "int64", "uint8", "string".
std::string_view dtype_name(DType t);
// Parses the names above; nullopt for anything else.
std::optional<DType> parse_dtype(std::string_view name);

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::kFloat32;
  else if constexpr (std::is_same_v<T, double>) return DType::kFloat64;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::kInt32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::kInt64;
  else if constexpr (std::is_same_v<T, uint8_t>) return DType::kUInt8;
  else static_assert(sizeof(T) == 0, "no TensAIR dtype for this C++ type");
}

// A read-only view of bytes that keeps their owner alive.
struct Bytes {
  std::shared_ptr<const void> owner;
  const std::byte* data = nullptr;
  size_t size = 0;

  // Copies `size` bytes from `src` into new memory.
  static Bytes copy(const void* src, size_t size);
  // Takes ownership of a vector's storage without copying.
  static Bytes adopt(std::vector<std::byte>&& bytes);
};

// Name, dtype and record shape of a column. In a schema used as a requirement, a dimension of
// -1 matches any size and an empty `record_shape` with `any_shape` set matches any shape.
// The most elements one record of a column may hold (256 Mi: 1 GiB of float32). Larger shapes are
// refused where they are declared; no batch could be built of them.
inline constexpr int64_t kMaxRecordElements = int64_t{1} << 28;

struct ColumnSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> record_shape;
  bool any_shape = false;

  // "x: float32[32,32,3]", "word: string"
  std::string to_string() const;
};
using Schema = std::vector<ColumnSpec>;

// "word: string, count: int64"
std::string schema_to_string(const Schema& schema);
const ColumnSpec* find_column(const Schema& schema, std::string_view name);
// Parses "name:dtype" or "name:dtype[d1,d2]" (spaces allowed). Throws ConfigError, also for a
// shape of more than kMaxRecordElements elements.
ColumnSpec parse_column_spec(std::string_view text);

class Column {
 public:
  Column() = default;
  // Validates that the byte sizes agree with dtype, shape and rows (DataError otherwise).
  // String columns: `offsets` holds rows+1 int64 offsets into `values`, non-decreasing and
  // within values.size (the first need not be 0, so slices stay zero-copy).
  Column(std::string name, DType dtype, std::vector<int64_t> record_shape, int64_t rows,
         Bytes values, Bytes offsets = {});

  const std::string& name() const { return name_; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& record_shape() const { return record_shape_; }
  int64_t rows() const { return rows_; }
  // Elements per record: the product of record_shape (1 for scalars).
  int64_t record_elements() const { return record_elements_; }
  // {rows, record_shape...}
  std::vector<int64_t> shape() const;
  ColumnSpec spec() const { return {name_, dtype_, record_shape_, false}; }

  // Typed access to all elements (rows * record_elements). Throws DataError on a dtype mismatch.
  template <class T>
  std::span<const T> values() const {
    check_dtype(dtype_of<T>());
    return {reinterpret_cast<const T*>(values_.data),
            static_cast<size_t>(rows_ * record_elements_)};
  }
  template <class T>
  T at(int64_t row) const {
    return values<T>()[static_cast<size_t>(row * record_elements_)];
  }
  // The string of one record (string columns only).
  std::string_view str(int64_t row) const;
  // A record's value converted to double (numeric scalar columns); used by generic operators.
  double as_double(int64_t row) const;
  // A record's value converted to int64 (integer scalar columns).
  int64_t as_int64(int64_t row) const;

  const Bytes& value_bytes() const { return values_; }
  const Bytes& offset_bytes() const { return offsets_; }
  // Bytes this column occupies (values + offsets), used for flow control.
  size_t byte_size() const { return values_.size + offsets_.size; }

  Column renamed(std::string name) const;
  // Rows [begin, begin+count) without copying.
  Column slice(int64_t begin, int64_t count) const;

 private:
  void check_dtype(DType expected) const;

  std::string name_;
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> record_shape_;
  int64_t rows_ = 0;
  int64_t record_elements_ = 1;
  Bytes values_;
  Bytes offsets_;
};

class Batch {
 public:
  Batch() = default;
  // Validates that all columns have the same number of rows and distinct names (DataError).
  explicit Batch(std::vector<Column> columns);

  int64_t rows() const { return rows_; }
  size_t num_columns() const { return columns_.size(); }
  const std::vector<Column>& columns() const { return columns_; }
  // Throws DataError "no column \"x\" (columns: a, b)".
  const Column& column(std::string_view name) const;
  const Column* find(std::string_view name) const;
  Schema schema() const;
  size_t byte_size() const;

  // Rows [begin, begin+count) without copying.
  Batch slice(int64_t begin, int64_t count) const;
  // The given rows, in the given order (copies).
  Batch take(std::span<const int64_t> rows) const;
  // A batch with one column added (or replaced, if a column of that name exists).
  Batch with_column(Column column) const;

 private:
  std::vector<Column> columns_;
  int64_t rows_ = 0;
};
using BatchPtr = std::shared_ptr<const Batch>;

inline BatchPtr share(Batch b) { return std::make_shared<const Batch>(std::move(b)); }

// All rows of `batches`, in order, as one batch (copies). The batches must have the same
// schema (DataError otherwise); an empty list gives an empty batch.
Batch concat_batches(const std::vector<BatchPtr>& batches);

// Builds one column record by record. Not thread-safe.
class ColumnBuilder {
 public:
  explicit ColumnBuilder(ColumnSpec spec);

  const ColumnSpec& spec() const { return spec_; }
  int64_t rows() const { return rows_; }
  void reserve(int64_t rows);

  // Appends one record of a scalar numeric column.
  template <class T>
  void append(T value) {
    append_values(&value, 1);
  }
  // Appends one record of `n` elements (n must equal the record's element count).
  template <class T>
  void append_values(const T* values, size_t n) {
    TENSAIR_ASSERT(dtype_of<T>() == spec_.dtype, "append of the wrong C++ type to " + spec_.name);
    append_raw(values, n * sizeof(T), n);
  }
  void append_string(std::string_view s);
  // Appends record `row` of `src` (same dtype and record size).
  void append_from(const Column& src, int64_t row);
  // Appends a numeric value converted to this column's dtype (numeric scalar columns).
  void append_number(double value);

  Column finish();

 private:
  void append_raw(const void* data, size_t bytes, size_t elements);

  ColumnSpec spec_;
  int64_t record_elements_ = 1;
  int64_t rows_ = 0;
  std::vector<std::byte> values_;
  std::vector<int64_t> offsets_;
};

// Builds a batch column by column. Not thread-safe.
class BatchBuilder {
 public:
  explicit BatchBuilder(const Schema& schema);
  ColumnBuilder& column(size_t i) { return columns_[i]; }
  ColumnBuilder& column(std::string_view name);
  size_t num_columns() const { return columns_.size(); }
  int64_t rows() const { return columns_.empty() ? 0 : columns_[0].rows(); }
  // Throws DataError if the columns have different row counts.
  Batch finish();

 private:
  std::vector<ColumnBuilder> columns_;
};

}  // namespace tensair::dataflow
