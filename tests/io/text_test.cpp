// Skip-gram pairs from text: tokeniser, vocabulary, and statistical checks of the window sizes,
// the subsampling keep rates and the negative-sampling distribution; the held-out split,
// sharding, vocab.txt; and the original TensAIR's pair files (w2v_pairs_source).
//
// Statistical bounds: every run uses fixed seeds, so results are reproducible; the bounds are
// chosen so that a correct implementation would fail them with probability below about 1e-5
// for a random seed: chi-square statistics must stay under df + 5*sqrt(2*df) (5 standard
// deviations of the chi-square distribution above its mean), and binomial rates within 5
// standard errors of the expected probability.
#include <gtest/gtest.h>

#include <iostream>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "io_test_util.hpp"
#include "tensair/common/paths.hpp"
#include "tensair/io/text.hpp"
#include "tensair/io/types.hpp"
#include "tensair/job/job.hpp"

namespace tensair::io {
namespace {

using dataflow::Batch;
using test::TempDir;

double chi_square_bound(size_t df) { return static_cast<double>(df) + 5.0 * std::sqrt(2.0 * static_cast<double>(df)); }

// A word made of letters only, distinct for every n: "qa", "qb", ..., "qba", ...
std::string word(int n, const std::string& prefix = "q") {
  std::string s;
  do {
    s.insert(s.begin(), static_cast<char>('a' + n % 26));
    n /= 26;
  } while (n > 0);
  return prefix + s;
}

struct Pair {
  int64_t target, context;
  std::vector<int64_t> negatives;
  auto operator<=>(const Pair&) const = default;
};

std::vector<Pair> pairs_of(const Batch& b) {
  std::vector<Pair> out;
  if (b.rows() == 0) return out;
  const int64_t k = b.column("negatives").record_shape()[0];
  auto negs = b.column("negatives").values<int64_t>();
  for (int64_t r = 0; r < b.rows(); ++r) {
    Pair p{b.column("target").at<int64_t>(r), b.column("context").at<int64_t>(r), {}};
    p.negatives.assign(negs.begin() + r * k, negs.begin() + (r + 1) * k);
    out.push_back(std::move(p));
  }
  return out;
}

TEST(TokenizerTest, LowercaseAsciiWordsWithInnerApostrophes) {
  std::vector<std::string> t;
  tokenize_words("Don't stop--'tis O'Neil's 42nd ROAD, caf\xc3\xa9 ''", t);
  EXPECT_EQ(t, (std::vector<std::string>{"don't", "stop", "tis", "o'neil's", "nd", "road", "caf"}));
  t.clear();
  tokenize_words("", t);
  EXPECT_TRUE(t.empty());
}

TEST(VocabularyTest, MinCountAndDeterministicOrder) {
  std::unordered_map<std::string, int64_t> counts = {{"b", 5}, {"a", 5}, {"the", 9}, {"rare", 1}, {"c", 2}};
  Vocabulary v = Vocabulary::from_counts(counts, 2);
  ASSERT_EQ(v.size(), 4);
  EXPECT_EQ(v.word(0), "the");
  EXPECT_EQ(v.word(1), "a");  // ties by word
  EXPECT_EQ(v.word(2), "b");
  EXPECT_EQ(v.word(3), "c");
  EXPECT_EQ(v.id("rare"), -1);
  EXPECT_EQ(v.total(), 21);
  EXPECT_EQ(Vocabulary::from_counts(counts, 2, 2).size(), 2);
  TempDir dir;
  v.write(dir / "sub" / "vocab.txt");
  EXPECT_EQ(test::read_file(dir / "sub" / "vocab.txt"), "the 9\na 5\nb 5\nc 2\n");
}

TEST(SubsamplingTest, KeepProbabilityIsWord2vecsFormula) {
  // f = 0.1, s = 1e-3: (sqrt(100) + 1) * 0.01 = 0.11.
  EXPECT_NEAR(subsample_keep_probability(100, 1000, 1e-3), 0.11, 1e-12);
  // f = 1e-3 = s: (1 + 1) * 1 = 2, capped at 1.
  EXPECT_EQ(subsample_keep_probability(1, 1000, 1e-3), 1.0);
  EXPECT_EQ(subsample_keep_probability(500, 1000, 0), 1.0);
}

TEST(AliasSamplerTest, DrawsFollowTheWeights) {
  std::vector<double> w = {5, 0, 1, 0.5, 10, 3, 0, 2.5, 7, 1};
  AliasSampler s(w);
  const double sum = std::accumulate(w.begin(), w.end(), 0.0);
  std::vector<int64_t> counts(w.size(), 0);
  std::mt19937_64 gen(12345);
  const int n = 500000;
  for (int i = 0; i < n; ++i) counts[static_cast<size_t>(s.sample(gen()))]++;
  double chi = 0;
  size_t df = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == 0) {
      EXPECT_EQ(counts[i], 0) << i;
      continue;
    }
    const double e = n * w[i] / sum;
    chi += (counts[i] - e) * (counts[i] - e) / e;
    df++;
  }
  EXPECT_LT(chi, chi_square_bound(df - 1));
  std::cout << "alias sampler: chi2 = " << chi << " (df " << df - 1 << ", bound " << chi_square_bound(df - 1) << ")\n";
  EXPECT_THROW(AliasSampler(std::vector<double>{0, 0}), ConfigError);
}

