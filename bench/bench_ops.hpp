// Operators for benchmarks: an OperatorDef from ports and a factory, so a benchmark can put a
// few lines of C++ (a timed sink, an echo) into a graph without a definition class each.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::bench {

struct OpSpec {
  std::string type = "bench";
  std::vector<dataflow::PortSpec> inputs;
  std::vector<dataflow::PortSpec> outputs;
  std::function<std::unique_ptr<dataflow::Operator>(const dataflow::InstanceInfo&)> make;
};

inline std::shared_ptr<const dataflow::OperatorDef> op_def(OpSpec spec) {
  class Def final : public dataflow::OperatorDef {
   public:
    explicit Def(OpSpec s) : s_(std::move(s)) {}
    std::string type() const override { return s_.type; }
    std::vector<dataflow::PortSpec> inputs() const override { return s_.inputs; }
    std::vector<dataflow::PortSpec> outputs() const override { return s_.outputs; }
    std::unique_ptr<dataflow::Operator> instantiate(
        const dataflow::InstanceInfo& info) const override {
      return s_.make(info);
    }

   private:
    OpSpec s_;
  };
  return std::make_shared<Def>(std::move(spec));
}

}  // namespace tensair::bench
