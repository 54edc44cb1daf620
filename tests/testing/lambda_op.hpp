// lambda_op: an operator definition from ports and a factory, for tests; int64_batch.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensair/dataflow/operator_def.hpp"

namespace tensair::testing {

// An operator definition from ports and a factory (dataflow::operator_def), under the name the
// tests use.
using LambdaSpec = dataflow::OperatorSpec;
inline std::shared_ptr<const dataflow::OperatorDef> lambda_op(LambdaSpec spec) {
  return dataflow::operator_def(std::move(spec));
}

// A batch of int64 columns from equal-length vectors.
inline dataflow::Batch int64_batch(const std::vector<std::pair<std::string, std::vector<int64_t>>>& cols) {
  std::vector<dataflow::Column> out;
  for (const auto& [name, values] : cols) {
    dataflow::ColumnBuilder b({name, dataflow::DType::kInt64, {}});
    for (int64_t v : values) b.append(v);
    out.push_back(b.finish());
  }
  return dataflow::Batch(std::move(out));
}

// A source that emits `batch` once (per instance).
inline std::shared_ptr<const dataflow::OperatorDef> source_of(dataflow::Batch batch) {
  struct Once final : dataflow::Operator {
    explicit Once(dataflow::Batch b) : b(std::move(b)) {}
    dataflow::SourceState produce(dataflow::Context& ctx) override {
      ctx.emit(0, b);
      return dataflow::SourceState::kDone;
    }
    dataflow::Batch b;
  };
  dataflow::Schema schema = batch.schema();
  return lambda_op({"source_of", {}, {{"out", schema}}, [batch](const dataflow::InstanceInfo&) {
                      return std::make_unique<Once>(batch);
                    }});
}

}  // namespace tensair::testing
