#include "tensair/ops/sources.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "common/hash.hpp"
#include "common/hex.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/common/log.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/ops/operator_state.hpp"
#include "ops/record_parsing.hpp"

namespace tensair::ops {

using dataflow::Batch;
using dataflow::BatchBuilder;
using dataflow::ColumnBuilder;
using dataflow::ColumnSpec;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;
using dataflow::SourceState;
using dataflow::StateReader;
using dataflow::StateWriter;

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

// TokenBucket -----------------------------------------------------------------------------------

TokenBucket::TokenBucket(double rate, double burst)
    : rate_(rate), burst_(burst > 0 ? burst : std::max(1.0, rate / 10)), tokens_(0), last_(now_s()) {
  tokens_ = std::min(burst_, 1.0);
}

int64_t TokenBucket::take(int64_t want, const Context& ctx) {
  if (rate_ <= 0) return want;
  for (;;) {
    if (ctx.cancelled()) throw Cancelled();
    double t = now_s();
    tokens_ = std::min(burst_, tokens_ + (t - last_) * rate_);
    last_ = t;
    if (tokens_ >= 1) {
      int64_t k = std::min<int64_t>(want, static_cast<int64_t>(tokens_));
      tokens_ -= static_cast<double>(k);
      return k;
    }
    double wait = std::min(0.1, (1 - tokens_) / rate_);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
}

// Common options ----------------------------------------------------------------------------

std::string source_options_text(const SourceOptions& o) {
  std::string s = "batch_size=" + std::to_string(o.batch_size);
  if (o.rate > 0) s += " rate=" + std::to_string(static_cast<int64_t>(o.rate)) + "/s";
  s += " replay=" + (o.replay == 0 ? std::string("forever") : std::to_string(o.replay));
  if (o.limit > 0) s += " limit=" + std::to_string(o.limit);
  if (!o.shard) s += " shard=false";
  return s;
}

void check_source_options(const SourceOptions& o) {
  if (o.batch_size < 1 || o.batch_size > SourceOptions::kMaxBatchSize) {
    throw ConfigError("batch_size must be between 1 and " +
                      std::to_string(SourceOptions::kMaxBatchSize) + ", got " +
                      std::to_string(o.batch_size));
  }
  if (o.rate < 0) throw ConfigError("rate must not be negative");
  if (o.burst < 0) throw ConfigError("burst must not be negative (0: a tenth of a second's worth)");
  if (o.replay < 0) throw ConfigError("replay must not be negative (0 replays forever)");
  if (o.limit < 0) throw ConfigError("limit must not be negative (0: no limit)");
}

// A batch is built in memory before it is emitted: refuse a batch_size and record shape whose
// batch could not be (strings count as empty; their size is not known before they are read).
void check_batch_bytes(const Schema& schema, const SourceOptions& o) {
  uint64_t record = 0;
  for (const ColumnSpec& c : schema) {
    uint64_t n = dtype_size(c.dtype);
    for (int64_t d : c.record_shape) n *= static_cast<uint64_t>(d);  // <= 2^28 * 8 each
    record += n;
  }
  const uint64_t batch = record * static_cast<uint64_t>(o.batch_size);  // <= 2^20 * 2^31 * cols
  if (batch > SourceOptions::kMaxBatchBytes) {
    throw ConfigError(fmt::format(
        "a batch of {} records of {} bytes is {:.1f} GB, over the {} GiB a batch may hold: lower "
        "batch_size or the record shape",
        o.batch_size, record, static_cast<double>(batch) / 1e9, SourceOptions::kMaxBatchBytes >> 30));
  }
}

void require_input_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw IoError("input file " + path.string() + " does not exist", ExitCode::kConfig);
  }
}

// SourceCursor ----------------------------------------------------------------------------------

SourceCursor::SourceCursor(const SourceOptions& options, const dataflow::InstanceInfo& info)
    : opt_(options), instance_(info.instance), instances_(info.instances) {}

SourceCursor::Next SourceCursor::next() const {
  if (stopped_) return Next::kStop;
  if (!in_pass_) return opt_.replay > 0 && pass_ >= opt_.replay ? Next::kStop : Next::kStartPass;
  if (opt_.limit > 0 && index_ >= opt_.limit) return Next::kStop;
  return Next::kRead;
}

void SourceCursor::pass_started() {
  in_pass_ = true;
  pass_records_ = 0;
}