TEST(SkipGramTest, WindowSizesAreUniformInOneToWindow) {
  TempDir dir;
  const int n = 20000;
  // Lines of 1000 words (the longest sentence), so no line is cut.
  std::string text;
  for (int i = 0; i < n; ++i) text += word(i) + ((i + 1) % 1000 == 0 ? "\n" : " ");
  test::write_file(dir / "c.txt", text);
  for (int64_t window : {1, 5, 8}) {
    SkipGramOptions o;
    o.paths = {dir / "c.txt"};
    o.min_count = 1;
    o.sample = 0;
    o.window = window;
    o.negatives = 1;
    o.seed = 3;
    auto r = test::run_source(1, skipgram_source(o));
    ASSERT_EQ(r.error(), "");
    Vocabulary v = Vocabulary::from_files(o.paths, 1);
    std::map<int64_t, int64_t> position;  // id -> position in the text
    for (int i = 0; i < n; ++i) position[v.id(word(i))] = i;
    // Group the pairs by centre word (they come in text order) and read b off each group.
    std::vector<int64_t> b_counts(static_cast<size_t>(window) + 1, 0);
    auto pairs = pairs_of(r.rows);
    size_t k = 0;
    int64_t centres = 0;
    while (k < pairs.size()) {
      const int64_t c = position.at(pairs[k].target);
      std::vector<int64_t> ctx;
      while (k < pairs.size() && position.at(pairs[k].target) == c) {
        ctx.push_back(position.at(pairs[k].context) - c);
        k++;
      }
      centres++;
      const int64_t in_line = c % 1000;
      if (in_line < window || in_line >= 1000 - window) continue;  // the window may be clipped
      ASSERT_EQ(ctx.size() % 2, 0u);
      const int64_t b = static_cast<int64_t>(ctx.size()) / 2;
      ASSERT_GE(b, 1);
      ASSERT_LE(b, window);
      std::vector<int64_t> want;
      for (int64_t d = -b; d <= b; ++d) {
        if (d != 0) want.push_back(d);
      }
      ASSERT_EQ(ctx, want) << "centre " << c;
      b_counts[static_cast<size_t>(b)]++;
    }
    EXPECT_EQ(centres, n);
    if (window > 1) {
      double total = 0;
      for (int64_t b = 1; b <= window; ++b) total += static_cast<double>(b_counts[static_cast<size_t>(b)]);
      const double e = total / static_cast<double>(window);
      double chi = 0;
      for (int64_t b = 1; b <= window; ++b) {
        const double d = static_cast<double>(b_counts[static_cast<size_t>(b)]) - e;
        chi += d * d / e;
      }
      EXPECT_LT(chi, chi_square_bound(static_cast<size_t>(window - 1))) << "window " << window;
      std::cout << "window " << window << ": chi2 of b over 1.." << window << " = " << chi << " (df " << window - 1
                << ", bound " << chi_square_bound(static_cast<size_t>(window - 1)) << ")\n";
    }
  }
}

