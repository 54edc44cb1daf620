// Checkpoint folders on disk: naming, manifests, durable writes, verification, pruning.
//
// A job's checkpoints live under one folder (`[checkpoint] dir`, default OUT/checkpoints), one
// sub-folder per checkpoint:
//
//   ckpt-000012/
//     rank-0.state    the snapshots of every operator instance on rank 0 (written by rank 0)
//     rank-1.state    ... one file per rank
//     MANIFEST.json   written last, by rank 0, once every rank's file is durable
//
// Every file is written to a temporary name, fsynced, renamed into place, and its folder
// fsynced, so a crash leaves either the whole file or none. A checkpoint is complete only when
// its manifest exists; the manifest lists the job, the rank count, the operators and, for each
// file, its size and CRC-32. A folder without a manifest (a checkpoint cut short) is ignored,
// and a file whose size or checksum differs from the manifest makes that checkpoint unusable.
// See docs/fault-tolerance.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tensair::dataflow {

struct CheckpointOptions {
  bool enabled = false;       // take checkpoints (a job file's [checkpoint] table turns this on)
  double every_s = 0;         // one every this many seconds (0: not by time)
  int64_t every_records = 0;  // about one every this many records read by a source (0: not)
  std::filesystem::path dir;  // empty: OUT/checkpoints
  int keep = 3;               // complete checkpoints kept; older ones are deleted
};

struct CheckpointFileEntry {
  std::string name;  // file name inside the checkpoint folder
  int rank = 0;
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};

struct CheckpointOperatorEntry {
  std::string name;
  std::string type;
  int instances = 0;
};

struct CheckpointManifest {
  int format = 1;
  std::string job;
  uint64_t id = 0;
  int ranks = 0;
  std::string reason;     // "interval", "records" or "stop"
  double created = 0;     // seconds since the Unix epoch
  double duration_s = 0;  // from the trigger to the manifest
  std::vector<CheckpointOperatorEntry> operators;
  std::vector<CheckpointFileEntry> files;

  nlohmann::json to_json() const;
  static CheckpointManifest from_json(const nlohmann::json& j);  // throws DataError
};

inline constexpr const char* kManifestName = "MANIFEST.json";

// "ckpt-000012", and back (nullopt for other names).
std::string checkpoint_folder_name(uint64_t id);
std::optional<uint64_t> parse_checkpoint_folder_name(std::string_view name);

// The checkpoint folders under `dir` whose manifest exists, newest (highest id) first. A
// missing `dir` gives an empty list.
std::vector<std::pair<uint64_t, std::filesystem::path>> list_checkpoints(
    const std::filesystem::path& dir);
// The highest id of any checkpoint folder under `dir`, complete or not (0: none).
uint64_t highest_checkpoint_id(const std::filesystem::path& dir);

// Reads a checkpoint folder's manifest. Throws DataError naming the file when it is missing,
// unreadable or not a manifest.
CheckpointManifest read_manifest(const std::filesystem::path& folder);

// Checks one file of a checkpoint against its manifest entry: "" when it is whole, else the
// reason ("rank-1.state: 1024 bytes, the manifest says 4096").
std::string verify_checkpoint_file(const std::filesystem::path& folder,
                                   const CheckpointFileEntry& file);

// Writes `data` to `path` durably: a temporary file in the same folder, fsync, rename, fsync
// of the folder. Throws IoError naming the path (a full disk, a read-only folder).
void write_file_durably(const std::filesystem::path& path, std::string_view data);

uint32_t checksum(std::string_view data);  // CRC-32 (zlib)

// Deletes checkpoint folders under `dir` so that the `keep` newest complete ones remain, and
// incomplete folders older than the newest complete one. Returns the ids deleted. Errors are
// ignored (another rank may be deleting the same folder).
std::vector<uint64_t> prune_checkpoints(const std::filesystem::path& dir, int keep);

}  // namespace tensair::dataflow
