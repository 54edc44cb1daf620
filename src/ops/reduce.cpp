#include "tensair/ops/reduce.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>

#include "tensair/common/error.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/ops/operator_state.hpp"

namespace tensair::ops {

using dataflow::Batch;
using dataflow::BatchBuilder;
using dataflow::BatchPtr;
using dataflow::Column;
using dataflow::ColumnBuilder;
using dataflow::ColumnSpec;
using dataflow::Context;
using dataflow::DType;
using dataflow::OperatorDef;
using dataflow::PortSpec;
using dataflow::Schema;
using dataflow::StateReader;
using dataflow::StateWriter;

// ---------------------------------------------------------------------------------------------
// Parsing

namespace {

double parse_number(const std::string& text, const std::string& what) {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw ConfigError(what + " \"" + text + "\" is not a number");
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(sep, start);
    out.push_back(text.substr(start, end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

}  // namespace

std::string WindowSpec::to_string() const {
  switch (kind) {
    case Kind::kGlobal: return "global";
    case Kind::kCount: return "count:" + std::to_string(count);
    case Kind::kTumbling: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", size);
      std::string s = std::string("tumbling:") + buf;
      if (!time_column.empty()) {
        std::snprintf(buf, sizeof buf, "%g", lateness);
        s += ":" + time_column + ":" + buf;
      }
      return s;
    }
  }
  return "?";
}

WindowSpec parse_window(const std::string& text) {
  const std::string usage =
      " (expected \"global\", \"count:N\", \"tumbling:SECONDS\" or \"tumbling:SECONDS:TIME_COLUMN[:LATENESS]\")";
  std::vector<std::string> parts = split(text, ':');
  WindowSpec w;
  if (parts[0] == "global" && parts.size() == 1) return w;
  if (parts[0] == "count" && parts.size() == 2) {
    double n = parse_number(parts[1], "window count");
    if (n < 1 || n != std::floor(n)) throw ConfigError("window count must be a positive integer, got " + parts[1]);
    w.kind = WindowSpec::Kind::kCount;
    w.count = static_cast<int64_t>(n);
    return w;
  }
  if (parts[0] == "tumbling" && parts.size() >= 2 && parts.size() <= 4) {
    w.kind = WindowSpec::Kind::kTumbling;
    w.size = parse_number(parts[1], "window size");
    if (w.size <= 0) throw ConfigError("window size must be positive, got " + parts[1]);
    if (parts.size() >= 3) {
      if (parts[2].empty()) throw ConfigError("window \"" + text + "\": empty time column" + usage);
      w.time_column = parts[2];
    }
    if (parts.size() == 4) {
      w.lateness = parse_number(parts[3], "window lateness");
      if (w.lateness < 0) throw ConfigError("window lateness must not be negative, got " + parts[3]);
    }
    return w;
  }
  throw ConfigError("unknown window \"" + text + "\"" + usage);
}

namespace {

const std::vector<std::string> kFunctions = {"count", "sum", "min", "max", "mean", "first", "last"};

bool is_integer(DType t) { return t == DType::kInt32 || t == DType::kInt64 || t == DType::kUInt8; }

}  // namespace

Aggregation parse_aggregation(const std::string& output, const std::string& expression) {
  Aggregation a;
  a.output = output;
  size_t open = expression.find('(');
  if (open == std::string::npos) {
    a.function = expression;
  } else {
    if (expression.back() != ')') {
      throw ConfigError("aggregation \"" + expression + "\" is not of the form function(column)");
    }
    a.function = expression.substr(0, open);
    a.column = expression.substr(open + 1, expression.size() - open - 2);
  }
  if (std::find(kFunctions.begin(), kFunctions.end(), a.function) == kFunctions.end()) {
    throw ConfigError("unknown aggregation function \"" + a.function +
                      "\" (known: count, sum(c), min(c), max(c), mean(c), first(c), last(c))");
  }
  if (a.function == "count" && !a.column.empty()) {
    throw ConfigError("aggregation \"" + expression + "\": count takes no column (write \"count\")");
  }
  if (a.function != "count" && a.column.empty()) {
    throw ConfigError("aggregation \"" + expression + "\" needs a column, e.g. " + a.function + "(x)");
  }
  return a;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Scalar values as bytes: keys are the concatenation of their columns' encodings, so equal keys
// are equal strings (a hash map key) and can be decoded back into columns.
//   numbers: the element's native bytes; strings: uint32 length + bytes.

void encode_value(const Column& c, int64_t row, std::string& out) {
  if (c.dtype() == DType::kString) {
    std::string_view s = c.str(row);
    auto n = static_cast<uint32_t>(s.size());
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out.append(s);
  } else {
    size_t size = dataflow::dtype_size(c.dtype());
    const char* base = reinterpret_cast<const char*>(c.value_bytes().data);
    out.append(base + static_cast<size_t>(row) * size, size);
  }
}

// Decodes one value at `p` (advancing it) and appends it to `b`.
void append_encoded(ColumnBuilder& b, DType t, const char*& p) {
  auto take = [&](auto v) {
    std::memcpy(&v, p, sizeof v);
    p += sizeof v;
    return v;
  };
  switch (t) {
    case DType::kString: {
      uint32_t n = take(uint32_t{});
      b.append_string(std::string_view(p, n));
      p += n;
      return;
    }
    case DType::kFloat32: b.append(take(float{})); return;
    case DType::kFloat64: b.append(take(double{})); return;
    case DType::kInt32: b.append(take(int32_t{})); return;
    case DType::kInt64: b.append(take(int64_t{})); return;
    case DType::kUInt8: b.append(take(uint8_t{})); return;
  }
}

// True when `bytes` is exactly one encoded value of each of `types`, in order (a check of keys
// and values read back from a checkpoint before they are decoded).
bool valid_encoding(const std::vector<DType>& types, std::string_view bytes) {
  size_t pos = 0;
  for (DType t : types) {
    size_t size = dataflow::dtype_size(t);
    if (t == DType::kString) {
      uint32_t n = 0;
      if (bytes.size() - pos < sizeof n) return false;
      std::memcpy(&n, bytes.data() + pos, sizeof n);
      pos += sizeof n;
      size = n;
    }
    if (bytes.size() - pos < size) return false;
    pos += size;
  }
  return pos == bytes.size();
}

// Orders two encoded values of type `t` (advancing both); <0, 0, >0.
int compare_encoded(DType t, const char*& a, const char*& b) {
  auto cmp = [&](auto x, auto y) {
    std::memcpy(&x, a, sizeof x);
    std::memcpy(&y, b, sizeof y);
    a += sizeof x;
    b += sizeof y;
    return x < y ? -1 : (y < x ? 1 : 0);
  };
  switch (t) {
    case DType::kString: {
      uint32_t na, nb;
      std::memcpy(&na, a, sizeof na);
      std::memcpy(&nb, b, sizeof nb);
      std::string_view sa(a + sizeof na, na), sb(b + sizeof nb, nb);
      a += sizeof na + na;
      b += sizeof nb + nb;
      int c = sa.compare(sb);
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case DType::kFloat32: return cmp(float{}, float{});
    case DType::kFloat64: return cmp(double{}, double{});
    case DType::kInt32: return cmp(int32_t{}, int32_t{});
    case DType::kInt64: return cmp(int64_t{}, int64_t{});
    case DType::kUInt8: return cmp(uint8_t{}, uint8_t{});
  }
  return 0;
}

// The key columns of a stream: encodes a row's key, orders and decodes encoded keys.
class KeyCodec {
 public:
  KeyCodec() = default;
  explicit KeyCodec(std::vector<ColumnSpec> columns) : columns_(std::move(columns)) {}

  const std::vector<ColumnSpec>& columns() const { return columns_; }

  // Looks the key columns up in `batch` (once per batch).
  std::vector<const Column*> bind(const Batch& batch) const {
    std::vector<const Column*> out;
    for (const auto& spec : columns_) out.push_back(&batch.column(spec.name));
    return out;
  }
  static void encode(const std::vector<const Column*>& cols, int64_t row, std::string& out) {
    out.clear();
    for (const Column* c : cols) encode_value(*c, row, out);
  }
  bool less(const std::string& a, const std::string& b) const {
    const char* pa = a.data();
    const char* pb = b.data();
    for (const auto& spec : columns_) {
      int c = compare_encoded(spec.dtype, pa, pb);
      if (c != 0) return c < 0;
    }
    return false;
  }
  // Appends the decoded key to builders [first, first + columns).
  void append(BatchBuilder& out, size_t first, const std::string& key) const {
    const char* p = key.data();
    for (size_t i = 0; i < columns_.size(); ++i) append_encoded(out.column(first + i), columns_[i].dtype, p);
  }

 private:
  std::vector<ColumnSpec> columns_;
};

// Checks `name` is a scalar column of `schema` and returns its spec.
const ColumnSpec& scalar_column(const Schema& schema, const std::string& name, const std::string& role) {
  const ColumnSpec* c = dataflow::find_column(schema, name);
  if (!c) {
    throw ConfigError(role + " \"" + name + "\" is not among the columns arriving (" +
                      dataflow::schema_to_string(schema) + ")");
  }
  bool scalar = !c->any_shape;
  for (int64_t d : c->record_shape) scalar = scalar && d == 1;
  if (!scalar) {
    throw ConfigError(role + " \"" + name + "\" must hold one value per record, not " + c->to_string());
  }
  return *c;
}

void check_time_column(const Schema& schema, const WindowSpec& w) {
  if (w.kind != WindowSpec::Kind::kTumbling || w.time_column.empty()) return;
  const ColumnSpec& c = scalar_column(schema, w.time_column, "time column");
  if (c.dtype == DType::kString) throw ConfigError("time column \"" + w.time_column + "\" must be numeric (seconds)");
}

// Window bookkeeping shared by reduce and join: maps records to window numbers and keeps the
// event-time watermark. Window n of a tumbling spec covers [n*size, (n+1)*size).
class Windows {
 public:
  explicit Windows(WindowSpec spec) : spec_(std::move(spec)) {}

  bool event_time() const { return spec_.kind == WindowSpec::Kind::kTumbling && !spec_.time_column.empty(); }
  bool processing_time() const { return spec_.kind == WindowSpec::Kind::kTumbling && spec_.time_column.empty(); }

  // Starts the clock of processing-time windows so that window `current` begins now (0 for a
  // fresh instance; after a restore, the window that was open, which so gets a full window
  // again: the time between the checkpoint and the restart is not counted).
  void start(int64_t current = 0) {
    start_ = std::chrono::steady_clock::now() -
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(static_cast<double>(current) * spec_.size));
  }
  double now_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  std::chrono::steady_clock::time_point end_time(int64_t window) const {
    return start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(window + 1) * spec_.size));
  }
  // Window numbers are kept within +-2^52, where a double holds every integer: a time further
  // from 0 (in windows) is a dead letter (assign), and a watermark there is clamped (observe),
  // so no cast to int64_t is out of range.
  static constexpr double kMaxWindow = 4503599627370496.0;  // 2^52
  static int64_t clamp_window(double q) {
    return static_cast<int64_t>(std::clamp(q, -kMaxWindow, kMaxWindow));
  }
  double window_start(int64_t w) const { return static_cast<double>(w) * spec_.size; }
  double window_end(int64_t w) const { return static_cast<double>(w + 1) * spec_.size; }

  // Event time: true when window `w` is already closed (a record for it is late).
  bool closed(int64_t w) const { return w < first_open_; }
  // Advances the watermark with an event time; returns the windows that are now complete,
  // i.e. every window w < the returned bound may be emitted.
  int64_t observe(double t) {
    max_time_ = std::max(max_time_, t);
    double watermark = max_time_ - spec_.lateness;
    // Window w is complete when watermark >= its end.
    // NaN only from a damaged checkpoint's watermark: no window completes.
    const double q = std::floor(watermark / spec_.size);
    int64_t bound = std::isnan(q) ? first_open_ : clamp_window(q);
    first_open_ = std::max(first_open_, bound);
    return first_open_;
  }
  void close_until(int64_t w) { first_open_ = std::max(first_open_, w); }

  // Event time: the window of row `r` of `time`, or nullopt after reporting the row as a dead
  // letter (a time that is not finite, or a window already closed: a late record; `what`
  // says which input, for messages).
  std::optional<int64_t> assign(const Column& time, int64_t r, Context& ctx, const std::string& what) const {
    double t = time.as_double(r);
    if (!std::isfinite(t)) {
      ctx.dead_letter("time column \"" + spec_.time_column + "\" is not finite", std::to_string(t));
      return std::nullopt;
    }
    const double q = std::floor(t / spec_.size);
    if (!(std::fabs(q) < kMaxWindow)) {
      ctx.dead_letter(fmt::format("time column \"{}\" is {}, too far from 0 for windows of {} s",
                                  spec_.time_column, t, spec_.size),
                      fmt::format("t={}", t));
      return std::nullopt;
    }
    const int64_t w = static_cast<int64_t>(q);
    if (closed(w)) {
      ctx.dead_letter("late record" + what + ": its window [" + std::to_string(window_start(w)) + ", " +
                          std::to_string(window_end(w)) + ") already closed",
                      "t=" + std::to_string(t));
      return std::nullopt;
    }
    return w;
  }

  const WindowSpec& spec() const { return spec_; }

  // Checkpoints: the event-time watermark (the processing-time clock restarts, see start()).
  void save(StateWriter& state) const {
    state.put<double>(max_time_);
    state.put<int64_t>(first_open_);
  }
  void load(StateReader& state) {
    max_time_ = state.get<double>();
    first_open_ = state.get<int64_t>();
  }

 private:
  WindowSpec spec_;
  std::chrono::steady_clock::time_point start_{};
  double max_time_ = -std::numeric_limits<double>::infinity();
  int64_t first_open_ = std::numeric_limits<int64_t>::min();
};

// ---------------------------------------------------------------------------------------------
// Reduce

// The running value of one aggregation for one group.
struct Accumulator {
  int64_t n = 0;
  double d = 0;
  int64_t i = 0;
  std::string value;  // first / last, encoded
};

struct AggregationPlan {
  Aggregation agg;
  DType input = DType::kFloat64;  // the column's dtype (count: unused)
  DType output = DType::kInt64;
};

struct Group {
  std::vector<Accumulator> acc;
  int64_t rows = 0;
  int64_t window = 0;  // count windows: the number of this key's current window
};

using GroupTable = std::unordered_map<std::string, Group>;

constexpr int64_t kEmitChunk = 8192;  // rows per emitted batch

class ReduceDef final : public OperatorDef {
 public:
  explicit ReduceDef(ReduceOptions o) : o_(std::move(o)) {
    if (o_.aggregations.empty()) throw ConfigError("a reduce needs at least one aggregation");
    if (o_.window.kind == WindowSpec::Kind::kCount && o_.window.count < 1) {
      throw ConfigError("count window needs a positive count");
    }
    for (size_t i = 0; i < o_.aggregations.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (o_.aggregations[i].output == o_.aggregations[j].output) {
          throw ConfigError("two aggregations write column \"" + o_.aggregations[i].output + "\"");
        }
      }
      for (const auto& k : o_.group_by) {
        if (k == o_.aggregations[i].output) {
          throw ConfigError("aggregation output \"" + k + "\" has the name of a group_by column");
        }
      }
    }
  }

