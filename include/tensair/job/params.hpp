// Params: typed, checked access to one table of a job file.
//
// Every getter marks its key as used; check_all_used() then reports any key nobody read, so a
// misspelt key is an error instead of a silently ignored setting. Errors name the file, the
// line and the key: "job.toml:12: [count] key \"size\": expected an integer, got a string".
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <toml++/toml.h>
#include <vector>

namespace tensair::job {

// What every table of one job shares.
struct FileContext {
  std::filesystem::path file;      // the job file, as given
  std::filesystem::path base_dir;  // its directory: relative input paths start here
  std::filesystem::path out_dir;   // relative output paths start here
  std::set<std::string> overridden;  // "section.key" set with --set (relative to the cwd)
  // Every output file named so far (resolved path -> who writes it, e.g. `[sink] key "path"`),
  // shared by the Params of one job file, so that two writers of one file are refused.
  std::shared_ptr<std::map<std::filesystem::path, std::string>> outputs =
      std::make_shared<std::map<std::filesystem::path, std::string>>();
};

class Params {
 public:
  Params(const toml::table& table, std::string section, const FileContext& ctx);

  const std::string& section() const { return section_; }
  bool has(const std::string& key) const;

  std::string str(const std::string& key, std::optional<std::string> def = std::nullopt) const;
  int64_t integer(const std::string& key, std::optional<int64_t> def = std::nullopt,
                  int64_t min = INT64_MIN, int64_t max = INT64_MAX) const;
  double number(const std::string& key, std::optional<double> def = std::nullopt) const;
  // A finite number within `range` (NaN and infinities are refused: TOML has nan and inf), e.g.
  // number("lr", 0.01, {0, kInf, true}) for lr > 0. The error names the range as [a, b) etc.
  struct Range {
    double min;
    double max;
    bool min_open = false;  // min itself is not allowed
    bool max_open = false;  // max itself is not allowed
  };
  static constexpr double kInf = std::numeric_limits<double>::infinity();
  double number(const std::string& key, std::optional<double> def, Range range) const;
  bool boolean(const std::string& key, std::optional<bool> def = std::nullopt) const;
  // An array of strings; a single string is a one-element list.
  std::vector<std::string> strings(const std::string& key,
                                   std::optional<std::vector<std::string>> def = std::nullopt) const;
  // A path to read: ${VAR} expanded, relative to the job file's directory (or the working
  // directory when given with --set).
  std::filesystem::path input_path(const std::string& key,
                                   std::optional<std::string> def = std::nullopt) const;
  // A path in the output folder: ${VAR} expanded, relative to the output directory, which a
  // relative path may not leave. A file to write (kWrites) is registered, and a second writer of
  // the same file (or of the engine's metrics.jsonl and dead_letters.jsonl) is refused, naming
  // both; kReads is for a file another operator writes there (a vocabulary).
  enum class Output { kWrites, kReads };
  std::filesystem::path output_path(const std::string& key,
                                    std::optional<std::string> def = std::nullopt,
                                    Output use = Output::kWrites) const;
  // A single character (delimiters); "\t" is accepted for tab.
  char character(const std::string& key, char def) const;

  // The raw node (marks the key used); nullptr when absent.
  const toml::node* node(const std::string& key) const;
  // A sub-table as Params (marks the key used); nullopt when absent. Throws if not a table.
  std::optional<Params> table(const std::string& key) const;

  // Prefix for messages: "file:line: [section] key \"k\": " about a key, "file:line: [section] "
  // about the section, "--set section.key: " for a key given on the command line.
  std::string where(const std::string& key = "") const;
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  // The table's keys in the order the file gives them (the TOML reader keeps them sorted by
  // name); keys that only --set added come last, by name. For tables whose entries become
  // columns, so the columns come out in the order the user wrote.
  std::vector<std::string> keys() const;

  // Throws for the first key of the table that no getter read.
  void check_all_used() const;

  const toml::table& raw() const { return table_; }
  const FileContext& context() const { return ctx_; }

 private:
  const toml::node& required(const std::string& key) const;

  const toml::table& table_;
  std::string section_;
  const FileContext& ctx_;
  mutable std::set<std::string> used_;
};

}  // namespace tensair::job
