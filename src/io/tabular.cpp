#include "tensair/io/tabular.hpp"

#include <charconv>
#include <cmath>

#include "io/source_util.hpp"
#include "tensair/common/file_reader.hpp"

namespace tensair::io {

using dataflow::BatchBuilder;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;

namespace {

constexpr char kWhitespace = '\0';  // separator value meaning "runs of spaces and tabs"

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool blank(std::string_view s) { return trim(s).empty(); }

void split_fields(std::string_view line, char sep, std::vector<std::string_view>& out) {
  out.clear();
  if (sep == kWhitespace) {
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      if (i >= line.size()) break;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      out.push_back(line.substr(i, j - i));
      i = j;
    }
    return;
  }
  size_t start = 0;
  for (;;) {
    size_t end = line.find(sep, start);
    if (end == std::string_view::npos) {
      out.push_back(trim(line.substr(start)));
      return;
    }
    out.push_back(trim(line.substr(start, end - start)));
    start = end + 1;
  }
}

bool parse_double(std::string_view text, double& v) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

bool parse_label(std::string_view text, int64_t& label) {
  text = trim(text);
  auto r = std::from_chars(text.data(), text.data() + text.size(), label);
  if (!text.empty() && r.ec == std::errc() && r.ptr == text.data() + text.size()) return true;
  double d = 0;
  if (!parse_double(text, d) || !std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9e15) return false;
  label = static_cast<int64_t>(d);
  return true;
}

char parse_separator(const std::string& s) {
  if (s == "comma" || s == ",") return ',';
  if (s == "whitespace" || s == "space" || s == " ") return kWhitespace;
  if (s == "tab" || s == "\t" || s == "\\t") return '\t';
  if (s.size() == 1) return s[0];
  throw ConfigError("separator \"" + s + "\" is not one of auto, comma, whitespace, tab or a single character");
}

std::string clip(std::string_view s) { return std::string(s.substr(0, 200)); }

struct TabRow {
  int64_t id = 0;
  std::vector<float> x;
  int64_t y = 0;
};

struct Layout {
  char separator = ',';
  size_t fields = 0;              // fields per data row
  std::vector<size_t> features;   // field indices kept
  std::optional<size_t> label;    // label field, when labels come from the data
};

class TabularSource final : public detail::StagedSource<TabRow> {
 public:
  TabularSource(const TabularOptions& o, const Layout& layout, Schema schema, const dataflow::InstanceInfo& info)
      : StagedSource(o.source, std::move(schema), info, 0, 0), opt_(o), layout_(layout) {
    mean_.assign(layout_.features.size(), 0.0);
    m2_.assign(layout_.features.size(), 0.0);
  }

 protected:
  void start_pass(int64_t, Context&) override {
    if (!data_) {
      data_ = std::make_unique<FileReader>(opt_.data);
      if (!opt_.labels.empty()) labels_ = std::make_unique<FileReader>(opt_.labels);
    } else {
      data_->rewind();
      if (labels_) labels_->rewind();
    }
    data_line_ = 0;
    label_line_ = 0;
    labels_done_ = false;
    if (opt_.header) {
      data_->read_line(line_);
      data_line_ = 1;
    }
  }

  Read read(bool mine, int64_t index, TabRow& row, Context& ctx) override {
    for (;;) {
      if (!data_->read_line(line_)) return end_of_data();
      data_line_++;
      // Without a label file a blank line is not a row (as in csv_source); with one it is a
      // (bad) row, so the two files stay aligned.
      if (labels_ || !blank(line_)) break;
    }
    bool have_label_line = false;
    if (labels_ && !labels_done_) {
      have_label_line = labels_->read_line(label_text_);
      if (have_label_line) label_line_++;
      else labels_done_ = true;
    }
    if (labels_ && !have_label_line) {
      if (blank(line_)) return skip_trailing_blank_data();
      throw DataError(detail::file_name(opt_.labels) + " has " + std::to_string(label_line_) + " lines but " +
                      detail::file_name(opt_.data) + " has more rows: row " + std::to_string(index) + " (" +
                      detail::file_name(opt_.data) + ":" + std::to_string(data_line_) + ") has no label");
    }
    if (!mine) return Read::kSkipped;
    auto dead = [&](const std::string& why) {
      ctx.dead_letter(detail::file_name(opt_.data) + ":" + std::to_string(data_line_) + ": " + why, clip(line_));
      return Read::kSkipped;
    };
    // A bad label from the label file names that file and its line.
    auto dead_label = [&](const std::string& why) {
      ctx.dead_letter(
          detail::file_name(opt_.labels) + ":" + std::to_string(label_line_) + ": " + why,
          clip(label_text_));
      return Read::kSkipped;
    };
    split_fields(line_, layout_.separator, fields_);
    if (fields_.size() != layout_.fields) {
      return dead(std::to_string(fields_.size()) + " fields, expected " + std::to_string(layout_.fields));
    }
    row.id = index;
    row.x.resize(layout_.features.size());
    for (size_t k = 0; k < layout_.features.size(); ++k) {
      double v = 0;
      const std::string_view f = fields_[layout_.features[k]];
      if (!parse_double(f, v)) {
        return dead("field " + std::to_string(layout_.features[k]) + ": cannot read \"" + clip(f) + "\" as a number");
      }
      // from_chars reads "nan" and "inf"; a model could only refuse the row by its id.
      if (!std::isfinite(static_cast<float>(v))) {
        return dead("field " + std::to_string(layout_.features[k]) + ": \"" + clip(trim(f)) +
                    "\" is not a finite number");
      }
      row.x[k] = static_cast<float>(v);
    }
    if (layout_.label) {
      const std::string_view f = fields_[*layout_.label];
      if (!parse_label(f, row.y)) {
        return dead("label field " + std::to_string(*layout_.label) + ": cannot read \"" + clip(f) + "\" as an integer");
      }
    } else if (!parse_label(label_text_, row.y)) {
      return dead_label("cannot read label \"" + clip(trim(label_text_)) + "\" as an integer");
    }
    if (opt_.classes > 0 && (row.y < 0 || row.y >= opt_.classes)) {
      const std::string why = "label " + std::to_string(row.y) + " is outside 0.." +
                              std::to_string(opt_.classes - 1) + " (classes = " +
                              std::to_string(opt_.classes) + ")";
      return layout_.label ? dead(why) : dead_label(why);
    }
    return Read::kItem;
  }

