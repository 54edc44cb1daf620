// Messages between model replicas, carried as one-row record batches on the exchange edge.
//
// Every message has the scalar columns kind, sender, version, steps, samples, loss_sum,
// acc_sum, step. A delta (or a sync contribution) adds one or two columns per parameter that
// has a gradient:
//   g<i>               float32[numel]        dense
//   h<i>               uint8[2*numel]        dense, float16 bytes
//   s<i>.idx, s<i>.val int64[nnz], float32[nnz*row] (or uint8[2*nnz*row] as h<i>.val)
//                                            sparse rows of an embedding-like parameter
// Tensors decoded from a batch point into the batch's memory (no copy) and are valid while
// the message is alive.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include "tensair/dataflow/batch.hpp"

namespace tensair::model {

enum class MessageKind : int64_t {
  kDelta = 0,      // gradients a replica applied, for the others to apply
  kFinished = 2,   // the sender's train stream ended; `step` = sync steps it contributed to
  kConverged = 3,  // the sender found convergence
  kSync = 4,       // sync mode: the sender's gradient for step `step`, summed over `samples`
};

struct Message {
  MessageKind kind = MessageKind::kDelta;
  int64_t sender = 0;
  int64_t version = 0;  // delta: the sender's version when it computed the first gradient
  int64_t steps = 0;    // gradients in the delta
  int64_t samples = 0;
  double loss_sum = 0, acc_sum = 0;
  int64_t step = 0;
  // One entry per parameter: undefined (no gradient), dense, or sparse COO.
  std::vector<at::Tensor> grads;
  dataflow::BatchPtr keep_alive;
};

// Encodes `m`; `shapes` are the parameters' shapes. Dense float16 when `fp16`.
dataflow::Batch encode_message(const Message& m, bool fp16);

// Decodes a message; `shapes` give the parameters' shapes. Throws DataError for a message that
// does not fit the network (another network, or corrupt).
Message decode_message(const dataflow::BatchPtr& batch, const std::vector<std::vector<int64_t>>& shapes);

// A column viewing a contiguous tensor's memory (kept alive by the column).
dataflow::Column tensor_column(const std::string& name, const at::Tensor& t, std::vector<int64_t> record_shape,
                               int64_t rows = 1);

// A tensor viewing a column's memory; shape [rows] + record_shape.
at::Tensor column_tensor(const dataflow::Column& c);

}  // namespace tensair::model
