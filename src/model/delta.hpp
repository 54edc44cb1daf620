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
// the message is alive. Messages are host memory whatever the replicas' devices: a tensor on
// a GPU is copied to the host when it is encoded (into a HostStaging buffer when given), and
// decoded tensors are CPU tensors that the receiver moves to its own device.
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

// Host copies of device tensors, for encoding. Each slot keeps one buffer (pinned memory, so
// that the device-to-host copy runs at full speed), reused for the next tensor of its slot
// once no encoded message holds it any more; while one does (a message in flight or queued
// for credit), the slot gets a new buffer. Not thread-safe: one per Replication.
class HostStaging {
 public:
  // `t` itself when it is on the CPU (no copy); else a host copy of it, complete on return,
  // in slot `slot`'s buffer.
  at::Tensor to_host(const at::Tensor& t, size_t slot);

 private:
  std::vector<at::Tensor> buffers_;
};

// Encodes `m`; `shapes` are the parameters' shapes. Dense float16 when `fp16`. Tensors on a
// device are staged through `staging` (or copied to plain host memory when it is null).
dataflow::Batch encode_message(const Message& m, bool fp16, HostStaging* staging = nullptr);

// Decodes a message; `shapes` give the parameters' shapes. Throws DataError for a message that
// does not fit the network (another network, or corrupt).
Message decode_message(const dataflow::BatchPtr& batch, const std::vector<std::vector<int64_t>>& shapes);

// A column viewing a contiguous tensor's memory (kept alive by the column); a tensor on a
// device is copied to the host first.
dataflow::Column tensor_column(const std::string& name, const at::Tensor& t, std::vector<int64_t> record_shape,
                               int64_t rows = 1);

// A tensor viewing a column's memory; shape [rows] + record_shape.
at::Tensor column_tensor(const dataflow::Column& c);

}  // namespace tensair::model
