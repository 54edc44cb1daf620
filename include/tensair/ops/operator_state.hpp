// Building blocks for the checkpointed state of the built-in operators (ops/, io/): a layout
// header, flags and schemas, read back with the same checks StateReader applies to its own
// values, so that a damaged or foreign state is one DataError naming the state, never a crash.
//
// Each operator's state starts with put_layout(name, version): restore() then rejects the
// state of another operator type or of another layout version before reading anything else.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include "tensair/common/file_reader.hpp"
#include "tensair/dataflow/batch.hpp"
#include "tensair/dataflow/state.hpp"

namespace tensair::ops {

// Writes the layout header: the operator type's name and the version of its layout.
void put_layout(dataflow::StateWriter& state, std::string_view name, uint32_t version);
// Reads the header; throws DataError (StateReader::fail) when it is not `name` at `version`.
void expect_layout(dataflow::StateReader& state, std::string_view name, uint32_t version);

// A bool as one byte; get_flag throws DataError for a byte other than 0 or 1.
void put_flag(dataflow::StateWriter& state, bool flag);
bool get_flag(dataflow::StateReader& state);

// Column names, dtypes and record shapes; get_schema checks the dtypes and dimensions.
void put_schema(dataflow::StateWriter& state, const dataflow::Schema& schema);
dataflow::Schema get_schema(dataflow::StateReader& state);

// A source's place in a file: whether the reader is open (`file` not null) and its position()
// (the uncompressed bytes consumed, i.e. just after the last record read).
void put_reader(dataflow::StateWriter& state, const FileReader* file);
// Reads what put_reader wrote. With `reopen`, opens `path` at the saved position
// (FileReader::seek; IoError naming the file when it is now shorter) and returns it, or null
// when no reader was open; without, returns null (the source opens the file when its next
// pass starts).
std::unique_ptr<FileReader> get_reader(dataflow::StateReader& state,
                                       const std::filesystem::path& path, bool reopen);

}  // namespace tensair::ops