TEST(SkipGramTest, SubsamplingKeepRatesMatchTheFormula) {
  // Lines "anchor probe": 200 anchors of frequency 0.0025 each (always kept at s = 0.01) and five
  // probe words of frequencies 0.2, 0.15, 0.075, 0.05, 0.025. With window 1 the pair
  // (anchor, probe) exists exactly when the probe occurrence was kept.
  TempDir dir;
  const std::vector<int> probe_lines = {40000, 30000, 15000, 10000, 5000};
  std::vector<int> probes;
  for (size_t p = 0; p < probe_lines.size(); ++p) probes.insert(probes.end(), static_cast<size_t>(probe_lines[p]), static_cast<int>(p));
  std::mt19937 gen(99);
  std::shuffle(probes.begin(), probes.end(), gen);
  std::string text;
  for (size_t i = 0; i < probes.size(); ++i) {
    text += word(static_cast<int>(i % 200), "anchor") + " " + word(probes[i], "probe") + "\n";
  }
  test::write_gzip(dir / "c.txt.gz", text);
  SkipGramOptions o;
  o.paths = {dir / "c.txt.gz"};
  o.min_count = 1;
  o.sample = 0.01;
  o.window = 1;
  o.negatives = 1;
  auto r = test::run_source(1, skipgram_source(o));
  ASSERT_EQ(r.error(), "");
  Vocabulary v = Vocabulary::from_files(o.paths, 1);
  ASSERT_EQ(v.total(), 200000);
  std::vector<int64_t> kept(probe_lines.size(), 0);
  for (const Pair& p : pairs_of(r.rows)) {
    const std::string& t = v.word(p.target);
    const std::string& c = v.word(p.context);
    if (t.starts_with("anchor") && c.starts_with("probe")) kept[static_cast<size_t>(c[5] - 'a')]++;
  }
  for (size_t i = 0; i < probe_lines.size(); ++i) {
    const double p = subsample_keep_probability(probe_lines[i], 200000, 0.01);
    const double n = probe_lines[i];
    const double rate = static_cast<double>(kept[i]) / n;
    const double se = std::sqrt(std::max(p * (1 - p), 1e-12) / n);
    EXPECT_NEAR(rate, p, 5 * se + 1e-12) << "probe " << i << " frequency " << n / 200000;
    std::cout << "subsampling f=" << n / 200000 << ": kept " << rate << ", formula " << p << " (|diff| = "
              << std::fabs(rate - p) / std::max(se, 1e-12) << " standard errors)\n";
  }
  // The expected keep rates really differ (0.27 .. 1), so the check is not vacuous.
  EXPECT_NEAR(subsample_keep_probability(40000, 200000, 0.01), 0.2736, 1e-4);
  EXPECT_EQ(subsample_keep_probability(5000, 200000, 0.01), 1.0);
}

TEST(SkipGramTest, NegativesFollowUnigramToTheThreeQuarters) {
  // 30 words with Zipf counts 6000/(i+1), in random lines of 12 words.
  TempDir dir;
  std::vector<int> tokens;
  for (int i = 0; i < 30; ++i) tokens.insert(tokens.end(), static_cast<size_t>(6000 / (i + 1)), i);
  std::mt19937 gen(5);
  std::shuffle(tokens.begin(), tokens.end(), gen);
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) text += word(tokens[i], "z") + ((i + 1) % 12 == 0 ? "\n" : " ");
  test::write_file(dir / "c.txt", text);
  SkipGramOptions o;
  o.paths = {dir / "c.txt"};
  o.min_count = 1;
  o.sample = 0;
  o.window = 2;
  o.negatives = 5;
  auto r = test::run_source(1, skipgram_source(o));
  ASSERT_EQ(r.error(), "");
  Vocabulary v = Vocabulary::from_files(o.paths, 1);
  ASSERT_EQ(v.size(), 30);
  std::vector<double> q(30);
  double z = 0;
  for (int64_t i = 0; i < 30; ++i) z += q[static_cast<size_t>(i)] = std::pow(static_cast<double>(v.count(i)), 0.75);
  for (double& x : q) x /= z;
  // A negative equal to the pair's context is redrawn, so given the context c the negatives
  // follow q restricted to w != c: q(w) / (1 - q(c)).
  std::vector<double> expected(30, 0.0), observed(30, 0.0);
  auto pairs = pairs_of(r.rows);
  ASSERT_GT(pairs.size(), 50000u);
  for (const Pair& p : pairs) {
    const double norm = 1.0 - q[static_cast<size_t>(p.context)];
    for (size_t w = 0; w < 30; ++w) {
      if (static_cast<int64_t>(w) != p.context) expected[w] += 5 * q[w] / norm;
    }
    for (int64_t n : p.negatives) {
      ASSERT_NE(n, p.context);
      observed[static_cast<size_t>(n)] += 1;
    }
  }
  double chi = 0;
  for (size_t w = 0; w < 30; ++w) chi += (observed[w] - expected[w]) * (observed[w] - expected[w]) / expected[w];
  EXPECT_LT(chi, chi_square_bound(29));
  std::cout << "negatives: chi2 = " << chi << " (df 29, bound " << chi_square_bound(29) << ") over "
            << 5 * pairs.size() << " draws\n";
  // And plainly not the unigram distribution itself: the most frequent word is drawn less
  // often than its unigram share.
  const double unigram0 = static_cast<double>(v.count(0)) / static_cast<double>(v.total());
  EXPECT_LT(observed[0] / (5.0 * static_cast<double>(pairs.size())), unigram0 * 0.9);
}

