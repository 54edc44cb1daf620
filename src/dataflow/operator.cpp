// The defaults of the operator contract (operator.hpp).
#include "tensair/dataflow/operator.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tensair::dataflow {

std::vector<std::optional<Schema>> OperatorDef::infer_outputs(
    const std::vector<std::optional<Schema>>& /*inputs*/) const {
  std::vector<std::optional<Schema>> out;
  for (const PortSpec& p : outputs()) out.push_back(p.schema);
  return out;
}

void Context::sync_at_checkpoint(int fd) {
  if (::fsync(fd) != 0) throw IoError(std::string("cannot sync a file: ") + std::strerror(errno));
}

}  // namespace tensair::dataflow
