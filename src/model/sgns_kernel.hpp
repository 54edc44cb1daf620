// The fused skip-gram negative-sampling (SGNS) gradient of the built-in `skipgram` network:
// forward, loss and backward of one batch in one pass over the rows it touches, without
// autograd or TorchScript. It computes exactly what the autograd path computes (the network's
// forward in network.cpp and the sgns loss in training.cpp): the gradient of the batch's mean
// loss at the weights the batch starts from, as coalesced sparse rows; the optimizer step, the
// sparse delta exchange, checkpoints and the export are unchanged. Where the autograd path
// spends its time on per-row tensor views, a batched matrix product of 1 x dim matrices and the
// sparse bookkeeping, this is word2vec.c's inner loop (a dot product and two axpy per
// (word, context) pair), vectorised for the CPU it runs on.
//
// Parity with the autograd path: tests/model/sgns_kernel_test.cpp.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tensair::model {

struct SgnsGradient {
  at::Tensor in_grad;   // sparse COO [vocab, dim], coalesced: rows of the targets
  at::Tensor out_grad;  // sparse COO [vocab, dim], coalesced: rows of the contexts, negatives
  double loss = 0;      // mean over the batch of -log σ(pos) - Σ log σ(-neg); NaN for no rows
  double accuracy = 0;  // the fraction of rows whose context scores above all their negatives
};

// One per replica: it keeps its scratch (row maps, gradient rows) from batch to batch.
class SgnsKernel {
 public:
  // `names`: the three input columns (target, context, negatives), for error messages.
  SgnsKernel(int64_t vocab, int64_t dim, std::vector<std::string> names);

  // The gradient for the rows (target[b], context[b], negatives[b*k .. b*k+k-1]), b < n, of
  // the weights in_embed and out_embed (float32 [vocab, dim], contiguous, on the CPU).
  // Throws ModelError naming the column and row when an id is outside 0..vocab-1.
  SgnsGradient gradient(const at::Tensor& in_embed, const at::Tensor& out_embed,
                        const int64_t* target, const int64_t* context, const int64_t* negatives,
                        int64_t n, int64_t k);

 private:
  // Row ids of one side, each with its slot in the gradient rows (in ascending id order, so
  // the sparse result is coalesced as built).
  struct Rows {
    std::vector<int32_t> slot;  // vocab entries, -1 where the batch does not touch the row
    std::vector<int64_t> ids;   // the touched rows, ascending after assign()
    void touch(int64_t id);
    void assign();              // sorts ids and numbers the slots
    void reset();               // slot back to -1 for every touched row
  };
  void touch(Rows& rows, const int64_t* ids, int64_t count, int64_t per_row, int column);
  at::Tensor sparse(const Rows& rows, const at::Tensor& values) const;

  int64_t vocab_, dim_;
  std::vector<std::string> names_;
  Rows in_, out_;
};

}  // namespace tensair::model
