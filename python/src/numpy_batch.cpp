#include "numpy_batch.hpp"

#include <pybind11/numpy.h>

#include <cstring>
#include <string>
#include <vector>

#include "tensair/common/error.hpp"

namespace py = pybind11;

namespace tensair::python {

using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Bytes;
using dataflow::Column;
using dataflow::ColumnSpec;
using dataflow::DType;
using dataflow::Schema;

namespace {

py::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::kFloat32: return py::dtype::of<float>();
    case DType::kFloat64: return py::dtype::of<double>();
    case DType::kInt32: return py::dtype::of<int32_t>();
    case DType::kInt64: return py::dtype::of<int64_t>();
    case DType::kUInt8: return py::dtype::of<uint8_t>();
    case DType::kString: break;
  }
  throw DataError("a string column has no numpy dtype");
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string type_name(py::handle value) {
  return py::str(py::type::handle_of(value).attr("__name__")).cast<std::string>();
}

[[noreturn]] void fail(const ColumnSpec& spec, const std::string& message) {
  throw DataError("column \"" + spec.name + "\": " + message);
}

py::handle lookup(py::handle item, const ColumnSpec& spec) {
  if (!py::isinstance<py::dict>(item)) {
    throw DataError("expected a dict of columns, got " + type_name(item));
  }
  py::dict d = py::reinterpret_borrow<py::dict>(item);
  py::str key(spec.name);
  if (!d.contains(key)) fail(spec, "missing");
  return d[key];
}

void refuse_unknown_keys(py::handle item, const Schema& schema) {
  py::dict d = py::reinterpret_borrow<py::dict>(item);
  for (auto kv : d) {
    const std::string key = py::str(kv.first).cast<std::string>();
    if (!dataflow::find_column(schema, key)) {
      throw DataError("column \"" + key + "\" is not in the schema (" +
                      dataflow::schema_to_string(schema) + ")");
    }
  }
}

// `value` as a C-contiguous array of the column's dtype (numpy casting; a copy only when
// needed). DataError when numpy cannot convert it.
py::array as_array(py::handle value, const ColumnSpec& spec) {
  py::object np = py::module_::import("numpy");
  try {
    // asarray, not ascontiguousarray: that one makes a scalar a one-element array.
    return np.attr("asarray")(value, numpy_dtype(spec.dtype), py::arg("order") = "C");
  } catch (py::error_already_set& e) {
    fail(spec, "cannot convert " + type_name(value) + " to " +
                   std::string(dataflow::dtype_name(spec.dtype)) + ": " + e.what());
  }
}

bool is_text(py::handle value) {
  return py::isinstance<py::str>(value) || py::isinstance<py::bytes>(value);
}

std::string text_of(py::handle value, const ColumnSpec& spec) {
  if (py::isinstance<py::bytes>(value)) return value.cast<std::string>();
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  // numpy str_ / bytes_ scalars
  py::object np = py::module_::import("numpy");
  if (py::isinstance(value, np.attr("str_")) || py::isinstance(value, np.attr("bytes_"))) {
    return py::str(value).cast<std::string>();
  }
  fail(spec, "expected a str, got " + type_name(value));
}

// `extra_dims` = 1 for a batch (an array of rows), 0 for one record.
void check_record_shape(const py::array& a, size_t extra_dims, const ColumnSpec& spec) {
  const size_t want = spec.record_shape.size() + extra_dims;
  bool ok = static_cast<size_t>(a.ndim()) == want;
  for (size_t i = 0; ok && i < spec.record_shape.size(); ++i) {
    const int64_t d = spec.record_shape[i];
    ok = d < 0 || a.shape(static_cast<py::ssize_t>(i + extra_dims)) == d;
  }
  if (ok) return;
  std::string expected = shape_text(spec.record_shape);
  if (extra_dims) expected = "[rows" + (spec.record_shape.empty() ? "]" : "," + expected.substr(1));
  std::vector<int64_t> got(a.shape(), a.shape() + a.ndim());
  fail(spec, "expected an array of shape " + expected + ", got " + shape_text(got));
}

Column numeric_column(py::handle value, const ColumnSpec& spec) {
  py::array a = as_array(value, spec);
  check_record_shape(a, 1, spec);
  std::vector<int64_t> record(a.shape() + 1, a.shape() + a.ndim());
  const int64_t rows = a.shape(0);
  return Column(spec.name, spec.dtype, std::move(record), rows,
                Bytes::copy(a.data(), static_cast<size_t>(a.nbytes())));
}

Column string_column(py::handle value, const ColumnSpec& spec) {
  if (is_text(value)) fail(spec, "expected a list of strings for a batch, got one string");
  dataflow::ColumnBuilder b({spec.name, DType::kString, {}});
  for (py::handle v : py::iter(value)) b.append_string(text_of(v, spec));
  return b.finish();
}

}  // namespace

