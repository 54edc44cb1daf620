// The Kafka source and sink against a real Kafka-protocol broker: librdkafka's mock cluster in
// this process, reached over loopback through the same client code a user's broker gets.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "kafka/message_codec.hpp"
#include "kafka/spool.hpp"
#include "tensair/common/error.hpp"
#include "tensair/dataflow/batch_codec.hpp"
#include "tensair/kafka/kafka.hpp"
#include "testing/operator_driver.hpp"
#include "testing/temp_dir.hpp"

namespace tensair::kafka {
namespace {

using dataflow::Batch;
using dataflow::BatchBuilder;
using dataflow::DType;
using dataflow::Schema;
using testing::OperatorDriver;
using testing::TempDir;

Schema fields() { return {{"id", DType::kInt64, {}}, {"x", DType::kFloat32, {2}}}; }

// Decoder ---------------------------------------------------------------------------------------

TEST(MessageDecoder, JsonCsvRawAndTensairGiveTheSameRecord) {
  BatchBuilder out(fields());
  std::string why;
  MessageDecoder json(Format::kJson, fields(), ',');
  EXPECT_EQ(json.decode(R"({"id": 7, "x": [1.5, -2], "extra": "ignored"})", out, why), 1) << why;
  MessageDecoder nested(Format::kJson, {{"m", DType::kInt32, {2, 2}}}, ',');
  BatchBuilder m({{"m", DType::kInt32, {2, 2}}});
  EXPECT_EQ(nested.decode(R"({"m": [[1, 2], [3, 4]]})", m, why), 1) << why;
  EXPECT_EQ(m.finish().columns()[0].values<int32_t>()[3], 4);

  MessageDecoder raw(Format::kRaw, fields(), ',');
  std::string bytes(16, '\0');
  const int64_t id = 7;
  const float x[2] = {1.5f, -2.0f};
  std::memcpy(bytes.data(), &id, 8);
  std::memcpy(bytes.data() + 8, x, 8);
  EXPECT_EQ(raw.decode(bytes, out, why), 1) << why;

  Schema scalars = {{"id", DType::kInt64, {}}, {"name", DType::kString, {}}};
  MessageDecoder csv(Format::kCsv, scalars, ',');
  BatchBuilder s(scalars);
  EXPECT_EQ(csv.decode("7,\"a, b\"\n", s, why), 1) << why;
  const Batch sb = s.finish();
  EXPECT_EQ(sb.column("name").str(0), "a, b");

  BatchBuilder two(fields());
  two.column(0).append<int64_t>(1);
  two.column(1).append_values(x, 2);
  two.column(0).append<int64_t>(2);
  two.column(1).append_values(x, 2);
  MessageDecoder tensair(Format::kTensair, fields(), ',');
  EXPECT_EQ(tensair.decode(dataflow::encode_batch_bytes(dataflow::share(two.finish())), out, why), 2)
      << why;

  const Batch b = out.finish();
  ASSERT_EQ(b.rows(), 4);
  EXPECT_EQ(b.column("id").values<int64_t>()[0], 7);
  EXPECT_EQ(b.column("id").values<int64_t>()[1], 7);
  EXPECT_FLOAT_EQ(b.column("x").values<float>()[1], -2.0f);
  EXPECT_FLOAT_EQ(b.column("x").values<float>()[3], -2.0f);
}

TEST(MessageDecoder, ABadMessageSaysWhyAndAppendsNothing) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{not json", "not JSON"},
      {"[1, 2]", "not a JSON object"},
      {R"({"x": [1, 2]})", "no field \"id\""},
      {R"({"id": 1.5, "x": [1, 2]})", "field \"id\": not a int64"},
      {R"({"id": 1, "x": [1, 2, 3]})", "field \"x\": not a float32[2] (2 numbers)"},
      {R"({"id": 1, "x": "ab"})", "field \"x\": not a float32[2] (2 numbers)"},
  };
  MessageDecoder d(Format::kJson, fields(), ',');
  for (const auto& [payload, reason] : bad) {
    BatchBuilder out(fields());
    std::string why;
    EXPECT_EQ(d.decode(payload, out, why), -1) << payload;
    EXPECT_EQ(why, reason) << payload;
    EXPECT_EQ(out.rows(), 0);
  }
  std::string why;
  BatchBuilder out(fields());
  MessageDecoder raw(Format::kRaw, fields(), ',');
  EXPECT_EQ(raw.decode("short", out, why), -1);
  EXPECT_EQ(why, "5 bytes, a record of the fields has 16");
  MessageDecoder tensair(Format::kTensair, fields(), ',');
  EXPECT_EQ(tensair.decode("garbage!", out, why), -1);
  EXPECT_NE(why.find("not a TensAIR batch"), std::string::npos) << why;
  // The decoder carries on after a bad message.
  EXPECT_EQ(d.decode(R"({"id": 3, "x": [0, 0]})", out, why), 1);
  EXPECT_EQ(out.finish().column("id").values<int64_t>()[0], 3);
}

TEST(MessageDecoder, RefusesFieldsTheFormatCannotCarry) {
  EXPECT_THROW(MessageDecoder(Format::kRaw, {{"s", DType::kString, {}}}, ','), ConfigError);
  EXPECT_THROW(MessageDecoder(Format::kCsv, {{"v", DType::kFloat32, {3}}}, ','), ConfigError);
}

// Spool -----------------------------------------------------------------------------------------

TEST(Spool, SegmentsReadBackAndACutFileIsAnError) {
  TempDir dir;
  const auto path = dir / "seg";
  uint64_t bytes = 0;
  {
    SegmentWriter w(path);
    w.append(std::string_view("k1"), "v1");
    w.append(std::nullopt, std::string(3000, 'x'));
    w.append(std::string_view(""), "");
    w.flush();
    bytes = w.bytes();
    EXPECT_EQ(w.messages(), 3u);
  }
  std::vector<std::pair<std::optional<std::string>, std::string>> got;
  read_segment(path, bytes, [&](auto k, std::string_view v) {
    got.push_back({k ? std::optional<std::string>(std::string(*k)) : std::nullopt, std::string(v)});
  });
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].first, "k1");
  EXPECT_EQ(got[1].first, std::nullopt);
  EXPECT_EQ(got[1].second.size(), 3000u);
  EXPECT_EQ(got[2].first, "");
  std::filesystem::resize_file(path, bytes - 10);
  EXPECT_THROW(read_segment(path, bytes, [](auto, auto) {}), IoError);
  EXPECT_THROW(read_segment(dir / "missing", 1, [](auto, auto) {}), IoError);
}

