#include "tensair/ops/sinks.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>

namespace tensair::ops {

using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Column;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;

namespace {

enum class Format { kCsv, kJson };

void append_number(std::string& out, const Column& c, size_t i, Format f) {
  char buf[64];
  std::to_chars_result r{};
  switch (c.dtype()) {
    case DType::kFloat32: {
      float v = c.values<float>()[i];
      if (!std::isfinite(v)) {
        out += f == Format::kJson ? "null" : (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
        return;
      }
      r = std::to_chars(buf, buf + sizeof buf, v);
      break;
    }
    case DType::kFloat64: {
      double v = c.values<double>()[i];
      if (!std::isfinite(v)) {
        out += f == Format::kJson ? "null" : (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
        return;
      }
      r = std::to_chars(buf, buf + sizeof buf, v);
      break;
    }
    case DType::kInt32: r = std::to_chars(buf, buf + sizeof buf, c.values<int32_t>()[i]); break;
    case DType::kInt64: r = std::to_chars(buf, buf + sizeof buf, c.values<int64_t>()[i]); break;
    case DType::kUInt8: r = std::to_chars(buf, buf + sizeof buf, static_cast<int>(c.values<uint8_t>()[i])); break;
    case DType::kString: return;
  }
  out.append(buf, r.ptr);
}

void append_csv_text(std::string& out, std::string_view s, char delim) {
  bool quote = s.find_first_of(std::string{delim, '"', '\n', '\r'}) != std::string_view::npos;
  if (!quote) {
    out += s;
    return;
  }
  out += '"';
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  out += '"';
}

// Appends the value of record `row` of `c`.
void append_value(std::string& out, const Column& c, int64_t row, Format f, char delim) {
  if (c.dtype() == DType::kString) {
    if (f == Format::kCsv) {
      append_csv_text(out, c.str(row), delim);
    } else {
      out += nlohmann::json(std::string(c.str(row))).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    return;
  }
  const int64_t n = c.record_elements();
  const size_t base = static_cast<size_t>(row * n);
  if (c.record_shape().empty()) {
    append_number(out, c, base, f);
    return;
  }
  std::string arr = "[";
  for (int64_t e = 0; e < n; ++e) {
    if (e) arr += ',';
    append_number(arr, c, base + static_cast<size_t>(e), f);
  }
  arr += ']';
  if (f == Format::kCsv) {
    append_csv_text(out, arr, delim);
  } else {
    out += arr;
  }
}

std::string substitute(std::string s, const dataflow::InstanceInfo& info) {
  for (auto [key, value] : {std::pair<std::string, int>{"{rank}", info.rank}, {"{instance}", info.instance}}) {
    for (size_t at; (at = s.find(key)) != std::string::npos;) s.replace(at, key.size(), std::to_string(value));
  }
  return s;
}

// Orders rows by one column (numbers numerically, strings bytewise), stably.
std::vector<int64_t> sorted_rows(const Column& key) {
  std::vector<int64_t> rows(static_cast<size_t>(key.rows()));
  std::iota(rows.begin(), rows.end(), 0);
  if (key.dtype() == DType::kString) {
    std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) { return key.str(a) < key.str(b); });
  } else {
    std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) { return key.as_double(a) < key.as_double(b); });
  }
  return rows;
}

// Writes rows in one format to one stream.
class RowWriter {
 public:
  RowWriter(Format format, std::vector<std::string> columns, bool header, char delim)
      : format_(format), columns_(std::move(columns)), header_(header), delim_(delim) {}

  // Appends the rows of `batch` (in `order`, or all in order) to `out`.
  void write(std::string& out, const Batch& batch, const std::vector<int64_t>* order = nullptr) {
    std::vector<const Column*> cols;
    if (columns_.empty()) {
      for (const Column& c : batch.columns()) cols.push_back(&c);
    } else {
      for (const auto& name : columns_) cols.push_back(&batch.column(name));
    }
    if (format_ == Format::kCsv && header_ && !header_written_) {
      for (size_t i = 0; i < cols.size(); ++i) {
        if (i) out += delim_;
        append_csv_text(out, cols[i]->name(), delim_);
      }
      out += '\n';
      header_written_ = true;
    }
    const int64_t n = order ? static_cast<int64_t>(order->size()) : batch.rows();
    for (int64_t k = 0; k < n; ++k) {
      int64_t r = order ? (*order)[static_cast<size_t>(k)] : k;
      if (format_ == Format::kCsv) {
        for (size_t i = 0; i < cols.size(); ++i) {
          if (i) out += delim_;
          append_value(out, *cols[i], r, format_, delim_);
        }
      } else {
        out += '{';
        for (size_t i = 0; i < cols.size(); ++i) {
          if (i) out += ',';
          out += nlohmann::json(cols[i]->name()).dump();
          out += ':';
          append_value(out, *cols[i], r, format_, delim_);
        }
        out += '}';
      }
      out += '\n';
    }
  }

