// skipgram_source: skip-gram pairs with negatives from text corpora (tensair/io/text.hpp).
#include <algorithm>
#include <cmath>

#include "io/source_util.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/common/log.hpp"
#include "tensair/common/paths.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/io/text.hpp"
#include "tensair/ops/operator_state.hpp"

namespace tensair::io {

using dataflow::BatchBuilder;
using dataflow::Context;
using dataflow::DType;
using dataflow::Schema;
using dataflow::SourceState;
using dataflow::StateReader;
using dataflow::StateWriter;

namespace {

constexpr int64_t kMaxSentence = 1000;  // word2vec.c's MAX_SENTENCE_LENGTH
constexpr uint64_t kHoldoutPass = 0xffffffffffffULL;  // the seed "pass" of held-out pairs
constexpr int kNegativeRetries = 32;

// The corpus as vocabulary ids, cut into sentences. Immutable once built; shared by instances.
struct Corpus {
  Vocabulary vocab;
  std::vector<int32_t> tokens;
  struct Span {
    int64_t begin, end;
  };
  std::vector<Span> train;    // training sentences, in corpus order
  std::vector<Span> holdout;  // held-out sentences
  std::vector<double> keep;   // subsampling keep probability per id
  AliasSampler negatives;     // unigram^0.75
  int64_t lines = 0;
  int64_t raw_tokens = 0;
};

std::shared_ptr<const Corpus> build_corpus(const SkipGramOptions& o) {
  auto corpus = std::make_shared<Corpus>();
  // Pass 1: tokens as provisional ids (first-seen order), and where the lines start.
  std::unordered_map<std::string, int32_t> provisional;
  std::vector<std::string> words;   // provisional id -> word
  std::vector<int64_t> counts;      // provisional id -> count
  std::vector<int32_t> raw;         // provisional ids of every token
  struct Line {
    int64_t begin;    // first token in raw
    bool blank;       // only white space
    bool held_out;
    bool file_start;  // first line of a file
  };
  std::vector<Line> lines;
  std::string text;
  std::vector<std::string> tokens;
  for (const auto& path : o.paths) {
    FileReader f(path);
    const size_t first_line = lines.size();
    while (f.read_line(text)) {
      tokens.clear();
      tokenize_words(text, tokens);
      const bool blank = text.find_first_not_of(" \t\r") == std::string::npos;
      lines.push_back({static_cast<int64_t>(raw.size()), blank, false, lines.size() == first_line});
      for (std::string& t : tokens) {
        auto [it, fresh] = provisional.try_emplace(t, static_cast<int32_t>(words.size()));
        if (fresh) {
          words.push_back(t);
          counts.push_back(0);
        }
        counts[static_cast<size_t>(it->second)]++;
        raw.push_back(it->second);
      }
    }
    // The last holdout_fraction of this file's lines are held out.
    const size_t n = lines.size() - first_line;
    const size_t cut = first_line + static_cast<size_t>(std::floor(static_cast<double>(n) * (1.0 - o.holdout_fraction)));
    for (size_t i = cut; i < lines.size(); ++i) lines[i].held_out = true;
  }
  corpus->lines = static_cast<int64_t>(lines.size());
  corpus->raw_tokens = static_cast<int64_t>(raw.size());

  std::unordered_map<std::string, int64_t> count_map;
  count_map.reserve(words.size());
  for (size_t i = 0; i < words.size(); ++i) count_map.emplace(words[i], counts[i]);
  corpus->vocab = Vocabulary::from_counts(count_map, o.min_count, o.max_vocab);
  const Vocabulary& vocab = corpus->vocab;
  if (vocab.size() == 0) {
    throw ConfigError("the corpus has no word seen min_count = " + std::to_string(o.min_count) + " times (" +
                      std::to_string(raw.size()) + " tokens read)");
  }
  std::vector<int32_t> remap(words.size());
  for (size_t i = 0; i < words.size(); ++i) remap[i] = static_cast<int32_t>(vocab.id(words[i]));

  // Pass 2 (in memory): drop out-of-vocabulary tokens and cut the sentences.
  corpus->tokens.reserve(raw.size());
  int64_t sentence_begin = 0;
  bool sentence_held_out = false;
  auto close_sentence = [&] {
    const int64_t end = static_cast<int64_t>(corpus->tokens.size());
    for (int64_t b = sentence_begin; b < end; b += kMaxSentence) {
      Corpus::Span span{b, std::min(end, b + kMaxSentence)};
      (sentence_held_out ? corpus->holdout : corpus->train).push_back(span);
    }
    sentence_begin = end;
  };
  const bool paragraphs = o.sentence_mode == SkipGramOptions::SentenceMode::kParagraph;
  for (size_t li = 0; li < lines.size(); ++li) {
    const Line& line = lines[li];
    // A sentence ends at every line (line mode), or at blank lines, file starts and the start
    // of the held-out part (paragraph mode).
    if (!paragraphs || line.blank || line.file_start || line.held_out != sentence_held_out) close_sentence();
    sentence_held_out = line.held_out;
    const int64_t end = li + 1 < lines.size() ? lines[li + 1].begin : static_cast<int64_t>(raw.size());
    for (int64_t t = line.begin; t < end; ++t) {
      int32_t id = remap[static_cast<size_t>(raw[static_cast<size_t>(t)])];
      if (id >= 0) corpus->tokens.push_back(id);
    }
  }
  close_sentence();

  corpus->keep.resize(static_cast<size_t>(vocab.size()));
  std::vector<double> weights(static_cast<size_t>(vocab.size()));
  for (int64_t i = 0; i < vocab.size(); ++i) {
    corpus->keep[static_cast<size_t>(i)] = subsample_keep_probability(vocab.count(i), vocab.total(), o.sample);
    weights[static_cast<size_t>(i)] = std::pow(static_cast<double>(vocab.count(i)), 0.75);
  }
  corpus->negatives = AliasSampler(weights);
  return corpus;
}

// Pairs in column form, consumed from the front.
struct PairBuffer {
  std::vector<int64_t> target, context, negatives;  // negatives: k per pair
  size_t front = 0;
  size_t size() const { return target.size() - front; }
  void compact(size_t k) {
    if (front == 0) return;
    target.erase(target.begin(), target.begin() + static_cast<std::ptrdiff_t>(front));
    context.erase(context.begin(), context.begin() + static_cast<std::ptrdiff_t>(front));
    negatives.erase(negatives.begin(), negatives.begin() + static_cast<std::ptrdiff_t>(front * k));
    front = 0;
  }
  // Checkpoints: the pairs not yet taken, with k negatives each.
  void save(StateWriter& state, size_t k) const {
    const auto from = static_cast<std::ptrdiff_t>(front);
    state.put_vector(std::vector<int64_t>(target.begin() + from, target.end()));
    state.put_vector(std::vector<int64_t>(context.begin() + from, context.end()));
    state.put_vector(std::vector<int64_t>(negatives.begin() + from * static_cast<std::ptrdiff_t>(k),
                                          negatives.end()));
  }
  void load(StateReader& state, size_t k) {
    target = state.get_vector<int64_t>();
    context = state.get_vector<int64_t>();
    negatives = state.get_vector<int64_t>();
    front = 0;
    if (context.size() != target.size() || negatives.size() != target.size() * k) {
      state.fail("holds " + std::to_string(target.size()) + " pending pairs with " +
                 std::to_string(context.size()) + " contexts and " +
                 std::to_string(negatives.size()) + " negatives (k = " + std::to_string(k) + ")");
    }
  }
};

class SkipGramSource final : public dataflow::Operator {
 public:
  SkipGramSource(SkipGramOptions o, std::shared_ptr<const Corpus> corpus, Schema schema,
                 const dataflow::InstanceInfo& info)
      : opt_(std::move(o)),
        corpus_(std::move(corpus)),
        schema_(std::move(schema)),
        bucket_(opt_.source.rate, opt_.source.burst),
        info_(info),
        k_(static_cast<size_t>(opt_.negatives)) {}