TEST(SkipGramTest, SamePairsWhateverTheInstanceCountAndHoldoutIsSeparate) {
  TempDir dir;
  std::string text;
  std::mt19937 gen(1);
  for (int line = 0; line < 100; ++line) {
    // Lines 80..99 (the last 20 %) use another set of words.
    const std::string prefix = line < 80 ? "t" : "h";
    for (int i = 0; i < 15; ++i) text += word(static_cast<int>(gen() % 40), prefix) + " ";
    text += "\n";
  }
  test::write_file(dir / "c.txt", text);
  SkipGramOptions o;
  o.paths = {dir / "c.txt"};
  o.min_count = 1;
  o.sample = 0.05;
  o.holdout_fraction = 0.2;
  o.source.batch_size = 50;
  o.source.replay = 2;
  std::vector<Pair> first_train, first_holdout;
  for (int ranks : testing::rank_counts()) {
    TempDir out;
    auto def = skipgram_source(o);
    auto r = test::run_source(ranks, def, out.path(), /*holdout=*/true);
    ASSERT_EQ(r.error(), "");
    auto train = pairs_of(r.rows);
    auto held = pairs_of(r.holdout);
    ASSERT_FALSE(held.empty());
    // Vocabulary written by instance 0, "word count" lines in id order.
    std::string vocab = test::read_file(out / "vocab.txt");
    std::vector<std::string> words;
    for (size_t pos = 0; pos < vocab.size();) {
      size_t sp = vocab.find(' ', pos), nl = vocab.find('\n', pos);
      words.push_back(vocab.substr(pos, sp - pos));
      pos = nl + 1;
    }
    for (const Pair& p : train) {
      ASSERT_EQ(words.at(static_cast<size_t>(p.target))[0], 't');
      ASSERT_EQ(words.at(static_cast<size_t>(p.context))[0], 't');
    }
    for (const Pair& p : held) ASSERT_EQ(words.at(static_cast<size_t>(p.target))[0], 'h');
    std::sort(train.begin(), train.end());
    std::sort(held.begin(), held.end());
    if (first_train.empty()) {
      first_train = train;
      first_holdout = held;
    } else {
      EXPECT_EQ(train, first_train) << "ranks " << ranks;
      EXPECT_EQ(held, first_holdout) << "ranks " << ranks;
    }
  }
  // Held-out pairs are emitted once, however many passes: a run with replay 1 has the same.
  o.source.replay = 1;
  auto once = test::run_source(1, skipgram_source(o), {}, true);
  auto held = pairs_of(once.holdout);
  std::sort(held.begin(), held.end());
  EXPECT_EQ(held, first_holdout);
  // Two passes differ (subsampling and windows are drawn anew), so replay 2 is not 2x replay 1.
  auto train1 = pairs_of(once.rows);
  std::sort(train1.begin(), train1.end());
  EXPECT_NE(first_train.size(), 2 * train1.size());
}

TEST(SkipGramTest, RealCorpusVocabularyAndLimit) {
  SkipGramOptions o;
  o.paths = {data_dir() / "text" / "tinyshakespeare.txt.gz"};
  o.source.limit = 300;  // sentences
  o.source.batch_size = 256;
  auto def = skipgram_source(o);
  EXPECT_NE(def->describe().find("vocabulary="), std::string::npos);
  Vocabulary v = Vocabulary::from_files(o.paths, 5);
  EXPECT_EQ(v.word(0), "the");
  EXPECT_GT(v.size(), 3000);
  EXPECT_LT(v.size(), 12631);  // below the README's distinct-word count (min_count = 5)
  auto r = test::run_source(2, def);
  ASSERT_EQ(r.error(), "");
  EXPECT_GT(r.rows.rows(), 500);
  EXPECT_EQ(r.rows.column("negatives").record_shape(), std::vector<int64_t>{5});
  for (const Pair& p : pairs_of(r.rows)) {
    ASSERT_LT(p.target, v.size());
    ASSERT_LT(p.context, v.size());
  }
}

