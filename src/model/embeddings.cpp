#include "model/embeddings.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tensair/common/error.hpp"

namespace tensair::model {

void export_embeddings(const ModelOptions& o, const at::Tensor& embeddings,
                       dataflow::Context& ctx) {
  if (o.network.kind != "skipgram")
    throw ConfigError("vocab/embeddings/probe_words need network = \"skipgram\"");
  std::ifstream in(o.vocab_path);
  if (!in) throw IoError("cannot read the vocabulary " + o.vocab_path.string());
  std::vector<std::string> words;
  for (std::string line; std::getline(in, line);) words.push_back(line.substr(0, line.find(' ')));
  at::Tensor emb = embeddings.detach();
  int64_t n = std::min<int64_t>(static_cast<int64_t>(words.size()), emb.size(0));
  if (static_cast<int64_t>(words.size()) > emb.size(0)) {
    throw ConfigError("the vocabulary has " + std::to_string(words.size()) +
                      " words but the model only " + std::to_string(emb.size(0)) +
                      " rows (raise vocab, or set max_vocab on the source)");
  }
  if (!o.embeddings_path.empty()) {
    std::filesystem::path p = o.embeddings_path;
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p);
    out << n << " " << emb.size(1) << "\n";
    at::Tensor e = emb.narrow(0, 0, n).contiguous();
    const float* v = e.data_ptr<float>();
    char buf[32];
    for (int64_t i = 0; i < n; ++i) {
      out << words[static_cast<size_t>(i)];
      for (int64_t d = 0; d < e.size(1); ++d) {
        std::snprintf(buf, sizeof buf, " %.6g", static_cast<double>(v[i * e.size(1) + d]));
        out << buf;
      }
      out << "\n";
    }
    if (!out) throw IoError("error writing " + p.string());
    ctx.log_event(
        {{"kind", "embeddings_export"}, {"path", p.string()}, {"words", n}, {"dim", emb.size(1)}});
  }
  at::Tensor unit = emb.narrow(0, 0, n) / emb.narrow(0, 0, n).norm(2, 1, true).clamp_min(1e-12);
  for (const std::string& w : o.probe_words) {
    auto it = std::find(words.begin(), words.end(), w);
    if (it == words.end()) {
      ctx.log_event({{"kind", "neighbours"}, {"word", w}, {"error", "not in the vocabulary"}});
      continue;
    }
    int64_t id = it - words.begin();
    at::Tensor sim = unit.matmul(unit[id]);
    sim[id] = -2;  // not itself
    auto top = sim.topk(std::min<int64_t>(o.neighbours, n - 1));
    nlohmann::json list = nlohmann::json::array();
    for (int64_t k = 0; k < std::get<1>(top).size(0); ++k) {
      int64_t j = std::get<1>(top)[k].item<int64_t>();
      list.push_back({{"word", words[static_cast<size_t>(j)]},
                      {"cosine", std::get<0>(top)[k].item<double>()}});
    }
    ctx.log_event({{"kind", "neighbours"}, {"word", w}, {"neighbours", list}});
  }
}

}  // namespace tensair::model
