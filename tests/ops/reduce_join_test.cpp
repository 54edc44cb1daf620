// Reduce and Join: results equal an independent computation, at 1, 2 and 3 in-process ranks,
// with keys routed by hash so that equal keys meet in one instance.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <tuple>

#include "tensair/common/error.hpp"
#include "tensair/ops/collect.hpp"
#include "tensair/ops/reduce.hpp"
#include "testing/harness.hpp"
#include "testing/lambda_op.hpp"

namespace tensair::ops {
namespace {

using dataflow::Batch;
using dataflow::BatchBuilder;
using dataflow::DType;
using dataflow::Graph;
using dataflow::Placement;
using dataflow::Routing;
using dataflow::Schema;

// Records (key string, group int64, value float64, t float64) from a seeded generator.
struct Rec {
  std::string key;
  int64_t group;
  double value;
  double t;
};

std::vector<Rec> make_records(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Rec> out;
  for (int i = 0; i < n; ++i) {
    Rec r;
    r.key = "k" + std::to_string(rng() % 37);
    r.group = static_cast<int64_t>(rng() % 3);
    r.value = static_cast<double>(static_cast<int>(rng() % 2001) - 1000) / 8.0;  // exact in binary
    r.t = i * 0.01;
    out.push_back(r);
  }
  return out;
}

Batch to_batch(const std::vector<Rec>& recs) {
  Schema s{{"key", DType::kString, {}}, {"group", DType::kInt64, {}}, {"value", DType::kFloat64, {}},
           {"t", DType::kFloat64, {}}};
  BatchBuilder b(s);
  for (const Rec& r : recs) {
    b.column(0).append_string(r.key);
    b.column(1).append<int64_t>(r.group);
    b.column(2).append<double>(r.value);
    b.column(3).append<double>(r.t);
  }
  return b.finish();
}

// Emits `batches` in order (one instance, on rank 0).
std::shared_ptr<const dataflow::OperatorDef> batches_source(std::vector<Batch> batches) {
  struct Src final : dataflow::Operator {
    explicit Src(std::vector<Batch> b) : b(std::move(b)) {}
    dataflow::SourceState produce(dataflow::Context& ctx) override {
      if (i == b.size()) return dataflow::SourceState::kDone;
      ctx.emit(0, b[i++]);
      return dataflow::SourceState::kMore;
    }
    std::vector<Batch> b;
    size_t i = 0;
  };
  Schema schema = batches.at(0).schema();
  return testing::lambda_op({"batches", {}, {{"out", schema}}, [batches](const dataflow::InstanceInfo&) {
                               return std::make_unique<Src>(batches);
                             }});
}

std::vector<Batch> chunks(const std::vector<Rec>& recs, size_t size) {
  std::vector<Batch> out;
  for (size_t i = 0; i < recs.size(); i += size) {
    out.push_back(to_batch({recs.begin() + static_cast<long>(i), recs.begin() + static_cast<long>(std::min(recs.size(), i + size))}));
  }
  return out;
}

// source(rank 0) -key_hash(key)-> reduce(all ranks) -> collect(rank 0)
std::pair<Batch, std::vector<testing::RankOutcome>> run_reduce(int ranks, const std::vector<Rec>& recs,
                                                               ReduceOptions o, size_t chunk = 100) {
  auto out = std::make_shared<Collection>();
  auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int) {
    g.add("src", batches_source(chunks(recs, chunk)), Placement::on(0));
    g.add("reduce", reduce(o));
    g.add("out", collect(out), Placement::on(0));
    g.connect("src", "reduce", Routing::key_hash("key"));
    g.connect("reduce", "out", Routing::to_rank(0));
  });
  for (const auto& oc : outcomes) EXPECT_FALSE(oc.error) << *oc.error;
  return {out->rows(), outcomes};
}