 private:
  Format format_;
  std::vector<std::string> columns_;
  bool header_;
  char delim_;
  bool header_written_ = false;
};

// Checks that the named columns arrive.
void check_columns(const std::optional<Schema>& in, const std::vector<std::string>& columns,
                   const std::string& sort_by) {
  if (!in) return;
  auto need = [&](const std::string& name, const char* what) {
    if (!dataflow::find_column(*in, name)) {
      throw ConfigError(std::string(what) + " \"" + name + "\" is not among the columns arriving (" +
                        dataflow::schema_to_string(*in) + ")");
    }
  };
  for (const auto& c : columns) need(c, "column");
  if (!sort_by.empty()) need(sort_by, "sort_by column");
}

class FileSinkDef final : public dataflow::OperatorDef {
 public:
  FileSinkDef(Format format, FileSinkOptions o) : format_(format), o_(std::move(o)) {
    if (o_.path.empty()) throw ConfigError("a file sink needs a path");
  }
  std::string type() const override { return format_ == Format::kCsv ? "csv_sink" : "jsonl_sink"; }
  std::vector<dataflow::PortSpec> inputs() const override { return {{"in"}}; }
  std::vector<std::optional<Schema>> infer_outputs(const std::vector<std::optional<Schema>>& in) const override {
    check_columns(in.empty() ? std::nullopt : in[0], o_.columns, o_.sort_by);
    return {};
  }
  std::string describe() const override {
    std::string s = "path=" + o_.path.string();
    if (!o_.sort_by.empty()) s += " sort_by=" + o_.sort_by;
    return s;
  }

  class Instance final : public dataflow::Operator {
   public:
    Instance(Format format, FileSinkOptions o, std::filesystem::path path)
        : o_(std::move(o)), path_(std::move(path)), writer_(format, o_.columns, o_.header, o_.delimiter) {}

    void open(Context&) override {
      std::error_code ec;
      if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path(), ec);
      file_.open(path_, std::ios::binary | std::ios::trunc);
      if (!file_) throw IoError("cannot write " + path_.string() + ": " + std::strerror(errno));
    }
    void process(int, const BatchPtr& batch, Context&) override {
      if (!o_.sort_by.empty()) {
        held_.push_back(batch);
        return;
      }
      buf_.clear();
      writer_.write(buf_, *batch);
      file_ << buf_;
    }
    void on_finish(Context&) override {
      if (!o_.sort_by.empty() && !held_.empty()) {
        Batch all = dataflow::concat_batches(held_);
        held_.clear();
        std::vector<int64_t> order = sorted_rows(all.column(o_.sort_by));
        buf_.clear();
        writer_.write(buf_, all, &order);
        file_ << buf_;
      }
      file_.flush();
      if (!file_) throw IoError("error writing " + path_.string());
      file_.close();
    }

   private:
    FileSinkOptions o_;
    std::filesystem::path path_;
    RowWriter writer_;
    std::ofstream file_;
    std::string buf_;
    std::vector<BatchPtr> held_;
  };

  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo& info) const override {
    std::string path = o_.path.string();
    if (info.instances > 1 && path.find("{rank}") == std::string::npos &&
        path.find("{instance}") == std::string::npos) {
      throw ConfigError("sink has " + std::to_string(info.instances) + " instances writing to one file " + path +
                        ": place it on one rank or put {rank} in the path");
    }
    return std::make_unique<Instance>(format_, o_, substitute(path, info));
  }

 private:
  Format format_;
  FileSinkOptions o_;
};

std::mutex& stdout_mutex() {
  static std::mutex mu;
  return mu;
}

class StdoutSinkDef final : public dataflow::OperatorDef {
 public:
  explicit StdoutSinkDef(StdoutSinkOptions o) : o_(std::move(o)) {
    if (o_.format != "csv" && o_.format != "json") {
      throw ConfigError("stdout format \"" + o_.format + "\" is not csv or json");
    }
  }
  std::string type() const override { return "stdout_sink"; }
  std::vector<dataflow::PortSpec> inputs() const override { return {{"in"}}; }
  std::vector<std::optional<Schema>> infer_outputs(const std::vector<std::optional<Schema>>& in) const override {
    check_columns(in.empty() ? std::nullopt : in[0], o_.columns, "");
    return {};
  }
  std::string describe() const override { return "format=" + o_.format; }

  class Instance final : public dataflow::Operator {
   public:
    explicit Instance(const StdoutSinkOptions& o)
        : o_(o), writer_(o.format == "csv" ? Format::kCsv : Format::kJson, o.columns, true, ',') {}
    void process(int, const BatchPtr& batch, Context&) override {
      Batch b = *batch;
      if (o_.limit > 0) {
        int64_t left = o_.limit - written_;
        if (left <= 0) return;
        if (b.rows() > left) b = b.slice(0, left);
      }
      written_ += b.rows();
      std::string out;
      writer_.write(out, b);
      std::lock_guard lock(stdout_mutex());
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    void on_finish(Context&) override {
      std::lock_guard lock(stdout_mutex());
      std::fflush(stdout);
    }

   private:
    StdoutSinkOptions o_;
    RowWriter writer_;
    int64_t written_ = 0;
  };

  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo&) const override {
    return std::make_unique<Instance>(o_);
  }

 private:
  StdoutSinkOptions o_;
};

}  // namespace

std::shared_ptr<const dataflow::OperatorDef> csv_sink(FileSinkOptions o) {
  return std::make_shared<FileSinkDef>(Format::kCsv, std::move(o));
}
std::shared_ptr<const dataflow::OperatorDef> jsonl_sink(FileSinkOptions o) {
  return std::make_shared<FileSinkDef>(Format::kJson, std::move(o));
}
std::shared_ptr<const dataflow::OperatorDef> stdout_sink(StdoutSinkOptions o) {
  return std::make_shared<StdoutSinkDef>(std::move(o));
}

}  // namespace tensair::ops
