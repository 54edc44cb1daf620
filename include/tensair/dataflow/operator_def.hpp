// An operator definition from its ports and a factory: for operators written in a few lines of
// C++ (readers, tests, benchmarks, a user's own step) without a definition class each.
//
//   g.add("echo", dataflow::operator_def({"echo", {{"in"}}, {{"out"}}, [](const InstanceInfo&) {
//     return std::make_unique<Echo>();
//   }}));
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::dataflow {

struct OperatorSpec {
  std::string type;
  std::vector<PortSpec> inputs;
  std::vector<PortSpec> outputs;
  std::function<std::unique_ptr<Operator>(const InstanceInfo&)> make;  // one call per instance
  std::string description = {};  // what `tensair validate` prints for it (OperatorDef::describe)
  bool supports_cycles = false;  // OperatorDef::supports_cycles
};

inline std::shared_ptr<const OperatorDef> operator_def(OperatorSpec spec) {
  class Def final : public OperatorDef {
   public:
    explicit Def(OperatorSpec s) : s_(std::move(s)) {}
    std::string type() const override { return s_.type; }
    std::vector<PortSpec> inputs() const override { return s_.inputs; }
    std::vector<PortSpec> outputs() const override { return s_.outputs; }
    std::unique_ptr<Operator> instantiate(const InstanceInfo& info) const override { return s_.make(info); }
    std::string describe() const override { return s_.description; }
    bool supports_cycles() const override { return s_.supports_cycles; }

   private:
    OperatorSpec s_;
  };
  return std::make_shared<Def>(std::move(spec));
}

}  // namespace tensair::dataflow
