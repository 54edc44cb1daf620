#include "tensair/job/job.hpp"

#include <algorithm>
#include <limits>
#include <fstream>
#include <map>
#include <sstream>

#include "tensair/job/params.hpp"
#include "tensair/job/registry.hpp"
#include "tensair/common/error.hpp"
#include "tensair/common/paths.hpp"

namespace tensair::job {

void link_builtin_types();

namespace {

std::vector<OperatorType>& types() {
  static std::vector<OperatorType> all;
  return all;
}

// Keys every operator table may have besides its type's own.
const char* const kEdgeKeys[] = {"from", "routing", "key", "rank", "credit_bytes"};

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Reads "a.b=value" into (path [a, b], value node).
void apply_override(toml::table& root, const std::string& text, std::set<std::string>& overridden) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set " + text + ": expected section.key=value");
  }
  std::string path = text.substr(0, eq);
  std::string value = text.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) {
    if (p.empty()) throw ConfigError("--set " + text + ": empty name in \"" + path + "\"");
    parts.push_back(p);
  }
  if (parts.size() < 2) throw ConfigError("--set " + text + ": name a key inside a table, as section.key=value");
  toml::table* t = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    toml::node* n = t->get(parts[i]);
    if (!n) {
      t->insert(parts[i], toml::table{});
      n = t->get(parts[i]);
    }
    t = n->as_table();
    if (!t) throw ConfigError("--set " + text + ": \"" + parts[i] + "\" is not a table");
  }
  // A TOML value if it parses as one (numbers, booleans, "strings", arrays), else a string.
  bool parsed_value = false;
  try {
    toml::table parsed = toml::parse("v = " + value);
    if (toml::node* n = parsed.get("v")) {
      n->visit([&](auto&& v) { t->insert_or_assign(parts.back(), v); });
      parsed_value = true;
    }
  } catch (const toml::parse_error&) {
  }
  if (!parsed_value) t->insert_or_assign(parts.back(), value);
  overridden.insert(path);
}

dataflow::Placement parse_placement(const Params& p, int) {
  const toml::node* n = p.node("placement");
  if (!n) return dataflow::Placement::all();
  if (auto s = n->value_exact<std::string>()) {
    if (*s == "all") return dataflow::Placement::all();
    p.fail("placement", "expected \"all\", a rank, or a list of ranks, got \"" + *s + "\"");
  }
  if (auto r = n->value_exact<int64_t>()) {
    if (*r < 0) p.fail("placement", "rank must not be negative");
    return dataflow::Placement::on(static_cast<int>(*r));
  }
  if (const toml::array* arr = n->as_array()) {
    std::vector<int> ranks;
    for (const toml::node& e : *arr) {
      auto r = e.value_exact<int64_t>();
      if (!r || *r < 0) p.fail("placement", "expected a list of ranks (non-negative integers)");
      ranks.push_back(static_cast<int>(*r));
    }
    if (ranks.empty()) p.fail("placement", "the list of ranks is empty");
    return dataflow::Placement::on(ranks);
  }
  p.fail("placement", "expected \"all\", a rank, or a list of ranks");
}

dataflow::Routing parse_routing(const Params& p) {
  std::string r = p.str("routing", "round_robin");
  auto arg = [&](const std::string& name) -> std::optional<std::string> {
    if (r.size() > name.size() + 2 && r.compare(0, name.size() + 1, name + "(") == 0 && r.back() == ')') {
      return r.substr(name.size() + 1, r.size() - name.size() - 2);
    }
    return std::nullopt;
  };
  if (r == "round_robin") return dataflow::Routing::round_robin();
  if (r == "least_loaded") return dataflow::Routing::least_loaded();
  if (r == "forward") return dataflow::Routing::forward();
  if (r == "broadcast") return dataflow::Routing::broadcast(true);
  // "broadcast(others)" is how `tensair validate` prints it.
  if (r == "broadcast_others" || r == "broadcast(others)") return dataflow::Routing::broadcast(false);
  if (r == "key_hash" || arg("key_hash")) {
    std::string key = arg("key_hash") ? *arg("key_hash") : p.str("key", "");
    if (key.empty()) p.fail("routing", "key_hash routing needs the key column: key = \"<column>\"");
    if (arg("key_hash") && p.has("key") && p.str("key", "") != key) {
      p.fail("key", "\"" + p.str("key", "") + "\" contradicts routing = \"" + r + "\"; give the key column once");
    }
    return dataflow::Routing::key_hash(key);
  }
  if (r == "to_rank" || arg("to_rank")) {
    int64_t rank = 0;
    if (auto a = arg("to_rank")) {
      try {
        rank = std::stoll(*a);
      } catch (...) {
        p.fail("routing", "to_rank needs a rank number, got \"" + *a + "\"");
      }
      if (p.has("rank") && p.integer("rank", 0, 0) != rank) {
        p.fail("rank", std::to_string(p.integer("rank", 0, 0)) + " contradicts routing = \"" + r + "\"; give the rank once");
      }
    } else {
      rank = p.integer("rank", 0, 0);
    }
    return dataflow::Routing::to_rank(static_cast<int>(rank));
  }
  p.fail("routing", "unknown routing \"" + r +
                        "\" (known: round_robin, least_loaded, forward, key_hash, broadcast, "
                        "broadcast_others, to_rank)");
}

