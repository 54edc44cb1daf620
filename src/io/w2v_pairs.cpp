// w2v_pairs_source: the original TensAIR's pre-made skip-gram files (tensair/io/text.hpp).
#include <charconv>
#include <cstring>

#include "io/source_util.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/common/paths.hpp"
#include "tensair/io/text.hpp"

namespace tensair::io {

using dataflow::BatchBuilder;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;

namespace {

struct PairRow {
  int64_t target = 0;
  int64_t context = 0;
  std::vector<int64_t> negatives;
};

void split_ws(std::string_view line, std::vector<std::string_view>& out) {
  out.clear();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == ',')) ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' && line[j] != ',') ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
}

// Fills row from (target, contexts[m], labels[m]); returns an empty string or what is wrong.
std::string to_row(int64_t target, const int64_t* contexts, const int64_t* labels, size_t m, PairRow& row) {
  size_t positive = m;
  for (size_t i = 0; i < m; ++i) {
    if (labels[i] == 1) {
      if (positive != m) return "more than one label is 1";
      positive = i;
    } else if (labels[i] != 0) {
      return "label " + std::to_string(labels[i]) + " is not 0 or 1";
    }
  }
  if (positive == m) return "no label is 1";
  if (target < 0) return "negative word id " + std::to_string(target);
  row.target = target;
  row.context = contexts[positive];
  row.negatives.clear();
  for (size_t i = 0; i < m; ++i) {
    if (contexts[i] < 0) return "negative word id " + std::to_string(contexts[i]);
    if (i != positive) row.negatives.push_back(contexts[i]);
  }
  return "";
}

class PairsSourceBase : public detail::StagedSource<PairRow> {
 public:
  using StagedSource::StagedSource;

 protected:
  void append(PairRow& row, BatchBuilder& out, Context&) override {
    out.column(0).append<int64_t>(row.target);
    out.column(1).append<int64_t>(row.context);
    out.column(2).append_values(row.negatives.data(), row.negatives.size());
  }

  std::string_view state_name() const override { return "w2v_pairs_source"; }
  void save_item(dataflow::StateWriter& state, const PairRow& row) const override {
    state.put<int64_t>(row.target);
    state.put<int64_t>(row.context);
    state.put_vector(row.negatives);
  }
  void load_item(dataflow::StateReader& state, PairRow& row) const override {
    row.target = state.get<int64_t>();
    row.context = state.get<int64_t>();
    row.negatives = state.get_vector<int64_t>();
    const int64_t k = schema()[2].record_shape[0];
    if (static_cast<int64_t>(row.negatives.size()) != k) {
      state.fail("holds a staged pair with " + std::to_string(row.negatives.size()) +
                 " negatives, expected " + std::to_string(k));
    }
  }
};

class TextPairs final : public PairsSourceBase {
 public:
  TextPairs(const W2vPairsOptions& o, size_t m, Schema schema, const dataflow::InstanceInfo& info)
      : PairsSourceBase(o.source, std::move(schema), info, 0, 0), path_(o.path), m_(m) {}

 protected:
  void start_pass(int64_t, Context&) override {
    if (!file_) file_ = std::make_unique<FileReader>(path_);
    else file_->rewind();
    line_no_ = 0;
  }
  Read read(bool mine, int64_t, PairRow& row, Context& ctx) override {
    for (;;) {
      if (!file_->read_line(line_)) return Read::kEnd;
      line_no_++;
      if (line_.find_first_not_of(" \t\r") != std::string::npos) break;  // blank lines are not records
    }
    if (!mine) return Read::kSkipped;
    auto dead = [&](const std::string& why) {
      ctx.dead_letter(detail::file_name(path_) + ":" + std::to_string(line_no_) + ": " + why, line_.substr(0, 200));
      return Read::kSkipped;
    };
    split_ws(line_, fields_);
    if (fields_.size() != 1 + 2 * m_) {
      return dead(std::to_string(fields_.size()) + " fields, expected " + std::to_string(1 + 2 * m_));
    }
    values_.resize(fields_.size());
    for (size_t i = 0; i < fields_.size(); ++i) {
      auto r = std::from_chars(fields_[i].data(), fields_[i].data() + fields_[i].size(), values_[i]);
      if (r.ec != std::errc() || r.ptr != fields_[i].data() + fields_[i].size()) {
        return dead("field " + std::to_string(i) + ": \"" + std::string(fields_[i].substr(0, 40)) + "\" is not an integer");
      }
    }
    std::string why = to_row(values_[0], values_.data() + 1, values_.data() + 1 + m_, m_, row);
    if (!why.empty()) return dead(why);
    return Read::kItem;
  }

