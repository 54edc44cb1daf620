// The operator types job files may name. Built-in types register themselves; higher layers
// (model, drift, io) register theirs through tensair::job::register_operator_type before
// loading a job, so this layer depends on none of them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensair/job/params.hpp"
#include "tensair/ops/sources.hpp"
#include "tensair/dataflow/operator.hpp"

namespace tensair::job {

struct OperatorType {
  std::string name;
  std::string description;
  // Builds the definition from the operator's table; reads only its own keys.
  std::function<std::shared_ptr<const dataflow::OperatorDef>(const Params&)> build;
};

void register_operator_type(OperatorType type);

// The keys every source takes: batch_size, rate, burst, replay, limit, shard.
ops::SourceOptions source_options(const Params& p);
// A list of "name:dtype[shape]" column specs (csv_source columns, binary_source fields); empty
// when the key is absent. The error names the key.
dataflow::Schema column_specs(const Params& p, const std::string& key);
// nullptr when unknown.
const OperatorType* find_operator_type(const std::string& name);
std::vector<const OperatorType*> all_operator_types();

}  // namespace tensair::job
