// Batches as Python dicts of numpy arrays, and Python dicts as batches.
//
// To Python: one entry per column, in column order. A numeric column is a read-only numpy
// array of shape [rows, record_shape...] that views the column's bytes without copying (the
// array keeps the batch alive); a string column is a list of str (bytes that are not UTF-8 come
// as bytes).
//
// From Python: a dict of column name to values, either one batch (every value has one
// dimension more than its column's records: an array of rows, a list of strings) or one record
// (a scalar, an array of the record's shape, a str). Values are converted to the column's dtype
// (numpy's casting rules) and copied into the batch. A dict that does not fit its schema is a
// DataError naming the column and what is wrong; the python_* operators report it as a dead
// letter.
//
// Every function here needs the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>

#include "tensair/dataflow/batch.hpp"

namespace tensair::python {

pybind11::dict batch_to_dict(const dataflow::BatchPtr& batch);

// The schema of `item` as a batch: numpy arrays keep their dtype (bool becomes uint8, other
// integers int64, other floats float32), lists of str are strings.
dataflow::Schema infer_batch_schema(pybind11::handle item);

// Whether `item` is one batch (true) or one record (false) of `schema`. DataError when it is
// neither (a value of another rank than the column's).
bool is_batch(pybind11::handle item, const dataflow::Schema& schema);

// `item` (a batch) as a Batch of `schema`: every column of the schema, no other key.
dataflow::Batch dict_to_batch(pybind11::handle item, const dataflow::Schema& schema);

// Collects records (dicts of scalars / record-shaped arrays) into a batch.
class RecordBuilder {
 public:
  explicit RecordBuilder(dataflow::Schema schema);
  // Appends one record; DataError (nothing appended) when it does not fit the schema.
  void append(pybind11::handle item);
  int64_t rows() const { return builder_->rows(); }
  dataflow::Batch finish();  // the records so far; starts a new batch

 private:
  dataflow::Schema schema_;
  std::optional<dataflow::BatchBuilder> builder_;
};

}  // namespace tensair::python
