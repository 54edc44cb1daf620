#include "tensair/ops/sinks.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>

#include "tensair/dataflow/state.hpp"
#include "tensair/ops/operator_state.hpp"
#include "ops/row_format.hpp"

namespace tensair::ops {

using dataflow::Batch;
using dataflow::BatchPtr;
using dataflow::Column;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;
using dataflow::StateReader;
using dataflow::StateWriter;

namespace {

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
        append_json_object(out, cols, r);
      }
      out += '\n';
    }
  }

  // Checkpoints: whether the CSV header line is out.
  bool header_written() const { return header_written_; }
  void set_header_written(bool written) { header_written_ = written; }

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

  // Writes through a plain file descriptor (so that a checkpoint can fsync it) with its own
  // buffer. Checkpoints: snapshot() writes out the buffer, hands the file to the engine to be
  // fsynced before the checkpoint completes (Context::sync_at_checkpoint), and saves its length
  // (plus the header flag and, with sort_by, the held batches); a restored instance's open()
  // opens the existing file without truncating it, cuts it back to the saved length (what a
  // run after the checkpoint wrote goes, and is written again) and appends from there. So the
  // file after a restore equals the file of an uninterrupted run (exactly-once output).
  class Instance final : public dataflow::Operator {
   public:
    Instance(Format format, FileSinkOptions o, std::filesystem::path path)
        : layout_name_(format == Format::kCsv ? "csv_sink" : "jsonl_sink"),
          o_(std::move(o)),
          path_(std::move(path)),
          writer_(format, o_.columns, o_.header, o_.delimiter) {}
    ~Instance() override {
      if (fd_ >= 0) ::close(fd_);
    }

    void open(Context&) override {
      std::error_code ec;
      if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path(), ec);
      if (!resume_at_) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) throw IoError("cannot write " + path_.string() + ": " + std::strerror(errno));
        return;
      }
      const uint64_t saved = *resume_at_;
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd_ < 0) {
        const std::string why = errno == ENOENT ? "it is missing" : std::strerror(errno);
        throw IoError("cannot resume writing " + path_.string() + ": " + why +
                      " (the checkpoint had written " + std::to_string(saved) + " bytes to it)");
      }
      struct stat st;
      if (::fstat(fd_, &st) != 0)
        throw IoError("cannot stat " + path_.string() + ": " + std::strerror(errno));
      const auto size = static_cast<uint64_t>(st.st_size);
      if (size < saved) {
        throw IoError("cannot resume writing " + path_.string() + ": it has " +
                      std::to_string(size) + " bytes, fewer than the " + std::to_string(saved) +
                      " the checkpoint had written");
      }
      if (::ftruncate(fd_, static_cast<off_t>(saved)) != 0 ||
          ::lseek(fd_, static_cast<off_t>(saved), SEEK_SET) < 0) {
        throw IoError("cannot cut " + path_.string() + " back to " + std::to_string(saved) +
                      " bytes: " + std::strerror(errno));
      }
      written_ = saved;
    }
    void process(int, const BatchPtr& batch, Context&) override {
      if (!o_.sort_by.empty()) {
        held_.push_back(batch);
        return;
      }
      writer_.write(buf_, *batch);
      if (buf_.size() >= kFlushBytes) flush();
    }
    void snapshot(StateWriter& state, Context& ctx) override {
      if (fd_ >= 0) {
        flush();
        ctx.sync_at_checkpoint(fd_);  // durable when the checkpoint is, without waiting here
      }
      put_layout(state, layout_name_, kLayout);
      state.put<uint64_t>(written_);
      put_flag(state, writer_.header_written());
      state.put<uint64_t>(held_.size());
      for (const BatchPtr& b : held_) state.put_batch(b);
    }
    void restore(StateReader& state, Context&) override {
      expect_layout(state, layout_name_, kLayout);
      resume_at_ = state.get<uint64_t>();
      writer_.set_header_written(get_flag(state));
      const uint64_t n = state.get_count(1);
      held_.clear();
      for (uint64_t i = 0; i < n; ++i) {
        BatchPtr b = state.get_batch();
        if (!b) state.fail("holds an empty held batch");
        held_.push_back(std::move(b));
      }
    }
    void on_finish(Context&) override {
      if (!o_.sort_by.empty() && !held_.empty()) {
        Batch all = dataflow::concat_batches(held_);
        held_.clear();
        std::vector<int64_t> order = sorted_rows(all.column(o_.sort_by));
        writer_.write(buf_, all, &order);
      }
      flush();
      if (::close(fd_) != 0) {
        fd_ = -1;
        throw IoError("error writing " + path_.string() + ": " + std::strerror(errno));
      }
      fd_ = -1;
    }

   private:
    static constexpr uint32_t kLayout = 1;
    static constexpr size_t kFlushBytes = 1 << 16;

    // Writes the buffer out.
    void flush() {
      const char* p = buf_.data();
      size_t left = buf_.size();
      while (left > 0) {
        const ssize_t n = ::write(fd_, p, left);
        if (n < 0) {
          if (errno == EINTR) continue;
          throw IoError("error writing " + path_.string() + ": " + std::strerror(errno));
        }
        p += n;
        left -= static_cast<size_t>(n);
      }
      written_ += buf_.size();
      buf_.clear();
    }

    const char* layout_name_;  // the sink's type, naming its state
    FileSinkOptions o_;
    std::filesystem::path path_;
    RowWriter writer_;
    int fd_ = -1;
    uint64_t written_ = 0;               // bytes written to the file (buf_ not included)
    std::optional<uint64_t> resume_at_;  // restored: the file's length at the checkpoint
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
    // Checkpoints: the rows written (for the limit) and whether the CSV header is out. What
    // went to standard output cannot be taken back: after a restore, rows written between the
    // checkpoint and the failure appear again.
    void snapshot(StateWriter& state, Context&) override {
      put_layout(state, "stdout_sink", kLayout);
      state.put<int64_t>(written_);
      put_flag(state, writer_.header_written());
    }
    void restore(StateReader& state, Context&) override {
      expect_layout(state, "stdout_sink", kLayout);
      written_ = state.get<int64_t>();
      if (written_ < 0) state.fail("holds a negative row count " + std::to_string(written_));
      writer_.set_header_written(get_flag(state));
    }

   private:
    static constexpr uint32_t kLayout = 1;

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
