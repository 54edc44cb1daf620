#include "testing/batch_equality.hpp"

#include <cstring>
#include <string>

namespace tensair::testing {

using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Column;
using dataflow::DType;

namespace {

std::string shape_text(const Column& c) { return c.spec().to_string(); }

}  // namespace

::testing::AssertionResult batches_equal(const Batch& expected, const Batch& actual) {
  if (expected.num_columns() != actual.num_columns()) {
    return ::testing::AssertionFailure()
           << "columns: expected " << dataflow::schema_to_string(expected.schema()) << ", got "
           << dataflow::schema_to_string(actual.schema());
  }
  if (expected.rows() != actual.rows()) {
    return ::testing::AssertionFailure()
           << "rows: expected " << expected.rows() << ", got " << actual.rows();
  }
  for (size_t i = 0; i < expected.num_columns(); ++i) {
    const Column& e = expected.columns()[i];
    const Column& a = actual.columns()[i];
    if (e.name() != a.name() || e.dtype() != a.dtype() || e.record_shape() != a.record_shape()) {
      return ::testing::AssertionFailure()
             << "column " << i << ": expected " << shape_text(e) << ", got " << shape_text(a);
    }
    for (int64_t r = 0; r < e.rows(); ++r) {
      bool same = true;
      if (e.dtype() == DType::kString) {
        same = e.str(r) == a.str(r);
      } else {
        const size_t bytes =
            static_cast<size_t>(e.record_elements()) * dataflow::dtype_size(e.dtype());
        same = std::memcmp(e.value_bytes().data + static_cast<size_t>(r) * bytes,
                           a.value_bytes().data + static_cast<size_t>(r) * bytes, bytes) == 0;
      }
      if (!same) {
        auto f = ::testing::AssertionFailure();
        f << "column \"" << e.name() << "\" row " << r << " differs";
        if (e.dtype() == DType::kString) {
          f << ": expected \"" << e.str(r) << "\", got \"" << a.str(r) << "\"";
        } else if (e.record_shape().empty()) {
          f << ": expected " << e.as_double(r) << ", got " << a.as_double(r);
        }
        return f;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult batch_lists_equal(const std::vector<BatchPtr>& expected,
                                             const std::vector<BatchPtr>& actual) {
  if (expected.size() != actual.size()) {
    return ::testing::AssertionFailure()
           << "expected " << expected.size() << " batches (" << total_rows(expected)
           << " rows), got " << actual.size() << " (" << total_rows(actual) << " rows)";
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    ::testing::AssertionResult r = batches_equal(*expected[i], *actual[i]);
    if (!r) return ::testing::AssertionFailure() << "batch " << i << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

int64_t total_rows(const std::vector<BatchPtr>& batches) {
  int64_t n = 0;
  for (const BatchPtr& b : batches) n += b->rows();
  return n;
}

}  // namespace tensair::testing
