#include "tensair/job/params.hpp"

#include <algorithm>
#include <sstream>
#include <cmath>
#include <limits>
#include <utility>

#include "tensair/common/error.hpp"
#include "tensair/common/paths.hpp"

namespace tensair::job {

namespace {
const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}
}  // namespace

Params::Params(const toml::table& table, std::string section, const FileContext& ctx)
    : table_(table), section_(std::move(section)), ctx_(ctx) {}

bool Params::has(const std::string& key) const { return table_.contains(key); }

std::string Params::where(const std::string& key) const {
  const toml::node* n = key.empty() ? &table_ : table_.get(key);
  std::string full = section_;
  if (!key.empty()) full.append(".").append(key);
  std::string s;
  if (!key.empty() && ctx_.overridden.count(full)) {
    s = "--set " + full + ": ";
    return s;
  }
  s = ctx_.file.string();
  if (n && n->source().begin.line > 0) s += ":" + std::to_string(n->source().begin.line);
  s += ": [" + section_ + "]";
  if (key.empty()) return s + " ";
  return s + " key \"" + key + "\": ";
}

void Params::fail(const std::string& key, const std::string& message) const {
  throw ConfigError(where(key) + message);
}

const toml::node& Params::required(const std::string& key) const {
  used_.insert(key);
  const toml::node* n = table_.get(key);
  if (!n) {
    std::string s = ctx_.file.string();
    if (table_.source().begin.line > 0) s += ":" + std::to_string(table_.source().begin.line);
    throw ConfigError(s + ": [" + section_ + "] missing key \"" + key + "\"");
  }
  return *n;
}

const toml::node* Params::node(const std::string& key) const {
  used_.insert(key);
  return table_.get(key);
}

std::string Params::str(const std::string& key, std::optional<std::string> def) const {
  if (!has(key) && def) {
    used_.insert(key);
    return *def;
  }
  const toml::node& n = required(key);
  if (auto v = n.value_exact<std::string>()) return *v;
  fail(key, std::string("expected a string, got ") + type_name(n));
}

int64_t Params::integer(const std::string& key, std::optional<int64_t> def, int64_t min, int64_t max) const {
  int64_t v;
  if (!has(key) && def) {
    used_.insert(key);
    v = *def;
  } else {
    const toml::node& n = required(key);
    auto x = n.value_exact<int64_t>();
    if (!x) fail(key, std::string("expected an integer, got ") + type_name(n));
    v = *x;
  }
  if (v < min || v > max) {
    std::string range = max == INT64_MAX ? "at least " + std::to_string(min)
                                         : "between " + std::to_string(min) + " and " + std::to_string(max);
    fail(key, "must be " + range + ", got " + std::to_string(v));
  }
  return v;
}

double Params::number(const std::string& key, std::optional<double> def) const {
  if (!has(key) && def) {
    used_.insert(key);
    return *def;
  }
  const toml::node& n = required(key);
  if (auto v = n.value_exact<double>()) return *v;
  if (auto v = n.value_exact<int64_t>()) return static_cast<double>(*v);
  fail(key, std::string("expected a number, got ") + type_name(n));
}