TEST(ReduceTest, GlobalAggregatesEqualAnIndependentComputation) {
  std::vector<Rec> recs = make_records(5000, 1);
  struct Expect {
    int64_t count = 0;
    double sum = 0, min = 1e300, max = -1e300;
    int64_t gsum = 0;
    std::string first_key;
    double last_value = 0;
  };
  std::map<std::string, Expect> expect;
  for (const Rec& r : recs) {
    Expect& e = expect[r.key];
    if (e.count == 0) e.first_key = r.key;
    e.count++;
    e.sum += r.value;
    e.min = std::min(e.min, r.value);
    e.max = std::max(e.max, r.value);
    e.gsum += r.group;
    e.last_value = r.value;
  }
  ReduceOptions o;
  o.group_by = {"key"};
  o.aggregations = {parse_aggregation("n", "count"),      parse_aggregation("total", "sum(value)"),
                    parse_aggregation("lo", "min(value)"), parse_aggregation("hi", "max(value)"),
                    parse_aggregation("avg", "mean(value)"), parse_aggregation("gsum", "sum(group)"),
                    parse_aggregation("last_value", "last(value)")};
  for (int ranks : testing::rank_counts()) {
    auto [rows, outcomes] = run_reduce(ranks, recs, o);
    ASSERT_EQ(rows.rows(), static_cast<int64_t>(expect.size())) << "ranks " << ranks;
    EXPECT_EQ(rows.column("gsum").dtype(), DType::kInt64);
    EXPECT_EQ(rows.column("total").dtype(), DType::kFloat64);
    std::set<std::string> seen;
    for (int64_t r = 0; r < rows.rows(); ++r) {
      std::string key(rows.column("key").str(r));
      ASSERT_TRUE(seen.insert(key).second) << "key twice: " << key;
      const Expect& e = expect.at(key);
      EXPECT_EQ(rows.column("n").at<int64_t>(r), e.count);
      EXPECT_EQ(rows.column("total").at<double>(r), e.sum);  // exact: eighths sum exactly
      EXPECT_EQ(rows.column("lo").at<double>(r), e.min);
      EXPECT_EQ(rows.column("hi").at<double>(r), e.max);
      EXPECT_DOUBLE_EQ(rows.column("avg").at<double>(r), e.sum / static_cast<double>(e.count));
      EXPECT_EQ(rows.column("gsum").at<int64_t>(r), e.gsum);
      EXPECT_EQ(rows.column("last_value").at<double>(r), e.last_value);
    }
  }
}

TEST(ReduceTest, OneInstanceEmitsItsGroupsSortedByCompositeKey) {
  std::vector<Rec> recs = make_records(2000, 2);
  ReduceOptions o;
  o.group_by = {"key", "group"};
  o.aggregations = {parse_aggregation("n", "count")};
  auto [rows, outcomes] = run_reduce(1, recs, o);
  std::map<std::pair<std::string, int64_t>, int64_t> expect;
  for (const Rec& r : recs) expect[{r.key, r.group}]++;
  ASSERT_EQ(rows.rows(), static_cast<int64_t>(expect.size()));
  int64_t r = 0;
  for (const auto& [k, n] : expect) {  // std::map order = (key, group) order
    EXPECT_EQ(rows.column("key").str(r), k.first);
    EXPECT_EQ(rows.column("group").at<int64_t>(r), k.second);
    EXPECT_EQ(rows.column("n").at<int64_t>(r), n);
    ++r;
  }
}

TEST(ReduceTest, CountWindowsCloseOnTheirLastRecordAndTheRestAtTheEnd) {
  std::vector<Rec> recs = make_records(3000, 3);
  ReduceOptions o;
  o.group_by = {"key"};
  o.window = parse_window("count:10");
  o.aggregations = {parse_aggregation("n", "count"), parse_aggregation("total", "sum(value)")};
  std::map<std::string, std::vector<Rec>> by_key;
  for (const Rec& r : recs) by_key[r.key].push_back(r);
  for (int ranks : testing::rank_counts()) {
    auto [rows, outcomes] = run_reduce(ranks, recs, o);
    std::map<std::pair<std::string, int64_t>, std::pair<int64_t, double>> got;
    for (int64_t r = 0; r < rows.rows(); ++r) {
      auto k = std::make_pair(std::string(rows.column("key").str(r)), rows.column("window").at<int64_t>(r));
      ASSERT_TRUE(got.emplace(k, std::make_pair(rows.column("n").at<int64_t>(r), rows.column("total").at<double>(r))).second);
    }
    size_t windows = 0;
    for (const auto& [key, list] : by_key) {
      for (size_t start = 0, w = 0; start < list.size(); start += 10, ++w) {
        double sum = 0;
        size_t end = std::min(list.size(), start + 10);
        for (size_t i = start; i < end; ++i) sum += list[i].value;
        auto it = got.find({key, static_cast<int64_t>(w)});
        ASSERT_NE(it, got.end()) << key << " window " << w;
        EXPECT_EQ(it->second.first, static_cast<int64_t>(end - start));
        EXPECT_EQ(it->second.second, sum);
        ++windows;
      }
    }
    EXPECT_EQ(got.size(), windows) << "ranks " << ranks;
  }
}