// Against the mock cluster ----------------------------------------------------------------------

rd_kafka_t* client(rd_kafka_type_t type, const std::string& brokers,
                   std::vector<std::pair<std::string, std::string>> props = {}) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[256];
  props.insert(props.begin(), {"bootstrap.servers", brokers});
  for (const auto& [k, v] : props) {
    EXPECT_EQ(rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err), RD_KAFKA_CONF_OK) << err;
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  EXPECT_NE(rk, nullptr) << err;
  return rk;
}

// Produces `payloads[i]` to partition i % partitions and waits for every acknowledgement.
void produce(const std::string& brokers, const std::string& topic, int partitions,
             const std::vector<std::string>& payloads) {
  rd_kafka_t* p = client(RD_KAFKA_PRODUCER, brokers);
  for (size_t i = 0; i < payloads.size(); ++i) {
    ASSERT_EQ(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_PARTITION(static_cast<int32_t>(i % static_cast<size_t>(partitions))),
                                RD_KAFKA_V_VALUE(const_cast<char*>(payloads[i].data()), payloads[i].size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(p);
}

// Every message of `topic` (all partitions, from the start to the end), as the value strings.
std::vector<std::string> read_all(const std::string& brokers, const std::string& topic, int partitions) {
  rd_kafka_t* c = client(RD_KAFKA_CONSUMER, brokers,
                         {{"group.id", "reader"}, {"enable.partition.eof", "true"},
                          {"isolation.level", "read_committed"}});
  rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(partitions);
  for (int i = 0; i < partitions; ++i)
    rd_kafka_topic_partition_list_add(l, topic.c_str(), i)->offset = RD_KAFKA_OFFSET_BEGINNING;
  EXPECT_EQ(rd_kafka_assign(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(l);
  std::vector<std::string> out;
  std::set<int> at_end;
  for (int polls = 0; static_cast<int>(at_end.size()) < partitions && polls < 2000; ++polls) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 50);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) at_end.insert(m->partition);
    else if (!m->err) out.emplace_back(static_cast<const char*>(m->payload), m->len);
    rd_kafka_message_destroy(m);
  }
  EXPECT_EQ(static_cast<int>(at_end.size()), partitions);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return out;
}

std::vector<std::string> records(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(nlohmann::json{{"id", i}, {"x", {i, -i}}}.dump());
  return out;
}

std::multiset<int64_t> ids(const std::vector<dataflow::BatchPtr>& batches) {
  std::multiset<int64_t> out;
  for (const auto& b : batches) {
    for (int64_t r = 0; r < b->rows(); ++r) out.insert(b->column("id").values<int64_t>()[r]);
  }
  return out;
}

KafkaSourceOptions source_options(const MockCluster& mock, const std::string& topic) {
  KafkaSourceOptions o;
  o.brokers = mock.bootstrap();
  o.topics = {topic};
  o.group = "g";
  o.fields = fields();
  o.stop_at_end = true;
  o.source.batch_size = 64;
  return o;
}

TEST(KafkaSource, TwoInstancesReadEveryRecordOnceAndABadOneIsADeadLetter) {
  MockCluster mock;
  mock.create_topic("in", 4);
  std::vector<std::string> msgs = records(0, 1000);
  msgs[501] = "{broken";  // partition 1, offset 125
  produce(mock.bootstrap(), "in", 4, msgs);
  auto def = kafka_source(source_options(mock, "in"));
  std::multiset<int64_t> all;
  std::vector<testing::DeadLetter> dead;
  for (int i = 0; i < 2; ++i) {
    OperatorDriver d(def, testing::instance_info("in", i, 2));
    d.run_to_end();
    const auto got = ids(d.ctx().emitted());
    all.insert(got.begin(), got.end());
    // Instance 0 has partitions 0 and 2 (even ids), instance 1 partitions 1 and 3.
    for (int64_t id : got) EXPECT_EQ(id % 2, i);
    for (const auto& dl : d.ctx().dead_letters()) dead.push_back(dl);
    const Batch& first = *d.ctx().emitted().front();
    EXPECT_GT(first.column("timestamp").values<int64_t>()[0], 1'600'000'000'000);  // ms since 1970
  }
  EXPECT_EQ(all.size(), 999u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(all.count(i), i == 501 ? 0u : 1u) << i;
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].reason, "in/1@125: not JSON");
  EXPECT_EQ(dead[0].record, "{broken");
}

TEST(KafkaSource, ARestoredSourceGoesOnFromItsOffsetsAndCommitsOnlyCompletedCheckpoints) {
  MockCluster mock;
  mock.create_topic("in", 3);
  produce(mock.bootstrap(), "in", 3, records(0, 900));
  auto def = kafka_source(source_options(mock, "in"));
  std::string state;
  std::multiset<int64_t> head;
  {
    OperatorDriver d(def, testing::instance_info("in"));
    d.produce(3);
    head = ids(d.ctx().emitted());
    ASSERT_GT(head.size(), 0u);
    ASSERT_LT(head.size(), 900u);
    dataflow::Context::CheckpointView v;
    v.enabled = true;
    v.snapshot_id = 1;
    d.ctx().set_checkpoints(v);
    state = d.snapshot();
    d.produce(2);  // read on, then "crash": these records are read again after the restore
  }
  OperatorDriver resumed(def, testing::instance_info("in"), state);
  resumed.run_to_end();
  std::multiset<int64_t> all = head;
  const auto tail = ids(resumed.ctx().emitted());
  all.insert(tail.begin(), tail.end());
  EXPECT_EQ(all.size(), 900u);
  for (int i = 0; i < 900; ++i) EXPECT_EQ(all.count(i), 1u) << i;
}

TEST(KafkaSource, StartLatestWithStopAtEndReadsNothingAndAnUnknownBrokerIsAnError) {
  MockCluster mock;
  mock.create_topic("in", 2);
  produce(mock.bootstrap(), "in", 2, records(0, 10));
  KafkaSourceOptions o = source_options(mock, "in");
  o.start = Start::kLatest;
  OperatorDriver d(kafka_source(o), testing::instance_info("in"));
  d.run_to_end();
  EXPECT_TRUE(d.ctx().emitted().empty());
  KafkaSourceOptions missing = source_options(mock, "no-such-topic-here");
  missing.properties = {{"allow.auto.create.topics", "false"}};
  try {
    OperatorDriver bad(kafka_source(missing), testing::instance_info("in"));
    // The mock creates topics on request; a real broker without auto-creation refuses.
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-topic-here"), std::string::npos) << e.what();
  }
  KafkaSourceOptions bad_prop = source_options(mock, "in");
  bad_prop.properties = {{"no.such.property", "1"}};
  try {
    OperatorDriver bad(kafka_source(bad_prop), testing::instance_info("in"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("Kafka property \"no.such.property\""), std::string::npos)
        << e.what();
  }
}

Batch rows(int from, int to) {
  BatchBuilder b(fields());
  for (int i = from; i < to; ++i) {
    b.column(0).append<int64_t>(i);
    const float x[2] = {static_cast<float>(i), 0};
    b.column(1).append_values(x, 2);
  }
  return b.finish();
}

std::multiset<int64_t> ids_of_json(const std::vector<std::string>& values) {
  std::multiset<int64_t> out;
  for (const auto& v : values) out.insert(nlohmann::json::parse(v).at("id").get<int64_t>());
  return out;
}

dataflow::InstanceInfo sink_info(const TempDir& dir) {
  dataflow::InstanceInfo info = testing::instance_info("out");
  info.out_dir = dir.path() / "job";
  return info;
}

TEST(KafkaSink, WritesOnlyCompletedCheckpointsAndARestoreWritesTheRestOnce) {
  MockCluster mock;
  mock.create_topic("out", 2);
  TempDir dir;
  KafkaSinkOptions o;
  o.brokers = mock.bootstrap();
  o.topic = "out";
  o.key = "id";
  auto def = kafka_sink(o);
  dataflow::Context::CheckpointView v;
  v.enabled = true;
  v.periodic = true;
  std::string state1, state2;
  {
    OperatorDriver d(def, sink_info(dir));
    d.process(0, rows(0, 100));
    v.snapshot_id = 1;
    d.ctx().set_checkpoints(v);
    state1 = d.snapshot();
    d.process(0, rows(100, 150));
    EXPECT_TRUE(read_all(mock.bootstrap(), "out", 2).empty());  // nothing before completion
    d.op().on_checkpoint_complete(1, d.ctx());
    EXPECT_EQ(ids_of_json(read_all(mock.bootstrap(), "out", 2)).size(), 100u);
    v.snapshot_id = 2;
    d.ctx().set_checkpoints(v);
    state2 = d.snapshot();
    d.process(0, rows(150, 170));  // after the snapshot: produced again by the resumed run
    // A crash here: checkpoint 2 is complete (its manifest is written) but was not committed.
  }
  {
    OperatorDriver resumed(def, sink_info(dir), state2);
    const auto got = ids_of_json(read_all(mock.bootstrap(), "out", 2));
    ASSERT_EQ(got.size(), 150u);
    for (int i = 0; i < 150; ++i) EXPECT_EQ(got.count(i), 1u) << i;
    resumed.process(0, rows(150, 170));
    resumed.finish();  // the end of the stream: the rest in one last transaction
  }
  auto got = ids_of_json(read_all(mock.bootstrap(), "out", 2));
  ASSERT_EQ(got.size(), 170u);
  // Restoring the older checkpoint 1 again: its pending segment is covered by the marker.
  {
    OperatorDriver again(def, sink_info(dir), state1);
  }
  got = ids_of_json(read_all(mock.bootstrap(), "out", 2));
  EXPECT_EQ(got.size(), 170u);
  for (int i = 0; i < 170; ++i) EXPECT_EQ(got.count(i), 1u) << i;
}

TEST(KafkaSink, TensairFormatCarriesWholeBatchesAndAtLeastOnceFlushesAtSnapshots) {
  MockCluster mock;
  mock.create_topic("batches", 1);
  TempDir dir;
  KafkaSinkOptions o;
  o.brokers = mock.bootstrap();
  o.topic = "batches";
  o.format = Format::kTensair;
  o.exactly_once = false;
  OperatorDriver d(kafka_sink(o), sink_info(dir));
  d.process(0, rows(0, 10));
  d.process(0, rows(10, 30));
  d.snapshot();
  const auto values = read_all(mock.bootstrap(), "batches", 1);
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(dataflow::decode_batch_bytes(values[1]).rows(), 20);
  EXPECT_EQ(dataflow::decode_batch_bytes(values[1]).column("id").values<int64_t>()[0], 10);
  KafkaSinkOptions bad = o;
  bad.key = "id";
  EXPECT_THROW(kafka_sink(bad), ConfigError);
}

}  // namespace
}  // namespace tensair::kafka