struct PendingEdge {
  std::string from;
  std::string to;
  dataflow::Routing routing;
  size_t credit = 0;
  std::string where;
};

// Reads the edge keys of an input description (an operator table or an inputs.<port> table).
void read_edges(const Params& p, const std::string& to, std::vector<PendingEdge>& edges) {
  if (!p.has("from")) {
    for (const char* k : kEdgeKeys) {
      if (p.has(k)) p.fail(k, "given without \"from\"");
    }
    return;
  }
  std::vector<std::string> from = p.strings("from");
  if (from.empty()) p.fail("from", "names no operator");
  dataflow::Routing routing = parse_routing(p);
  if (routing.kind() != dataflow::Routing::Kind::kKeyHash && p.has("key")) {
    p.fail("key", "only key_hash routing takes a key");
  }
  if (routing.kind() != dataflow::Routing::Kind::kToRank && p.has("rank")) {
    p.fail("rank", "only to_rank routing takes a rank");
  }
  p.node("key");
  p.node("rank");
  size_t credit = static_cast<size_t>(p.integer("credit_bytes", 0, 0));
  for (const std::string& f : from) edges.push_back({f, to, routing, credit, p.where("from")});
}

}  // namespace

void register_operator_type(OperatorType type) {
  auto& all = types();
  auto it = std::find_if(all.begin(), all.end(), [&](const OperatorType& t) { return t.name == type.name; });
  if (it != all.end()) {
    *it = std::move(type);
  } else {
    all.push_back(std::move(type));
  }
}

const OperatorType* find_operator_type(const std::string& name) {
  link_builtin_types();
  for (const OperatorType& t : types()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<const OperatorType*> all_operator_types() {
  link_builtin_types();
  std::vector<const OperatorType*> out;
  for (const OperatorType& t : types()) out.push_back(&t);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->name < b->name; });
  return out;
}

std::vector<std::pair<std::string, std::string>> operator_types() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const OperatorType* t : all_operator_types()) out.emplace_back(t->name, t->description);
  return out;
}

