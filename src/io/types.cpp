// Job-file types of the dataset readers. Keys (defaults in brackets; docs/io.md has the details):
//
// Every type also takes the common source keys: batch_size [1024], rate [0: unlimited, records
// per second per instance], burst [rate/10], replay [1; 0: forever], limit [0: none],
// shard [true].
//
// cifar10_source   path [the 5 training batches; a string or an array], split ["train"|"test",
//                  used when path is absent], layout ["chw"|"hwc"], normalize [true],
//                  shuffle_buffer [0], seed [1], cache [true: later passes from memory],
//                  concept_changes [none; an array of {at = ID, permutation = [10 labels]}]
//                  out: id int64, image float32[3,32,32] (hwc: [32,32,3]), label int64,
//                       concept int64 (only with concept_changes)
// tabular_source   data (required), labels [none: then label_column], label_column [none;
//                  0-based, negative from the end], separator ["auto"|"comma"|"whitespace"|
//                  "tab"|one character], features [all but the label; 0-based field indices],
//                  standardize [false], header [false], classes [0: labels not checked;
//                  N: a label outside 0..N-1 is a dead letter naming file and line]
//                  out: id int64, x float32[d], y int64
// skipgram_source  path [the four corpora of ${TENSAIR_DATA}/text], min_count [5],
//                  max_vocab [0: no cap], sample [1e-3], window [5], negatives [5], seed [1],
//                  holdout_fraction [0], sentence ["line"|"paragraph"], vocab ["vocab.txt" in
//                  the output directory]
//                  out, holdout: target int64, context int64, negatives int64[negatives]
// w2v_pairs_source path [${TENSAIR_DATA}/tensair/w2v/shakespeare_train.txt.gz],
//                  format ["auto"|"text"|"eval"]
//                  out: target int64, context int64, negatives int64[4 for the shipped files]
#include "tensair/io/types.hpp"

#include "tensair/common/paths.hpp"
#include "tensair/io/cifar10.hpp"
#include "tensair/io/tabular.hpp"
#include "tensair/io/text.hpp"
#include "tensair/job/registry.hpp"

