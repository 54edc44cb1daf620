// KServe v2 JSON requests and responses (kserve_json.hpp).
#include "serve/kserve_json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>

namespace tensair::serve {

using nlohmann::json;

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Appends the numbers of `data` (nested at most `depth_left` deep) to `t`; false with `error`
// set on a value that is not a number of t's kind, or on deeper nesting than the shape has.
bool flatten(const json& data, size_t depth_left, HostTensor& t, int64_t limit,
             std::string& error) {
  for (const json& v : data) {
    if (v.is_array()) {
      if (depth_left == 0) {
        error = "data is nested deeper than its shape " + shape_text(t.shape);
        return false;
      }
      if (!flatten(v, depth_left - 1, t, limit, error)) return false;
      continue;
    }
    const int64_t have = static_cast<int64_t>(t.reals.size() + t.integers.size());
    if (have >= limit) {
      error = "data has more than the " + std::to_string(limit) + " values of shape " +
              shape_text(t.shape);
      return false;
    }
    if (is_floating(t.datatype)) {
      if (!v.is_number()) {
        error = "data holds " + std::string(v.type_name()) + " values, expected numbers";
        return false;
      }
      t.reals.push_back(v.get<double>());
    } else {
      if (!v.is_number_integer()) {
        error = "data holds a " +
                std::string(v.is_number() ? "non-integer number" : v.type_name()) +
                ", expected integers for " + name_of(t.datatype);
        return false;
      }
      const int64_t x =
          v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX ? INT64_MAX : v.get<int64_t>();
      if (t.datatype == DataType::kInt32 && (x < INT32_MIN || x > INT32_MAX)) {
        error = "value " + std::to_string(x) + " is out of the INT32 range";
        return false;
      }
      t.integers.push_back(x);
    }
  }
  return true;
}

std::optional<HostTensor> parse_tensor(const json& j, size_t index, std::string& error) {
  const std::string where = "inputs[" + std::to_string(index) + "]";
  if (!j.is_object()) {
    error = where + " is not an object";
    return std::nullopt;
  }
  HostTensor t;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty()) {
    error = where + " has no \"name\" string";
    return std::nullopt;
  }
  t.name = name->get<std::string>();
  const std::string what = "input \"" + t.name + "\"";
  auto dt = j.find("datatype");
  if (dt == j.end() || !dt->is_string()) {
    error = what + " has no \"datatype\" string (FP32, FP64, INT32, INT64)";
    return std::nullopt;
  }
  auto parsed = parse_datatype(dt->get<std::string>());
  if (!parsed) {
    error = what + ": datatype \"" + dt->get<std::string>() +
            "\" is not supported (FP32, FP64, INT32, INT64)";
    return std::nullopt;
  }
  t.datatype = *parsed;
  auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array() || shape->empty() || shape->size() > kMaxRank) {
    error = what + " needs \"shape\": an array of 1 to " + std::to_string(kMaxRank) +
            " dimensions, the first the batch";
    return std::nullopt;
  }
  int64_t elements = 1;
  for (const json& d : *shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > (int64_t{1} << 31)) {
      error = what + ": shape holds " + d.dump() + ", expected non-negative integers";
      return std::nullopt;
    }
    t.shape.push_back(d.get<int64_t>());
    if (elements > 0 && t.shape.back() > std::numeric_limits<int64_t>::max() / elements) {
      error = what + ": shape " + shape->dump() + " is too large";
      return std::nullopt;
    }
    elements *= t.shape.back();
  }
  auto data = j.find("data");
  if (data == j.end() || !data->is_array()) {
    error = what + " needs \"data\": an array (flat or nested) of " + std::to_string(elements) +
            " values";
    return std::nullopt;
  }
  std::string why;
  if (!flatten(*data, t.shape.size() - 1, t, elements, why)) {
    error = what + ": " + why;
    return std::nullopt;
  }
  const int64_t have = static_cast<int64_t>(t.reals.size() + t.integers.size());
  if (have != elements) {
    error = what + ": shape " + shape_text(t.shape) + " holds " + std::to_string(elements) +
            " values, data has " + std::to_string(have);
    return std::nullopt;
  }
  return t;
}