  std::string type() const override { return "reduce"; }
  std::vector<PortSpec> inputs() const override { return {{"in"}}; }
  std::vector<PortSpec> outputs() const override { return {{"out"}}; }

  std::string describe() const override {
    std::string s = "group_by=";
    for (size_t i = 0; i < o_.group_by.size(); ++i) s += (i ? "," : "") + o_.group_by[i];
    s += " window=" + o_.window.to_string() + " aggregate=";
    for (size_t i = 0; i < o_.aggregations.size(); ++i) {
      const auto& a = o_.aggregations[i];
      s += (i ? "," : "") + a.output + "=" + a.function + (a.column.empty() ? "" : "(" + a.column + ")");
    }
    return s;
  }

  // The output columns and the plan for each aggregation, from the input columns.
  struct Plan {
    KeyCodec keys;
    std::vector<AggregationPlan> aggs;
    Schema output;
  };
  Plan plan(const Schema& in) const {
    Plan p;
    std::vector<ColumnSpec> keys;
    for (const auto& k : o_.group_by) keys.push_back(scalar_column(in, k, "group_by column"));
    check_time_column(in, o_.window);
    p.keys = KeyCodec(keys);
    p.output = keys;
    if (o_.window.kind == WindowSpec::Kind::kCount) {
      p.output.push_back({"window", DType::kInt64, {}, false});
    } else if (o_.window.kind == WindowSpec::Kind::kTumbling) {
      p.output.push_back({"window_start", DType::kFloat64, {}, false});
      p.output.push_back({"window_end", DType::kFloat64, {}, false});
    }
    for (const auto& a : o_.aggregations) {
      AggregationPlan ap{a};
      if (a.function == "count") {
        ap.output = DType::kInt64;
      } else {
        const ColumnSpec& c = scalar_column(in, a.column, "aggregated column");
        ap.input = c.dtype;
        if (a.function == "first" || a.function == "last") {
          ap.output = c.dtype;
        } else if (c.dtype == DType::kString) {
          throw ConfigError(a.function + "(" + a.column + ") needs a numeric column, but it is a string");
        } else if (a.function == "mean") {
          ap.output = DType::kFloat64;
        } else {
          ap.output = is_integer(c.dtype) ? DType::kInt64 : DType::kFloat64;
        }
      }
      for (const auto& existing : p.output) {
        if (existing.name == a.output) throw ConfigError("aggregation output \"" + a.output + "\" is already a column");
      }
      p.output.push_back({a.output, ap.output, {}, false});
      p.aggs.push_back(ap);
    }
    return p;
  }

