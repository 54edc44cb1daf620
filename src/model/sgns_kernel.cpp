#include "model/sgns_kernel.hpp"

#include <algorithm>
#include <cmath>

#include "tensair/common/error.hpp"

namespace tensair::model {
namespace {

// The loss of a score s of a true context (label 1) is -log σ(s) = softplus(-s), of a
// negative (label 0) -log σ(-s) = softplus(s); with e = exp(-|s|), which cannot overflow,
// softplus(±s) = max(±s, 0) + log(1 + e) and σ(s) = 1 / (1 + e) for s >= 0, e / (1 + e) below.
// A row's log terms are summed as the log of the product of its (1 + e), each in [1, 2]: one
// log per row instead of one per score.
struct Term {
  float grad;       // d/ds of the batch's mean loss
  float linear;     // max(±s, 0)
  float one_plus_e;  // 1 + e
};
inline __attribute__((always_inline)) Term term(float s, bool positive, float inv_n) {
  const float e = std::exp(-std::fabs(s));
  const float sigma = (s >= 0 ? 1.0f : e) / (1.0f + e);
  return {(sigma - (positive ? 1.0f : 0.0f)) * inv_n, std::max(positive ? -s : s, 0.0f),
          1.0f + e};
}

// word2vec.c's inner loop over the batch, accumulating gradient rows instead of updating the
// weights (so that the result is the gradient at the batch's starting weights, as autograd's).
// Built for several instruction sets; the loader picks the best the CPU has (GCC
// target_clones), so a portable binary still runs AVX2/AVX-512 loops.
__attribute__((target_clones("default", "arch=haswell", "arch=skylake-avx512")))
void accumulate(const float* __restrict win, const float* __restrict wout,
                const int64_t* target, const int64_t* context, const int64_t* negatives,
                int64_t n, int64_t k, int64_t dim, const int32_t* in_slot,
                const int32_t* out_slot, float* __restrict gin, float* __restrict gout,
                double* loss_sum, int64_t* hits) {
  const float inv_n = 1.0f / static_cast<float>(n);
  double loss = 0;
  int64_t beaten = 0;
  for (int64_t b = 0; b < n; ++b) {
    const float* h = win + target[b] * dim;
    float* gh = gin + static_cast<int64_t>(in_slot[target[b]]) * dim;
    float pos = 0;
    bool above_all = true;
    double linear = 0, product = 1;
    for (int64_t j = 0; j <= k; ++j) {
      const int64_t id = j == 0 ? context[b] : negatives[b * k + j - 1];
      const float* w = wout + id * dim;
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t d = 0; d < dim; ++d) s += h[d] * w[d];
      const Term t = term(s, j == 0, inv_n);
      linear += t.linear;
      product *= static_cast<double>(t.one_plus_e);
      if (j == 0) {
        pos = s;
      } else if (!(pos > s)) {
        above_all = false;
      }
      float* go = gout + static_cast<int64_t>(out_slot[id]) * dim;
      const float g = t.grad;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) {
        gh[d] += g * w[d];
        go[d] += g * h[d];
      }
    }
    loss += linear + std::log(product);
    beaten += above_all ? 1 : 0;
  }
  *loss_sum = loss;
  *hits = beaten;
}

}  // namespace

void SgnsKernel::Rows::touch(int64_t id) {
  int32_t& s = slot[static_cast<size_t>(id)];
  if (s >= 0) return;
  s = 0;  // marked; numbered in assign()
  ids.push_back(id);
}

void SgnsKernel::Rows::assign() {
  // Ascending ids: by a scan of the marks when the batch touches a good part of the table
  // (a scan of 20,000 marks costs less than sorting 6,000 ids), else by sorting.
  if (slot.size() <= 32 * ids.size()) {
    size_t next = 0;
    for (size_t id = 0; id < slot.size(); ++id) {
      if (slot[id] >= 0) ids[next++] = static_cast<int64_t>(id);
    }
  } else {
    std::sort(ids.begin(), ids.end());
  }
  for (size_t i = 0; i < ids.size(); ++i) slot[static_cast<size_t>(ids[i])] = static_cast<int32_t>(i);
}

void SgnsKernel::Rows::reset() {
  for (int64_t id : ids) slot[static_cast<size_t>(id)] = -1;
  ids.clear();
}

SgnsKernel::SgnsKernel(int64_t vocab, int64_t dim, std::vector<std::string> names)
    : vocab_(vocab), dim_(dim), names_(std::move(names)) {
  names_.resize(3);
  in_.slot.assign(static_cast<size_t>(vocab), -1);
  out_.slot.assign(static_cast<size_t>(vocab), -1);
}

void SgnsKernel::touch(Rows& rows, const int64_t* ids, int64_t count, int64_t per_row,
                       int column) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id >= vocab_) {
      in_.reset();
      out_.reset();
      throw ModelError("column \"" + names_[static_cast<size_t>(column)] + "\" row " +
                       std::to_string(i / per_row) + ": word id " + std::to_string(id) +
                       " is outside 0.." + std::to_string(vocab_ - 1) + " (vocab = " +
                       std::to_string(vocab_) + ")");
    }
    rows.touch(id);
  }
}

at::Tensor SgnsKernel::sparse(const Rows& rows, const at::Tensor& values) const {
  const int64_t m = static_cast<int64_t>(rows.ids.size());
  at::Tensor indices = at::empty({1, m}, at::kLong);
  std::copy(rows.ids.begin(), rows.ids.end(), indices.data_ptr<int64_t>());
  at::Tensor t = at::_sparse_coo_tensor_unsafe(indices, values, {vocab_, dim_});
  return t._coalesced_(true);  // ids unique and ascending
}

SgnsGradient SgnsKernel::gradient(const at::Tensor& in_embed, const at::Tensor& out_embed,
                                  const int64_t* target, const int64_t* context,
                                  const int64_t* negatives, int64_t n, int64_t k) {
  if (!in_embed.is_contiguous() || !out_embed.is_contiguous() ||
      in_embed.scalar_type() != at::kFloat || out_embed.scalar_type() != at::kFloat ||
      in_embed.device().type() != at::kCPU || out_embed.device().type() != at::kCPU)
    throw ModelError("the fused kernel needs float32 contiguous embeddings");
  touch(in_, target, n, 1, 0);
  touch(out_, context, n, 1, 1);
  touch(out_, negatives, n * k, std::max<int64_t>(k, 1), 2);
  in_.assign();
  out_.assign();
  at::Tensor gin = at::zeros({static_cast<int64_t>(in_.ids.size()), dim_}, at::kFloat);
  at::Tensor gout = at::zeros({static_cast<int64_t>(out_.ids.size()), dim_}, at::kFloat);
  SgnsGradient g;
  if (n > 0) {
    double loss = 0;
    int64_t hits = 0;
    accumulate(in_embed.data_ptr<float>(), out_embed.data_ptr<float>(), target, context,
               negatives, n, k, dim_, in_.slot.data(), out_.slot.data(), gin.data_ptr<float>(),
               gout.data_ptr<float>(), &loss, &hits);
    g.loss = loss / static_cast<double>(n);
    g.accuracy = static_cast<double>(hits) / static_cast<double>(n);
  } else {
    g.loss = g.accuracy = std::nan("");
  }
  g.in_grad = sparse(in_, gin);
  g.out_grad = sparse(out_, gout);
  in_.reset();
  out_.reset();
  return g;
}

}  // namespace tensair::model
