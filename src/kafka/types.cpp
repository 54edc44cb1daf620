// Job-file types kafka_source and kafka_sink (docs/kafka.md has every key).

#include "tensair/job/registry.hpp"
#include "tensair/kafka/kafka.hpp"

namespace tensair::kafka {
namespace {

using job::Params;

Format format_key(const Params& p, const std::string& def) {
  const std::string name = p.str("format", def);
  auto f = parse_format(name);
  if (!f) p.fail("format", "unknown format \"" + name + "\" (known: json, csv, raw, tensair)");
  return *f;
}

// `properties`: a table of librdkafka settings, values as strings (numbers and booleans are
// written as TOML gives them).
std::vector<std::pair<std::string, std::string>> properties(const Params& p) {
  std::vector<std::pair<std::string, std::string>> out;
  auto t = p.table("properties");
  if (!t) return out;
  for (const std::string& k : t->keys()) {
    const toml::node* n = t->node(k);
    if (auto s = n->value_exact<std::string>()) out.push_back({k, *s});
    else if (auto i = n->value_exact<int64_t>()) out.push_back({k, std::to_string(*i)});
    else if (auto b = n->value_exact<bool>()) out.push_back({k, *b ? "true" : "false"});
    else t->fail(k, "expected a string, integer or boolean librdkafka setting");
  }
  return out;
}

std::shared_ptr<const dataflow::OperatorDef> build_source(const Params& p) {
  KafkaSourceOptions o;
  o.brokers = p.str("brokers");
  if (p.has("topic") && p.has("topics")) p.fail("topics", "give topic or topics, not both");
  o.topics = p.has("topics") ? p.strings("topics") : std::vector<std::string>{p.str("topic")};
  o.group = p.str("group");
  o.format = format_key(p, "json");
  for (const std::string& text : p.strings("fields")) {
    try {
      o.fields.push_back(dataflow::parse_column_spec(text));
    } catch (const ConfigError& e) {
      p.fail("fields", e.what());
    }
  }
  o.delimiter = p.character("delimiter", ',');
  const std::string start = p.str("start", "earliest");
  if (start == "earliest") o.start = Start::kEarliest;
  else if (start == "latest") o.start = Start::kLatest;
  else if (start == "committed") o.start = Start::kCommitted;
  else p.fail("start", "\"" + start + "\" is not earliest, latest or committed");
  o.stop_at_end = p.boolean("stop_at_end", false);
  o.timestamp_column = p.str("timestamp_column", o.timestamp_column);
  o.source = job::source_options(p);
  if (o.source.replay != 1) p.fail("replay", "a Kafka source reads its topics once (replay = 1)");
  if (!o.source.shard) p.fail("shard", "a Kafka source's instances always share the partitions");
  o.properties = properties(p);
  try {
    return kafka_source(std::move(o));
  } catch (const ConfigError& e) {
    p.fail("", e.what());
  }
}

std::shared_ptr<const dataflow::OperatorDef> build_sink(const Params& p) {
  KafkaSinkOptions o;
  o.brokers = p.str("brokers");
  o.topic = p.str("topic");
  o.format = format_key(p, "json");
  o.columns = p.strings("columns", std::vector<std::string>{});
  o.key = p.str("key_column", "");
  o.exactly_once = p.boolean("exactly_once", true);
  o.transactional_id = p.str("transactional_id", "");
  o.properties = properties(p);
  try {
    return kafka_sink(std::move(o));
  } catch (const ConfigError& e) {
    p.fail("", e.what());
  }
}

}  // namespace

void register_job_types() {
  static const bool registered = [] {
    job::register_operator_type(
        {"kafka_source", "records from Kafka topics (json, csv, raw, tensair), offsets in checkpoints", build_source});
    job::register_operator_type(
        {"kafka_sink", "a stream to a Kafka topic (json, tensair), exactly-once by transactions", build_sink});
    return true;
  }();
  (void)registered;
}

}  // namespace tensair::kafka
