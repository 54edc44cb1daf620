// Job-file types of the engine's own operators (ops/).
#include <nlohmann/json.hpp>

#include "tensair/job/registry.hpp"
#include "tensair/ops/baselines.hpp"
#include "tensair/ops/functional.hpp"
#include "tensair/ops/reduce.hpp"
#include "tensair/ops/sinks.hpp"
#include "tensair/ops/sources.hpp"

namespace tensair::job {

dataflow::Schema column_specs(const Params& p, const std::string& key) {
  dataflow::Schema out;
  for (const std::string& text : p.strings(key, std::vector<std::string>{})) {
    try {
      out.push_back(dataflow::parse_column_spec(text));
    } catch (const ConfigError& e) {
      p.fail(key, e.what());
    }
  }
  return out;
}

namespace {

using dataflow::Schema;

dataflow::DType dtype(const Params& p, const std::string& key, const std::string& def) {
  std::string name = p.str(key, def);
  auto t = dataflow::parse_dtype(name);
  if (!t) p.fail(key, "unknown dtype \"" + name + "\" (known: float32, float64, int32, int64, uint8, string)");
  return *t;
}

ops::FileSinkOptions file_sink_options(const Params& p, bool csv) {
  ops::FileSinkOptions o;
  o.path = p.output_path("path");
  o.columns = p.strings("columns", std::vector<std::string>{});
  o.sort_by = p.str("sort_by", "");
  if (csv) {
    o.header = p.boolean("header", true);
    o.delimiter = p.character("delimiter", ',');
  }
  return o;
}

bool registered = [] {
  register_operator_type({"text_source", "lines of a text file (plain, .gz, .xz): column line", [](const Params& p) {
    ops::TextSourceOptions o;
    o.path = p.input_path("path");
    o.column = p.str("column", o.column);
    o.index_column = p.str("index_column", "");
    o.source = source_options(p);
    return ops::text_source(o);
  }});
  register_operator_type({"csv_source", "rows of a CSV file (plain, .gz, .xz)", [](const Params& p) {
    ops::CsvSourceOptions o;
    o.path = p.input_path("path");
    o.columns = column_specs(p, "columns");
    o.header = p.boolean("header", true);
    o.delimiter = p.character("delimiter", ',');
    o.default_dtype = dtype(p, "dtype", "float64");
    o.select = p.strings("select", std::vector<std::string>{});
    o.source = source_options(p);
    return ops::csv_source(o);
  }});
  register_operator_type({"binary_source", "fixed-size little-endian binary records", [](const Params& p) {
    ops::BinarySourceOptions o;
    o.path = p.input_path("path");
    o.fields = column_specs(p, "fields");
    if (o.fields.empty()) p.fail("fields", "list at least one field, e.g. [\"x:float32[4]\", \"y:int32\"]");
    o.header_bytes = p.integer("header_bytes", 0, 0);
    o.record_bytes = p.integer("record_bytes", 0, 0);
    o.source = source_options(p);
    return ops::binary_source(o);
  }});
  register_operator_type({"reduce", "keyed aggregation (count, sum, min, max, mean, first, last) over global, count or tumbling windows", [](const Params& p) {
    ops::ReduceOptions o;
    o.group_by = p.strings("group_by", std::vector<std::string>{});
    auto aggs = p.table("aggregate");
    if (!aggs) p.fail("aggregate", "missing: give a table of output = \"function(column)\", e.g. { n = \"count\" }");
    for (const std::string& name : aggs->keys()) {
      try {
        o.aggregations.push_back(ops::parse_aggregation(name, aggs->str(name)));
      } catch (const ConfigError& e) {
        aggs->fail(name, e.what());
      }
    }
    try {
      o.window = ops::parse_window(p.str("window", "global"));
    } catch (const ConfigError& e) {
      p.fail("window", e.what());
    }
    try {
      return ops::reduce(o);
    } catch (const ConfigError& e) {
      p.fail("aggregate", e.what());
    }
  }});
  register_operator_type({"join", "keyed inner equi-join of inputs left and right (global or event-time tumbling windows)", [](const Params& p) {
    ops::JoinOptions o;
    o.keys = p.strings("keys");
    o.left_prefix = p.str("left_prefix", o.left_prefix);
    o.right_prefix = p.str("right_prefix", o.right_prefix);
    if (o.keys.empty()) p.fail("keys", "name at least one key column, e.g. keys = [\"id\"]");
    try {
      o.window = ops::parse_window(p.str("window", "global"));
      return ops::join(o);
    } catch (const ConfigError& e) {
      p.fail("window", e.what());
    }
  }});
  register_operator_type({"generator", "synthetic records (sequence, uniform, normal, randint)", [](const Params& p) {
    ops::GeneratorSourceOptions o;
    o.count = p.integer("count", 0, 0);
    o.seed = static_cast<uint64_t>(p.integer("seed", 1));
    auto cols = p.table("columns");
    if (!cols) p.fail("columns", "missing: give a table of column = \"generator\"");
    for (const std::string& name : cols->keys()) o.columns.push_back({name, cols->str(name)});
    o.source = source_options(p);
    try {
      return ops::generator_source(o);
    } catch (const ConfigError& e) {
      p.fail("columns", e.what());
    }
  }});
  register_operator_type({"tokenize", "splits a string column into tokens (one row each)", [](const Params& p) {
    ops::TokenizeOptions o;
    o.column = p.str("column", o.column);
    o.pattern = p.str("pattern", o.pattern);
    o.lowercase = p.boolean("lowercase", o.lowercase);
    o.output = p.str("output", o.output);
    try {
      return ops::tokenize(o);
    } catch (const ConfigError& e) {
      p.fail("pattern", e.what());
    }
  }});
  register_operator_type({"hash_features", "text to a float32[dim] hashed bag of words (the hashing trick)", [](const Params& p) {
    ops::HashFeaturesOptions o;
    o.column = p.str("column", o.column);
    o.pattern = p.str("pattern", o.pattern);
    o.lowercase = p.boolean("lowercase", o.lowercase);
    o.dim = p.integer("dim", o.dim, 1, int64_t{1} << 24);
    o.ngrams = static_cast<int>(p.integer("ngrams", o.ngrams, 1, 2));
    o.output = p.str("output", o.output);
    try {
      return ops::hash_features(o);
    } catch (const ConfigError& e) {
      p.fail("pattern", e.what());
    }
  }});
  register_operator_type({"filter", "keeps rows where column <op> value", [](const Params& p) {
    ops::CompareOptions o;
    o.column = p.str("column");
    o.op = p.str("op");
    const toml::node* v = p.node("value");
    if (!v) p.fail("value", "missing");
    if (auto s = v->value_exact<std::string>()) {
      o.value = *s;
    } else if (auto d = v->value<double>()) {
      o.value = *d;
    } else {
      p.fail("value", "expected a number or a string");
    }
    try {
      return ops::filter_compare(o);
    } catch (const ConfigError& e) {
      p.fail("op", e.what());
    }
  }});
  register_operator_type({"select", "keeps and renames columns", [](const Params& p) {
    ops::SelectOptions o;
    o.columns = p.strings("columns", std::vector<std::string>{});
    if (auto r = p.table("rename")) {
      for (const std::string& name : r->keys()) o.rename.emplace_back(name, r->str(name));
    }
    return ops::select(o);
  }});
  register_operator_type({"prequential_baselines", "no-change and majority-class accuracy of a label stream", [](const Params& p) {
    return ops::prequential_baselines(p.str("label", "y"));
  }});
  register_operator_type({"csv_sink", "writes rows to a CSV file", [](const Params& p) {
    return ops::csv_sink(file_sink_options(p, true));
  }});
  register_operator_type({"jsonl_sink", "writes rows as JSON lines", [](const Params& p) {
    return ops::jsonl_sink(file_sink_options(p, false));
  }});
  register_operator_type({"stdout_sink", "prints rows (csv or json)", [](const Params& p) {
    ops::StdoutSinkOptions o;
    o.format = p.str("format", "csv");
    o.columns = p.strings("columns", std::vector<std::string>{});
    o.limit = p.integer("limit", 0, 0);
    try {
      return ops::stdout_sink(o);
    } catch (const ConfigError& e) {
      p.fail("format", e.what());
    }
  }});
  return true;
}();

}  // namespace

ops::SourceOptions source_options(const Params& p) {
  ops::SourceOptions o;
  o.batch_size = p.integer("batch_size", o.batch_size, 1, ops::SourceOptions::kMaxBatchSize);
  // rate 0 is "as fast as possible"; an infinite rate is refused, not taken as 0.
  o.rate = p.number("rate", 0, Params::Range{0, Params::kInf});
  o.burst = p.number("burst", 0, Params::Range{0, Params::kInf});
  o.replay = p.integer("replay", 1, 0);
  o.limit = p.integer("limit", 0, 0);
  o.shard = p.boolean("shard", true);
  return o;
}

// Keeps this file's registrations linked into programs that use the job library.
void link_builtin_types() { (void)registered; }

}  // namespace tensair::job
