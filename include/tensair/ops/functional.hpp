// Map, Filter, FlatMap over C++ callables, and built-in functional operators that job files can
// configure (tokenize, filter by comparison, select). All have one input port "in" and one
// output port "out". The callables run on the instance's thread, one batch at a time; they may
// keep no state shared between instances unless they synchronise it themselves.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::ops {

// Batch to batch. `output` declares the columns of the result (nullopt: unknown until run).
using MapFn = std::function<dataflow::Batch(const dataflow::Batch&)>;
std::shared_ptr<const dataflow::OperatorDef> map(MapFn fn,
                                                 std::optional<dataflow::Schema> output = std::nullopt,
                                                 std::string description = "");

// Keeps the rows for which `keep(batch, row)` is true; the columns pass through unchanged.
using RowPredicate = std::function<bool(const dataflow::Batch&, int64_t row)>;
std::shared_ptr<const dataflow::OperatorDef> filter(RowPredicate keep, std::string description = "");

// Row to zero or more rows: `fn(batch, row, out)` appends rows to `out` (built for `output`).
// One output batch per input batch.
using FlatMapFn =
    std::function<void(const dataflow::Batch& in, int64_t row, dataflow::BatchBuilder& out)>;
std::shared_ptr<const dataflow::OperatorDef> flat_map(FlatMapFn fn, dataflow::Schema output,
                                                      std::string description = "");

// Splits the string column `column` into tokens: maximal runs of the bytes in `pattern`, a
// character class followed by '+' (e.g. "[a-z]+", "[A-Za-z']+", "[^ \t]+"). With `lowercase`,
// ASCII letters are lowered before matching. Emits one row per token in column `output`.
struct TokenizeOptions {
  std::string column = "line";
  std::string pattern = "[a-z]+";
  bool lowercase = true;
  std::string output = "word";
};
std::shared_ptr<const dataflow::OperatorDef> tokenize(TokenizeOptions options);

// Text to features by the hashing trick (Weinberger et al. 2009; Vowpal Wabbit, scikit-learn's
// HashingVectorizer): the string column `column` is split into tokens as tokenize does
// (`pattern`, `lowercase`); every token (and, with ngrams = 2, every pair of neighbouring
// tokens) adds +1 or -1 (a second hash bit: collisions cancel out on average) at index
// hash(token) mod `dim` of a float32[dim] vector, which is then scaled to unit length. Adds
// the column `output`; every input column passes through. No vocabulary is kept, so an endless
// stream whose words change needs no refit and the operator has no state.
struct HashFeaturesOptions {
  std::string column = "text";
  std::string pattern = "[a-z0-9']+";
  bool lowercase = true;
  int64_t dim = 1024;
  int ngrams = 1;
  std::string output = "x";
};
std::shared_ptr<const dataflow::OperatorDef> hash_features(HashFeaturesOptions options);

// Keeps rows where `column <op> value`; op is one of == != < <= > >=. A number compares with
// numeric columns, a string with string columns (byte order).
struct CompareOptions {
  std::string column;
  std::string op;
  std::variant<double, std::string> value;
};
std::shared_ptr<const dataflow::OperatorDef> filter_compare(CompareOptions options);

// Keeps `columns` (in that order; empty: all) and renames (old, new) pairs.
struct SelectOptions {
  std::vector<std::string> columns;
  std::vector<std::pair<std::string, std::string>> rename;
};
std::shared_ptr<const dataflow::OperatorDef> select(SelectOptions options);

}  // namespace tensair::ops
