// collect: an in-memory sink. Every batch that reaches any of its instances in this process is
// stored in a Collection, for tests and for programs that run a graph and read the results
// directly (under mpirun each process sees what its own instances received).
//
// Checkpoints: collect has no state to save, so it is not exactly-once across a restore: the
// Collection keeps what arrived before the failure, and the resumed run adds the batches after
// the checkpoint again (a test that restores should use a fresh Collection, or a file sink).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::ops {

// Thread-safe store of collected batches.
class Collection {
 public:
  void add(int instance, dataflow::BatchPtr batch);
  // Batches in arrival order (per instance; instances interleaved as they arrived).
  std::vector<dataflow::BatchPtr> batches() const;
  // All collected rows as one batch.
  dataflow::Batch rows() const;
  int64_t num_rows() const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::vector<dataflow::BatchPtr> batches_;  // guarded by mu_
};

// A sink with one input port "in" (optionally requiring `columns`) storing into `into`.
std::shared_ptr<const dataflow::OperatorDef> collect(
    std::shared_ptr<Collection> into, std::optional<dataflow::Schema> columns = std::nullopt);

}  // namespace tensair::ops