json tensor_json(const HostTensor& t) {
  json data = json::array();
  if (is_floating(t.datatype)) {
    for (double v : t.reals) {
      // JSON has no NaN or infinity: they go out as null (the client sees a non-number).
      data.push_back(std::isfinite(v) ? json(v) : json(nullptr));
    }
  } else {
    for (int64_t v : t.integers) data.push_back(v);
  }
  return json{{"name", t.name},
              {"datatype", name_of(t.datatype)},
              {"shape", t.shape},
              {"data", std::move(data)}};
}

json spec_json(const TensorSpec& s) {
  return json{{"name", s.name}, {"datatype", name_of(s.datatype)}, {"shape", s.shape}};
}

}  // namespace

const char* name_of(DataType t) {
  switch (t) {
    case DataType::kFp32:
      return "FP32";
    case DataType::kFp64:
      return "FP64";
    case DataType::kInt32:
      return "INT32";
    case DataType::kInt64:
      return "INT64";
  }
  return "?";
}

std::optional<DataType> parse_datatype(const std::string& name) {
  for (DataType t : {DataType::kFp32, DataType::kFp64, DataType::kInt32, DataType::kInt64}) {
    if (name == name_of(t)) return t;
  }
  return std::nullopt;
}

int64_t HostTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::optional<InferRequest> parse_infer_request(std::string_view body, std::string& error) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    error = "the request body is not valid JSON";
    return std::nullopt;
  }
  if (!j.is_object()) {
    error = "the request body must be a JSON object with \"inputs\"";
    return std::nullopt;
  }
  InferRequest r;
  if (auto id = j.find("id"); id != j.end()) {
    if (!id->is_string()) {
      error = "\"id\" must be a string";
      return std::nullopt;
    }
    r.id = id->get<std::string>();
  }
  auto inputs = j.find("inputs");
  if (inputs == j.end() || !inputs->is_array() || inputs->empty()) {
    error = "the request needs \"inputs\": a non-empty array of tensors";
    return std::nullopt;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < inputs->size(); ++i) {
    auto t = parse_tensor((*inputs)[i], i, error);
    if (!t) return std::nullopt;
    if (!names.insert(t->name).second) {
      error = "input \"" + t->name + "\" is given twice";
      return std::nullopt;
    }
    r.inputs.push_back(std::move(*t));
  }
  if (auto outputs = j.find("outputs"); outputs != j.end()) {
    if (!outputs->is_array()) {
      error = "\"outputs\" must be an array of {\"name\": ...}";
      return std::nullopt;
    }
    for (const json& o : *outputs) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
        error = "\"outputs\" must be an array of {\"name\": ...}";
        return std::nullopt;
      }
      r.outputs.push_back(o["name"].get<std::string>());
    }
  }
  return r;
}

json infer_response(const std::string& model, const std::optional<std::string>& id,
                    const InferOutcome& outcome, const std::vector<std::string>& requested) {
  json outputs = json::array();
  for (const HostTensor& t : outcome.outputs) {
    if (!requested.empty() &&
        std::find(requested.begin(), requested.end(), t.name) == requested.end()) {
      continue;
    }
    outputs.push_back(tensor_json(t));
  }
  json r = {{"model_name", model},
            {"model_version", std::to_string(outcome.version)},
            {"parameters", {{"step", outcome.step}}},
            {"outputs", std::move(outputs)}};
  if (id) r["id"] = *id;
  return r;
}

json metadata_json(const ModelMetadata& m, int64_t version) {
  json inputs = json::array(), outputs = json::array();
  for (const auto& s : m.inputs) inputs.push_back(spec_json(s));
  for (const auto& s : m.outputs) outputs.push_back(spec_json(s));
  return json{{"name", m.name},
              {"versions", {std::to_string(version)}},
              {"platform", m.platform},
              {"inputs", std::move(inputs)},
              {"outputs", std::move(outputs)}};
}

}  // namespace tensair::serve
