#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

#include "tensair/common/error.hpp"
#include "tensair/dataflow/checkpoint.hpp"

namespace tensair::dataflow {

namespace fs = std::filesystem;
using json = nlohmann::json;

json CheckpointManifest::to_json() const {
  json ops = json::array();
  for (const auto& o : operators)
    ops.push_back({{"name", o.name}, {"type", o.type}, {"instances", o.instances}});
  json fl = json::array();
  for (const auto& f : files)
    fl.push_back({{"name", f.name}, {"rank", f.rank}, {"bytes", f.bytes}, {"crc32", f.crc32}});
  return {{"format", format},         {"job", job},       {"checkpoint", id},
          {"ranks", ranks},           {"reason", reason}, {"created", created},
          {"duration_s", duration_s}, {"operators", ops}, {"files", fl}};
}

namespace {

// j[key] as an integer of type T. nlohmann's get<T>() casts a float or an out-of-range integer
// without a check (3.7e22 into uint32_t is undefined behaviour), so the type and range are
// checked here first.
template <class T>
T integer_field(const json& j, const char* key) {
  const json& v = j.at(key);
  const bool fits =
      v.is_number_unsigned()  ? v.get<uint64_t>() <= static_cast<uint64_t>(
                                                         std::numeric_limits<T>::max())
      : v.is_number_integer() ? std::is_signed_v<T> &&
                                    v.get<int64_t>() >= std::numeric_limits<T>::min() &&
                                    v.get<int64_t>() <= std::numeric_limits<T>::max()
                              : false;
  if (!fits) {
    throw DataError("manifest field \"" + std::string(key) + "\" is " + v.dump().substr(0, 40) +
                    ", not an integer in " + std::to_string(std::numeric_limits<T>::min()) +
                    ".." + std::to_string(std::numeric_limits<T>::max()));
  }
  return v.get<T>();
}

}  // namespace

CheckpointManifest CheckpointManifest::from_json(const json& j) {
  CheckpointManifest m;
  try {
    m.format = integer_field<int>(j, "format");
    if (m.format != 1)
      throw DataError("manifest format " + std::to_string(m.format) + " is not known (1 is)");
    m.job = j.at("job").get<std::string>();
    m.id = integer_field<uint64_t>(j, "checkpoint");
    m.ranks = integer_field<int>(j, "ranks");
    m.reason = j.value("reason", "");
    m.created = j.value("created", 0.0);
    m.duration_s = j.value("duration_s", 0.0);
    for (const auto& o : j.at("operators")) {
      m.operators.push_back({o.at("name").get<std::string>(), o.at("type").get<std::string>(),
                             integer_field<int>(o, "instances")});
    }
    for (const auto& f : j.at("files")) {
      m.files.push_back({f.at("name").get<std::string>(), integer_field<int>(f, "rank"),
                         integer_field<uint64_t>(f, "bytes"), integer_field<uint32_t>(f, "crc32")});
      // A manifest lists files of its own folder; any other name (a path elsewhere, /dev/zero)
      // is not a manifest TensAIR wrote.
      const std::string& name = m.files.back().name;
      if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
        throw DataError("manifest lists \"" + name + "\", which is not a file of its folder");
      }
    }
  } catch (const json::exception& e) {
    throw DataError(std::string("not a checkpoint manifest (") + e.what() + ")");
  }
  return m;
}

std::string checkpoint_folder_name(uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt-%06llu", static_cast<unsigned long long>(id));
  return buf;
}

std::optional<uint64_t> parse_checkpoint_folder_name(std::string_view name) {
  if (name.size() < 6 || name.substr(0, 5) != "ckpt-") return std::nullopt;
  uint64_t id = 0;
  for (char c : name.substr(5)) {
    if (c < '0' || c > '9') return std::nullopt;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  return id;
}

namespace {

std::vector<std::pair<uint64_t, fs::path>> folders(const fs::path& dir) {
  std::vector<std::pair<uint64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_directory(ec)) continue;
    if (auto id = parse_checkpoint_folder_name(e.path().filename().string()))
      out.emplace_back(*id, e.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

[[noreturn]] void io_fail(const std::string& what, const fs::path& p) {
  throw IoError("cannot " + what + " " + p.string() + ": " + std::strerror(errno));
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some filesystems do not allow it
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::vector<std::pair<uint64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<uint64_t, fs::path>> out;
  std::error_code ec;
  for (auto& f : folders(dir)) {
    if (fs::exists(f.second / kManifestName, ec)) out.push_back(std::move(f));
  }
  return out;
}

uint64_t highest_checkpoint_id(const fs::path& dir) {
  auto all = folders(dir);
  return all.empty() ? 0 : all.front().first;
}

CheckpointManifest read_manifest(const fs::path& folder) {
  const fs::path p = folder / kManifestName;
  std::ifstream in(p);
  if (!in) throw DataError(p.string() + " is missing or unreadable");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw DataError(p.string() + " is not valid JSON (a damaged manifest)");
  try {
    return CheckpointManifest::from_json(j);
  } catch (const DataError& e) {
    throw DataError(p.string() + ": " + e.what());
  }
}

uint32_t checksum(std::string_view data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(data.data());
  size_t left = data.size();
  while (left > 0) {  // zlib takes uInt lengths
    const uInt n = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = crc32(crc, p, n);
    p += n;
    left -= n;
  }
  return static_cast<uint32_t>(crc);
}

std::string verify_checkpoint_file(const fs::path& folder, const CheckpointFileEntry& file) {
  const fs::path p = folder / file.name;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return file.name + " is missing";
  // The size first: a file of another size is not read (it may be huge).
  const uintmax_t size = fs::file_size(p, ec);
  if (!ec && size != file.bytes) {
    return file.name + " has " + std::to_string(size) + " bytes, the manifest says " +
           std::to_string(file.bytes);
  }
  std::ifstream in(p, std::ios::binary);
  if (!in) return file.name + " is missing";
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() != file.bytes) {
    return file.name + " has " + std::to_string(data.size()) + " bytes, the manifest says " +
           std::to_string(file.bytes);
  }
  if (checksum(data) != file.crc32) return file.name + " fails its checksum (the file is damaged)";
  return "";
}

void write_file_durably(const fs::path& path, std::string_view data) {
  const fs::path dir = path.parent_path();
  std::error_code ec;
  if (!dir.empty()) fs::create_directories(dir, ec);
  const fs::path tmp = path.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_fail("write", tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      errno = saved;
      io_fail("write", tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int saved = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    errno = saved;
    io_fail("sync", tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) io_fail("rename into place", path);
  fsync_dir(dir);
}

std::vector<uint64_t> prune_checkpoints(const fs::path& dir, int keep) {
  std::vector<uint64_t> removed;
  std::error_code ec;
  int complete = 0;
  bool newer_complete = false;
  for (const auto& [id, path] : folders(dir)) {
    const bool has_manifest = fs::exists(path / kManifestName, ec);
    bool drop = false;
    if (has_manifest) {
      drop = ++complete > std::max(1, keep);
      newer_complete = true;
    } else {
      drop = newer_complete;  // cut short, and a newer checkpoint completed since
    }
    if (!drop) continue;
    // The manifest goes first, so a folder half deleted is never taken for a complete one.
    fs::remove(path / kManifestName, ec);
    fs::remove_all(path, ec);
    removed.push_back(id);
  }
  return removed;
}

}  // namespace tensair::dataflow
