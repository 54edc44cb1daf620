// Tokeniser, vocabulary, subsampling probability and the alias sampler (tensair/io/text.hpp).
#include <algorithm>
#include <cmath>
#include <fstream>

#include "tensair/common/error.hpp"
#include "tensair/common/file_reader.hpp"
#include "tensair/io/text.hpp"

namespace tensair::io {

void tokenize_words(std::string_view line, std::vector<std::string>& out) {
  std::string word;
  auto flush = [&] {
    size_t b = word.find_first_not_of('\'');
    if (b != std::string::npos) {
      size_t e = word.find_last_not_of('\'');
      out.push_back(word.substr(b, e - b + 1));
    }
    word.clear();
  };
  for (char ch : line) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 'A' && c <= 'Z') {
      word += static_cast<char>(c - 'A' + 'a');
    } else if ((c >= 'a' && c <= 'z') || c == '\'') {
      word += static_cast<char>(c);
    } else if (!word.empty()) {
      flush();
    }
  }
  if (!word.empty()) flush();
}

Vocabulary Vocabulary::from_counts(const std::unordered_map<std::string, int64_t>& counts, int64_t min_count,
                                   int64_t max_size) {
  Vocabulary v;
  for (const auto& [w, c] : counts) {
    if (c >= min_count && c > 0) v.entries_.push_back({w, c});
  }
  std::sort(v.entries_.begin(), v.entries_.end(), [](const Entry& a, const Entry& b) {
    if (a.count != b.count) return a.count > b.count;
    return a.word < b.word;
  });
  if (max_size > 0 && static_cast<int64_t>(v.entries_.size()) > max_size) v.entries_.resize(static_cast<size_t>(max_size));
  v.ids_.reserve(v.entries_.size());
  for (size_t i = 0; i < v.entries_.size(); ++i) {
    v.ids_.emplace(v.entries_[i].word, static_cast<int64_t>(i));
    v.total_ += v.entries_[i].count;
  }
  return v;
}

Vocabulary Vocabulary::from_files(const std::vector<std::filesystem::path>& paths, int64_t min_count,
                                  int64_t max_size) {
  std::unordered_map<std::string, int64_t> counts;
  std::string line;
  std::vector<std::string> tokens;
  for (const auto& p : paths) {
    FileReader f(p);
    while (f.read_line(line)) {
      tokens.clear();
      tokenize_words(line, tokens);
      for (auto& t : tokens) counts[t]++;
    }
  }
  return from_counts(counts, min_count, max_size);
}

int64_t Vocabulary::id(std::string_view word) const {
  auto it = ids_.find(std::string(word));
  return it == ids_.end() ? -1 : it->second;
}

void Vocabulary::write(const std::filesystem::path& path) const {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw IoError("cannot write the vocabulary to " + path.string());
  for (const Entry& e : entries_) out << e.word << ' ' << e.count << '\n';
  out.close();
  if (!out) throw IoError("cannot write the vocabulary to " + path.string());
}

double subsample_keep_probability(int64_t count, int64_t total, double sample) {
  if (sample <= 0 || count <= 0 || total <= 0) return 1.0;
  const double f = static_cast<double>(count) / static_cast<double>(total);
  return std::min(1.0, (std::sqrt(f / sample) + 1.0) * sample / f);
}

AliasSampler::AliasSampler(const std::vector<double>& weights) {
  const size_t n = weights.size();
  double sum = 0;
  for (double w : weights) {
    if (!(w >= 0) || !std::isfinite(w)) throw ConfigError("sampling weights must be finite and non-negative");
    sum += w;
  }
  if (n == 0 || sum <= 0) throw ConfigError("sampling weights must have a positive sum");
  prob_.assign(n, 0.0);
  alias_.assign(n, 0);
  std::vector<double> scaled(n);
  std::vector<size_t> small, large;
  for (size_t i = 0; i < n; ++i) {
    scaled[i] = weights[i] * static_cast<double>(n) / sum;
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  // Vose's method: pair each under-full bucket with an over-full one.
  while (!small.empty() && !large.empty()) {
    size_t s = small.back();
    small.pop_back();
    size_t l = large.back();
    prob_[s] = scaled[s];
    alias_[s] = static_cast<int64_t>(l);
    scaled[l] = (scaled[l] + scaled[s]) - 1.0;
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // What remains is full up to rounding.
  for (size_t i : large) {
    prob_[i] = 1.0;
    alias_[i] = static_cast<int64_t>(i);
  }
  for (size_t i : small) {
    prob_[i] = 1.0;
    alias_[i] = static_cast<int64_t>(i);
  }
}

int64_t AliasSampler::sample(uint64_t random) const {
  // The high part of random * n picks the bucket; the low part, uniform in [0, 1) given the
  // bucket, is the coin.
  const unsigned __int128 m = static_cast<unsigned __int128>(random) * prob_.size();
  const size_t bucket = static_cast<size_t>(m >> 64);
  const double coin = static_cast<double>(static_cast<uint64_t>(m) >> 11) * 0x1.0p-53;
  return coin < prob_[bucket] ? static_cast<int64_t>(bucket) : alias_[bucket];
}

}  // namespace tensair::io
