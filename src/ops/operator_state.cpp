#include "tensair/ops/operator_state.hpp"

#include <string>

namespace tensair::ops {

using dataflow::StateReader;
using dataflow::StateWriter;

void put_layout(StateWriter& state, std::string_view name, uint32_t version) {
  state.put_string(name);
  state.put<uint32_t>(version);
}

void expect_layout(StateReader& state, std::string_view name, uint32_t version) {
  const std::string got = state.get_string();
  if (got != name) {
    state.fail("holds the state of a \"" + got.substr(0, 64) + "\", not of a \"" +
               std::string(name) + "\"");
  }
  const auto v = state.get<uint32_t>();
  if (v != version) {
    state.fail("holds " + std::string(name) + " state of layout version " + std::to_string(v) +
               ", this build reads version " + std::to_string(version));
  }
}

void put_flag(StateWriter& state, bool flag) { state.put<uint8_t>(flag ? 1 : 0); }

bool get_flag(StateReader& state) {
  const auto b = state.get<uint8_t>();
  if (b > 1) state.fail("holds " + std::to_string(b) + " where a flag (0 or 1) was expected");
  return b == 1;
}

void put_schema(StateWriter& state, const dataflow::Schema& schema) {
  state.put<uint64_t>(schema.size());
  for (const dataflow::ColumnSpec& c : schema) {
    state.put_string(c.name);
    state.put<uint8_t>(static_cast<uint8_t>(c.dtype));
    state.put_vector(c.record_shape);
    put_flag(state, c.any_shape);
  }
}

dataflow::Schema get_schema(StateReader& state) {
  // Each column takes at least its name's length, the dtype, the shape's length and the flag.
  const uint64_t n = state.get_count(8 + 1 + 8 + 1);
  dataflow::Schema schema;
  for (uint64_t i = 0; i < n; ++i) {
    dataflow::ColumnSpec c;
    c.name = state.get_string();
    const auto dtype = state.get<uint8_t>();
    if (dtype < static_cast<uint8_t>(dataflow::DType::kFloat32) ||
        dtype > static_cast<uint8_t>(dataflow::DType::kString)) {
      state.fail("column \"" + c.name + "\" has an unknown dtype " + std::to_string(dtype));
    }
    c.dtype = static_cast<dataflow::DType>(dtype);
    c.record_shape = state.get_vector<int64_t>();
    for (int64_t d : c.record_shape) {
      if (d < -1) state.fail("column \"" + c.name + "\" has a dimension " + std::to_string(d));
    }
    c.any_shape = get_flag(state);
    schema.push_back(std::move(c));
  }
  return schema;
}

void put_reader(StateWriter& state, const FileReader* file) {
  put_flag(state, file != nullptr);
  state.put<uint64_t>(file ? file->position() : 0);
}

std::unique_ptr<FileReader> get_reader(StateReader& state, const std::filesystem::path& path,
                                       bool reopen) {
  const bool open = get_flag(state);
  const auto position = state.get<uint64_t>();
  if (!reopen || !open) return nullptr;
  auto file = std::make_unique<FileReader>(path);
  file->seek(position);
  return file;
}

}  // namespace tensair::ops
