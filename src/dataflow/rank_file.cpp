#include "dataflow/rank_file.hpp"

#include <cstring>

#include "tensair/common/error.hpp"
#include "tensair/dataflow/state.hpp"

namespace tensair::dataflow::detail {

namespace {

constexpr char kRankFileMagic[8] = {'T', 'N', 'S', 'R', 'C', 'K', 'P', 'T'};
constexpr uint32_t kRankFileFormat = 1;

}  // namespace

std::string rank_file_name(int rank) { return "rank-" + std::to_string(rank) + ".state"; }

std::string encode_rank_file(int rank, int world, uint64_t id,
                             const std::vector<std::pair<int32_t, const std::string*>>& entries) {
  StateWriter w;
  w.put<uint32_t>(kRankFileFormat);
  w.put<uint32_t>(static_cast<uint32_t>(rank));
  w.put<uint32_t>(static_cast<uint32_t>(world));
  w.put<uint64_t>(id);
  w.put<uint32_t>(static_cast<uint32_t>(entries.size()));
  for (const auto& [instance, state] : entries) {
    w.put<int32_t>(instance);
    w.put<uint8_t>(state ? 0 : 1);
    w.put_string(state ? *state : std::string());
  }
  return std::string(kRankFileMagic, sizeof kRankFileMagic) + w.take();
}

std::vector<RankFileEntry> parse_rank_file(std::string_view data, const std::string& what,
                                           int rank, int world, uint64_t id) {
  if (data.size() < sizeof kRankFileMagic ||
      std::memcmp(data.data(), kRankFileMagic, sizeof kRankFileMagic) != 0) {
    throw DataError(what + " is not a TensAIR rank file");
  }
  StateReader r(data.substr(sizeof kRankFileMagic), what);
  if (r.get<uint32_t>() != kRankFileFormat) r.fail("is of another format version");
  if (r.get<uint32_t>() != static_cast<uint32_t>(rank)) r.fail("belongs to another rank");
  if (r.get<uint32_t>() != static_cast<uint32_t>(world))
    r.fail("was written by a job of another size");
  if (r.get<uint64_t>() != id) r.fail("belongs to another checkpoint");
  // Each entry takes at least 13 bytes (id, flag, length): a count beyond that is refused
  // before anything is reserved for it.
  const uint32_t n = r.get<uint32_t>();
  if (n > r.remaining() / 13) r.fail("announces " + std::to_string(n) + " entries");
  std::vector<RankFileEntry> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    RankFileEntry e;
    e.instance = r.get<int32_t>();
    e.finished = r.get<uint8_t>() != 0;
    e.state = r.get_bytes();
    out.push_back(e);
  }
  r.expect_end();
  return out;
}

}  // namespace tensair::dataflow::detail