  std::vector<std::optional<Schema>> infer_outputs(const std::vector<std::optional<Schema>>& in) const override {
    if (in.empty() || !in[0]) return {std::nullopt};
    return {plan(*in[0]).output};
  }

  class Instance final : public dataflow::Operator {
   public:
    explicit Instance(const ReduceDef& def) : def_(def), windows_(def.o_.window) {}

    void open(Context& ctx) override {
      windows_.start(current_window_);
      if (windows_.processing_time()) ctx.set_timer(windows_.end_time(current_window_));
    }

    void process(int, const BatchPtr& batch, Context& ctx) override {
      if (!plan_) {
        input_ = batch->schema();
        plan_ = def_.plan(*input_);
      }
      const Plan& p = *plan_;
      std::vector<const Column*> keys = p.keys.bind(*batch);
      std::vector<const Column*> cols;
      for (const auto& a : p.aggs) cols.push_back(a.agg.column.empty() ? nullptr : &batch->column(a.agg.column));
      const Column* time = windows_.event_time() ? &batch->column(def_.o_.window.time_column) : nullptr;

      for (int64_t r = 0; r < batch->rows(); ++r) {
        int64_t w = 0;
        if (time) {
          auto assigned = windows_.assign(*time, r, ctx, "");
          if (!assigned) continue;
          w = *assigned;
        } else if (windows_.processing_time()) {
          w = current_window_;
        }
        KeyCodec::encode(keys, r, key_);
        Group& g = tables_[w][key_];
        if (g.acc.empty()) g.acc.resize(p.aggs.size());
        add(g, cols, r);
        if (def_.o_.window.kind == WindowSpec::Kind::kCount && g.rows == def_.o_.window.count) {
          if (!full_) full_.emplace(p.output);
          append_row(*full_, key_, g, 0);
          g.rows = 0;
          g.acc.assign(p.aggs.size(), Accumulator{});
          ++g.window;
        }
        if (time) {
          int64_t complete = windows_.observe(time->as_double(r));
          emit_windows_before(complete, ctx);
        }
      }
      if (full_) {
        ctx.emit(0, full_->finish());
        full_.reset();
      }
    }