void SourceCursor::record_read() {
  index_++;
  pass_records_++;
}

void SourceCursor::pass_ended(const std::string& source) {
  in_pass_ = false;
  pass_++;
  if (pass_records_ == 0) {
    if (opt_.replay == 0) log().warn("{}: the input has no records, stopping", source);
    stopped_ = true;
  }
}

void SourceCursor::save(StateWriter& state) const {
  state.put<int32_t>(instance_);
  state.put<int32_t>(instances_);
  state.put<int64_t>(pass_);
  state.put<int64_t>(index_);
  state.put<int64_t>(pass_records_);
  put_flag(state, in_pass_);
  put_flag(state, stopped_);
}

void SourceCursor::load(StateReader& state) {
  const auto instance = state.get<int32_t>();
  const auto instances = state.get<int32_t>();
  if (instance != instance_ || instances != instances_) {
    state.fail("was saved by instance " + std::to_string(instance) + " of " +
               std::to_string(instances) + ", not by instance " + std::to_string(instance_) +
               " of " + std::to_string(instances_));
  }
  pass_ = state.get<int64_t>();
  index_ = state.get<int64_t>();
  pass_records_ = state.get<int64_t>();
  in_pass_ = get_flag(state);
  stopped_ = get_flag(state);
  if (pass_ < 0 || index_ < 0 || pass_records_ < 0 || pass_records_ > index_) {
    state.fail("holds an impossible source position (pass " + std::to_string(pass_) + ", record " +
               std::to_string(index_) + ", " + std::to_string(pass_records_) +
               " records in the pass)");
  }
}

namespace {

// Reads the records of one input, pass after pass.
class RecordReader {
 public:
  virtual ~RecordReader() = default;
  // Opens (or rewinds to) the start of the input.
  virtual void start_pass() = 0;
  // Reads the next record; appends it to `out` when `keep`, else skips it cheaply. A record
  // that cannot be parsed is reported to ctx.dead_letter and not appended. Returns false at
  // the end of the pass.
  virtual bool next(bool keep, BatchBuilder& out, Context& ctx) = 0;
  // Checkpoints: save() writes where the reader stands (the position after the last record it
  // read, and its line or record number); load() reads that into a fresh reader and, when
  // `in_pass`, reopens the input at that position (otherwise start_pass() comes first).
  virtual void save(StateWriter& state) const = 0;
  virtual void load(StateReader& state, bool in_pass) = 0;
};

// A reader's file for checkpoints (get_reader): in a pass, the file was open.
std::unique_ptr<FileReader> load_file(StateReader& state, const std::filesystem::path& path,
                                      bool in_pass) {
  std::unique_ptr<FileReader> file = get_reader(state, path, in_pass);
  if (in_pass && !file)
    state.fail("is in a pass over " + path.string() + " without a position in it");
  return file;
}

// Emits the records of a RecordReader with the common source behaviour (sources.hpp).
class RecordSource final : public dataflow::Operator {
 public:
  RecordSource(std::string type, SourceOptions options, Schema schema,
               std::unique_ptr<RecordReader> reader, const dataflow::InstanceInfo& info)
      : type_(std::move(type)),
        opt_(options),
        schema_(std::move(schema)),
        reader_(std::move(reader)),
        bucket_(options.rate, options.burst),
        cursor_(options, info) {}

  SourceState produce(Context& ctx) override {
    const int64_t want = bucket_.take(opt_.batch_size, ctx);
    BatchBuilder out(schema_);
    while (out.rows() < want) {
      const SourceCursor::Next next = cursor_.next();
      if (next == SourceCursor::Next::kStop) break;
      if (next == SourceCursor::Next::kStartPass) {
        reader_->start_pass();
        cursor_.pass_started();
        continue;
      }
      if (!reader_->next(cursor_.mine(), out, ctx)) {
        cursor_.pass_ended(ctx.info().name);
        break;  // a batch does not span passes
      }
      cursor_.record_read();
      if (ctx.cancelled()) throw Cancelled();
    }
    if (out.rows() > 0) ctx.emit(0, out.finish());
    return cursor_.next() == SourceCursor::Next::kStop ? SourceState::kDone : SourceState::kMore;
  }

