// The KServe v2 JSON forms the endpoint reads and writes (the "inference request/response JSON
// object" of the KServe v2 / Triton REST protocol), to and from HostTensor.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tensair/serve/inference.hpp"

namespace tensair::serve {

struct InferRequest {
  std::optional<std::string> id;  // echoed in the response
  std::vector<HostTensor> inputs;
  std::vector<std::string> outputs;  // requested output names (empty: all)
};

// Parses and checks a request body: valid JSON; "inputs" a non-empty array of objects with a
// unique string "name", "shape" (non-negative integers, at most kMaxRank), a known "datatype"
// and "data" (flat or nested arrays of numbers; integers for INT*) holding exactly
// product(shape) values. On failure returns nullopt with `error` set to a one-line message for
// the client ("input \"x\": shape [2,3] holds 6 values, data has 5").
inline constexpr size_t kMaxRank = 8;
std::optional<InferRequest> parse_infer_request(std::string_view body, std::string& error);

// {"model_name", "model_version", "id"?, "parameters": {"step"}, "outputs": [...]} with flat
// data; only the `requested` outputs when that is not empty.
nlohmann::json infer_response(const std::string& model, const std::optional<std::string>& id,
                              const InferOutcome& outcome,
                              const std::vector<std::string>& requested);

// {"name", "versions": ["V"], "platform", "inputs": [...], "outputs": [...]}.
nlohmann::json metadata_json(const ModelMetadata& m, int64_t version);

}  // namespace tensair::serve
