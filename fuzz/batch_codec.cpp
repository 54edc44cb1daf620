// Fuzz target: the record-batch wire codec (decode_batch) on any payload. A payload it accepts
// must encode again and decode to the same rows, columns and bytes (round trip).
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "tensair/dataflow/batch_codec.hpp"

namespace tensair::fuzz {

std::vector<std::string> seeds() {
  using namespace dataflow;
  std::vector<int64_t> x = {1, -2, 3};
  std::vector<double> d = {0.25, 1e300, -0.0};
  std::vector<uint8_t> u(3 * 4, 7);
  std::string chars = "onetwothree";
  std::vector<int64_t> offs = {0, 3, 6, 11};
  Column cx("x", DType::kInt64, {}, 3, Bytes::copy(x.data(), 24));
  Column cd("d", DType::kFloat64, {}, 3, Bytes::copy(d.data(), 24));
  Column cu("u", DType::kUInt8, {2, 2}, 3, Bytes::copy(u.data(), u.size()));
  Column cs("s", DType::kString, {}, 3, Bytes::copy(chars.data(), chars.size()),
            Bytes::copy(offs.data(), 32));
  return {payload_of(Batch({cx, cd, cu, cs})), payload_of(Batch({cs.slice(1, 2)})),
          payload_of(Batch({cx.slice(0, 0)})), payload_of(Batch())};
}

}  // namespace tensair::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tensair;
  auto buf = fuzz::aligned_copy(data, size);
  dataflow::Batch batch;
  try {
    batch = dataflow::decode_batch(buf, buf.get(), size);
  } catch (const Error&) {
    return 0;
  }
  // Accepted: every value is readable, and it survives a round trip unchanged.
  const std::string again = fuzz::payload_of(batch);
  auto buf2 = fuzz::aligned_copy(reinterpret_cast<const uint8_t*>(again.data()), again.size());
  dataflow::Batch back = dataflow::decode_batch(buf2, buf2.get(), again.size());
  if (back.rows() != batch.rows() || back.num_columns() != batch.num_columns()) std::abort();
  for (size_t i = 0; i < batch.num_columns(); ++i) {
    const dataflow::Column& a = batch.columns()[i];
    const dataflow::Column& b = back.columns()[i];
    if (a.name() != b.name() || a.dtype() != b.dtype() || a.shape() != b.shape()) std::abort();
    if (a.dtype() == dataflow::DType::kString) {
      for (int64_t r = 0; r < a.rows(); ++r) {
        if (a.str(r) != b.str(r)) std::abort();
      }
    } else if (a.value_bytes().size != b.value_bytes().size ||
               (a.value_bytes().size &&
                std::memcmp(a.value_bytes().data, b.value_bytes().data, a.value_bytes().size))) {
      std::abort();
    }
  }
  return 0;
}
