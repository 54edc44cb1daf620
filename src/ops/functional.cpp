#include "tensair/ops/functional.hpp"

#include <algorithm>
#include <bitset>
#include <cmath>

#include "common/hash.hpp"

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

namespace {

using InferFn = std::function<std::optional<Schema>(const std::optional<Schema>&)>;
using ProcessFn = std::function<void(const BatchPtr&, Context&)>;

// A one-in, one-out operator whose instance calls `process` per batch; `infer` maps the input
// schema to the output schema (and throws ConfigError when the input cannot work).
class UnaryDef final : public OperatorDef {
 public:
  UnaryDef(std::string type, InferFn infer, ProcessFn process, std::string description)
      : type_(std::move(type)), infer_(std::move(infer)), process_(std::move(process)),
        description_(std::move(description)) {}
  std::string type() const override { return type_; }
  std::vector<PortSpec> inputs() const override { return {{"in"}}; }
  std::vector<PortSpec> outputs() const override { return {{"out"}}; }
  std::vector<std::optional<Schema>> infer_outputs(const std::vector<std::optional<Schema>>& in) const override {
    return {infer_(in.empty() ? std::nullopt : in[0])};
  }
  std::string describe() const override { return description_; }

  class Instance final : public dataflow::Operator {
   public:
    explicit Instance(const ProcessFn& fn) : fn_(fn) {}
    void process(int, const BatchPtr& batch, Context& ctx) override { fn_(batch, ctx); }

   private:
    const ProcessFn& fn_;
  };
  std::unique_ptr<dataflow::Operator> instantiate(const dataflow::InstanceInfo&) const override {
    return std::make_unique<Instance>(process_);
  }

 private:
  std::string type_;
  InferFn infer_;
  ProcessFn process_;
  std::string description_;
};

const dataflow::ColumnSpec& need_column(const Schema& schema, const std::string& name) {
  const dataflow::ColumnSpec* c = dataflow::find_column(schema, name);
  if (!c) {
    throw ConfigError("needs column \"" + name + "\", which is not among the columns arriving (" +
                      dataflow::schema_to_string(schema) + ")");
  }
  return *c;
}

// Keeps the rows of `batch` where keep[r]; the batch itself when all are kept.
BatchPtr keep_rows(const BatchPtr& batch, const std::vector<int64_t>& rows) {
  if (static_cast<int64_t>(rows.size()) == batch->rows()) return batch;
  return dataflow::share(batch->take(rows));
}

}  // namespace

std::shared_ptr<const OperatorDef> map(MapFn fn, std::optional<Schema> output, std::string description) {
  return std::make_shared<UnaryDef>(
      "map", [output](const std::optional<Schema>&) { return output; },
      [fn = std::move(fn)](const BatchPtr& b, Context& ctx) { ctx.emit(0, fn(*b)); },
      std::move(description));
}

std::shared_ptr<const OperatorDef> filter(RowPredicate keep, std::string description) {
  return std::make_shared<UnaryDef>(
      "filter", [](const std::optional<Schema>& in) { return in; },
      [keep = std::move(keep)](const BatchPtr& b, Context& ctx) {
        std::vector<int64_t> rows;
        for (int64_t r = 0; r < b->rows(); ++r) {
          if (keep(*b, r)) rows.push_back(r);
        }
        if (!rows.empty()) ctx.emit(0, keep_rows(b, rows));
      },
      std::move(description));
}

std::shared_ptr<const OperatorDef> flat_map(FlatMapFn fn, Schema output, std::string description) {
  return std::make_shared<UnaryDef>(
      "flat_map", [output](const std::optional<Schema>&) { return output; },
      [fn = std::move(fn), output](const BatchPtr& b, Context& ctx) {
        BatchBuilder out(output);
        for (int64_t r = 0; r < b->rows(); ++r) fn(*b, r, out);
        if (out.rows() > 0) ctx.emit(0, out.finish());
      },
      std::move(description));
}