  void open(Context& ctx) override {
    if (info_.instance != 0) return;
    std::filesystem::path path = opt_.vocab_path;
    if (path.empty() && !info_.out_dir.empty()) path = info_.out_dir / "vocab.txt";
    if (!path.empty()) corpus_->vocab.write(path);
  }

  SourceState produce(Context& ctx) override {
    if (!holdout_done_) {
      produce_holdout(ctx);
      return SourceState::kMore;
    }
    const int64_t want = bucket_.take(opt_.source.batch_size, ctx);
    while (static_cast<int64_t>(pending_.size()) < want && !train_done_) next_train_sentence(ctx);
    const int64_t n = std::min<int64_t>(want, static_cast<int64_t>(pending_.size()));
    if (n > 0) ctx.emit(0, take(pending_, n));
    return train_done_ && pending_.size() == 0 ? SourceState::kDone : SourceState::kMore;
  }

  // Checkpoints: the sentence positions (held-out and training) and the pairs made but not
  // yet emitted. Randomness needs no state: each sentence's generator is seeded from (seed,
  // pass, sentence). The corpus is rebuilt when the source is defined; its sizes are saved and
  // checked, so a changed corpus is a DataError rather than a different stream.
  void snapshot(StateWriter& state, Context&) override {
    ops::put_layout(state, "skipgram_source", kLayout);
    state.put<int32_t>(info_.instance);
    state.put<int32_t>(info_.instances);
    state.put<uint64_t>(corpus_->train.size());
    state.put<uint64_t>(corpus_->holdout.size());
    state.put<uint64_t>(corpus_->tokens.size());
    state.put<int64_t>(corpus_->vocab.size());
    state.put<uint64_t>(holdout_next_);
    ops::put_flag(state, holdout_done_);
    state.put<int64_t>(pass_);
    state.put<int64_t>(next_);
    ops::put_flag(state, train_done_);
    pending_.save(state, k_);
    holdout_pending_.save(state, k_);
  }

