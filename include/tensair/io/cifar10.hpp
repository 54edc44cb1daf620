// cifar10_source: the CIFAR-10 images as a stream, read from the official binary format.
//
// Input: one or more files of 3,073-byte records (1 label byte 0..9, then the 1,024 red, 1,024
// green and 1,024 blue bytes of a 32x32 image, each plane row-major), plain, gzip or xz (detected
// from the first bytes). Files are read in the order given, as one stream.
//
// Output port "out", one row per image:
//   id: int64               the record's index in the stream: counted from 0 over all files,
//                           all passes (replay) and, when sharded, all instances
//   image: float32[3,32,32] CHW, the layout torch convolutions take (layout kHWC:
//                           float32[32,32,3], the layout TensorFlow/NHWC models take)
//   label: int64            0..9 (after the active label permutation, see below)
//   concept: int64          only when concept_changes is not empty: the index of the active
//                           concept (0 before the first change, k after the k-th)
// Pixels are x/255, and with `normalize` (x/255 - mean[c]) / std[c] with the CIFAR-10 training
// set's per-channel statistics (kCifar10Mean, kCifar10Std).
//
// Shuffling: shuffle_buffer = 0 keeps the stream order. shuffle_buffer = B > 1 keeps a buffer of
// B records per instance; each emitted record is drawn uniformly from the buffer, which is then
// refilled from the input (as tf.data's shuffle). It is deterministic for a given seed, instance
// and instance count, and records cross pass boundaries. A record's label permutation is chosen
// by its id, so a shuffle buffer blurs a concept change over about B records.
//
// Concept changes (for drift experiments): change k (counting from 1) starts at record id
// `at` and maps every original label l to permutation[l], until the next change. Permutations
// are not cumulative: each applies to the original labels.
//
// Sharding, replay, limit, rate: as every source (tensair/ops/sources.hpp); with several
// instances each takes the records whose id is its instance number modulo the instance count.
// Every instance reads (decompresses) all the files; `cache` keeps them in memory after the
// first pass.
//
// Errors: a missing file is an IoError (exit code 2) when the source is defined; a truncated
// or corrupt gzip/xz stream ends the job with an IoError naming the file. Dead letters (counted,
// written to OUT/dead_letters.jsonl, the stream goes on): a file whose size is not a multiple of
// 3,073 bytes (its complete records are read; the partial tail is one dead letter naming the
// file and the byte offset where it starts) and a label byte above 9. Both consume an id.
//
// Checkpoints: the source saves its place (file, byte position, record), the shuffle buffer's
// records and generator, and the last concept announced, so a restored source emits the same
// records in the same order, with the same concept_change events. The replay cache is not
// saved (it can be 154 MB): a restore reads the first pass again up to where the checkpoint
// stood, and a fingerprint check makes input files that changed since then a DataError.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "tensair/dataflow/operator.hpp"
#include "tensair/ops/sources.hpp"

namespace tensair::io {

inline constexpr int64_t kCifar10RecordBytes = 3073;
inline constexpr int64_t kCifar10Classes = 10;
// Per-channel (R, G, B) mean and standard deviation of the 50,000 training images, x/255.
inline constexpr std::array<float, 3> kCifar10Mean = {0.4914f, 0.4822f, 0.4465f};
inline constexpr std::array<float, 3> kCifar10Std = {0.2470f, 0.2435f, 0.2616f};

struct ConceptChange {
  int64_t at = 0;                      // first record id of the new concept
  std::array<int64_t, 10> permutation;  // original label -> emitted label
};

struct Cifar10Options {
  enum class Layout { kCHW, kHWC };

  std::vector<std::filesystem::path> paths;  // empty: cifar10_train_files()
  Layout layout = Layout::kCHW;
  bool normalize = true;
  int64_t shuffle_buffer = 0;
  uint64_t seed = 1;
  std::vector<ConceptChange> concept_changes;  // `at` strictly increasing
  // With replay != 1: keep the raw records of the first pass in memory (3,073 bytes per record
  // per instance, 154 MB for the 50,000 training images) and replay later passes from there,
  // instead of decompressing again (xz decodes at only about 20 MB/s).
  bool cache = true;
  ops::SourceOptions source;
};

// data_dir()/cifar10/data_batch_{1..5}.bin.{gz,xz} (whichever of .bin, .bin.gz, .bin.xz exists).
std::vector<std::filesystem::path> cifar10_train_files();
// data_dir()/cifar10/test_batch.bin(.gz/.xz)
std::vector<std::filesystem::path> cifar10_test_files();

// Throws ConfigError for a bad layout name, a permutation that is not one of 0..9, or change
// points that do not increase; IoError (exit code 2) for a missing file.
std::shared_ptr<const dataflow::OperatorDef> cifar10_source(Cifar10Options options);

// Checks one concept change; throws ConfigError("permutation ...") saying what is wrong.
void check_concept_change(const ConceptChange& change);

}  // namespace tensair::io