namespace {

// Parses "[...]+" into the set of bytes it matches.
std::bitset<256> parse_class(const std::string& pattern) {
  auto bad = [&]() -> std::bitset<256> {
    throw ConfigError("pattern \"" + pattern +
                      "\" is not a character class followed by + (e.g. \"[a-z]+\", \"[^ \\t]+\")");
  };
  if (pattern.size() < 4 || pattern.front() != '[' || pattern.substr(pattern.size() - 2) != "]+") return bad();
  std::string body = pattern.substr(1, pattern.size() - 3);
  bool negate = !body.empty() && body[0] == '^';
  if (negate) body.erase(0, 1);
  if (body.empty()) return bad();
  std::bitset<256> set;
  auto unescape = [&](size_t& i) -> unsigned char {
    if (body[i] == '\\' && i + 1 < body.size()) {
      char c = body[++i];
      if (c == 't') return '\t';
      if (c == 'n') return '\n';
      if (c == 'r') return '\r';
      return static_cast<unsigned char>(c);
    }
    return static_cast<unsigned char>(body[i]);
  };
  for (size_t i = 0; i < body.size(); ++i) {
    unsigned char lo = unescape(i);
    if (i + 2 < body.size() && body[i + 1] == '-') {
      i += 2;
      unsigned char hi = unescape(i);
      if (hi < lo) return bad();
      for (unsigned c = lo; c <= hi; ++c) set.set(c);
    } else {
      set.set(lo);
    }
  }
  return negate ? ~set : set;
}

}  // namespace