Job load_job(const std::filesystem::path& file, const LoadOptions& options) {
  link_builtin_types();
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    throw IoError("job file " + file.string() + " does not exist", ExitCode::kConfig);
  }
  if (std::filesystem::is_directory(file, ec)) {
    throw IoError(file.string() + " is a directory, a job file (.toml) was expected", ExitCode::kConfig);
  }
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw ConfigError(file.string() + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
                      ": " + std::string(e.description()));
  }

  FileContext ctx;
  ctx.file = file;
  ctx.base_dir = options.base_dir.empty() ? std::filesystem::absolute(file).parent_path()
                                          : std::filesystem::absolute(options.base_dir);
  ctx.out_dir = options.out_dir;
  for (const std::string& o : options.overrides) apply_override(root, o, ctx.overridden);
  // The engine's own files in the output folder: no sink may write them too.
  for (const char* own : {"metrics.jsonl", "dead_letters.jsonl"}) {
    (*ctx.outputs)[resolve_path(own, ctx.out_dir)] = std::string("the job's ") + own;
  }

  Job job;
  job.file = file;
  job.executor.out_dir = options.out_dir;

  // [job]
  static const toml::table kEmpty;
  const toml::table* job_table = root.get("job") ? root.get("job")->as_table() : &kEmpty;
  if (!job_table) {
    throw ConfigError(file.string() + ": \"job\" must be a table ([job])");
  }
  Params jp(*job_table, "job", ctx);
  job.name = jp.str("name", file.stem().string());
  // The name is the default output folder, out/<name>: one plain folder name.
  if (job.name.empty() || job.name == "." || job.name == ".." ||
      job.name.find_first_of("/\\") != std::string::npos ||
      std::any_of(job.name.begin(), job.name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    jp.fail("name", "must be a plain name without '/' (it names the output folder out/<name>), "
                    "got \"" + job.name + "\"");
  }
  job.executor.job_name = job.name;
  job.executor.credit_bytes = static_cast<size_t>(jp.integer("credit_bytes", 8 << 20, 1));
  // Seconds: finite and positive (NaN once slipped through a `<= 0` test).
  job.executor.metrics_interval_s =
      jp.number("metrics_interval", 2.0, Params::Range{0, Params::kInf, true});
  job.executor.heartbeat_timeout_s =
      jp.number("heartbeat_timeout", 30.0, Params::Range{0, Params::kInf, true});
  // A count (integer) or a fraction of an instance's records (a number in (0, 1)).
  if (const toml::node* n = jp.node("max_dead_letters")) {
    const auto count = n->value_exact<int64_t>();
    const auto fraction = n->value_exact<double>();
    if (count && *count >= 0) {
      job.executor.max_dead_letters = static_cast<uint64_t>(*count);
    } else if (fraction && *fraction > 0 && *fraction < 1) {
      job.executor.max_dead_letter_fraction = *fraction;
    } else {
      jp.fail("max_dead_letters",
              "expected a count (an integer >= 0; 0: no limit) or a fraction of each operator's "
              "records (a number between 0 and 1), e.g. 1000 or 0.01");
    }
  }
  // GET /metrics on metrics_port + rank (docs/serving.md).
  if (jp.has("metrics_port"))
    job.executor.metrics_port = static_cast<int>(jp.integer("metrics_port", 0, 0, 65535));
  job.executor.metrics_host = jp.str("metrics_host", job.executor.metrics_host);
  jp.check_all_used();

  // [checkpoint]: job-wide checkpoints, on when the table is there (docs/fault-tolerance.md).
  if (const toml::node* n = root.get("checkpoint")) {
    const toml::table* ct = n->as_table();
    if (!ct) throw ConfigError(file.string() + ": \"checkpoint\" must be a table ([checkpoint])");
    Params cp(*ct, "checkpoint", ctx);
    dataflow::CheckpointOptions& ck = job.executor.checkpoint;
    ck.enabled = cp.boolean("enabled", true);
    ck.every_s = cp.number("every_s", 0.0, Params::Range{0, Params::kInf});  // 0: not by time
    ck.every_records = cp.integer("every_records", 0, 0);
    ck.keep = static_cast<int>(cp.integer("keep", 3, 1, 1000000));
    ck.dir = cp.has("dir") ? cp.output_path("dir") : options.out_dir / "checkpoints";
    cp.check_all_used();
  }
  if (options.job_table_only) return job;

  // Operators, in file order.
  std::vector<std::pair<std::string, const toml::table*>> sections;
  for (const auto& [k, v] : root) {
    std::string name(k.str());
    if (name == "job" || name == "checkpoint") continue;  // settings, not operators
    const toml::table* t = v.as_table();
    if (!t) {
      std::string where = file.string();
      if (v.source().begin.line > 0) where += ":" + std::to_string(v.source().begin.line);
      throw ConfigError(where + ": unknown top-level key \"" + name +
                        "\" (settings go in [job], operators in their own [name] tables)");
    }
    sections.emplace_back(name, t);
  }
  std::stable_sort(sections.begin(), sections.end(), [](const auto& a, const auto& b) {
    return a.second->source().begin.line < b.second->source().begin.line;
  });
  if (sections.empty()) throw ConfigError(file.string() + ": no operators (add a [name] table with a type)");

  std::vector<Params> params;
  params.reserve(sections.size());
  std::vector<PendingEdge> edges;
  for (const auto& [name, table] : sections) {
    params.emplace_back(*table, name, ctx);
    const Params& p = params.back();
    if (!p.has("type")) {
      throw ConfigError(p.where() + "missing key \"type\" (the operator type, e.g. type = \"text_source\")");
    }
    std::string type = p.str("type");
    const OperatorType* t = find_operator_type(type);
    if (!t) {
      std::string known, best;
      size_t best_d = 3;
      for (const OperatorType* o : all_operator_types()) {
        known += (known.empty() ? "" : ", ") + o->name;
        size_t d = edit_distance(type, o->name);
        if (d < best_d) best_d = d, best = o->name;
      }
      p.fail("type", "unknown operator type \"" + type + "\"" +
                         (best.empty() ? "" : " (did you mean \"" + best + "\"?)") + "; known: " + known);
    }
    dataflow::Placement placement = parse_placement(p, 0);
    std::shared_ptr<const dataflow::OperatorDef> def;
    try {
      def = t->build(p);
    } catch (const ConfigError& e) {
      std::string what = e.what();
      // Builders' own messages already say where; others get this table's location.
      if (what.find(ctx.file.string()) == 0 || what.rfind("--set", 0) == 0) throw;
      throw ConfigError(p.where() + what);
    }
    try {
      job.graph.add(name, def, placement);
    } catch (const ConfigError& e) {
      throw ConfigError(p.where() + e.what());
    }
    // Edges into this operator.
    const auto& inputs = job.graph.operators().back().inputs;
    if (auto in = p.table("inputs")) {
      if (inputs.empty()) p.fail("inputs", "operator type \"" + type + "\" has no input");
      if (p.has("from")) p.fail("from", "give either from (for the first input port, \"" + inputs.front().name + "\") or [" + name + ".inputs.<port>] tables");
      for (const auto& [port, v] : in->raw()) {
        auto port_params = in->table(std::string(port.str()));
        read_edges(*port_params, name + "." + std::string(port.str()), edges);
        port_params->check_all_used();
      }
    } else if (p.has("from")) {
      if (inputs.empty()) p.fail("from", "operator type \"" + type + "\" has no input");
      // `from` feeds the operator's first input port ("in", or e.g. a model's "train").
      std::string to = name + "." + inputs.front().name;
      read_edges(p, to, edges);
    } else {
      read_edges(p, name, edges);  // reports stray edge keys
    }
    p.check_all_used();
  }
  for (const PendingEdge& e : edges) {
    try {
      job.graph.connect(e.from, e.to, e.routing, e.credit);
    } catch (const ConfigError& err) {
      throw ConfigError(e.where + err.what());
    }
  }
  return job;
}

}  // namespace tensair::job