    void on_timer(Context& ctx) override {
      // Processing time: the current window ended.
      emit_windows_before(current_window_ + 1, ctx);
      ++current_window_;
      ctx.set_timer(windows_.end_time(current_window_));
    }

    void on_finish(Context& ctx) override {
      ctx.clear_timer();
      emit_windows_before(std::numeric_limits<int64_t>::max(), ctx);
    }

    // Checkpoints: the input schema (to rebuild the plan), the windows' state, and every group
    // of every open window with its accumulators.
    void snapshot(StateWriter& state, Context&) override {
      put_layout(state, "reduce", kLayout);
      put_flag(state, input_.has_value());
      if (input_) put_schema(state, *input_);
      windows_.save(state);
      state.put<int64_t>(current_window_);
      state.put<uint64_t>(tables_.size());
      for (const auto& [window, table] : tables_) {
        state.put<int64_t>(window);
        state.put<uint64_t>(table.size());
        for (const auto& [key, g] : table) {
          state.put_string(key);
          state.put<int64_t>(g.rows);
          state.put<int64_t>(g.window);
          state.put<uint64_t>(g.acc.size());
          for (const Accumulator& acc : g.acc) {
            state.put<int64_t>(acc.n);
            state.put<double>(acc.d);
            state.put<int64_t>(acc.i);
            state.put_string(acc.value);
          }
        }
      }
    }

