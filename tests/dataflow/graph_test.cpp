// Graph validation: each mistake is a ConfigError whose message names the operator and port.
#include <gtest/gtest.h>

#include <algorithm>

#include "tensair/dataflow/graph.hpp"
#include "tensair/ops/collect.hpp"
#include "testing/lambda_op.hpp"

namespace tensair::dataflow {
namespace {

using testing::lambda_op;

std::shared_ptr<const OperatorDef> op(std::vector<PortSpec> in, std::vector<PortSpec> out) {
  return lambda_op({"test", std::move(in), std::move(out), [](const InstanceInfo&) -> std::unique_ptr<Operator> {
                      return nullptr;
                    }});
}

Schema ints(std::vector<std::string> names) {
  Schema s;
  for (auto& n : names) s.push_back({n, DType::kInt64, {}});
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(GraphTest, UnconnectedInputPortIsNamed) {
  Graph g;
  g.add("src", op({}, {{"out"}}));
  g.add("join", op({{"left"}, {"right"}}, {}));
  g.connect("src", "join.left");
  EXPECT_EQ(error_of([&] { g.validate(1); }), "operator \"join\": input port \"right\" is not connected");
}

TEST(GraphTest, UnconnectedOutputPortIsNamed) {
  Graph g;
  g.add("src", op({}, {{"out"}, {"errors"}}));
  g.add("sink", op({{"in"}}, {}));
  g.connect("src.out", "sink");
  EXPECT_EQ(error_of([&] { g.validate(1); }), "operator \"src\": output port \"errors\" is not connected");
}

TEST(GraphTest, OptionalPortsMayStayUnconnected) {
  Graph g;
  g.add("src", op({}, {{"out"}, {"errors", std::nullopt, true}}));
  g.add("sink", op({{"in"}, {"control", std::nullopt, true}}, {}));
  g.connect("src.out", "sink.in");
  EXPECT_NO_THROW(g.validate(1));
}

TEST(GraphTest, ColumnDtypeMismatchNamesEdgeAndColumn) {
  Graph g;
  g.add("src", op({}, {{"out", ints({"x"})}}));
  g.add("model", op({{"in", Schema{{"x", DType::kFloat32, {}}}}}, {}));
  g.connect("src", "model");
  EXPECT_EQ(error_of([&] { g.validate(1); }),
            "edge src.out -> model.in: column \"x\" arrives as int64, expected float32");
}

TEST(GraphTest, MissingColumnNamesEdgeAndColumns) {
  Graph g;
  g.add("src", op({}, {{"out", ints({"a", "b"})}}));
  g.add("model", op({{"in", ints({"c"})}}, {}));
  g.connect("src", "model");
  EXPECT_EQ(error_of([&] { g.validate(1); }),
            "edge src.out -> model.in: needs column \"c\", which is not among the columns arriving (a: int64, b: int64)");
}

TEST(GraphTest, ShapeMismatchIsReported) {
  Graph g;
  g.add("src", op({}, {{"out", Schema{{"x", DType::kFloat32, {32, 32, 3}}}}}));
  g.add("model", op({{"in", Schema{{"x", DType::kFloat32, {3, 32, 32}}}}}, {}));
  g.connect("src", "model");
  EXPECT_EQ(error_of([&] { g.validate(1); }),
            "edge src.out -> model.in: column \"x\" arrives as x: float32[32,32,3], expected x: float32[3,32,32]");
}

TEST(GraphTest, WildcardDimensionsMatch) {
  Graph g;
  g.add("src", op({}, {{"out", Schema{{"x", DType::kFloat32, {7, 3}}}}}));
  g.add("model", op({{"in", Schema{{"x", DType::kFloat32, {-1, 3}}}}}, {}));
  g.connect("src", "model");
  EXPECT_NO_THROW(g.validate(1));
}

TEST(GraphTest, KeyColumnMustExist) {
  Graph g;
  g.add("src", op({}, {{"out", ints({"id"})}}));
  g.add("sink", op({{"in"}}, {}));
  g.connect("src", "sink", Routing::key_hash("word"));
  EXPECT_EQ(error_of([&] { g.validate(2); }),
            "edge src.out -> sink.in: key column \"word\" is not among the columns of src.out (id: int64)");
}

TEST(GraphTest, PlacementBeyondTheRanksIsReported) {
  Graph g;
  g.add("src", op({}, {{"out"}}), Placement::on(3));
  g.add("sink", op({{"in"}}, {}));
  g.connect("src", "sink");
  EXPECT_EQ(error_of([&] { g.validate(2); }),
            "operator \"src\": placement on rank 3 needs at least 4 ranks, the job has 2");
  EXPECT_NO_THROW(g.validate(4));
}

TEST(GraphTest, ForwardNeedsAReceiverOnTheSendersRank) {
  Graph g;
  g.add("src", op({}, {{"out"}}));
  g.add("sink", op({{"in"}}, {}), Placement::on(0));
  g.connect("src", "sink", Routing::forward());
  EXPECT_NO_THROW(g.validate(1));
  EXPECT_EQ(error_of([&] { g.validate(2); }),
            "edge src.out -> sink.in: forward routing needs an instance of \"sink\" on rank 1, where \"src\" runs");
}

TEST(GraphTest, ToRankNeedsAReceiverThere) {
  Graph g;
  g.add("src", op({}, {{"out"}}));
  g.add("sink", op({{"in"}}, {}), Placement::on(0));
  g.connect("src", "sink", Routing::to_rank(1));
  EXPECT_EQ(error_of([&] { g.validate(2); }),
            "edge src.out -> sink.in: to_rank(1) but \"sink\" has no instance on rank 1 (placement: rank 0)");
}

TEST(GraphTest, UnknownOperatorsAndPortsAreNamed) {
  Graph g;
  g.add("src", op({}, {{"out"}}));
  g.add("join", op({{"left"}, {"right"}}, {}));
  EXPECT_EQ(error_of([&] { g.connect("srx", "join.left"); }), "unknown operator \"srx\"");
  EXPECT_EQ(error_of([&] { g.connect("src.outt", "join.left"); }),
            "operator \"src\" has no output port \"outt\" (output ports: out)");
  EXPECT_EQ(error_of([&] { g.connect("src", "join"); }),
            "operator \"join\" has 2 input ports (left, right): name one as join.<port>");
}

TEST(GraphTest, DuplicateNamesAreRejected) {
  Graph g;
  g.add("a", op({}, {{"out"}}));
  EXPECT_EQ(error_of([&] { g.add("a", op({}, {{"out"}})); }), "operator \"a\" is defined twice");
}

TEST(GraphTest, PlacementListingARankTwiceIsRejected) {
  Graph g;
  g.add("a", op({}, {}), Placement::on(std::vector<int>{0, 0}));
  EXPECT_EQ(error_of([&] { g.validate(2); }), "operator \"a\": placement lists rank 0 twice");
}

TEST(GraphTest, CycleComponentsAreFound) {
  Graph g;
  g.add("src", op({}, {{"out"}}));
  g.add("model", op({{"train"}, {"deltas"}, {"control"}}, {{"deltas"}, {"metrics"}}));
  g.add("detector", op({{"in"}}, {{"control"}}));
  g.add("sink", op({{"in"}}, {}));
  g.connect("src", "model.train");
  g.connect("model.deltas", "model.deltas", Routing::broadcast(false));
  g.connect("model.metrics", "detector");
  g.connect("detector", "model.control", Routing::broadcast());
  auto comp = g.cycle_components();
  EXPECT_EQ(comp[0], -1);
  EXPECT_GE(comp[1], 0);
  EXPECT_EQ(comp[1], comp[2]);
  g.add("x", op({}, {}));
  EXPECT_EQ(g.cycle_components()[3], -1);
}

// A cycle of operators none of which runs on one (two maps feeding each other) once validated
// and ran for ever, its memory growing; a cycle through a model (supports_cycles) is fine.
TEST(GraphTest, CycleWithoutACycleOperatorIsRefusedNamingItsOperators) {
  Graph g;
  g.add("src", op({}, {{"out"}}));
  g.add("a", op({{"in"}}, {{"out"}}));
  g.add("b", op({{"in"}}, {{"out"}}));
  g.add("c", op({{"in"}}, {{"out"}}));
  g.connect("src", "a");
  g.connect("a", "b");
  g.connect("b", "c");
  g.connect("c", "b");
  g.connect("c", "a");
  EXPECT_EQ(error_of([&] { g.validate(1); }),
            "operators \"a\" -> \"b\" -> \"c\" -> \"a\" form a cycle, and none of them runs on a "
            "cycle (a model does): it would never end");
  Graph self;
  self.add("src", op({}, {{"out"}}));
  self.add("a", op({{"in"}}, {{"out"}}));
  self.connect("src", "a");
  self.connect("a", "a");
  EXPECT_EQ(error_of([&] { self.validate(1); }),
            "operators \"a\" -> \"a\" form a cycle, and none of them runs on a cycle (a model "
            "does): it would never end");
  Graph model;
  model.add("src", op({}, {{"out"}}));
  model.add("model", lambda_op({"model", {{"train"}, {"control", std::nullopt, true}},
                                {{"metrics"}, {"deltas"}},
                                [](const InstanceInfo&) -> std::unique_ptr<Operator> {
                                  return nullptr;
                                },
                                "", /*supports_cycles=*/true}));
  model.add("detector", op({{"in"}}, {{"control"}}));
  model.connect("src", "model.train");
  model.connect("model.deltas", "model.control", Routing::broadcast(false));
  model.connect("model.metrics", "detector");
  model.connect("detector", "model.control");
  EXPECT_NO_THROW(model.validate(2));
}

// Passes its input's columns on: schemas travel the whole length of a chain.
class PassThrough final : public OperatorDef {
 public:
  std::string type() const override { return "pass"; }
  std::vector<PortSpec> inputs() const override { return {{"in"}}; }
  std::vector<PortSpec> outputs() const override { return {{"out"}}; }
  std::vector<std::optional<Schema>> infer_outputs(
      const std::vector<std::optional<Schema>>& in) const override {
    return {in[0]};
  }
  std::unique_ptr<Operator> instantiate(const InstanceInfo&) const override { return nullptr; }
};

// A generated job of 800,000 operators once took minutes to validate (a linear name lookup
// per edge, a scan of all edges per port and per operator and pass) and its recursive cycle
// search went as deep as the chain. A chain of 100,000, added from its end to its start (the
// order that needed one pass per operator), validates and carries the source's columns to
// the end; the times are in the test's commit, not asserted here.
TEST(GraphTest, ALongChainAddedBackwardsValidatesAndCarriesColumnsToItsEnd) {
  constexpr int kOps = 100000;
  Graph g;
  auto pass = std::make_shared<PassThrough>();
  for (int i = kOps - 1; i >= 1; --i) g.add("op" + std::to_string(i), pass);
  g.add("op0", op({}, {{"out", ints({"id"})}}));
  for (int i = 0; i + 1 < kOps; ++i) {
    g.connect("op" + std::to_string(i), "op" + std::to_string(i + 1));
  }
  g.add("sink", op({{"in"}}, {}));
  g.connect("op" + std::to_string(kOps - 1), "sink");
  EXPECT_NO_THROW(g.validate(1));
  EXPECT_EQ(g.find("op0"), kOps - 1);
  EXPECT_EQ(g.find("op1"), kOps - 2);
  EXPECT_EQ(g.find("op" + std::to_string(kOps)), -1);
  auto schemas = g.infer_schemas();
  const auto& last = schemas[static_cast<size_t>(g.find("op" + std::to_string(kOps - 1)))][0];
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(schema_to_string(*last), "id: int64");
  auto comp = g.cycle_components();
  EXPECT_TRUE(std::all_of(comp.begin(), comp.end(), [](int c) { return c < 0; }));
  // Closed into a ring, it is one component of all of them (found without deep recursion).
  Graph ring;
  for (int i = 0; i < kOps; ++i) ring.add("op" + std::to_string(i), pass);
  for (int i = 0; i < kOps; ++i) {
    ring.connect("op" + std::to_string(i), "op" + std::to_string((i + 1) % kOps));
  }
  comp = ring.cycle_components();
  EXPECT_TRUE(std::all_of(comp.begin(), comp.end(), [](int c) { return c == 0; }));
}

TEST(GraphTest, DescribeListsOperatorsPortsAndEdges) {
  Graph g;
  g.add("src", op({}, {{"out", ints({"id"})}}), Placement::on(0));
  g.add("sink", op({{"in"}}, {}));
  g.connect("src", "sink", Routing::key_hash("id"));
  std::string d = g.describe(2);
  EXPECT_NE(d.find("src  [test]  on rank 0"), std::string::npos) << d;
  EXPECT_NE(d.find("out out  {id: int64}"), std::string::npos) << d;
  EXPECT_NE(d.find("src.out -> sink.in  key_hash(id)"), std::string::npos) << d;
}

}  // namespace
}  // namespace tensair::dataflow
