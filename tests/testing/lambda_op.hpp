// lambda_op: an operator definition from ports and a factory, for tests.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::testing {

struct LambdaSpec {
  std::string type = "test";
  std::vector<dataflow::PortSpec> inputs;
  std::vector<dataflow::PortSpec> outputs;
  std::function<std::unique_ptr<dataflow::Operator>(const dataflow::InstanceInfo&)> make;
};

inline std::shared_ptr<const dataflow::OperatorDef> lambda_op(LambdaSpec spec) {
  class Def final : public dataflow::OperatorDef {
   public:
    explicit Def(LambdaSpec s) : s_(std::move(s)) {}
    std::string type() const override { return s_.type; }
    std::vector<dataflow::PortSpec> inputs() const override { return s_.inputs; }
    std::vector<dataflow::PortSpec> outputs() const override { return s_.outputs; }
    std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo& info) const override {
      return s_.make(info);
    }

   private:
    LambdaSpec s_;
  };
  return std::make_shared<Def>(std::move(spec));
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