  // Between produce() calls every record read has been emitted, so the cursor and the reader's
  // position are the whole state (the token bucket restarts: a rate is not a position).
  void snapshot(StateWriter& state, Context&) override {
    put_layout(state, type_, kLayout);
    cursor_.save(state);
    reader_->save(state);
  }
  void restore(StateReader& state, Context&) override {
    expect_layout(state, type_, kLayout);
    cursor_.load(state);
    reader_->load(state, cursor_.in_pass());
  }

 private:
  static constexpr uint32_t kLayout = 1;

  std::string type_;
  SourceOptions opt_;
  Schema schema_;
  std::unique_ptr<RecordReader> reader_;
  TokenBucket bucket_;
  SourceCursor cursor_;
};

// A source definition: schema, a reader factory, and the common options.
class SourceDef final : public dataflow::OperatorDef {
 public:
  using ReaderFactory = std::function<std::unique_ptr<RecordReader>(const dataflow::InstanceInfo&)>;
  SourceDef(std::string type, Schema schema, SourceOptions options, ReaderFactory factory,
            std::string params)
      : type_(std::move(type)),
        schema_(std::move(schema)),
        options_(options),
        factory_(std::move(factory)),
        params_(std::move(params)) {
    check_source_options(options_);
    check_batch_bytes(schema_, options_);
  }
  std::string type() const override { return type_; }
  std::vector<dataflow::PortSpec> outputs() const override { return {{"out", schema_}}; }
  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo& info) const override {
    return std::make_unique<RecordSource>(type_, options_, schema_, factory_(info), info);
  }
  std::string describe() const override { return params_ + " " + source_options_text(options_); }

 private:
  std::string type_;
  Schema schema_;
  SourceOptions options_;
  ReaderFactory factory_;
  std::string params_;
};

std::string clip(std::string_view s) { return std::string(s.substr(0, 200)); }

// Text ------------------------------------------------------------------------------------------

class TextReader final : public RecordReader {
 public:
  explicit TextReader(std::filesystem::path path, bool with_index)
      : path_(std::move(path)), with_index_(with_index) {}
  void start_pass() override {
    if (!file_) file_ = std::make_unique<FileReader>(path_);
    else file_->rewind();
    line_no_ = 0;
  }
  bool next(bool keep, BatchBuilder& out, Context&) override {
    if (!file_->read_line(line_)) return false;
    if (keep) {
      out.column(0).append_string(line_);
      if (with_index_) out.column(1).append<int64_t>(line_no_);
    }
    line_no_++;
    return true;
  }
  void save(StateWriter& state) const override {
    put_reader(state, file_.get());
    state.put<int64_t>(line_no_);
  }
  void load(StateReader& state, bool in_pass) override {
    file_ = load_file(state, path_, in_pass);
    line_no_ = state.get<int64_t>();
  }

 private:
  std::filesystem::path path_;
  bool with_index_;
  std::unique_ptr<FileReader> file_;
  std::string line_;
  int64_t line_no_ = 0;
};

// CSV -------------------------------------------------------------------------------------------

class CsvReader final : public RecordReader {
 public:
  CsvReader(CsvSourceOptions opt, std::vector<int> keep_fields, size_t nfields)
      : opt_(std::move(opt)), keep_fields_(std::move(keep_fields)), nfields_(nfields) {}
  void start_pass() override {
    if (!file_) file_ = std::make_unique<FileReader>(opt_.path);
    else file_->rewind();
    line_no_ = 0;
    if (opt_.header) {
      file_->read_line(line_);
      line_no_ = 1;
    }
  }
  bool next(bool keep, BatchBuilder& out, Context& ctx) override {
    for (;;) {
      if (!file_->read_line(line_)) return false;
      line_no_++;
      if (!line_.empty()) break;  // blank lines are not records
    }
    if (!keep) return true;
    auto dead = [&](const std::string& why) {
      ctx.dead_letter(opt_.path.filename().string() + ":" + std::to_string(line_no_) + ": " + why,
                      clip(line_));
    };
    if (!split_csv(line_, opt_.delimiter, fields_)) {
      dead("unterminated quote");
      return true;
    }
    if (fields_.size() != nfields_) {
      dead(std::to_string(fields_.size()) + " fields, expected " + std::to_string(nfields_));
      return true;
    }
    // Parse into a one-row scratch batch first, so a bad field leaves `out` untouched.
    if (!scratch_) scratch_ = std::make_unique<BatchBuilder>(out_schema(out));
    for (size_t k = 0; k < keep_fields_.size(); ++k) {
      ColumnBuilder& col = scratch_->column(k);
      const std::string& text = fields_[static_cast<size_t>(keep_fields_[k])];
      if (!append_parsed(col, text)) {
        std::string why = "column \"" + col.spec().name + "\": cannot read \"" + clip(text) + "\" as " +
                          std::string(dtype_name(col.spec().dtype));
        scratch_ = std::make_unique<BatchBuilder>(out_schema(out));  // drops the partial row (and `col`)
        dead(why);
        return true;
      }
    }
    Batch row = scratch_->finish();
    for (size_t k = 0; k < keep_fields_.size(); ++k) out.column(k).append_from(row.columns()[k], 0);
    return true;
  }
  void save(StateWriter& state) const override {
    put_reader(state, file_.get());
    state.put<int64_t>(line_no_);
  }
  void load(StateReader& state, bool in_pass) override {
    file_ = load_file(state, opt_.path, in_pass);
    line_no_ = state.get<int64_t>();
  }

