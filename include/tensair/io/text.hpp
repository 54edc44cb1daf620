// Text for Word2Vec: skip-gram training pairs with negative sampling, made in the dataflow from
// plain text corpora (skipgram_source), and the original TensAIR's pre-made pair files
// (w2v_pairs_source). Both emit the same columns, so either can feed the same model:
//   target: int64           the centre word's id (the "input" embedding)
//   context: int64          a word seen within the window around it (the positive "output")
//   negatives: int64[k]     k word ids drawn as negatives for this pair
//
// skipgram_source, step by step (following word2vec.c, Mikolov et al. 2013):
// 1. Tokens: maximal runs of ASCII letters and apostrophes, lowercased, with leading and
//    trailing apostrophes removed ("Don't," -> "don't", "'tis" -> "tis"); everything else
//    (digits, punctuation, non-ASCII bytes) separates tokens.
// 2. Vocabulary: built when the source is defined, in one pass over all the files: words seen
//    at least min_count times, sorted by count (descending) then by the word (bytewise), so ids
//    are deterministic: 0 is the most frequent word. max_vocab > 0 keeps only the first
//    max_vocab. Words outside the vocabulary are dropped from the text. The vocabulary is
//    written (by instance 0, when it starts) to `vocab_path`, or OUT/vocab.txt when that is
//    empty and the job has an output directory: one "word count" line per id, in id order.
// 3. Sentences: each line is a sentence (sentence_mode kLine, as word2vec.c), or each run of
//    non-blank lines (kParagraph, for hard-wrapped prose); sentences longer than 1000 words are
//    cut into 1000-word pieces. Windows never cross a sentence.
// 4. Subsampling (each pass anew): an occurrence of word w with corpus frequency f = count/total
//    (total: all vocabulary tokens) is kept with probability min(1, (sqrt(f/s) + 1) * s / f),
//    s = `sample` (0 disables it); dropped words are removed before windows are taken.
// 5. Dynamic window: for each kept centre word, b is drawn uniformly from 1..window and every
//    word at distance 1..b on either side (within the kept sentence) gives one pair.
// 6. Negatives: k = `negatives` ids drawn from the unigram distribution raised to 0.75
//    (count^0.75 / sum), exactly, by Walker's alias method; a draw equal to the pair's context
//    is drawn again (up to 32 times), so negatives differ from the positive.
// Randomness comes from (seed, pass, sentence index) only: the same pairs are made whatever the
// number of instances; instance i of n takes the sentences whose index is i modulo n.
//
// Held-out split: holdout_fraction > 0 puts the last fraction of the lines of each file aside.
// Their pairs (subsampled, windowed and with negatives like the training pairs, but with a fixed
// seed, so the same held-out pairs on every pass and run) leave on a second output port
// "holdout", once, before any training pair, and are never trained on. That port exists only
// when holdout_fraction > 0 (then name the training port as "NAME.out" in job files), and may be
// left unconnected. The vocabulary counts every line, held-out ones included.
//
// SourceOptions: batch_size and rate count pairs; `limit` counts training sentences (over all
// passes and instances), as other sources count input records; replay counts passes over the
// training sentences.
//
// w2v_pairs_source reads the original TensAIR's files (see shared/reference §5.2, §5.8):
// - text (e.g. w2v/shakespeare_train.txt.gz): one example per line, 1 + 2m integers
//   "target c1..cm l1..lm", the labels marking the positive context with 1 and the negatives
//   with 0 (always 1 0 0 0 0 in the shipped file): context = the c with label 1, negatives = the
//   other m-1 (k = 4 for the shipped file). A line with another field count, a non-integer or
//   not exactly one label 1 is a dead letter "FILE:LINE: ...".
// - held-out binary (e.g. w2v/shakespeare_eval.bytes): int32 mbs, int32 N, int32 3, then three
//   (int32 byte size, int32 values) tensors: targets [N], contexts [N*m], labels [N*m]; the
//   header is checked when the source is defined (ConfigError naming the file if the sizes do
//   not agree). Examples whose labels have not exactly one 1 are dead letters.
// Ids in the shipped files are below 50,000 (the vocabulary size of the original model).
//
// Checkpoints: skipgram_source saves its sentence positions and the pairs made but not yet
// emitted (its randomness is a function of seed, pass and sentence, so it needs no state), and
// checks on restore that the corpus has the same sizes; w2v_pairs_source saves its position in
// the file. Either resumes with exactly the pairs and batches an uninterrupted run emits.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tensair/dataflow/operator.hpp"
#include "tensair/ops/sources.hpp"