  void append(TabRow& row, BatchBuilder& out, Context&) override {
    out.column(0).append<int64_t>(row.id);
    if (opt_.standardize) {
      seen_++;
      for (size_t k = 0; k < row.x.size(); ++k) {
        const double v = row.x[k];
        const double delta = v - mean_[k];
        mean_[k] += delta / static_cast<double>(seen_);
        m2_[k] += delta * (v - mean_[k]);
        const double sd = seen_ > 1 ? std::sqrt(m2_[k] / static_cast<double>(seen_ - 1)) : 0.0;
        row.x[k] = sd > 1e-12 ? static_cast<float>((v - mean_[k]) / sd) : 0.0f;
      }
    }
    out.column(1).append_values(row.x.data(), row.x.size());
    out.column(2).append<int64_t>(row.y);
  }

  // Checkpoints: both files' positions and line numbers, and the running statistics of
  // `standardize` (updated as rows are emitted).
  std::string_view state_name() const override { return "tabular_source"; }
  void save_item(dataflow::StateWriter& state, const TabRow& row) const override {
    state.put<int64_t>(row.id);
    state.put_vector(row.x);
    state.put<int64_t>(row.y);
  }
  void load_item(dataflow::StateReader& state, TabRow& row) const override {
    row.id = state.get<int64_t>();
    row.x = state.get_vector<float>();
    row.y = state.get<int64_t>();
    if (row.x.size() != layout_.features.size()) {
      state.fail("holds a staged row of " + std::to_string(row.x.size()) + " features, expected " +
                 std::to_string(layout_.features.size()));
    }
  }
  void save_input(dataflow::StateWriter& state) const override {
    ops::put_reader(state, data_.get());
    ops::put_reader(state, labels_.get());
    state.put<int64_t>(data_line_);
    state.put<int64_t>(label_line_);
    ops::put_flag(state, labels_done_);
    state.put<int64_t>(seen_);
    state.put_vector(mean_);
    state.put_vector(m2_);
  }
  void load_input(dataflow::StateReader& state, bool in_pass, Context&) override {
    data_ = ops::get_reader(state, opt_.data, in_pass);
    labels_ = ops::get_reader(state, opt_.labels, in_pass && !opt_.labels.empty());
    if (in_pass && (!data_ || opt_.labels.empty() != !labels_)) {
      state.fail("is in a pass over " + opt_.data.string() + " without a position in its files");
    }
    data_line_ = state.get<int64_t>();
    label_line_ = state.get<int64_t>();
    labels_done_ = ops::get_flag(state);
    seen_ = state.get<int64_t>();
    mean_ = state.get_vector<double>();
    m2_ = state.get_vector<double>();
    if (mean_.size() != layout_.features.size() || m2_.size() != layout_.features.size() ||
        seen_ < 0) {
      state.fail("holds standardisation statistics of " + std::to_string(mean_.size()) +
                 " features, expected " + std::to_string(layout_.features.size()));
    }
  }

