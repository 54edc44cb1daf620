// A rank file: one rank's part of a job-wide checkpoint (ckpt-NNNNNN/rank-R.state), apart from
// the engine so that its reader can be tested and fuzzed on bytes alone.
//
//   "TNSRCKPT", u32 format, u32 rank, u32 world, u64 checkpoint id, u32 entries, and per local
//   instance: i32 global instance id, u8 finished, bytes (encode_instance_entry, empty when
//   finished).
//
// The reader checks every field against what the resuming rank expects and every length
// against the bytes it has (StateReader), so a damaged or foreign file is one DataError naming
// it, never a crash; entries are views into the data, decoded later per instance.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tensair::dataflow::detail {

std::string rank_file_name(int rank);  // "rank-3.state"

struct RankFileEntry {
  int32_t instance = 0;     // global instance id
  bool finished = false;    // finished before the checkpoint: no state
  std::string_view state;   // encode_instance_entry's bytes (a view into the file's data)
};

// The file's bytes. `entries` hold views into the strings they were made from.
std::string encode_rank_file(int rank, int world, uint64_t id,
                             const std::vector<std::pair<int32_t, const std::string*>>& entries);

// Parses `data` (the file's bytes; `what` names it in messages, e.g. "checkpoint PATH") as the
// rank file of checkpoint `id` for `rank` of a job of `world` ranks. Throws DataError.
std::vector<RankFileEntry> parse_rank_file(std::string_view data, const std::string& what,
                                           int rank, int world, uint64_t id);

}  // namespace tensair::dataflow::detail
