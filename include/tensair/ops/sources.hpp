// Sources: operators with no inputs and one output port "out" that read records and emit them
// in batches.
//
// Common behaviour (SourceOptions):
// - batch_size: records per emitted batch (fewer at the end, or when the rate limit is low),
//   at most kMaxBatchSize (a batch is built in memory before it is emitted: a larger one would
//   grow until the allocation fails, with an endless source never emitting at all), and at
//   most kMaxBatchBytes of fixed-size values (batch_size x the bytes of a record's columns).
// - rate: a true token bucket of `rate` records per second (0: as fast as downstream accepts),
//   with a burst of `burst` records (0: a tenth of a second's worth, at least one). A batch is
//   emitted as soon as the tokens for its records are there, so a low rate gives small,
//   regularly spaced batches, not bursts followed by a pause.
// - replay: how many passes over the input (0: forever). limit: stop after this many records
//   in total (0: no limit), counted over all passes and all instances.
// - shard: when the source has several instances, instance i takes the records whose index
//   (counted from 0 over all passes, SourceCursor) is i modulo the instance count, so each
//   pass is split among the instances with no record lost or doubled; without sharding every
//   instance emits every record.
// - Records that cannot be parsed go to the dead-letter output with the file and line/record
//   number; a missing file, or a truncated/corrupt compressed file, ends the job with an error
//   naming the file.
// - Checkpoints: a source saves where it stands (SourceCursor) and the byte position in its
//   file after the last record it read; restore() reopens the file and seeks there (plain
//   files directly, gzip/xz by decompressing up to it, FileReader::seek), so the restored
//   source emits exactly the records, batches and dead letters the original would have. A file
//   that became shorter than the saved position is an IoError naming it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::ops {

struct SourceOptions {
  static constexpr int64_t kMaxBatchSize = int64_t{1} << 20;  // 1,048,576 records
  static constexpr uint64_t kMaxBatchBytes = uint64_t{1} << 31;  // 2 GiB of fixed-size values
  int64_t batch_size = 1024;
  double rate = 0;
  double burst = 0;
  int64_t replay = 1;
  int64_t limit = 0;
  bool shard = true;
};

// Throws ConfigError for impossible options: batch_size < 1 or > kMaxBatchSize, a negative
// rate, replay or limit.
// Every source (here and in io/) checks its options with this.
void check_source_options(const SourceOptions& o);
// The options as `tensair validate` shows them, e.g. "batch_size=1024 replay=1 limit=10".
std::string source_options_text(const SourceOptions& o);
// Throws IoError (exit code 2) naming `path` when it does not exist.
void require_input_file(const std::filesystem::path& path);

// One record per line of a text file (plain, .gz or .xz): column `column` (string), and when
// `index_column` is not empty, the line's 0-based index within the file (int64).
struct TextSourceOptions {
  std::filesystem::path path;
  std::string column = "line";
  std::string index_column;
  SourceOptions source;
};
std::shared_ptr<const dataflow::OperatorDef> text_source(TextSourceOptions options);

// One record per CSV line. `columns` gives the names and dtypes (scalars) of the fields in file
// order; when empty, the names come from the header line and every field gets `default_dtype`.
// `select` (optional) keeps only the named columns. Quoted fields ("a,b", "x""y") are
// understood. A line with the wrong number of fields or an unparseable number is a dead letter.
struct CsvSourceOptions {
  std::filesystem::path path;
  dataflow::Schema columns;
  bool header = true;
  char delimiter = ',';
  dataflow::DType default_dtype = dataflow::DType::kFloat64;
  std::vector<std::string> select;
  SourceOptions source;
};
std::shared_ptr<const dataflow::OperatorDef> csv_source(CsvSourceOptions options);

// Fixed-size little-endian binary records: `fields` (numeric, with record shapes) laid out one
// after the other, after `header_bytes` at the start of the file; `record_bytes` (0: the sum of
// the fields) may add trailing padding. A trailing partial record is a dead letter.
struct BinarySourceOptions {
  std::filesystem::path path;
  dataflow::Schema fields;
  int64_t header_bytes = 0;
  int64_t record_bytes = 0;
  SourceOptions source;
};
std::shared_ptr<const dataflow::OperatorDef> binary_source(BinarySourceOptions options);

// Synthetic records. Each column has a generator:
//   "sequence"            int64: the record's index (0, 1, 2, ... over all instances)
//   "uniform", "uniform[d1,..]"   float32 in [0, 1)
//   "normal", "normal[d1,..]"     float32, standard normal
//   "randint(k)"          int64, uniform in [0, k)
// `count` records in total per pass (0: endless). Random columns are reproducible: they depend
// only on `seed` and the record index, not on the number of instances.
struct GeneratorColumn {
  std::string name;
  std::string generator;
};
struct GeneratorSourceOptions {
  std::vector<GeneratorColumn> columns;
  int64_t count = 0;
  uint64_t seed = 1;
  SourceOptions source;
};
std::shared_ptr<const dataflow::OperatorDef> generator_source(GeneratorSourceOptions options);

// Where a source that reads records one at a time stands in its input, pass after pass: the
// pass, replay, limit and shard rules of SourceOptions in one place, for the sources here and
// in io/. Record indices count every record read, over all passes and (when sharded) all
// instances. Not thread-safe.
class SourceCursor {
 public:
  SourceCursor(const SourceOptions& options, const dataflow::InstanceInfo& info);

  enum class Next { kStartPass, kRead, kStop };
  // What to do before the next record: open (or rewind) the input for a new pass and call
  // pass_started(); read the record at index(); or stop (the passes are done, the limit is
  // reached, or a pass had no records).
  Next next() const;
  void pass_started();
  // The record at index() was read, whether this instance kept it or not.
  void record_read();
  // The input has no more records in this pass. A pass without records stops the source, as
  // an endless replay of an empty input would spin (logged as a warning naming `source`).
  void pass_ended(const std::string& source);

  // Does this instance own the record at index()?
  bool mine() const { return !opt_.shard || instances_ == 1 || index_ % instances_ == instance_; }
  int64_t index() const { return index_; }
  int64_t pass() const { return pass_; }
  // Between pass_started() and pass_ended(): the input is open and positioned in the pass.
  bool in_pass() const { return in_pass_; }

  // Checkpoints: writes the cursor's position (with the instance and instance count, which
  // load() checks: a cursor is restored into the same instance of the same operator). load()
  // throws DataError (StateReader::fail) for a damaged state or another instance.
  void save(dataflow::StateWriter& state) const;
  void load(dataflow::StateReader& state);

 private:
  SourceOptions opt_;
  int instance_;
  int instances_;
  int64_t pass_ = 0;
  int64_t index_ = 0;
  int64_t pass_records_ = 0;
  bool in_pass_ = false;
  bool stopped_ = false;
};

// Waits for and hands out record tokens at a fixed rate (see SourceOptions). Not thread-safe.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst);
  // Blocks until at least one token is available, then takes up to `want` and returns how
  // many it took. Returns `want` at once when the rate is unlimited. Wakes at least every
  // 100 ms to check `ctx.cancelled()`, and throws Cancelled when it is.
  int64_t take(int64_t want, const dataflow::Context& ctx);

 private:
  double rate_;
  double burst_;
  double tokens_;
  double last_;  // seconds, steady clock
};

}  // namespace tensair::ops