TEST(ReduceTest, EventTimeTumblingWindowsAndLateRecordsAreDeadLetters) {
  // 1000 records, t = 0.00 .. 9.99 in order, then 5 late ones (t = 0.5) at the end.
  std::vector<Rec> recs = make_records(1000, 4);
  for (int i = 0; i < 5; ++i) recs.push_back({"late", 0, 1.0, 0.5});
  ReduceOptions o;
  o.group_by = {"key"};
  o.window = parse_window("tumbling:2:t:0.25");
  o.aggregations = {parse_aggregation("n", "count"), parse_aggregation("total", "sum(value)")};
  std::map<std::pair<std::string, double>, std::pair<int64_t, double>> expect;
  for (size_t i = 0; i < 1000; ++i) {
    auto& e = expect[{recs[i].key, std::floor(recs[i].t / 2) * 2}];
    e.first++;
    e.second += recs[i].value;
  }
  for (int ranks : testing::rank_counts()) {
    auto [rows, outcomes] = run_reduce(ranks, recs, o, 50);
    ASSERT_EQ(rows.rows(), static_cast<int64_t>(expect.size())) << "ranks " << ranks;
    for (int64_t r = 0; r < rows.rows(); ++r) {
      double start = rows.column("window_start").at<double>(r);
      EXPECT_EQ(rows.column("window_end").at<double>(r), start + 2);
      auto it = expect.find({std::string(rows.column("key").str(r)), start});
      ASSERT_NE(it, expect.end());
      EXPECT_EQ(rows.column("n").at<int64_t>(r), it->second.first);
      EXPECT_EQ(rows.column("total").at<double>(r), it->second.second);
    }
    EXPECT_EQ(testing::total(outcomes, "reduce", &dataflow::InstanceStats::dead_letters), 5u) << "ranks " << ranks;
  }
}

TEST(ReduceTest, ProcessingTimeWindowsLoseNoRecord) {
  std::vector<Rec> recs = make_records(4000, 5);
  ReduceOptions o;
  o.group_by = {"key"};
  o.window = parse_window("tumbling:0.001");
  o.aggregations = {parse_aggregation("n", "count")};
  auto [rows, outcomes] = run_reduce(2, recs, o, 10);
  int64_t total = 0;
  for (int64_t r = 0; r < rows.rows(); ++r) total += rows.column("n").at<int64_t>(r);
  EXPECT_EQ(total, 4000);
}

TEST(ReduceTest, ConfigurationErrorsNameTheProblem) {
  auto message = [](auto fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] { parse_window("sliding:3"); }),
            "unknown window \"sliding:3\" (expected \"global\", \"count:N\", \"tumbling:SECONDS\" or "
            "\"tumbling:SECONDS:TIME_COLUMN[:LATENESS]\")");
  EXPECT_EQ(message([] { parse_window("count:0"); }), "window count must be a positive integer, got 0");
  EXPECT_EQ(message([] { parse_aggregation("x", "median(v)"); }),
            "unknown aggregation function \"median\" (known: count, sum(c), min(c), max(c), mean(c), first(c), last(c))");
  EXPECT_EQ(message([] { parse_aggregation("x", "sum"); }), "aggregation \"sum\" needs a column, e.g. sum(x)");
  // Columns are checked against what arrives when the graph is validated.
  ReduceOptions o;
  o.group_by = {"nope"};
  o.aggregations = {parse_aggregation("n", "count")};
  Graph g;
  g.add("src", batches_source({to_batch(make_records(3, 1))}));
  g.add("reduce", reduce(o));
  g.connect("src", "reduce", Routing::forward());
  g.add("out", collect(std::make_shared<Collection>()));
  g.connect("reduce", "out", Routing::forward());
  std::string err = message([&] { g.validate(1); });
  EXPECT_NE(err.find("reduce"), std::string::npos) << err;
  EXPECT_NE(err.find("group_by column \"nope\" is not among the columns arriving"), std::string::npos) << err;
  o.group_by = {"key"};
  o.aggregations = {parse_aggregation("n", "mean(key)")};
  Graph g2;
  g2.add("src", batches_source({to_batch(make_records(3, 1))}));
  g2.add("reduce", reduce(o));
  g2.connect("src", "reduce", Routing::forward());
  g2.add("out", collect(std::make_shared<Collection>()));
  g2.connect("reduce", "out", Routing::forward());
  err = message([&] { g2.validate(1); });
  EXPECT_NE(err.find("mean(key) needs a numeric column, but it is a string"), std::string::npos) << err;
}

// Join ------------------------------------------------------------------------------------------

Batch side_batch(const std::vector<std::tuple<int64_t, double, double>>& rows, const std::string& payload) {
  Schema s{{"id", DType::kInt64, {}}, {payload, DType::kFloat64, {}}, {"t", DType::kFloat64, {}}};
  BatchBuilder b(s);
  for (auto [id, v, t] : rows) {
    b.column(0).append<int64_t>(id);
    b.column(1).append<double>(v);
    b.column(2).append<double>(t);
  }
  return b.finish();
}

