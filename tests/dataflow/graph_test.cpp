// Graph validation: each mistake is a ConfigError whose message names the operator and port.
#include <gtest/gtest.h>

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