namespace tensair::io {

// Appends the tokens of `line` (rule 1 above) to `out`.
void tokenize_words(std::string_view line, std::vector<std::string>& out);

class Vocabulary {
 public:
  struct Entry {
    std::string word;
    int64_t count = 0;
  };
  Vocabulary() = default;
  // The words of `counts` seen at least min_count times, sorted by count descending then word,
  // the first max_size of them (0: all).
  static Vocabulary from_counts(const std::unordered_map<std::string, int64_t>& counts, int64_t min_count,
                                int64_t max_size = 0);
  // Counts the tokens of the files (plain, gzip or xz) and calls from_counts.
  static Vocabulary from_files(const std::vector<std::filesystem::path>& paths, int64_t min_count,
                               int64_t max_size = 0);

  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  // -1 when the word is not in the vocabulary.
  int64_t id(std::string_view word) const;
  const std::string& word(int64_t id) const { return entries_[static_cast<size_t>(id)].word; }
  int64_t count(int64_t id) const { return entries_[static_cast<size_t>(id)].count; }
  // Sum of the counts of the vocabulary's words.
  int64_t total() const { return total_; }
  const std::vector<Entry>& entries() const { return entries_; }
  // "word count" per line, in id order. Throws IoError when the file cannot be written.
  void write(const std::filesystem::path& path) const;

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, int64_t> ids_;
  int64_t total_ = 0;
};

// word2vec.c's keep probability of one occurrence: min(1, (sqrt(f/s) + 1) * s / f), f = count /
// total; 1 when sample <= 0.
double subsample_keep_probability(int64_t count, int64_t total, double sample);

// Draws index i with probability weights[i] / sum(weights) in O(1) (Walker/Vose alias method).
class AliasSampler {
 public:
  AliasSampler() = default;
  // Weights must be non-negative with a positive sum (ConfigError otherwise).
  explicit AliasSampler(const std::vector<double>& weights);
  // One draw from a uniform 64-bit random number.
  int64_t sample(uint64_t random) const;
  size_t size() const { return prob_.size(); }

 private:
  std::vector<double> prob_;
  std::vector<int64_t> alias_;
};

struct SkipGramOptions {
  enum class SentenceMode { kLine, kParagraph };

  std::vector<std::filesystem::path> paths;  // empty: the four corpora of data_dir()/text/
  int64_t min_count = 5;
  int64_t max_vocab = 0;  // 0: no cap
  double sample = 1e-3;
  int64_t window = 5;
  int64_t negatives = 5;
  uint64_t seed = 1;
  double holdout_fraction = 0;
  SentenceMode sentence_mode = SentenceMode::kLine;
  std::filesystem::path vocab_path;  // empty: OUT/vocab.txt when the job has an output directory
  ops::SourceOptions source;
};

// data_dir()/text/{austen_6novels,kjv_bible,mobydick,tinyshakespeare}.txt.gz
std::vector<std::filesystem::path> default_text_corpora();

// Reads the corpus and builds the vocabulary (so this takes a moment for a large corpus).
// Throws ConfigError for bad options or an empty vocabulary, IoError for a missing file.
std::shared_ptr<const dataflow::OperatorDef> skipgram_source(SkipGramOptions options);

struct W2vPairsOptions {
  std::filesystem::path path;   // empty: data_dir()/tensair/w2v/shakespeare_train.txt.gz
  std::string format = "auto";  // "text", "eval" (the binary held-out format), "auto": eval for *.bytes
  ops::SourceOptions source;
};
std::shared_ptr<const dataflow::OperatorDef> w2v_pairs_source(W2vPairsOptions options);

}  // namespace tensair::io