  void save_input(dataflow::StateWriter& state) const override {
    ops::put_reader(state, file_.get());
    state.put<int64_t>(line_no_);
  }
  void load_input(dataflow::StateReader& state, bool in_pass, Context&) override {
    file_ = ops::get_reader(state, path_, in_pass);
    if (in_pass && !file_)
      state.fail("is in a pass over " + path_.string() + " without a position in it");
    line_no_ = state.get<int64_t>();
  }

 private:
  std::filesystem::path path_;
  size_t m_;
  std::unique_ptr<FileReader> file_;
  std::string line_;
  std::vector<std::string_view> fields_;
  std::vector<int64_t> values_;
  int64_t line_no_ = 0;
};

// The held-out binary format: int32 mbs, N, 3; then (int32 bytes, int32[bytes/4]) x 3.
struct EvalFile {
  int64_t examples = 0;
  size_t m = 0;
  std::vector<int32_t> targets, contexts, labels;
};

EvalFile read_eval(const std::filesystem::path& path, bool keep_data) {
  FileReader f(path);
  auto bad = [&](const std::string& why) -> ConfigError {
    return ConfigError(path.string() + ": not a TensAIR held-out file: " + why);
  };
  int32_t header[3];
  if (f.read_full(header, sizeof header) != sizeof header) throw bad("shorter than its 12-byte header");
  EvalFile e;
  e.examples = header[1];
  if (header[1] <= 0) throw bad("the example count is " + std::to_string(header[1]));
  if (header[2] != 3) throw bad(std::to_string(header[2]) + " tensors, expected 3 (target, context, label)");
  std::vector<int32_t>* dest[3] = {&e.targets, &e.contexts, &e.labels};
  int64_t sizes[3];
  for (int t = 0; t < 3; ++t) {
    int32_t bytes = 0;
    if (f.read_full(&bytes, 4) != 4) throw bad("ends before tensor " + std::to_string(t));
    sizes[t] = bytes;
    if (bytes <= 0 || bytes % (4 * header[1]) != 0) {
      throw bad("tensor " + std::to_string(t) + " has " + std::to_string(bytes) + " bytes, not a multiple of 4 x " +
                std::to_string(header[1]) + " examples");
    }
    std::vector<int32_t> scratch;
    std::vector<int32_t>& v = keep_data ? *dest[t] : scratch;
    v.resize(static_cast<size_t>(bytes / 4));
    if (f.read_full(v.data(), static_cast<size_t>(bytes)) != static_cast<size_t>(bytes)) {
      throw bad("tensor " + std::to_string(t) + " is cut short");
    }
  }
  char extra;
  if (f.read(&extra, 1) != 0) throw bad("bytes after the third tensor");
  if (sizes[0] != 4 * e.examples) throw bad("the target tensor must hold one int32 per example");
  if (sizes[1] != sizes[2]) throw bad("the context and label tensors differ in size");
  e.m = static_cast<size_t>(sizes[1] / (4 * e.examples));
  if (e.m < 2) throw bad("fewer than 2 contexts per example");
  return e;
}

class EvalPairs final : public PairsSourceBase {
 public:
  EvalPairs(const W2vPairsOptions& o, Schema schema, const dataflow::InstanceInfo& info)
      : PairsSourceBase(o.source, std::move(schema), info, 0, 0), path_(o.path) {}

