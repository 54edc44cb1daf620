// The dataflow graph: operators with named ports, placed on ranks, joined by routed edges.
//
// Build it on every rank the same way (same operators, same order), validate it for the job's
// rank count, and hand it to an Executor. A graph may contain cycles (the model's gradient
// exchange is one); see docs/architecture.md for how cycles terminate.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tensair/dataflow/operator.hpp"

namespace tensair::dataflow {

// Which ranks run an instance of an operator: all ranks, or a listed set (instance i runs on
// the i-th listed rank).
class Placement {
 public:
  static Placement all() { return Placement(); }
  static Placement on(int rank) { return Placement(std::vector<int>{rank}); }
  static Placement on(std::vector<int> ranks) { return Placement(std::move(ranks)); }

  bool is_all() const { return !ranks_; }
  // The ranks of the instances, for a job of `world_size` ranks.
  std::vector<int> resolve(int world_size) const;
  // "all", "rank 0", "ranks 0,2"
  std::string to_string() const;
  const std::optional<std::vector<int>>& listed() const { return ranks_; }

 private:
  Placement() = default;
  explicit Placement(std::vector<int> ranks) : ranks_(std::move(ranks)) {}
  std::optional<std::vector<int>> ranks_;
};

// How an edge spreads batches over the receiving operator's instances.
class Routing {
 public:
  enum class Kind {
    kForward,     // to the receiving instance on the sender's own rank
    kRoundRobin,  // whole batches, in turn, to every receiving instance
    kKeyHash,     // each record to instance hash(key) % n: equal keys meet in one instance
    kBroadcast,   // every batch to every receiving instance (optionally not the sender's rank)
    kToRank,      // every batch to the receiving instance on one rank
    kLeastLoaded, // whole batches, each to an instance whose channel admits it now, the one
                  // with the most free credit (ties in turn): a slow instance gets fewer
  };

  static Routing forward() { return Routing(Kind::kForward); }
  static Routing round_robin() { return Routing(Kind::kRoundRobin); }
  static Routing least_loaded() { return Routing(Kind::kLeastLoaded); }
  static Routing key_hash(std::string column) {
    Routing r(Kind::kKeyHash);
    r.key_ = std::move(column);
    return r;
  }
  static Routing broadcast(bool include_self = true) {
    Routing r(Kind::kBroadcast);
    r.include_self_ = include_self;
    return r;
  }
  static Routing to_rank(int rank) {
    Routing r(Kind::kToRank);
    r.rank_ = rank;
    return r;
  }

  Kind kind() const { return kind_; }
  const std::string& key() const { return key_; }
  int rank() const { return rank_; }
  bool include_self() const { return include_self_; }
  // "round_robin", "least_loaded", "key_hash(word)", "broadcast", "broadcast(others)",
  // "to_rank(0)", "forward"
  std::string to_string() const;

 private:
  explicit Routing(Kind k) : kind_(k) {}
  Kind kind_;
  std::string key_;
  int rank_ = 0;
  bool include_self_ = true;
};

struct OperatorNode {
  std::string name;
  std::shared_ptr<const OperatorDef> def;
  Placement placement = Placement::all();
  std::vector<PortSpec> inputs;   // def->inputs(), cached
  std::vector<PortSpec> outputs;  // def->outputs(), cached
};

struct Edge {
  int from_op = 0;
  int from_port = 0;
  int to_op = 0;
  int to_port = 0;
  Routing routing = Routing::round_robin();
  size_t credit_bytes = 0;  // 0: the job's default
};

class Graph {
 public:
  // Adds an operator and returns its index. Throws ConfigError for a duplicate or empty name.
  int add(std::string name, std::shared_ptr<const OperatorDef> def,
          Placement placement = Placement::all());

  // Adds an edge from "op.port" (or "op", when op has one output port) to "op.port" (or "op",
  // when it has one input port). Throws ConfigError for unknown operators and ports.
  void connect(std::string_view from, std::string_view to,
               Routing routing = Routing::round_robin(), size_t credit_bytes = 0);

  const std::vector<OperatorNode>& operators() const { return operators_; }
  const std::vector<Edge>& edges() const { return edges_; }
  // Index of the operator named `name`, or -1.
  int find(std::string_view name) const;

  // Checks the graph for a job of `world_size` ranks and throws ConfigError naming the
  // operator and port of the first problem: unconnected ports, a cycle through no operator
  // that supports cycles (OperatorDef::supports_cycles; it would never end), column mismatches
  // along edges, key columns missing, placements needing more ranks than exist, routings that
  // cannot reach an instance. Linear in operators and edges (times the ranks), so that a
  // generated job of a million operators validates in seconds.
  void validate(int world_size) const;

  // The columns leaving each output port, inferred through the graph: out[op][port].
  std::vector<std::vector<std::optional<Schema>>> infer_schemas() const;

  // Operators (type, placement, ports with columns, parameters), then edges with routing.
  std::string describe(int world_size) const;

  // Strongly connected components that contain a cycle: scc[op] is the component's index, or
  // -1 for operators on no cycle. An edge is a cycle edge when both ends share a component.
  std::vector<int> cycle_components() const;

  // "op.port" for messages.
  std::string output_name(int op, int port) const;
  std::string input_name(int op, int port) const;

 private:
  std::pair<int, int> resolve_port(std::string_view ref, bool output) const;

  std::vector<OperatorNode> operators_;
  std::vector<Edge> edges_;
  std::map<std::string, int, std::less<>> index_;  // operator name -> index (find)
};

}  // namespace tensair::dataflow