std::shared_ptr<const OperatorDef> tokenize(TokenizeOptions o) {
  const std::bitset<256> set = parse_class(o.pattern);
  Schema output{{o.output, DType::kString, {}}};
  std::string description = "column=" + o.column + " pattern=" + o.pattern +
                            " lowercase=" + (o.lowercase ? "true" : "false") + " output=" + o.output;
  return std::make_shared<UnaryDef>(
      "tokenize",
      [o, output](const std::optional<Schema>& in) -> std::optional<Schema> {
        if (in) {
          const auto& c = need_column(*in, o.column);
          if (c.dtype != DType::kString) {
            throw ConfigError("column \"" + o.column + "\" is " + std::string(dtype_name(c.dtype)) +
                              ", tokenize needs a string column");
          }
        }
        return output;
      },
      [o, set, output](const BatchPtr& b, Context& ctx) {
        const Column& col = b->column(o.column);
        BatchBuilder out(output);
        std::string token;
        for (int64_t r = 0; r < b->rows(); ++r) {
          std::string_view s = col.str(r);
          token.clear();
          for (size_t i = 0; i <= s.size(); ++i) {
            unsigned char c = i < s.size() ? static_cast<unsigned char>(s[i]) : 0;
            if (o.lowercase && c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
            if (i < s.size() && set.test(c)) {
              token += static_cast<char>(c);
            } else if (!token.empty()) {
              out.column(0).append_string(token);
              token.clear();
            }
          }
        }
        if (out.rows() > 0) ctx.emit(0, out.finish());
      },
      description);
}

std::shared_ptr<const OperatorDef> hash_features(HashFeaturesOptions o) {
  if (o.dim < 1 || o.dim > (int64_t{1} << 24)) throw ConfigError("dim must be between 1 and 2^24");
  if (o.ngrams < 1 || o.ngrams > 2) throw ConfigError("ngrams must be 1 or 2");
  const std::bitset<256> set = parse_class(o.pattern);
  const ColumnSpec feature{o.output, DType::kFloat32, {o.dim}};
  std::string description = "column=" + o.column + " dim=" + std::to_string(o.dim) +
                            " ngrams=" + std::to_string(o.ngrams) + " output=" + o.output;
  return std::make_shared<UnaryDef>(
      "hash_features",
      [o, feature](const std::optional<Schema>& in) -> std::optional<Schema> {
        if (!in) return std::nullopt;
        const auto& c = need_column(*in, o.column);
        if (c.dtype != DType::kString) {
          throw ConfigError("column \"" + o.column + "\" is " + std::string(dtype_name(c.dtype)) +
                            ", hash_features needs a string column");
        }
        Schema out;
        for (const ColumnSpec& s : *in) {
          if (s.name != o.output) out.push_back(s);
        }
        out.push_back(feature);
        return out;
      },
      [o, set, feature](const BatchPtr& b, Context& ctx) {
        const Column& col = b->column(o.column);
        ColumnBuilder out(feature);
        std::vector<float> v(static_cast<size_t>(o.dim));
        std::string token;
        uint64_t prev = 0;
        bool have_prev = false;
        auto add = [&](uint64_t h) {
          const size_t i = static_cast<size_t>((h >> 1) % static_cast<uint64_t>(o.dim));
          v[i] += (h & 1) ? 1.0f : -1.0f;
        };
        for (int64_t r = 0; r < b->rows(); ++r) {
          std::fill(v.begin(), v.end(), 0.0f);
          std::string_view s = col.str(r);
          token.clear();
          have_prev = false;
          for (size_t i = 0; i <= s.size(); ++i) {
            unsigned char c = i < s.size() ? static_cast<unsigned char>(s[i]) : 0;
            if (o.lowercase && c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
            if (i < s.size() && set.test(c)) {
              token += static_cast<char>(c);
            } else if (!token.empty()) {
              const uint64_t h = hash_bytes(token);
              add(h);
              if (o.ngrams == 2 && have_prev) add(hash_u64(prev * 31 + h));
              prev = h;
              have_prev = true;
              token.clear();
            }
          }
          double norm = 0;
          for (float x : v) norm += static_cast<double>(x) * x;
          if (norm > 0) {
            const float k = static_cast<float>(1.0 / std::sqrt(norm));
            for (float& x : v) x *= k;
          }
          out.append_values(v.data(), v.size());
        }
        std::vector<Column> cols;
        for (const Column& c : b->columns()) {
          if (c.name() != o.output) cols.push_back(c);
        }
        cols.push_back(out.finish());
        ctx.emit(0, Batch(std::move(cols)));
      },
      description);
}

std::shared_ptr<const OperatorDef> filter_compare(CompareOptions o) {
  static const std::vector<std::string> kOps = {"==", "!=", "<", "<=", ">", ">="};
  auto it = std::find(kOps.begin(), kOps.end(), o.op);
  if (it == kOps.end()) {
    throw ConfigError("unknown comparison \"" + o.op + "\" (known: == != < <= > >=)");
  }
  const int op = static_cast<int>(it - kOps.begin());
  auto test = [op](auto a, auto b) {
    switch (op) {
      case 0: return a == b;
      case 1: return a != b;
      case 2: return a < b;
      case 3: return a <= b;
      case 4: return a > b;
      default: return a >= b;
    }
  };
  const bool numeric = std::holds_alternative<double>(o.value);
  std::string shown = numeric ? std::to_string(std::get<double>(o.value)) : "\"" + std::get<std::string>(o.value) + "\"";
  return std::make_shared<UnaryDef>(
      "filter",
      [o, numeric](const std::optional<Schema>& in) {
        if (in) {
          const auto& c = need_column(*in, o.column);
          if (!c.record_shape.empty()) throw ConfigError("column \"" + o.column + "\" holds arrays; filter compares scalars");
          if (numeric == (c.dtype == DType::kString)) {
            throw ConfigError("column \"" + o.column + "\" is " + std::string(dtype_name(c.dtype)) + ", compared with a " +
                              (numeric ? "number" : "string"));
          }
        }
        return in;
      },
      [o, numeric, test](const BatchPtr& b, Context& ctx) {
        const Column& col = b->column(o.column);
        std::vector<int64_t> rows;
        for (int64_t r = 0; r < b->rows(); ++r) {
          bool keep = numeric ? test(col.as_double(r), std::get<double>(o.value))
                              : test(col.str(r), std::string_view(std::get<std::string>(o.value)));
          if (keep) rows.push_back(r);
        }
        if (!rows.empty()) ctx.emit(0, keep_rows(b, rows));
      },
      o.column + " " + o.op + " " + shown);
}

std::shared_ptr<const OperatorDef> select(SelectOptions o) {
  auto new_name = [o](const std::string& name) {
    for (const auto& [from, to] : o.rename) {
      if (from == name) return to;
    }
    return name;
  };
  std::string description;
  if (!o.columns.empty()) {
    description = "columns=";
    for (size_t i = 0; i < o.columns.size(); ++i) description += (i ? "," : "") + o.columns[i];
  }
  for (const auto& [from, to] : o.rename) description += " " + from + "->" + to;
  return std::make_shared<UnaryDef>(
      "select",
      [o, new_name](const std::optional<Schema>& in) -> std::optional<Schema> {
        if (!in) return std::nullopt;
        Schema out;
        if (o.columns.empty()) {
          out = *in;
        } else {
          for (const auto& name : o.columns) out.push_back(need_column(*in, name));
        }
        for (const auto& [from, to] : o.rename) {
          if (!dataflow::find_column(out, from)) need_column(Schema{}, from);
        }
        for (auto& c : out) c.name = new_name(c.name);
        return out;
      },
      [o, new_name](const BatchPtr& b, Context& ctx) {
        std::vector<Column> cols;
        if (o.columns.empty()) {
          cols = b->columns();
        } else {
          for (const auto& name : o.columns) cols.push_back(b->column(name));
        }
        for (auto& c : cols) c = c.renamed(new_name(c.name()));
        ctx.emit(0, Batch(std::move(cols)));
      },
      description);
}

}  // namespace tensair::ops