    void restore(StateReader& state, Context&) override {
      expect_layout(state, "reduce", kLayout);
      if (get_flag(state)) {
        input_ = get_schema(state);
        try {
          plan_ = def_.plan(*input_);
        } catch (const ConfigError& e) {
          state.fail(std::string("holds an input schema this reduce cannot take: ") + e.what());
        }
      }
      windows_.load(state);
      current_window_ = state.get<int64_t>();
      std::vector<DType> key_types;
      if (plan_) {
        for (const ColumnSpec& c : plan_->keys.columns()) key_types.push_back(c.dtype);
      }
      const uint64_t windows = state.get_count(16);
      if (windows > 0 && !plan_) state.fail("holds groups but no input schema");
      for (uint64_t w = 0; w < windows; ++w) {
        const auto window = state.get<int64_t>();
        GroupTable& table = tables_[window];
        if (!table.empty()) state.fail("holds window " + std::to_string(window) + " twice");
        const uint64_t groups = state.get_count(8 + 3 * 8);
        for (uint64_t k = 0; k < groups; ++k) {
          std::string key = state.get_string();
          if (!valid_encoding(key_types, key)) state.fail("holds a damaged group key");
          Group g;
          g.rows = state.get<int64_t>();
          g.window = state.get<int64_t>();
          const uint64_t accs = state.get_count(3 * 8 + 8);
          if (accs != plan_->aggs.size()) {
            state.fail("holds a group of " + std::to_string(accs) + " aggregations, expected " +
                       std::to_string(plan_->aggs.size()));
          }
          g.acc.resize(static_cast<size_t>(accs));
          for (size_t i = 0; i < g.acc.size(); ++i) {
            Accumulator& acc = g.acc[i];
            acc.n = state.get<int64_t>();
            acc.d = state.get<double>();
            acc.i = state.get<int64_t>();
            acc.value = state.get_string();
            const AggregationPlan& a = plan_->aggs[i];
            const bool keeps_value = a.agg.function == "first" || a.agg.function == "last";
            if (g.rows < 0 || acc.n < 0 ||
                (keeps_value && acc.n > 0 && !valid_encoding({a.output}, acc.value))) {
              state.fail("holds a damaged accumulator of \"" + a.agg.output + "\"");
            }
          }
          if (!table.emplace(std::move(key), std::move(g)).second)
            state.fail("holds a group key twice");
        }
      }
    }