std::pair<Batch, std::vector<testing::RankOutcome>> run_join(int ranks, std::vector<Batch> left,
                                                             std::vector<Batch> right, JoinOptions o) {
  auto out = std::make_shared<Collection>();
  auto outcomes = testing::run_graph(ranks, [&](Graph& g, int, int world) {
    g.add("left", batches_source(left), Placement::on(0));
    g.add("right", batches_source(right), Placement::on(world - 1));
    g.add("join", join(o));
    g.add("out", collect(out), Placement::on(0));
    g.connect("left", "join.left", Routing::key_hash("id"));
    g.connect("right", "join.right", Routing::key_hash("id"));
    g.connect("join", "out", Routing::to_rank(0));
  });
  for (const auto& oc : outcomes) EXPECT_FALSE(oc.error) << *oc.error;
  return {out->rows(), outcomes};
}

TEST(JoinTest, GlobalInnerJoinEqualsANestedLoop) {
  std::mt19937 rng(7);
  std::vector<std::tuple<int64_t, double, double>> l, r;
  for (int i = 0; i < 600; ++i) l.emplace_back(rng() % 100, i, 0.0);
  for (int i = 0; i < 400; ++i) r.emplace_back(rng() % 150, 1000 + i, 0.0);
  std::multiset<std::tuple<int64_t, double, double>> expect;
  for (auto& [li, lv, lt] : l) {
    for (auto& [ri, rv, rt] : r) {
      if (li == ri) expect.insert({li, lv, rv});
    }
  }
  std::vector<Batch> lb, rb;
  for (size_t i = 0; i < l.size(); i += 50) lb.push_back(side_batch({l.begin() + static_cast<long>(i), l.begin() + static_cast<long>(i + 50)}, "a"));
  for (size_t i = 0; i < r.size(); i += 50) rb.push_back(side_batch({r.begin() + static_cast<long>(i), r.begin() + static_cast<long>(i + 50)}, "b"));
  JoinOptions o;
  o.keys = {"id"};
  for (int ranks : testing::rank_counts()) {
    auto [rows, outcomes] = run_join(ranks, lb, rb, o);
    // Columns: key, then left's (a, left_t), then right's (b, right_t).
    std::vector<std::string> names;
    for (const auto& c : rows.columns()) names.push_back(c.name());
    EXPECT_EQ(names, (std::vector<std::string>{"id", "a", "left_t", "b", "right_t"}));
    std::multiset<std::tuple<int64_t, double, double>> got;
    for (int64_t i = 0; i < rows.rows(); ++i) {
      got.insert({rows.column("id").at<int64_t>(i), rows.column("a").at<double>(i), rows.column("b").at<double>(i)});
    }
    EXPECT_EQ(got, expect) << "ranks " << ranks;
  }
}

TEST(JoinTest, TumblingWindowsJoinOnlyWithinAWindow) {
  // Every id appears on both sides in every 1-second window; a pair joins only in its window.
  std::vector<std::tuple<int64_t, double, double>> l, r;
  for (int w = 0; w < 5; ++w) {
    for (int id = 0; id < 10; ++id) {
      l.emplace_back(id, w * 100 + id, w + 0.1);
      r.emplace_back(id, w * 100 + id + 0.5, w + 0.2);
    }
  }
  JoinOptions o;
  o.keys = {"id"};
  o.window = parse_window("tumbling:1:t:10");  // lateness covers the two sources' interleaving
  for (int ranks : testing::rank_counts()) {
    auto [rows, outcomes] = run_join(ranks, {side_batch(l, "a")}, {side_batch(r, "b")}, o);
    ASSERT_EQ(rows.rows(), 50) << "ranks " << ranks;
    for (int64_t i = 0; i < rows.rows(); ++i) {
      EXPECT_EQ(rows.column("b").at<double>(i) - rows.column("a").at<double>(i), 0.5);
      EXPECT_EQ(std::floor(rows.column("left_t").at<double>(i)), std::floor(rows.column("right_t").at<double>(i)));
    }
  }
}

TEST(JoinTest, MismatchedKeyTypesAreAConfigError) {
  Graph g;
  g.add("left", batches_source({side_batch({{1, 1, 0}}, "a")}));
  g.add("right", batches_source({testing::int64_batch({{"id2", {1}}})}));
  JoinOptions o;
  o.keys = {"id"};
  g.add("join", join(o));
  g.connect("left", "join.left", Routing::forward());
  g.connect("right", "join.right", Routing::forward());
  g.add("out", collect(std::make_shared<Collection>()));
  g.connect("join", "out", Routing::forward());
  try {
    g.validate(1);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("input right: key column \"id\" is not among the columns arriving"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tensair::ops