 private:
  static Schema out_schema(BatchBuilder& out) {
    Schema s;
    for (size_t i = 0; i < out.num_columns(); ++i) s.push_back(out.column(i).spec());
    return s;
  }

  CsvSourceOptions opt_;
  std::vector<int> keep_fields_;
  size_t nfields_;
  std::unique_ptr<FileReader> file_;
  std::unique_ptr<BatchBuilder> scratch_;
  std::string line_;
  std::vector<std::string> fields_;
  int64_t line_no_ = 0;
};

// Binary ----------------------------------------------------------------------------------------

class BinaryReader final : public RecordReader {
 public:
  explicit BinaryReader(BinarySourceOptions opt)
      : opt_(std::move(opt)), record_(static_cast<size_t>(opt_.record_bytes), '\0') {}
  void start_pass() override {
    if (!file_) file_ = std::make_unique<FileReader>(opt_.path);
    else file_->rewind();
    record_no_ = 0;
    if (opt_.header_bytes > 0) {
      std::string skip(static_cast<size_t>(opt_.header_bytes), '\0');
      if (file_->read_full(skip.data(), skip.size()) != skip.size()) {
        throw IoError(opt_.path.string() + ": shorter than its " + std::to_string(opt_.header_bytes) +
                      "-byte header");
      }
    }
  }
  bool next(bool keep, BatchBuilder& out, Context& ctx) override {
    size_t got = file_->read_full(record_.data(), record_.size());
    if (got == 0) return false;
    record_no_++;
    if (got < record_.size()) {
      ctx.dead_letter(opt_.path.filename().string() + ": record " + std::to_string(record_no_ - 1) +
                          " truncated to " + std::to_string(got) + " of " +
                          std::to_string(record_.size()) + " bytes",
                      record_hex(record_.data(), got));
      return true;
    }
    if (!keep) return true;
    const char* p = record_.data();
    for (size_t i = 0; i < opt_.fields.size(); ++i) {
      size_t n = field_elements(opt_.fields[i]);
      append_raw_values(out.column(i), p, n);
      p += n * dtype_size(opt_.fields[i].dtype);
    }
    return true;
  }
  void save(StateWriter& state) const override {
    put_reader(state, file_.get());
    state.put<int64_t>(record_no_);
  }
  void load(StateReader& state, bool in_pass) override {
    file_ = load_file(state, opt_.path, in_pass);
    record_no_ = state.get<int64_t>();
  }

 private:
  BinarySourceOptions opt_;
  std::string record_;
  std::unique_ptr<FileReader> file_;
  int64_t record_no_ = 0;
};

// Generator -------------------------------------------------------------------------------------

struct ColumnGenerator {
  enum class Kind { kSequence, kUniform, kNormal, kRandInt };
  Kind kind = Kind::kSequence;
  int64_t bound = 0;
  ColumnSpec spec;
};

