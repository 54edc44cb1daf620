#include "io/source_util.hpp"

namespace tensair::io::detail {

void check_source_options(const ops::SourceOptions& o) {
  if (o.batch_size < 1) throw ConfigError("batch_size must be at least 1, got " + std::to_string(o.batch_size));
  if (o.rate < 0) throw ConfigError("rate must not be negative");
  if (o.replay < 0) throw ConfigError("replay must not be negative (0 replays forever)");
  if (o.limit < 0) throw ConfigError("limit must not be negative (0: no limit)");
}

std::string source_options_text(const ops::SourceOptions& o) {
  std::string s = "batch_size=" + std::to_string(o.batch_size);
  if (o.rate > 0) s += " rate=" + std::to_string(static_cast<int64_t>(o.rate)) + "/s";
  s += " replay=" + (o.replay == 0 ? std::string("forever") : std::to_string(o.replay));
  if (o.limit > 0) s += " limit=" + std::to_string(o.limit);
  if (!o.shard) s += " shard=false";
  return s;
}

void require_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw IoError("input file " + path.string() + " does not exist", ExitCode::kConfig);
  }
}

}  // namespace tensair::io::detail