namespace tensair::io {
namespace {

using job::Params;

using job::source_options;  // the keys every source takes

// A path or an array of paths, each resolved as Params::input_path does: relative to the job
// file's directory, or to the working directory for a value given with --set.
std::vector<std::filesystem::path> input_paths(const Params& p, const std::string& key) {
  const toml::node* n = p.node(key);
  if (!n) return {};
  if (n->is_string()) return {p.input_path(key)};
  const toml::array* arr = n->as_array();
  if (!arr) p.fail(key, "expected a path or an array of paths");
  if (arr->empty()) p.fail(key, "the array of paths is empty");
  std::vector<std::filesystem::path> out;
  for (const toml::node& e : *arr) {
    auto s = e.value_exact<std::string>();
    if (!s || s->empty()) p.fail(key, "expected an array of paths (non-empty strings)");
    const auto& src = e.source().path;
    std::filesystem::path base =
        src ? std::filesystem::absolute(*src).parent_path() : std::filesystem::current_path();
    try {
      out.push_back(resolve_path(*s, base));
    } catch (const ConfigError& err) {
      p.fail(key, err.what());
    }
  }
  return out;
}

std::vector<int64_t> integers(const Params& p, const std::string& key, const toml::node& n) {
  const toml::array* arr = n.as_array();
  if (!arr) p.fail(key, "expected an array of integers");
  std::vector<int64_t> out;
  for (const toml::node& e : *arr) {
    auto v = e.value_exact<int64_t>();
    if (!v) p.fail(key, "expected an array of integers");
    out.push_back(*v);
  }
  return out;
}

std::vector<ConceptChange> concept_changes(const Params& p) {
  const toml::node* n = p.node("concept_changes");
  if (!n) return {};
  const toml::array* arr = n->as_array();
  if (!arr) p.fail("concept_changes", "expected an array of tables {at = N, permutation = [...]}");
  std::vector<ConceptChange> out;
  for (size_t i = 0; i < arr->size(); ++i) {
    const std::string entry = "entry " + std::to_string(i + 1) + ": ";
    const toml::table* t = (*arr)[i].as_table();
    if (!t) p.fail("concept_changes", entry + "expected a table {at = N, permutation = [...]}");
    for (const auto& [k, v] : *t) {
      if (k.str() != "at" && k.str() != "permutation") {
        p.fail("concept_changes", entry + "unknown key \"" + std::string(k.str()) + "\" (keys: at, permutation)");
      }
    }
    ConceptChange c;
    auto at = t->get("at") ? t->get("at")->value_exact<int64_t>() : std::nullopt;
    if (!at || *at < 0) p.fail("concept_changes", entry + "\"at\" must be a record id (an integer >= 0)");
    c.at = *at;
    const toml::node* perm = t->get("permutation");
    if (!perm) p.fail("concept_changes", entry + "missing \"permutation\" (a permutation of 0..9)");
    std::vector<int64_t> values = integers(p, "concept_changes", *perm);
    if (values.size() != 10) {
      p.fail("concept_changes", entry + "permutation has " + std::to_string(values.size()) +
                                    " labels; it must list each label 0..9 once");
    }
    std::copy(values.begin(), values.end(), c.permutation.begin());
    try {
      check_concept_change(c);
    } catch (const ConfigError& e) {
      p.fail("concept_changes", entry + e.what());
    }
    if (!out.empty() && c.at <= out.back().at) {
      p.fail("concept_changes", entry + "\"at\" = " + std::to_string(c.at) + " must be greater than the previous change's " +
                                    std::to_string(out.back().at));
    }
    out.push_back(c);
  }
  return out;
}

std::shared_ptr<const dataflow::OperatorDef> build_cifar10(const Params& p) {
  Cifar10Options o;
  std::string split = p.str("split", "train");
  if (split != "train" && split != "test") p.fail("split", "expected \"train\" or \"test\", got \"" + split + "\"");
  o.paths = input_paths(p, "path");
  if (o.paths.empty()) o.paths = split == "test" ? cifar10_test_files() : cifar10_train_files();
  std::string layout = p.str("layout", "chw");
  if (layout == "chw") o.layout = Cifar10Options::Layout::kCHW;
  else if (layout == "hwc") o.layout = Cifar10Options::Layout::kHWC;
  else p.fail("layout", "expected \"chw\" (torch) or \"hwc\" (channels last), got \"" + layout + "\"");
  o.normalize = p.boolean("normalize", true);
  o.shuffle_buffer = p.integer("shuffle_buffer", 0, 0);
  o.seed = static_cast<uint64_t>(p.integer("seed", 1));
  o.concept_changes = concept_changes(p);
  o.cache = p.boolean("cache", true);
  o.source = source_options(p);
  return cifar10_source(o);
}

std::shared_ptr<const dataflow::OperatorDef> build_tabular(const Params& p) {
  TabularOptions o;
  o.data = p.input_path("data");
  if (p.has("labels")) o.labels = p.input_path("labels");
  if (p.has("label_column")) o.label_column = p.integer("label_column");
  if (o.labels.empty() && !o.label_column) {
    p.fail("labels", "missing: give a label file (labels = \"...\") or the label's field (label_column = N)");
  }
  if (!o.labels.empty() && o.label_column) p.fail("label_column", "give either labels or label_column, not both");
  o.separator = p.str("separator", "auto");
  if (const toml::node* f = p.node("features")) o.features = integers(p, "features", *f);
  o.standardize = p.boolean("standardize", false);
  o.header = p.boolean("header", false);
  o.classes = p.integer("classes", 0, 0);
  o.source = source_options(p);
  try {
    return tabular_source(o);
  } catch (const ConfigError& e) {
    p.fail("data", e.what());
  }
}

std::shared_ptr<const dataflow::OperatorDef> build_skipgram(const Params& p) {
  SkipGramOptions o;
  o.paths = input_paths(p, "path");
  o.min_count = p.integer("min_count", o.min_count, 1);
  o.max_vocab = p.integer("max_vocab", 0, 0);
  o.sample = p.number("sample", o.sample, Params::Range{0, Params::kInf});  // 0: off
  o.window = p.integer("window", o.window, 1);
  o.negatives = p.integer("negatives", o.negatives, 1);
  o.seed = static_cast<uint64_t>(p.integer("seed", 1));
  o.holdout_fraction = p.number("holdout_fraction", 0, Params::Range{0, 1, false, true});
  std::string sentence = p.str("sentence", "line");
  if (sentence == "line") o.sentence_mode = SkipGramOptions::SentenceMode::kLine;
  else if (sentence == "paragraph") o.sentence_mode = SkipGramOptions::SentenceMode::kParagraph;
  else p.fail("sentence", "expected \"line\" or \"paragraph\", got \"" + sentence + "\"");
  o.vocab_path = p.output_path("vocab", "vocab.txt");
  o.source = source_options(p);
  try {
    return skipgram_source(o);
  } catch (const ConfigError& e) {
    p.fail("path", e.what());
  }
}

std::shared_ptr<const dataflow::OperatorDef> build_w2v_pairs(const Params& p) {
  W2vPairsOptions o;
  if (p.has("path")) o.path = p.input_path("path");
  o.format = p.str("format", "auto");
  if (o.format != "auto" && o.format != "text" && o.format != "eval") {
    p.fail("format", "expected \"auto\", \"text\" or \"eval\", got \"" + o.format + "\"");
  }
  o.source = source_options(p);
  try {
    return w2v_pairs_source(o);
  } catch (const ConfigError& e) {
    p.fail("path", e.what());
  }
}

}  // namespace

void register_job_types() {
  static const bool registered = [] {
    job::register_operator_type(
        {"cifar10_source", "CIFAR-10 binary batches (.bin/.gz/.xz): id, image float32[3,32,32], label", build_cifar10});
    job::register_operator_type(
        {"tabular_source", "numeric rows + label file (drift benchmarks): id, x float32[d], y", build_tabular});
    job::register_operator_type(
        {"skipgram_source", "skip-gram pairs with negatives from text corpora: target, context, negatives",
         build_skipgram});
    job::register_operator_type(
        {"w2v_pairs_source", "the original TensAIR's pre-made W2V pair files: target, context, negatives",
         build_w2v_pairs});
    return true;
  }();
  (void)registered;
}

}  // namespace tensair::io