ColumnGenerator parse_generator(const GeneratorColumn& c) {
  ColumnGenerator g;
  g.spec.name = c.name;
  std::string_view text = c.generator;
  auto shape_after = [&](std::string_view rest) {
    if (rest.empty()) return;
    ColumnSpec s = dataflow::parse_column_spec("x:float32" + std::string(rest));
    g.spec.record_shape = s.record_shape;
  };
  if (text == "sequence") {
    g.kind = ColumnGenerator::Kind::kSequence;
    g.spec.dtype = DType::kInt64;
  } else if (text.starts_with("uniform")) {
    g.kind = ColumnGenerator::Kind::kUniform;
    g.spec.dtype = DType::kFloat32;
    shape_after(text.substr(7));
  } else if (text.starts_with("normal")) {
    g.kind = ColumnGenerator::Kind::kNormal;
    g.spec.dtype = DType::kFloat32;
    shape_after(text.substr(6));
  } else if (text.starts_with("randint(") && text.ends_with(")")) {
    g.kind = ColumnGenerator::Kind::kRandInt;
    g.spec.dtype = DType::kInt64;
    std::string_view n = text.substr(8, text.size() - 9);
    auto r = std::from_chars(n.data(), n.data() + n.size(), g.bound);
    if (r.ec != std::errc() || r.ptr != n.data() + n.size() || g.bound < 1) {
      throw ConfigError("column \"" + c.name + "\": randint needs a positive bound, got \"" + c.generator + "\"");
    }
  } else {
    throw ConfigError("column \"" + c.name + "\": unknown generator \"" + c.generator +
                      "\" (known: sequence, uniform, normal, randint(k), with [d1,..] shapes for uniform/normal)");
  }
  return g;
}

class GeneratorReader final : public RecordReader {
 public:
  GeneratorReader(std::vector<ColumnGenerator> gens, int64_t count, uint64_t seed)
      : gens_(std::move(gens)), count_(count), seed_(seed) {}
  void start_pass() override { index_ = 0; }
  bool next(bool keep, BatchBuilder& out, Context&) override {
    if (count_ > 0 && index_ >= count_) return false;
    if (keep) {
      for (size_t c = 0; c < gens_.size(); ++c) append(c, out.column(c));
    }
    index_++;
    return true;
  }
  void save(StateWriter& state) const override { state.put<int64_t>(index_); }
  void load(StateReader& state, bool) override { index_ = state.get<int64_t>(); }

 private:
  // A uniform double in [0, 1) from (seed, column, record, element): reproducible whatever the
  // number of instances.
  double unit(size_t column, uint64_t element) const {
    uint64_t h = hash_u64(seed_ ^ hash_u64(static_cast<uint64_t>(index_) * 0x9e3779b97f4a7c15ULL +
                                           column * 0x632be59bd9b4e019ULL + element));
    return static_cast<double>(h >> 11) * 0x1.0p-53;
  }
  void append(size_t c, ColumnBuilder& col) {
    const ColumnGenerator& g = gens_[c];
    switch (g.kind) {
      case ColumnGenerator::Kind::kSequence: col.append<int64_t>(index_); return;
      case ColumnGenerator::Kind::kRandInt:
        col.append<int64_t>(static_cast<int64_t>(unit(c, 0) * static_cast<double>(g.bound)));
        return;
      case ColumnGenerator::Kind::kUniform:
      case ColumnGenerator::Kind::kNormal: {
        size_t n = field_elements(g.spec);
        values_.resize(n);
        for (size_t e = 0; e < n; ++e) {
          if (g.kind == ColumnGenerator::Kind::kUniform) {
            values_[e] = static_cast<float>(unit(c, e));
          } else {
            double u1 = std::max(unit(c, 2 * e), 1e-300), u2 = unit(c, 2 * e + 1);
            values_[e] = static_cast<float>(std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2));
          }
        }
        col.append_values(values_.data(), n);
        return;
      }
    }
  }

  std::vector<ColumnGenerator> gens_;
  int64_t count_;
  uint64_t seed_;
  int64_t index_ = 0;
  std::vector<float> values_;
};

}  // namespace

// Factories -------------------------------------------------------------------------------------

std::shared_ptr<const dataflow::OperatorDef> text_source(TextSourceOptions o) {
  require_input_file(o.path);
  Schema schema{{o.column, DType::kString, {}}};
  if (!o.index_column.empty()) schema.push_back({o.index_column, DType::kInt64, {}});
  auto path = o.path;
  bool with_index = !o.index_column.empty();
  return std::make_shared<SourceDef>(
      "text_source", schema, o.source,
      [path, with_index](const dataflow::InstanceInfo&) { return std::make_unique<TextReader>(path, with_index); },
      "path=" + o.path.string());
}