   private:
    static constexpr uint32_t kLayout = 1;

    void add(Group& g, const std::vector<const Column*>& cols, int64_t r) {
      ++g.rows;
      for (size_t i = 0; i < cols.size(); ++i) {
        const AggregationPlan& a = plan_->aggs[i];
        Accumulator& acc = g.acc[i];
        const std::string& f = a.agg.function;
        if (f == "count") {
          ++acc.n;
          continue;
        }
        const Column& c = *cols[i];
        if (f == "first" || f == "last") {
          if (f == "last" || acc.n == 0) {
            acc.value.clear();
            encode_value(c, r, acc.value);
          }
          ++acc.n;
          continue;
        }
        if (is_integer(a.input) && a.output == DType::kInt64) {
          int64_t v = c.as_int64(r);
          if (f == "sum") acc.i += v;
          else if (f == "min") acc.i = acc.n == 0 ? v : std::min(acc.i, v);
          else if (f == "max") acc.i = acc.n == 0 ? v : std::max(acc.i, v);
        } else {
          double v = c.as_double(r);
          if (f == "sum" || f == "mean") acc.d += v;
          else if (f == "min") acc.d = acc.n == 0 ? v : std::min(acc.d, v);
          else if (f == "max") acc.d = acc.n == 0 ? v : std::max(acc.d, v);
        }
        ++acc.n;
      }
    }

    void append_row(BatchBuilder& out, const std::string& key, const Group& g, int64_t window) {
      const Plan& p = *plan_;
      size_t col = 0;
      p.keys.append(out, 0, key);
      col = p.keys.columns().size();
      if (def_.o_.window.kind == WindowSpec::Kind::kCount) {
        out.column(col++).append<int64_t>(g.window);
      } else if (def_.o_.window.kind == WindowSpec::Kind::kTumbling) {
        out.column(col++).append<double>(windows_.window_start(window));
        out.column(col++).append<double>(windows_.window_end(window));
      }
      for (size_t i = 0; i < p.aggs.size(); ++i) {
        const AggregationPlan& a = p.aggs[i];
        const Accumulator& acc = g.acc[i];
        ColumnBuilder& b = out.column(col++);
        const std::string& f = a.agg.function;
        if (f == "count") {
          b.append<int64_t>(acc.n);
        } else if (f == "first" || f == "last") {
          const char* v = acc.value.data();
          append_encoded(b, a.output, v);
        } else if (f == "mean") {
          b.append<double>(acc.d / static_cast<double>(acc.n));
        } else if (a.output == DType::kInt64) {
          b.append<int64_t>(acc.i);
        } else {
          b.append<double>(acc.d);
        }
      }
    }

    // Emits (sorted by key) and forgets every window numbered below `bound`.
    void emit_windows_before(int64_t bound, Context& ctx) {
      while (!tables_.empty() && tables_.begin()->first < bound) {
        auto node = tables_.extract(tables_.begin());
        emit_table(node.key(), node.mapped(), ctx);
      }
    }

    void emit_table(int64_t window, GroupTable& table, Context& ctx) {
      if (!plan_) return;
      std::vector<const std::pair<const std::string, Group>*> rows;
      rows.reserve(table.size());
      for (const auto& entry : table) {
        if (entry.second.rows > 0) rows.push_back(&entry);
      }
      const KeyCodec& keys = plan_->keys;
      std::sort(rows.begin(), rows.end(), [&](auto* a, auto* b) { return keys.less(a->first, b->first); });
      for (size_t start = 0; start < rows.size(); start += kEmitChunk) {
        BatchBuilder out(plan_->output);
        size_t end = std::min(rows.size(), start + static_cast<size_t>(kEmitChunk));
        for (size_t i = start; i < end; ++i) append_row(out, rows[i]->first, rows[i]->second, window);
        ctx.emit(0, out.finish());
      }
    }

    const ReduceDef& def_;
    Windows windows_;
    std::optional<Schema> input_;  // the schema the plan was made for (of the first batch)
    std::optional<Plan> plan_;
    std::map<int64_t, GroupTable> tables_;  // by window number (0 for global and count windows)
    int64_t current_window_ = 0;            // processing time
    std::string key_;
    std::optional<BatchBuilder> full_;  // count windows completed by the current batch
  };

  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo&) const override {
    return std::make_unique<Instance>(*this);
  }

 private:
  ReduceOptions o_;
};

