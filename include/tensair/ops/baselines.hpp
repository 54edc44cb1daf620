// Prequential baselines of a classification stream: what a model's prequential accuracy
// (predict each record, then learn from it) must beat.
//   no_change  predicts the previous record's label
//   majority   predicts the most frequent label seen so far (ties: the smallest label)
// Input "in" with an integer label column; output "out": one row at the end with records,
// no_change_accuracy, majority_accuracy (also logged as {"kind":"baselines",...}). Place it on
// one rank and route every record to it, in stream order.
#pragma once

#include <memory>
#include <string>

#include "tensair/dataflow/operator.hpp"

namespace tensair::ops {

std::shared_ptr<const dataflow::OperatorDef> prequential_baselines(std::string label_column);

}  // namespace tensair::ops