namespace {
std::string show_number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

double Params::number(const std::string& key, std::optional<double> def, Range range) const {
  const double v = number(key, def);
  if (!std::isfinite(v)) fail(key, "must be a finite number, got " + show_number(v));
  const bool below = range.min_open ? !(v > range.min) : !(v >= range.min);
  const bool above = range.max_open ? !(v < range.max) : !(v <= range.max);
  if (below || above) {
    fail(key, "must be in " + std::string(range.min_open ? "(" : "[") + show_number(range.min) +
                  ", " + show_number(range.max) + (range.max_open || std::isinf(range.max) ? ")" : "]") +
                  ", got " + show_number(v));
  }
  return v;
}

bool Params::boolean(const std::string& key, std::optional<bool> def) const {
  if (!has(key) && def) {
    used_.insert(key);
    return *def;
  }
  const toml::node& n = required(key);
  if (auto v = n.value_exact<bool>()) return *v;
  fail(key, std::string("expected true or false, got ") + type_name(n));
}

std::vector<std::string> Params::strings(const std::string& key,
                                         std::optional<std::vector<std::string>> def) const {
  if (!has(key) && def) {
    used_.insert(key);
    return *def;
  }
  const toml::node& n = required(key);
  if (auto v = n.value_exact<std::string>()) return {*v};
  const toml::array* arr = n.as_array();
  if (!arr) fail(key, std::string("expected an array of strings, got ") + type_name(n));
  std::vector<std::string> out;
  for (const toml::node& e : *arr) {
    auto v = e.value_exact<std::string>();
    if (!v) fail(key, std::string("expected an array of strings, found ") + type_name(e) + " in it");
    out.push_back(*v);
  }
  return out;
}

std::filesystem::path Params::input_path(const std::string& key, std::optional<std::string> def) const {
  std::string text = str(key, def);
  if (text.empty()) fail(key, "empty path");
  std::string full = section_;
  full.append(".").append(key);
  bool from_cli = ctx_.overridden.count(full) > 0;
  try {
    return resolve_path(text, from_cli ? std::filesystem::current_path() : ctx_.base_dir);
  } catch (const ConfigError& e) {
    fail(key, e.what());
  }
}

std::filesystem::path Params::output_path(const std::string& key, std::optional<std::string> def,
                                          Output use) const {
  std::string text = str(key, def);
  if (text.empty()) fail(key, "empty path");
  // A relative output path stays inside the output folder (an absolute one may go anywhere).
  const std::filesystem::path given = std::filesystem::path(text).lexically_normal();
  if (given.is_relative() && !given.empty() && *given.begin() == "..") {
    fail(key, "\"" + text + "\" leaves the output folder; relative output paths are inside --out "
              "(give an absolute path to write elsewhere)");
  }
  std::filesystem::path path;
  try {
    path = resolve_path(text, ctx_.out_dir);
  } catch (const ConfigError& e) {
    fail(key, e.what());
  }
  if (use == Output::kReads) return path;
  const std::string who = "[" + section_ + "] key \"" + key + "\"";
  auto [it, fresh] = ctx_.outputs->emplace(path, who);
  if (!fresh && it->second != who) {
    fail(key, "writes " + path.string() + ", as " + it->second + " does (one file, one writer)");
  }
  return path;
}

char Params::character(const std::string& key, char def) const {
  std::string s = str(key, std::string(1, def));
  if (s == "\\t" || s == "\t") return '\t';
  if (s.size() != 1) fail(key, "expected a single character, got \"" + s + "\"");
  return s[0];
}

std::optional<Params> Params::table(const std::string& key) const {
  used_.insert(key);
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  const toml::table* t = n->as_table();
  if (!t) fail(key, std::string("expected a table, got ") + type_name(*n));
  return Params(*t, section_ + "." + key, ctx_);
}

std::vector<std::string> Params::keys() const {
  std::vector<std::pair<toml::source_position, std::string>> entries;
  for (const auto& [k, v] : table_) entries.emplace_back(k.source().begin, std::string(k.str()));
  // A key made by --set has no position (line 0): after those from the file.
  auto rank = [](const toml::source_position& p) {
    return std::make_pair(p.line == 0 ? std::numeric_limits<toml::source_index>::max() : p.line, p.column);
  };
  std::stable_sort(entries.begin(), entries.end(), [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  std::vector<std::string> out;
  for (auto& e : entries) out.push_back(std::move(e.second));
  return out;
}

void Params::check_all_used() const {
  for (const auto& [k, v] : table_) {
    std::string key(k.str());
    if (used_.count(key)) continue;
    std::string full = section_;
    full.append(".").append(key);
    if (ctx_.overridden.count(full)) {
      throw ConfigError("--set " + section_ + "." + key + ": unknown key \"" + key + "\" in [" + section_ + "]");
    }
    std::string s = ctx_.file.string();
    if (v.source().begin.line > 0) s += ":" + std::to_string(v.source().begin.line);
    throw ConfigError(s + ": [" + section_ + "] unknown key \"" + key + "\"");
  }
}

}  // namespace tensair::job