  void restore(StateReader& state, Context&) override {
    ops::expect_layout(state, "skipgram_source", kLayout);
    const auto instance = state.get<int32_t>();
    const auto instances = state.get<int32_t>();
    if (instance != info_.instance || instances != info_.instances) {
      state.fail("was saved by instance " + std::to_string(instance) + " of " +
                 std::to_string(instances) + ", not by instance " + std::to_string(info_.instance) +
                 " of " + std::to_string(info_.instances));
    }
    const auto train = state.get<uint64_t>();
    const auto holdout = state.get<uint64_t>();
    const auto tokens = state.get<uint64_t>();
    const auto vocab = state.get<int64_t>();
    if (train != corpus_->train.size() || holdout != corpus_->holdout.size() ||
        tokens != corpus_->tokens.size() || vocab != corpus_->vocab.size()) {
      state.fail(
          "was saved over another corpus (" + std::to_string(train) + " training sentences, " +
          std::to_string(tokens) + " tokens, " + std::to_string(vocab) + " words; this one has " +
          std::to_string(corpus_->train.size()) + ", " + std::to_string(corpus_->tokens.size()) +
          ", " + std::to_string(corpus_->vocab.size()) + ")");
    }
    const auto holdout_next = state.get<uint64_t>();
    holdout_done_ = ops::get_flag(state);
    pass_ = state.get<int64_t>();
    next_ = state.get<int64_t>();
    train_done_ = ops::get_flag(state);
    if (holdout_next > corpus_->holdout.size() || pass_ < 0 || next_ < 0 ||
        next_ > static_cast<int64_t>(corpus_->train.size())) {
      state.fail("holds an impossible corpus position (held-out sentence " +
                 std::to_string(holdout_next) + ", pass " + std::to_string(pass_) + ", sentence " +
                 std::to_string(next_) + ")");
    }
    holdout_next_ = static_cast<size_t>(holdout_next);
    pending_.load(state, k_);
    holdout_pending_.load(state, k_);
  }

