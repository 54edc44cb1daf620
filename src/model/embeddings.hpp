// Word embeddings of a skip-gram model: the word2vec text export and nearest neighbours.
#pragma once

#include <torch/script.h>

#include "tensair/dataflow/operator.hpp"
#include "tensair/model/model.hpp"

namespace tensair::model {

// Writes the input embeddings `emb` (vocab x dim) in the word2vec text format to
// o.embeddings_path (when set) and logs the nearest neighbours (cosine) of o.probe_words.
// The words come from o.vocab_path ("word count" per line). Throws ConfigError/IoError.
void export_embeddings(const ModelOptions& o, const at::Tensor& emb, dataflow::Context& ctx);

}  // namespace tensair::model