// ---------------------------------------------------------------------------------------------
// Join

class JoinDef final : public OperatorDef {
 public:
  explicit JoinDef(JoinOptions o) : o_(std::move(o)) {
    if (o_.keys.empty()) throw ConfigError("a join needs at least one key column");
    if (o_.window.kind == WindowSpec::Kind::kCount) {
      throw ConfigError("a join window is global or tumbling, not a count window");
    }
    if (o_.window.kind == WindowSpec::Kind::kTumbling && o_.window.time_column.empty()) {
      throw ConfigError("a join's tumbling window needs an event-time column (tumbling:SECONDS:COLUMN)");
    }
  }

  std::string type() const override { return "join"; }
  std::vector<PortSpec> inputs() const override { return {{"left"}, {"right"}}; }
  std::vector<PortSpec> outputs() const override { return {{"out"}}; }
  std::string describe() const override {
    std::string s = "keys=";
    for (size_t i = 0; i < o_.keys.size(); ++i) s += (i ? "," : "") + o_.keys[i];
    return s + " window=" + o_.window.to_string();
  }

  // Where each output column comes from: side (0 left, 1 right) and input column name.
  struct Plan {
    KeyCodec keys;
    Schema output;
    std::vector<std::pair<int, std::string>> sources;  // for non-key output columns
  };
  Plan plan(const Schema& left, const Schema& right) const {
    Plan p;
    std::vector<ColumnSpec> keys;
    for (const auto& k : o_.keys) {
      ColumnSpec l, r;
      try {
        l = scalar_column(left, k, "key column");
      } catch (const ConfigError& e) {
        throw ConfigError(std::string("input left: ") + e.what());
      }
      try {
        r = scalar_column(right, k, "key column");
      } catch (const ConfigError& e) {
        throw ConfigError(std::string("input right: ") + e.what());
      }
      if (l.dtype != r.dtype) {
        throw ConfigError("key column \"" + k + "\" is " + std::string(dataflow::dtype_name(l.dtype)) +
                          " on the left but " + std::string(dataflow::dtype_name(r.dtype)) + " on the right");
      }
      keys.push_back(l);
    }
    for (const Schema* s : {&left, &right}) {
      try {
        check_time_column(*s, o_.window);
      } catch (const ConfigError& e) {
        throw ConfigError(std::string(s == &left ? "input left: " : "input right: ") + e.what());
      }
    }
    p.keys = KeyCodec(keys);
    p.output = keys;
    auto is_key = [&](const std::string& n) { return std::find(o_.keys.begin(), o_.keys.end(), n) != o_.keys.end(); };
    for (int side = 0; side < 2; ++side) {
      const Schema& mine = side == 0 ? left : right;
      const Schema& other = side == 0 ? right : left;
      for (const auto& c : mine) {
        if (is_key(c.name)) continue;
        ColumnSpec out = c;
        if (dataflow::find_column(other, c.name)) out.name = (side == 0 ? o_.left_prefix : o_.right_prefix) + c.name;
        if (dataflow::find_column(p.output, out.name)) {
          throw ConfigError("output column \"" + out.name + "\" would appear twice; change left_prefix/right_prefix");
        }
        p.output.push_back(out);
        p.sources.emplace_back(side, c.name);
      }
    }
    return p;
  }

  std::vector<std::optional<Schema>> infer_outputs(const std::vector<std::optional<Schema>>& in) const override {
    if (in.size() < 2 || !in[0] || !in[1]) return {std::nullopt};
    return {plan(*in[0], *in[1]).output};
  }

  class Instance final : public dataflow::Operator {
   public:
    explicit Instance(const JoinDef& def) : def_(def), windows_(def.o_.window) {}

    void process(int port, const BatchPtr& batch, Context& ctx) override {
      Side& mine = sides_[port];
      Side& other = sides_[1 - port];
      if (!mine.schema) mine.schema = batch->schema();
      if (!plan_ && sides_[0].schema && sides_[1].schema) plan_ = def_.plan(*sides_[0].schema, *sides_[1].schema);

      KeyCodec codec(key_specs(*batch));
      std::vector<const Column*> keys = codec.bind(*batch);
      const Column* time = windows_.event_time() ? &batch->column(def_.o_.window.time_column) : nullptr;
      std::optional<BatchBuilder> out;
      for (int64_t r = 0; r < batch->rows(); ++r) {
        int64_t w = 0;
        if (time) {
          auto assigned = windows_.assign(*time, r, ctx, port == 0 ? " on left" : " on right");
          if (!assigned) continue;
          w = *assigned;
        }
        KeyCodec::encode(keys, r, key_);
        mine.windows[w][key_].push_back({batch, r});
        if (plan_) {
          auto win = other.windows.find(w);
          if (win != other.windows.end()) {
            auto match = win->second.find(key_);
            if (match != win->second.end()) {
              if (!out) out.emplace(plan_->output);
              for (const RowRef& o : match->second) {
                const RowRef me{batch, r};
                append(*out, port == 0 ? me : o, port == 0 ? o : me);
              }
            }
          }
        }
        if (time) {
          int64_t complete = windows_.observe(time->as_double(r));
          for (Side& s : sides_) s.windows.erase(s.windows.begin(), s.windows.lower_bound(complete));
        }
      }
      if (out && out->rows() > 0) ctx.emit(0, out->finish());
    }