 private:
  bool mine(int64_t sentence) const {
    return !opt_.source.shard || info_.instances == 1 || sentence % info_.instances == info_.instance;
  }

  // One batch of held-out pairs per call.
  void produce_holdout(Context& ctx) {
    while (static_cast<int64_t>(holdout_pending_.size()) < opt_.source.batch_size &&
           holdout_next_ < corpus_->holdout.size()) {
      if (ctx.cancelled()) throw Cancelled();
      const int64_t s = static_cast<int64_t>(holdout_next_++);
      if (!mine(s)) continue;
      make_pairs(corpus_->holdout[static_cast<size_t>(s)], detail::mix_seed(opt_.seed, kHoldoutPass, static_cast<uint64_t>(s)),
                 holdout_pending_);
    }
    const int64_t n = std::min<int64_t>(opt_.source.batch_size, static_cast<int64_t>(holdout_pending_.size()));
    if (n > 0) ctx.emit(1, take(holdout_pending_, n));
    if (holdout_next_ >= corpus_->holdout.size() && holdout_pending_.size() == 0) holdout_done_ = true;
  }

  void next_train_sentence(Context& ctx) {
    if (ctx.cancelled()) throw Cancelled();
    const int64_t per_pass = static_cast<int64_t>(corpus_->train.size());
    if (per_pass == 0) {
      train_done_ = true;
      return;
    }
    if (next_ >= per_pass) {
      next_ = 0;
      pass_++;
    }
    if (opt_.source.replay > 0 && pass_ >= opt_.source.replay) {
      train_done_ = true;
      return;
    }
    const int64_t index = pass_ * per_pass + next_;
    if (opt_.source.limit > 0 && index >= opt_.source.limit) {
      train_done_ = true;
      return;
    }
    const int64_t s = next_++;
    if (!mine(s)) return;
    make_pairs(corpus_->train[static_cast<size_t>(s)],
               detail::mix_seed(opt_.seed, static_cast<uint64_t>(pass_), static_cast<uint64_t>(s)), pending_);
  }

  // Subsamples the sentence, then appends its pairs (dynamic window, negatives) to `out`.
  void make_pairs(Corpus::Span span, uint64_t seed, PairBuffer& out) {
    detail::Rng rng(seed);
    kept_.clear();
    for (int64_t t = span.begin; t < span.end; ++t) {
      const int32_t w = corpus_->tokens[static_cast<size_t>(t)];
      const double p = corpus_->keep[static_cast<size_t>(w)];
      if (p < 1.0 && rng.uniform() >= p) continue;
      kept_.push_back(w);
    }
    const int64_t n = static_cast<int64_t>(kept_.size());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = 1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(opt_.window)));
      for (int64_t j = std::max<int64_t>(0, i - b); j <= std::min(n - 1, i + b); ++j) {
        if (j == i) continue;
        const int64_t context = kept_[static_cast<size_t>(j)];
        out.target.push_back(kept_[static_cast<size_t>(i)]);
        out.context.push_back(context);
        for (size_t k = 0; k < k_; ++k) {
          int64_t neg = corpus_->negatives.sample(rng.next());
          for (int r = 0; r < kNegativeRetries && neg == context; ++r) neg = corpus_->negatives.sample(rng.next());
          out.negatives.push_back(neg);
        }
      }
    }
  }

  dataflow::Batch take(PairBuffer& buf, int64_t n) {
    BatchBuilder b(schema_);
    const size_t f = buf.front;
    const size_t count = static_cast<size_t>(n);
    b.column(0).reserve(n);
    b.column(1).reserve(n);
    b.column(2).reserve(n);
    for (size_t i = 0; i < count; ++i) {
      b.column(0).append<int64_t>(buf.target[f + i]);
      b.column(1).append<int64_t>(buf.context[f + i]);
      b.column(2).append_values(buf.negatives.data() + (f + i) * k_, k_);
    }
    buf.front += count;
    if (buf.front > 4096 || buf.size() == 0) buf.compact(k_);
    return b.finish();
  }

  static constexpr uint32_t kLayout = 1;

  SkipGramOptions opt_;
  std::shared_ptr<const Corpus> corpus_;
  Schema schema_;
  ops::TokenBucket bucket_;
  dataflow::InstanceInfo info_;
  size_t k_;
  std::vector<int32_t> kept_;
  PairBuffer pending_, holdout_pending_;
  size_t holdout_next_ = 0;
  bool holdout_done_ = false;
  int64_t pass_ = 0;
  int64_t next_ = 0;  // next training sentence of this pass
  bool train_done_ = false;
};

}  // namespace