 private:
  // The data ended: the label file must end too (blank lines aside).
  Read end_of_data() {
    if (labels_ && !labels_done_) {
      while (labels_->read_line(label_text_)) {
        label_line_++;
        if (!blank(label_text_)) {
          throw DataError(detail::file_name(opt_.labels) + " has more rows than " + detail::file_name(opt_.data) +
                          ": line " + std::to_string(label_line_) + " of the labels has no data row (the data has " +
                          std::to_string(data_line_) + " lines)");
        }
      }
      labels_done_ = true;
    }
    return Read::kEnd;
  }
  // The labels ended on a blank data line: only blank lines may follow.
  Read skip_trailing_blank_data() {
    while (data_->read_line(line_)) {
      data_line_++;
      if (!blank(line_)) {
        throw DataError(detail::file_name(opt_.labels) + " has " + std::to_string(label_line_) + " lines but " +
                        detail::file_name(opt_.data) + " has more rows (" + detail::file_name(opt_.data) + ":" +
                        std::to_string(data_line_) + " has no label)");
      }
    }
    return Read::kEnd;
  }

  TabularOptions opt_;
  Layout layout_;
  std::unique_ptr<FileReader> data_;
  std::unique_ptr<FileReader> labels_;
  std::string line_, label_text_;
  std::vector<std::string_view> fields_;
  int64_t data_line_ = 0, label_line_ = 0;
  bool labels_done_ = false;
  int64_t seen_ = 0;
  std::vector<double> mean_, m2_;
};

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> tabular_source(TabularOptions o) {
  ops::require_input_file(o.data);
  if (!o.labels.empty()) ops::require_input_file(o.labels);
  ops::check_source_options(o.source);
  if (o.labels.empty() && !o.label_column) {
    throw ConfigError("no labels: give a label file (labels) or the label's field in the data (label_column)");
  }
  if (!o.labels.empty() && o.label_column) {
    throw ConfigError("give either a label file (labels) or label_column, not both");
  }
  if (o.classes < 0) throw ConfigError("classes must not be negative (0: labels not checked)");
  // The first data row tells the separator and the number of fields.
  std::string first;
  bool got = false;
  try {
    FileReader f(o.data);
    if (o.header) f.read_line(first);
    while ((got = f.read_line(first))) {
      if (!blank(first)) break;
    }
  } catch (const IoError& e) {  // read when the job is loaded: the user's to fix
    throw IoError(e.what(), ExitCode::kConfig);
  }
  if (!got) throw IoError(o.data.string() + ": no data rows", ExitCode::kConfig);
  Layout layout;
  if (o.separator == "auto") {
    layout.separator = first.find(',') != std::string::npos ? ',' : kWhitespace;
  } else {
    layout.separator = parse_separator(o.separator);
  }
  std::vector<std::string_view> fields;
  split_fields(first, layout.separator, fields);
  layout.fields = fields.size();
  const int64_t n = static_cast<int64_t>(layout.fields);
  if (o.label_column) {
    int64_t c = *o.label_column < 0 ? n + *o.label_column : *o.label_column;
    if (c < 0 || c >= n) {
      throw ConfigError("label_column " + std::to_string(*o.label_column) + " is out of range: " +
                        detail::file_name(o.data) + " has " + std::to_string(n) + " fields per row");
    }
    layout.label = static_cast<size_t>(c);
  }
  if (o.features.empty()) {
    for (size_t i = 0; i < layout.fields; ++i) {
      if (!layout.label || i != *layout.label) layout.features.push_back(i);
    }
  } else {
    for (int64_t f : o.features) {
      int64_t c = f < 0 ? n + f : f;
      if (c < 0 || c >= n) {
        throw ConfigError("feature column " + std::to_string(f) + " is out of range: " + detail::file_name(o.data) +
                          " has " + std::to_string(n) + " fields per row");
      }
      if (layout.label && static_cast<size_t>(c) == *layout.label) {
        throw ConfigError("feature column " + std::to_string(f) + " is the label column");
      }
      layout.features.push_back(static_cast<size_t>(c));
    }
  }
  if (layout.features.empty()) throw ConfigError(detail::file_name(o.data) + " has no feature columns");

  const int64_t d = static_cast<int64_t>(layout.features.size());
  Schema schema{{"id", DType::kInt64, {}}, {"x", DType::kFloat32, {d}}, {"y", DType::kInt64, {}}};
  std::string params = "data=" + o.data.string();
  if (!o.labels.empty()) params += " labels=" + o.labels.string();
  else params += " label_column=" + std::to_string(*layout.label);
  params += " separator=" + std::string(layout.separator == kWhitespace ? "whitespace"
                                        : layout.separator == ','      ? "comma"
                                                                       : std::string(1, layout.separator));
  params += " fields=" + std::to_string(n) + " d=" + std::to_string(d);
  if (o.standardize) params += " standardize=true";
  if (o.classes > 0) params += " classes=" + std::to_string(o.classes);
  params += " " + ops::source_options_text(o.source);
  return dataflow::operator_def({
      "tabular_source", {}, std::vector<dataflow::PortSpec>{{"out", schema}},
      [o, layout, schema](const dataflow::InstanceInfo& info) {
        return std::make_unique<TabularSource>(o, layout, schema, info);
      },
      params});
}

}  // namespace tensair::io