TEST(SkipGramTest, OptionErrorsAndJobKeys) {
  TempDir dir;
  test::write_file(dir / "c.txt", "a b c a b a\n");
  SkipGramOptions o;
  o.paths = {dir / "c.txt"};
  o.min_count = 10;
  EXPECT_THROW(skipgram_source(o), ConfigError);  // empty vocabulary
  o.min_count = 1;
  o.window = 0;
  EXPECT_THROW(skipgram_source(o), ConfigError);
  o.window = 5;
  o.holdout_fraction = 1;
  EXPECT_THROW(skipgram_source(o), ConfigError);

  register_job_types();
  test::write_file(dir / "job.toml",
                   "[src]\ntype = \"skipgram_source\"\npath = [\"c.txt\"]\nmin_count = 1\nnegatives = 3\n"
                   "sentence = \"paragraph\"\nholdout_fraction = 0.0\n"
                   "[sink]\ntype = \"stdout_sink\"\nfrom = \"src\"\n");
  auto jb = job::load_job(dir / "job.toml", {});
  const auto& node = jb.graph.operators()[static_cast<size_t>(jb.graph.find("src"))];
  EXPECT_EQ(dataflow::schema_to_string(*node.outputs[0].schema), "target: int64, context: int64, negatives: int64[3]");
  EXPECT_NE(node.def->describe().find("vocabulary=3 words"), std::string::npos) << node.def->describe();
}

TEST(W2vPairsTest, ReadsTheOriginalTextAndHeldOutFiles) {
  W2vPairsOptions o;  // default: shakespeare_train.txt.gz
  auto r = test::run_source(2, w2v_pairs_source(o));
  ASSERT_EQ(r.error(), "");
  // shared/data/tensair/README.md: 113,152 lines.
  ASSERT_EQ(r.rows.rows(), 113152);
  EXPECT_EQ(r.dead_letters(), 0u);
  auto pairs = pairs_of(r.rows);
  // First line: "1795 128 42 307 81 236 1 0 0 0 0".
  EXPECT_NE(std::find(pairs.begin(), pairs.end(), Pair{1795, 128, {42, 307, 81, 236}}), pairs.end());
  int64_t max_id = 0;
  for (const Pair& p : pairs) max_id = std::max({max_id, p.target, p.context, *std::max_element(p.negatives.begin(), p.negatives.end())});
  EXPECT_LT(max_id, 50000);

  o.path = data_dir() / "tensair" / "w2v" / "shakespeare_eval.bytes";
  auto def = w2v_pairs_source(o);
  EXPECT_NE(def->describe().find("examples=19971"), std::string::npos) << def->describe();
  auto e = test::run_source(1, def);
  ASSERT_EQ(e.error(), "");
  ASSERT_EQ(e.rows.rows(), 19971);
  // Example 0: target 410; contexts 4 92 2632 39512 736; labels 1 0 0 0 0.
  EXPECT_EQ(pairs_of(e.rows)[0], (Pair{410, 4, {92, 2632, 39512, 736}}));
}

TEST(W2vPairsTest, BadLinesAreDeadLetters) {
  TempDir dir;
  test::write_file(dir / "p.txt",
                   "1 2 3 4 0 1 0\n"   // positive in the 2nd slot
                   "1 2 3 4 1 1 0\n"   // two positives
                   "1 2 3 4 1 0\n"     // short
                   "1 2 x 4 1 0 0\n"   // not an integer
                   "5 6 7 8 1 0 0\n");
  W2vPairsOptions o;
  o.path = dir / "p.txt";
  TempDir out;
  auto r = test::run_source(1, w2v_pairs_source(o), out.path());
  ASSERT_EQ(r.error(), "");
  EXPECT_EQ(pairs_of(r.rows), (std::vector<Pair>{{1, 3, {2, 4}}, {5, 6, {7, 8}}}));
  EXPECT_EQ(r.dead_letters(), 3u);
  std::string dead = test::read_file(out / "dead_letters.jsonl");
  EXPECT_NE(dead.find("p.txt:2: more than one label is 1"), std::string::npos) << dead;
  EXPECT_NE(dead.find("p.txt:3: 6 fields, expected 7"), std::string::npos) << dead;
  EXPECT_NE(dead.find("p.txt:4: field 2"), std::string::npos) << dead;
  test::write_file(dir / "bad.bytes", std::string("\x00\x08\x00\x00\x05\x00\x00\x00\x02\x00\x00\x00", 12));
  o.path = dir / "bad.bytes";
  EXPECT_THROW(w2v_pairs_source(o), ConfigError);
}

}  // namespace
}  // namespace tensair::io