py::dict batch_to_dict(const BatchPtr& batch) {
  py::dict out;
  for (const Column& c : batch->columns()) {
    if (c.dtype() == DType::kString) {
      py::list values;
      for (int64_t r = 0; r < c.rows(); ++r) {
        const std::string_view s = c.str(r);
        PyObject* u = PyUnicode_DecodeUTF8(s.data(), static_cast<py::ssize_t>(s.size()), nullptr);
        if (u) {
          values.append(py::reinterpret_steal<py::object>(u));
        } else {
          PyErr_Clear();
          values.append(py::bytes(s.data(), s.size()));
        }
      }
      out[py::str(c.name())] = values;
      continue;
    }
    // The capsule owns a reference to the batch: the array's bytes live as long as the array.
    auto* keep = new BatchPtr(batch);
    py::capsule owner(keep, [](void* p) { delete static_cast<BatchPtr*>(p); });
    std::vector<py::ssize_t> shape;
    for (int64_t d : c.shape()) shape.push_back(static_cast<py::ssize_t>(d));
    py::array view(numpy_dtype(c.dtype()), shape, c.value_bytes().data, owner);
    view.attr("setflags")(py::arg("write") = false);
    out[py::str(c.name())] = view;
  }
  return out;
}

Schema infer_batch_schema(py::handle item) {
  if (!py::isinstance<py::dict>(item)) {
    throw DataError("expected a dict of columns, got " + type_name(item));
  }
  py::object np = py::module_::import("numpy");
  Schema schema;
  for (auto kv : py::reinterpret_borrow<py::dict>(item)) {
    ColumnSpec spec;
    spec.name = py::str(kv.first).cast<std::string>();
    py::array a = np.attr("asarray")(kv.second);
    const char kind = a.dtype().kind();
    const auto size = a.dtype().itemsize();
    if (kind == 'U' || kind == 'S' || kind == 'O') {
      spec.dtype = DType::kString;
    } else if (kind == 'f') {
      spec.dtype = size == 8 ? DType::kFloat64 : DType::kFloat32;
    } else if (kind == 'i' || (kind == 'u' && size > 1)) {
      spec.dtype = size == 4 && kind == 'i' ? DType::kInt32 : DType::kInt64;
    } else if (kind == 'u' || kind == 'b') {
      spec.dtype = DType::kUInt8;
    } else {
      throw DataError("column \"" + spec.name + "\": no TensAIR dtype for numpy dtype " +
                      py::str(a.dtype()).cast<std::string>());
    }
    if (a.ndim() < 1) {
      throw DataError("column \"" + spec.name + "\": expected an array of rows, got a scalar");
    }
    if (spec.dtype != DType::kString) {
      spec.record_shape.assign(a.shape() + 1, a.shape() + a.ndim());
    }
    schema.push_back(std::move(spec));
  }
  return schema;
}

bool is_batch(py::handle item, const Schema& schema) {
  if (schema.empty()) throw DataError("the schema has no columns");
  const ColumnSpec& spec = schema.front();
  py::handle value = lookup(item, spec);
  if (spec.dtype == DType::kString) return !is_text(value);
  const size_t ndim = static_cast<size_t>(as_array(value, spec).ndim());
  if (ndim == spec.record_shape.size() + 1) return true;
  if (ndim == spec.record_shape.size()) return false;
  fail(spec, "expected a record of shape " + shape_text(spec.record_shape) +
                 " or a batch of them, got " + std::to_string(ndim) + " dimensions");
}

Batch dict_to_batch(py::handle item, const Schema& schema) {
  if (!py::isinstance<py::dict>(item)) {
    throw DataError("expected a dict of columns, got " + type_name(item));
  }
  refuse_unknown_keys(item, schema);
  std::vector<Column> columns;
  for (const ColumnSpec& spec : schema) {
    py::handle value = lookup(item, spec);
    columns.push_back(spec.dtype == DType::kString ? string_column(value, spec)
                                                   : numeric_column(value, spec));
  }
  return Batch(std::move(columns));
}

RecordBuilder::RecordBuilder(Schema schema) : schema_(std::move(schema)) { builder_.emplace(schema_); }

void RecordBuilder::append(py::handle item) {
  // Convert every value first, so that a bad record appends nothing.
  std::vector<py::array> arrays(schema_.size());
  std::vector<std::string> strings(schema_.size());
  for (size_t i = 0; i < schema_.size(); ++i) {
    const ColumnSpec& spec = schema_[i];
    py::handle value = lookup(item, spec);
    if (spec.dtype == DType::kString) {
      strings[i] = text_of(value, spec);
    } else {
      arrays[i] = as_array(value, spec);
      check_record_shape(arrays[i], 0, spec);
    }
  }
  refuse_unknown_keys(item, schema_);
  for (size_t i = 0; i < schema_.size(); ++i) {
    dataflow::ColumnBuilder& b = builder_->column(i);
    if (schema_[i].dtype == DType::kString) {
      b.append_string(strings[i]);
      continue;
    }
    const py::array& a = arrays[i];
    const auto n = static_cast<size_t>(a.size());
    switch (schema_[i].dtype) {
      case DType::kFloat32: b.append_values(static_cast<const float*>(a.data()), n); break;
      case DType::kFloat64: b.append_values(static_cast<const double*>(a.data()), n); break;
      case DType::kInt32: b.append_values(static_cast<const int32_t*>(a.data()), n); break;
      case DType::kInt64: b.append_values(static_cast<const int64_t*>(a.data()), n); break;
      case DType::kUInt8: b.append_values(static_cast<const uint8_t*>(a.data()), n); break;
      case DType::kString: break;
    }
  }
}

Batch RecordBuilder::finish() {
  Batch b = builder_->finish();
  builder_.emplace(schema_);
  return b;
}

}  // namespace tensair::python
