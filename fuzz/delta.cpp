// Fuzz target: a model replica's incoming exchange message — the frame payload decoded as a
// record batch, then as a model message (src/model/delta.hpp) for a fixed network of a dense
// matrix, a bias, a scalar and an embedding table. An accepted delta must hold tensors of the
// parameters' shapes, and must apply: it is added to the parameters as a replica would.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "model/delta.hpp"
#include "tensair/dataflow/batch_codec.hpp"

namespace tensair::fuzz {

namespace {

const std::vector<std::vector<int64_t>>& shapes() {
  static const std::vector<std::vector<int64_t>> s = {{4, 3}, {3}, {}, {50, 8}};
  return s;
}


}  // namespace

std::vector<std::string> seeds() {
  using model::Message;
  using model::MessageKind;
  torch::manual_seed(1);
  Message m;
  m.kind = MessageKind::kDelta;
  m.sender = 1;
  m.version = 7;
  m.steps = 2;
  m.samples = 64;
  m.loss_sum = 1.5;
  m.grads = {torch::randn({4, 3}), torch::randn({3}), torch::randn({}),
             torch::sparse_coo_tensor(torch::tensor({{3, 17}}, torch::kLong),
                                      torch::randn({2, 8}), {50, 8})};
  std::vector<std::string> out = {payload_of(model::encode_message(m, false)),
                                  payload_of(model::encode_message(m, true))};
  m.grads = {torch::randn({4, 3}), at::Tensor(), at::Tensor(), at::Tensor()};
  out.push_back(payload_of(model::encode_message(m, false)));
  Message done;
  done.kind = MessageKind::kFinished;
  done.step = 12;
  done.grads.resize(4);
  out.push_back(payload_of(model::encode_message(done, false)));
  return out;
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensair;
  auto buf = fuzz::aligned_copy(data, size);
  model::Message m;
  try {
    auto batch = dataflow::share(dataflow::decode_batch(buf, buf.get(), size));
    m = model::decode_message(batch, fuzz::shapes());
  } catch (const Error&) {
    return 0;
  }
  if (m.grads.size() != fuzz::shapes().size() && !m.grads.empty()) std::abort();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < m.grads.size(); ++i) {
    if (!m.grads[i].defined()) continue;
    if (m.grads[i].sizes().vec() != fuzz::shapes()[i]) std::abort();
    at::Tensor param = torch::zeros(fuzz::shapes()[i]);
    param.add_(m.grads[i]);  // what a replica does with it
  }
  return 0;
}
