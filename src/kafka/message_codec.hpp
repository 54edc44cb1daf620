// Kafka message payloads <-> records. A decoder turns one message into the records it holds
// (json, csv, raw: one; tensair: a whole batch) with the declared fields, or says why it cannot;
// it never throws on bad data, so the source can make a dead letter of it. Internal to src/kafka.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tensair/dataflow/batch.hpp"
#include "tensair/kafka/kafka.hpp"

namespace tensair::kafka {

class MessageDecoder {
 public:
  // Throws ConfigError for fields the format cannot carry (raw: strings).
  MessageDecoder(Format format, dataflow::Schema fields, char delimiter);

  // Decodes `payload` and appends its records to columns 0..fields-1 of `out`; returns the
  // number of records appended, or -1 with `why` set (and `out` untouched).
  int64_t decode(std::string_view payload, dataflow::BatchBuilder& out, std::string& why);

 private:
  bool decode_json(std::string_view payload, std::string& why);
  bool decode_csv(std::string_view payload, std::string& why);
  bool decode_raw(std::string_view payload, std::string& why);
  int64_t decode_tensair(std::string_view payload, dataflow::BatchBuilder& out, std::string& why);

  Format format_;
  dataflow::Schema fields_;
  char delimiter_;
  size_t raw_bytes_ = 0;
  // One record is parsed here first, so a bad field leaves the output untouched.
  std::unique_ptr<dataflow::BatchBuilder> scratch_;
  std::string line_;
  std::vector<std::string> cells_;
};

// Message values of a sink: one JSON object per row of `columns` (json) or the whole batch
// (tensair).
std::string encode_json_row(const std::vector<const dataflow::Column*>& columns, int64_t row);
std::string encode_tensair(const dataflow::BatchPtr& batch);

}  // namespace tensair::kafka
