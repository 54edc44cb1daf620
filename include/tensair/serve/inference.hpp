// What the HTTP endpoint (http_server.hpp) asks of a served model, in plain C++ types: no
// LibTorch here, so the server and its tests build without it. The model layer implements
// InferenceBackend over its live replica (src/model/live_replica.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tensair::serve {

// The KServe v2 tensor datatypes the endpoint accepts.
enum class DataType {
  kFp32,   // "FP32"
  kFp64,   // "FP64"
  kInt32,  // "INT32"
  kInt64,  // "INT64"
};
const char* name_of(DataType t);
std::optional<DataType> parse_datatype(const std::string& name);  // nullopt: not one of these
inline bool is_floating(DataType t) { return t == DataType::kFp32 || t == DataType::kFp64; }

// One named tensor of a request or response, row-major. Floating values live in `reals`,
// integer ones in `integers` (exact for INT64); the other vector is empty.
struct HostTensor {
  std::string name;
  DataType datatype = DataType::kFp32;
  std::vector<int64_t> shape;  // the first dimension is the batch (records)
  std::vector<double> reals;
  std::vector<int64_t> integers;
  int64_t elements() const;  // product of shape (1 for a scalar)
};

// A tensor a model takes or returns: -1 for a dimension of any size (always the first).
struct TensorSpec {
  std::string name;
  DataType datatype = DataType::kFp32;
  std::vector<int64_t> shape;
};

struct ModelMetadata {
  std::string name;
  std::string platform = "tensair_libtorch";
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

// The answer to one inference request. status 200 with outputs; otherwise a 4xx/5xx status and
// a one-line error meant for the client (never an exception's raw text).
struct InferOutcome {
  int status = 200;
  std::string error;
  std::vector<HostTensor> outputs;
  int64_t version = 0;  // the model version that computed the outputs
  int64_t step = 0;     // the replica's own training steps at that version
};

// A served model. Every member may be called from any HTTP thread, concurrently.
class InferenceBackend {
 public:
  virtual ~InferenceBackend() = default;
  virtual ModelMetadata metadata() const = 0;
  // True once a copy of the weights is published (the first one is published at open()).
  virtual bool ready() const = 0;
  // The version now served (for the metadata's "versions").
  virtual int64_t version() const = 0;
  // Runs the model on `inputs` (already checked against the request's own shape/datatype, not
  // against the model's). Blocks until done; never throws.
  virtual InferOutcome infer(std::vector<HostTensor> inputs) = 0;
};

}  // namespace tensair::serve