 protected:
  void start_pass(int64_t, Context&) override {
    if (!loaded_) {
      file_ = read_eval(path_, true);
      loaded_ = true;
    }
    next_ = 0;
  }
  Read read(bool mine, int64_t, PairRow& row, Context& ctx) override {
    if (next_ >= file_.examples) return Read::kEnd;
    const size_t i = static_cast<size_t>(next_++);
    if (!mine) return Read::kSkipped;
    const size_t m = file_.m;
    std::vector<int64_t> c(file_.contexts.begin() + static_cast<std::ptrdiff_t>(i * m),
                           file_.contexts.begin() + static_cast<std::ptrdiff_t>((i + 1) * m));
    std::vector<int64_t> l(file_.labels.begin() + static_cast<std::ptrdiff_t>(i * m),
                           file_.labels.begin() + static_cast<std::ptrdiff_t>((i + 1) * m));
    std::string why = to_row(file_.targets[i], c.data(), l.data(), m, row);
    if (!why.empty()) {
      // The example as text: the file is binary (read_eval), its numbers are what went wrong.
      std::string record = "target " + std::to_string(file_.targets[i]) + ", contexts";
      for (int64_t v : c) record += " " + std::to_string(v);
      record += ", labels";
      for (int64_t v : l) record += " " + std::to_string(v);
      ctx.dead_letter(detail::file_name(path_) + ": example " + std::to_string(i) + ": " + why,
                      record);
      return Read::kSkipped;
    }
    return Read::kItem;
  }

  // Checkpoints: the next example; the file is loaded again when a pass is under way.
  void save_input(dataflow::StateWriter& state) const override {
    ops::put_flag(state, loaded_);
    state.put<int64_t>(next_);
  }
  void load_input(dataflow::StateReader& state, bool in_pass, Context&) override {
    const bool loaded = ops::get_flag(state);
    next_ = state.get<int64_t>();
    if (!in_pass) return;  // start_pass() loads the file
    if (!loaded) state.fail("is in a pass over " + path_.string() + " that was not loaded");
    file_ = read_eval(path_, true);
    loaded_ = true;
    if (next_ < 0 || next_ > file_.examples) {
      state.fail("stands at example " + std::to_string(next_) + " of " + path_.string() +
                 ", which has " + std::to_string(file_.examples));
    }
  }

 private:
  std::filesystem::path path_;
  EvalFile file_;
  bool loaded_ = false;
  int64_t next_ = 0;
};

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> w2v_pairs_source(W2vPairsOptions o) {
  if (o.path.empty()) o.path = data_dir() / "tensair" / "w2v" / "shakespeare_train.txt.gz";
  ops::require_input_file(o.path);
  ops::check_source_options(o.source);
  bool eval = false;
  if (o.format == "auto") eval = o.path.extension() == ".bytes";
  else if (o.format == "eval") eval = true;
  else if (o.format != "text") throw ConfigError("format \"" + o.format + "\" is not one of auto, text, eval");

  size_t m = 0;
  int64_t examples = -1;
  if (eval) {
    EvalFile e = read_eval(o.path, false);
    m = e.m;
    examples = e.examples;
  } else {
    FileReader f(o.path);
    std::string line;
    bool got = false;
    while ((got = f.read_line(line))) {
      if (line.find_first_not_of(" \t\r") != std::string::npos) break;
    }
    if (!got) throw IoError(o.path.string() + ": no examples", ExitCode::kConfig);
    std::vector<std::string_view> fields;
    split_ws(line, fields);
    if (fields.size() < 5 || fields.size() % 2 == 0) {
      throw ConfigError(o.path.string() + ": the first line has " + std::to_string(fields.size()) +
                        " fields; expected \"target c1..cm l1..lm\" (1 + 2m fields, m >= 2)");
    }
    m = (fields.size() - 1) / 2;
  }
  Schema schema{{"target", DType::kInt64, {}},
                {"context", DType::kInt64, {}},
                {"negatives", DType::kInt64, {static_cast<int64_t>(m - 1)}}};
  std::string params = "path=" + o.path.string() + " format=" + (eval ? "eval" : "text") +
                       " negatives=" + std::to_string(m - 1);
  if (examples >= 0) params += " examples=" + std::to_string(examples);
  params += " " + ops::source_options_text(o.source);
  return dataflow::operator_def({
      "w2v_pairs_source", {}, std::vector<dataflow::PortSpec>{{"out", schema}},
      [o, m, eval, schema](const dataflow::InstanceInfo& info) -> std::unique_ptr<dataflow::Operator> {
        if (eval) return std::make_unique<EvalPairs>(o, schema, info);
        return std::make_unique<TextPairs>(o, m, schema, info);
      },
      params});
}

}  // namespace tensair::io
