// Exact comparison of batches for tests: same columns (names, dtypes, record shapes), same row
// counts and the same values, bit for bit (so 0.1 + 0.2 differs from 0.3, and NaN equals the
// same NaN). The failure message names the first difference (batch, column, row).
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "tensair/dataflow/batch.hpp"

namespace tensair::testing {

::testing::AssertionResult batches_equal(const dataflow::Batch& expected,
                                         const dataflow::Batch& actual);
// The same number of batches, each equal to its counterpart: the same rows with the same batch
// boundaries.
::testing::AssertionResult batch_lists_equal(const std::vector<dataflow::BatchPtr>& expected,
                                             const std::vector<dataflow::BatchPtr>& actual);
// Rows across all batches (0 for an empty list).
int64_t total_rows(const std::vector<dataflow::BatchPtr>& batches);

}  // namespace tensair::testing