    void on_finish(Context&) override {
      for (Side& s : sides_) s.windows.clear();
    }

    // Checkpoints: the windows' state and, per side, its schema and its rows: one batch per
    // window, each key's rows together in arrival order (restore() rebuilds the row references
    // into these batches, so every key matches the same rows in the same order).
    void snapshot(StateWriter& state, Context&) override {
      put_layout(state, "join", kLayout);
      windows_.save(state);
      for (const Side& side : sides_) {
        put_flag(state, side.schema.has_value());
        if (side.schema) put_schema(state, *side.schema);
        state.put<uint64_t>(side.windows.size());
        for (const auto& [window, keys] : side.windows) {
          state.put<int64_t>(window);
          BatchBuilder rows(*side.schema);
          for (const auto& [key, refs] : keys) {
            for (const RowRef& ref : refs) {
              for (size_t c = 0; c < side.schema->size(); ++c) {
                rows.column(c).append_from(ref.batch->column((*side.schema)[c].name), ref.row);
              }
            }
          }
          state.put_batch(share(rows.finish()));
        }
      }
    }

    void restore(StateReader& state, Context&) override {
      expect_layout(state, "join", kLayout);
      windows_.load(state);
      for (int port = 0; port < 2; ++port) {
        Side& side = sides_[port];
        if (get_flag(state)) side.schema = get_schema(state);
        const uint64_t windows = state.get_count(9);
        if (windows > 0 && !side.schema) state.fail("holds rows but no schema");
        for (uint64_t w = 0; w < windows; ++w) {
          const auto window = state.get<int64_t>();
          BatchPtr batch = state.get_batch();
          if (!batch || batch->rows() == 0) state.fail("holds an empty window");
          auto& keys = side.windows[window];
          if (!keys.empty()) state.fail("holds window " + std::to_string(window) + " twice");
          try {
            KeyCodec codec(key_specs(*batch));
            std::vector<const Column*> cols = codec.bind(*batch);
            for (int64_t r = 0; r < batch->rows(); ++r) {
              KeyCodec::encode(cols, r, key_);
              keys[key_].push_back({batch, r});
            }
          } catch (const DataError& e) {
            state.fail(std::string("holds a window batch without the key columns: ") + e.what());
          }
        }
      }
      if (sides_[0].schema && sides_[1].schema) {
        try {
          plan_ = def_.plan(*sides_[0].schema, *sides_[1].schema);
        } catch (const ConfigError& e) {
          state.fail(std::string("holds input schemas this join cannot take: ") + e.what());
        }
      }
    }

   private:
    static constexpr uint32_t kLayout = 1;

    struct RowRef {
      BatchPtr batch;
      int64_t row;
    };
    struct Side {
      std::optional<Schema> schema;
      // window -> key -> the side's rows with that key. Rows point into their batches, which
      // stay alive while a row of theirs is held.
      std::map<int64_t, std::unordered_map<std::string, std::vector<RowRef>>> windows;
    };

    std::vector<ColumnSpec> key_specs(const Batch& b) const {
      std::vector<ColumnSpec> out;
      for (const auto& k : def_.o_.keys) out.push_back(b.column(k).spec());
      return out;
    }

    void append(BatchBuilder& out, const RowRef& left, const RowRef& right) {
      size_t col = 0;
      for (const auto& k : def_.o_.keys) out.column(col++).append_from(left.batch->column(k), left.row);
      for (const auto& [side, name] : plan_->sources) {
        const RowRef& ref = side == 0 ? left : right;
        out.column(col++).append_from(ref.batch->column(name), ref.row);
      }
    }

    const JoinDef& def_;
    Windows windows_;
    Side sides_[2];
    std::optional<Plan> plan_;
    std::string key_;
  };

  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo&) const override {
    return std::make_unique<Instance>(*this);
  }

 private:
  JoinOptions o_;
};

}  // namespace

std::shared_ptr<const OperatorDef> reduce(ReduceOptions options) {
  return std::make_shared<ReduceDef>(std::move(options));
}

std::shared_ptr<const OperatorDef> join(JoinOptions options) {
  return std::make_shared<JoinDef>(std::move(options));
}

}  // namespace tensair::ops