std::vector<std::filesystem::path> default_text_corpora() {
  std::vector<std::filesystem::path> out;
  for (const char* name : {"austen_6novels", "kjv_bible", "mobydick", "tinyshakespeare"}) {
    out.push_back(data_dir() / "text" / (std::string(name) + ".txt.gz"));
  }
  return out;
}

std::shared_ptr<const dataflow::OperatorDef> skipgram_source(SkipGramOptions o) {
  if (o.paths.empty()) o.paths = default_text_corpora();
  for (const auto& p : o.paths) ops::require_input_file(p);
  ops::check_source_options(o.source);
  if (o.min_count < 1) throw ConfigError("min_count must be at least 1, got " + std::to_string(o.min_count));
  if (o.max_vocab < 0) throw ConfigError("max_vocab must not be negative (0: no cap)");
  if (!(o.sample >= 0)) throw ConfigError("sample must not be negative (0: no subsampling)");
  if (o.window < 1) throw ConfigError("window must be at least 1, got " + std::to_string(o.window));
  if (o.negatives < 1) throw ConfigError("negatives must be at least 1, got " + std::to_string(o.negatives));
  if (!(o.holdout_fraction >= 0 && o.holdout_fraction < 1)) {
    throw ConfigError("holdout_fraction must be in [0, 1), got " + std::to_string(o.holdout_fraction));
  }
  auto corpus = build_corpus(o);
  Schema schema{{"target", DType::kInt64, {}},
                {"context", DType::kInt64, {}},
                {"negatives", DType::kInt64, {o.negatives}}};
  int64_t train_tokens = 0, holdout_tokens = 0;
  for (auto s : corpus->train) train_tokens += s.end - s.begin;
  for (auto s : corpus->holdout) holdout_tokens += s.end - s.begin;
  std::string params = "path=";
  for (size_t i = 0; i < o.paths.size(); ++i) params += (i ? "," : "") + o.paths[i].filename().string();
  params += " vocabulary=" + std::to_string(corpus->vocab.size()) + " words (min_count=" + std::to_string(o.min_count);
  if (o.max_vocab > 0) params += " max_vocab=" + std::to_string(o.max_vocab);
  params += ") tokens=" + std::to_string(train_tokens) + " train/" + std::to_string(holdout_tokens) + " holdout" +
            " sentences=" + std::to_string(corpus->train.size()) + "/" + std::to_string(corpus->holdout.size()) +
            " window=" + std::to_string(o.window) + " negatives=" + std::to_string(o.negatives) +
            " sample=" + fmt::format("{:g}", o.sample) + " seed=" + std::to_string(o.seed) + " " +
            ops::source_options_text(o.source);
  log().debug("skipgram_source: {}", params);
  // The held-out port exists only with a held-out split, so that `from = "name"` names the
  // training output when there is none.
  std::vector<dataflow::PortSpec> ports{{"out", schema}};
  if (o.holdout_fraction > 0) ports.push_back({"holdout", schema, /*may_be_unconnected=*/true});
  return dataflow::operator_def({
      "skipgram_source", {},
      ports,
      [o, corpus, schema](const dataflow::InstanceInfo& info) {
        return std::make_unique<SkipGramSource>(o, corpus, schema, info);
      },
      params});
}

}  // namespace tensair::io