std::shared_ptr<const dataflow::OperatorDef> csv_source(CsvSourceOptions o) {
  require_input_file(o.path);
  Schema fields = o.columns;
  if (fields.empty()) {
    if (!o.header) throw ConfigError("a CSV source without a header line needs its columns listed");
    std::string line;
    bool got = false;
    try {
      FileReader f(o.path);
      got = f.read_line(line);
    } catch (const IoError& e) {  // read when the job is loaded: the user's to fix
      throw IoError(e.what(), ExitCode::kConfig);
    }
    if (!got) {
      throw IoError(o.path.string() + ": empty file, a header line was expected",
                    ExitCode::kConfig);
    }
    std::vector<std::string> names;
    if (!split_csv(line, o.delimiter, names)) throw ConfigError(o.path.string() + ": bad header line");
    for (auto& n : names) fields.push_back({std::string(trim(n)), o.default_dtype, {}});
  }
  for (const ColumnSpec& f : fields) {
    if (!f.record_shape.empty()) throw ConfigError("CSV column \"" + f.name + "\" cannot have a shape");
  }
  std::vector<int> keep;
  Schema schema;
  if (o.select.empty()) {
    for (size_t i = 0; i < fields.size(); ++i) keep.push_back(static_cast<int>(i));
    schema = fields;
  } else {
    for (const std::string& name : o.select) {
      auto it = std::find_if(fields.begin(), fields.end(), [&](const ColumnSpec& f) { return f.name == name; });
      if (it == fields.end()) {
        throw ConfigError("select names column \"" + name + "\", which " + o.path.filename().string() +
                          " does not have (columns: " + dataflow::schema_to_string(fields) + ")");
      }
      keep.push_back(static_cast<int>(it - fields.begin()));
      schema.push_back(*it);
    }
  }
  size_t nfields = fields.size();
  std::string params = "path=" + o.path.string() + " columns={" + dataflow::schema_to_string(schema) + "}";
  return std::make_shared<SourceDef>(
      "csv_source", schema, o.source,
      [o, keep, nfields](const dataflow::InstanceInfo&) { return std::make_unique<CsvReader>(o, keep, nfields); },
      params);
}

std::shared_ptr<const dataflow::OperatorDef> binary_source(BinarySourceOptions o) {
  require_input_file(o.path);
  if (o.fields.empty()) throw ConfigError("a binary source needs at least one field");
  int64_t sum = 0;
  for (const ColumnSpec& f : o.fields) {
    if (f.dtype == DType::kString) throw ConfigError("binary field \"" + f.name + "\" cannot be a string");
    sum += static_cast<int64_t>(field_elements(f) * dtype_size(f.dtype));
  }
  if (o.record_bytes == 0) o.record_bytes = sum;
  if (o.record_bytes < sum) {
    throw ConfigError("record_bytes " + std::to_string(o.record_bytes) + " is smaller than the " +
                      std::to_string(sum) + " bytes of the fields");
  }
  if (o.header_bytes < 0) throw ConfigError("header_bytes must not be negative");
  std::string params = "path=" + o.path.string() + " record_bytes=" + std::to_string(o.record_bytes);
  return std::make_shared<SourceDef>(
      "binary_source", o.fields, o.source,
      [o](const dataflow::InstanceInfo&) { return std::make_unique<BinaryReader>(o); }, params);
}

std::shared_ptr<const dataflow::OperatorDef> generator_source(GeneratorSourceOptions o) {
  if (o.columns.empty()) throw ConfigError("a generator needs at least one column");
  if (o.count < 0) throw ConfigError("count must not be negative (0: endless)");
  std::vector<ColumnGenerator> gens;
  Schema schema;
  for (const GeneratorColumn& c : o.columns) {
    gens.push_back(parse_generator(c));
    schema.push_back(gens.back().spec);
  }
  std::string params = "count=" + (o.count ? std::to_string(o.count) : std::string("endless")) +
                       " seed=" + std::to_string(o.seed) + " columns={" + dataflow::schema_to_string(schema) + "}";
  return std::make_shared<SourceDef>(
      "generator", schema, o.source,
      [gens, o](const dataflow::InstanceInfo&) { return std::make_unique<GeneratorReader>(gens, o.count, o.seed); },
      params);
}

}  // namespace tensair::ops
