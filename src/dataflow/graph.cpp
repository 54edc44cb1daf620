#include "tensair/dataflow/graph.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <queue>
#include <set>
#include <sstream>

namespace tensair::dataflow {


std::vector<int> Placement::resolve(int world_size) const {
  if (!ranks_) {
    std::vector<int> all(static_cast<size_t>(world_size));
    for (int r = 0; r < world_size; ++r) all[static_cast<size_t>(r)] = r;
    return all;
  }
  return *ranks_;
}

std::string Placement::to_string() const {
  if (!ranks_) return "all ranks";
  std::string s = ranks_->size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks_->size(); ++i) {
    if (i) s += ',';
    s += std::to_string((*ranks_)[i]);
  }
  return s;
}

std::string Routing::to_string() const {
  switch (kind_) {
    case Kind::kForward: return "forward";
    case Kind::kRoundRobin: return "round_robin";
    case Kind::kLeastLoaded: return "least_loaded";
    case Kind::kKeyHash: return "key_hash(" + key_ + ")";
    case Kind::kBroadcast: return include_self_ ? "broadcast" : "broadcast(others)";
    case Kind::kToRank: return "to_rank(" + std::to_string(rank_) + ")";
  }
  return "?";
}

int Graph::add(std::string name, std::shared_ptr<const OperatorDef> def, Placement placement) {
  if (name.empty()) throw ConfigError("an operator needs a name");
  if (find(name) >= 0) throw ConfigError("operator \"" + name + "\" is defined twice");
  TENSAIR_ASSERT(def != nullptr, "operator without definition");
  OperatorNode node{name, def, std::move(placement), def->inputs(), def->outputs()};
  operators_.push_back(std::move(node));
  index_.emplace(name, static_cast<int>(operators_.size()) - 1);
  for (const auto& [out, in] : def->peer_edges()) {
    connect(name + "." + out, name + "." + in, Routing::broadcast(/*include_self=*/false));
  }
  return static_cast<int>(operators_.size()) - 1;
}

int Graph::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

std::string Graph::output_name(int op, int port) const {
  const auto& n = operators_[static_cast<size_t>(op)];
  return n.name + "." + n.outputs[static_cast<size_t>(port)].name;
}

std::string Graph::input_name(int op, int port) const {
  const auto& n = operators_[static_cast<size_t>(op)];
  return n.name + "." + n.inputs[static_cast<size_t>(port)].name;
}

namespace {
std::string port_list(const std::vector<PortSpec>& ports) {
  if (ports.empty()) return "none";
  std::string s;
  for (const PortSpec& p : ports) s += (s.empty() ? "" : ", ") + p.name;
  return s;
}
}  // namespace

std::pair<int, int> Graph::resolve_port(std::string_view ref, bool output) const {
  size_t dot = ref.find('.');
  std::string op_name(ref.substr(0, dot));
  int op = find(op_name);
  if (op < 0) throw ConfigError("unknown operator \"" + op_name + "\"");
  const OperatorNode& node = operators_[static_cast<size_t>(op)];
  const auto& ports = output ? node.outputs : node.inputs;
  const char* kind = output ? "output" : "input";
  if (dot == std::string_view::npos) {
    if (ports.size() != 1) {
      throw ConfigError("operator \"" + op_name + "\" has " + std::to_string(ports.size()) + " " +
                        kind + " ports (" + port_list(ports) + "): name one as " + op_name +
                        ".<port>");
    }
    return {op, 0};
  }
  std::string port_name(ref.substr(dot + 1));
  for (size_t i = 0; i < ports.size(); ++i) {
    if (ports[i].name == port_name) return {op, static_cast<int>(i)};
  }
  throw ConfigError("operator \"" + op_name + "\" has no " + kind + " port \"" + port_name +
                    "\" (" + kind + " ports: " + port_list(ports) + ")");
}

void Graph::connect(std::string_view from, std::string_view to, Routing routing,
                    size_t credit_bytes) {
  auto [from_op, from_port] = resolve_port(from, true);
  auto [to_op, to_port] = resolve_port(to, false);
  if (routing.kind() == Routing::Kind::kKeyHash && routing.key().empty()) {
    throw ConfigError("edge " + output_name(from_op, from_port) + " -> " +
                      input_name(to_op, to_port) + ": key_hash routing needs a key column");
  }
  edges_.push_back({from_op, from_port, to_op, to_port, std::move(routing), credit_bytes});
}

std::vector<int> Graph::cycle_components() const {
  // Tarjan's algorithm over operators, with an explicit stack: a chain of a million operators
  // must not recurse a million deep.
  const size_t n = operators_.size();
  std::vector<std::vector<int>> adj(n);
  std::vector<bool> self_loop(n, false);
  for (const Edge& e : edges_) {
    adj[static_cast<size_t>(e.from_op)].push_back(e.to_op);
    if (e.from_op == e.to_op) self_loop[static_cast<size_t>(e.from_op)] = true;
  }
  std::vector<int> index(n, -1), low(n, 0), comp(n, -1);
  std::vector<bool> on_stack(n, false);
  std::vector<int> stack;
  struct Frame {
    int v;
    size_t next;  // the next of adj[v] to look at
  };
  std::vector<Frame> calls;
  int counter = 0, components = 0;
  auto enter = [&](int v) {
    index[static_cast<size_t>(v)] = low[static_cast<size_t>(v)] = counter++;
    stack.push_back(v);
    on_stack[static_cast<size_t>(v)] = true;
    calls.push_back({v, 0});
  };
  for (size_t root = 0; root < n; ++root) {
    if (index[root] >= 0) continue;
    enter(static_cast<int>(root));
    while (!calls.empty()) {
      const int v = calls.back().v;
      const auto uv = static_cast<size_t>(v);
      if (calls.back().next < adj[uv].size()) {
        const int w = adj[uv][calls.back().next++];
        const auto uw = static_cast<size_t>(w);
        if (index[uw] < 0) {
          enter(w);
        } else if (on_stack[uw]) {
          low[uv] = std::min(low[uv], index[uw]);
        }
        continue;
      }
      if (low[uv] == index[uv]) {
        std::vector<int> members;
        int w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[static_cast<size_t>(w)] = false;
          members.push_back(w);
        } while (w != v);
        if (members.size() > 1 || self_loop[uv]) {
          for (int m : members) comp[static_cast<size_t>(m)] = components;
          components++;
        }
      }
      calls.pop_back();
      if (!calls.empty()) {
        const auto parent = static_cast<size_t>(calls.back().v);
        low[parent] = std::min(low[parent], low[uv]);
      }
    }
  }
  return comp;
}

namespace {

// Checks that `provided` satisfies `required` (all required columns present, same dtype,
// compatible shape). Returns an error text or "".
std::string schema_mismatch(const Schema& provided, const Schema& required) {
  for (const ColumnSpec& want : required) {
    const ColumnSpec* have = find_column(provided, want.name);
    if (!have) {
      return "needs column \"" + want.name + "\", which is not among the columns arriving (" +
             schema_to_string(provided) + ")";
    }
    if (have->dtype != want.dtype) {
      return "column \"" + want.name + "\" arrives as " + std::string(dtype_name(have->dtype)) +
             ", expected " + std::string(dtype_name(want.dtype));
    }
    if (want.any_shape || have->any_shape) continue;
    bool ok = have->record_shape.size() == want.record_shape.size();
    for (size_t i = 0; ok && i < want.record_shape.size(); ++i) {
      ok = want.record_shape[i] < 0 || want.record_shape[i] == have->record_shape[i];
    }
    if (!ok) {
      return "column \"" + want.name + "\" arrives as " + have->to_string() + ", expected " +
             want.to_string();
    }
  }
  return "";
}

}  // namespace

std::vector<std::vector<std::optional<Schema>>> Graph::infer_schemas() const {
  const size_t n = operators_.size();
  std::vector<std::vector<std::optional<Schema>>> out(n);
  std::vector<bool> done(n, false);
  // Per operator: the edges into it (in edge order) and out of it, and how many edges from
  // other operators not yet inferred still come in (an operator is ready at 0).
  std::vector<std::vector<size_t>> in_edges(n), out_edges(n);
  std::vector<size_t> waiting(n, 0);
  for (size_t k = 0; k < edges_.size(); ++k) {
    const Edge& e = edges_[k];
    in_edges[static_cast<size_t>(e.to_op)].push_back(k);
    out_edges[static_cast<size_t>(e.from_op)].push_back(k);
    if (e.from_op != e.to_op) waiting[static_cast<size_t>(e.to_op)]++;
  }
  // Inputs of op i: the schema arriving at each input port, from the first edge whose source
  // has been inferred (cycles use declared schemas).
  auto inputs_of = [&](size_t i) {
    std::vector<std::optional<Schema>> in(operators_[i].inputs.size());
    for (size_t k : in_edges[i]) {
      const Edge& e = edges_[k];
      if (!done[static_cast<size_t>(e.from_op)]) continue;
      auto& slot = in[static_cast<size_t>(e.to_port)];
      const auto& s = out[static_cast<size_t>(e.from_op)][static_cast<size_t>(e.from_port)];
      if (!slot && s) slot = s;
    }
    return in;
  };
  // The lowest-numbered ready operator first; when none is ready, every remaining operator
  // waits on a cycle: the lowest-numbered is inferred with what is known.
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (waiting[i] == 0) ready.push(i);
  }
  size_t next_undone = 0;
  for (size_t remaining = n; remaining > 0; --remaining) {
    size_t i;
    if (!ready.empty()) {
      i = ready.top();
      ready.pop();
    } else {
      while (done[next_undone]) ++next_undone;
      i = next_undone;
    }
    try {
      out[i] = operators_[i].def->infer_outputs(inputs_of(i));
    } catch (const Error& e) {
      e.rethrow_with_context("operator \"" + operators_[i].name + "\"");
    }
    out[i].resize(operators_[i].outputs.size());
    done[i] = true;
    for (size_t k : out_edges[i]) {
      const auto to = static_cast<size_t>(edges_[k].to_op);
      if (to != i && --waiting[to] == 0 && !done[to]) ready.push(to);
    }
  }
  return out;
}

namespace {

// The operators of cycle component `c` (comp[op] == c) in the order of one cycle through them,
// from the lowest-numbered back to it (a breadth-first search inside the component), e.g.
// "b" -> "c" -> "b".
std::string cycle_path(const std::vector<OperatorNode>& ops, const std::vector<Edge>& edges,
                       const std::vector<int>& comp, int c,
                       const std::vector<std::vector<size_t>>& out_edges) {
  int start = -1;
  for (size_t i = 0; i < comp.size() && start < 0; ++i) {
    if (comp[i] == c) start = static_cast<int>(i);
  }
  std::vector<int> parent(ops.size(), -2);  // -2: not reached
  std::deque<int> queue{start};
  int last = -1;  // the operator with an edge back to `start`
  while (!queue.empty() && last < 0) {
    const int v = queue.front();
    queue.pop_front();
    for (size_t k : out_edges[static_cast<size_t>(v)]) {
      const int w = edges[k].to_op;
      if (comp[static_cast<size_t>(w)] != c) continue;
      if (w == start) {
        last = v;
        break;
      }
      if (parent[static_cast<size_t>(w)] != -2) continue;
      parent[static_cast<size_t>(w)] = v;
      queue.push_back(w);
    }
  }
  std::vector<int> path;
  for (int v = last; v != start && v >= 0; v = parent[static_cast<size_t>(v)]) path.push_back(v);
  path.push_back(start);
  std::reverse(path.begin(), path.end());
  path.push_back(start);
  std::string s;
  for (size_t k = 0; k < path.size(); ++k) {
    s += (k ? " -> \"" : "\"") + ops[static_cast<size_t>(path[k])].name + "\"";
  }
  return s;
}

}  // namespace

void Graph::validate(int world_size) const {
  auto op_name = [&](int op) { return "operator \"" + operators_[static_cast<size_t>(op)].name + "\""; };
  if (operators_.empty()) throw ConfigError("the graph has no operators");

  // Placement.
  for (size_t i = 0; i < operators_.size(); ++i) {
    const auto& listed = operators_[i].placement.listed();
    if (!listed) continue;
    if (listed->empty()) throw ConfigError(op_name(static_cast<int>(i)) + ": placement lists no rank");
    std::set<int> seen;
    for (int r : *listed) {
      if (r < 0) throw ConfigError(op_name(static_cast<int>(i)) + ": placement names rank " + std::to_string(r));
      if (r >= world_size) {
        throw ConfigError(op_name(static_cast<int>(i)) + ": placement on rank " + std::to_string(r) +
                          " needs at least " + std::to_string(r + 1) + " ranks, the job has " +
                          std::to_string(world_size));
      }
      if (!seen.insert(r).second) {
        throw ConfigError(op_name(static_cast<int>(i)) + ": placement lists rank " + std::to_string(r) + " twice");
      }
    }
  }

  // Every non-optional port connected.
  std::vector<std::vector<bool>> in_connected(operators_.size()), out_connected(operators_.size());
  std::vector<std::vector<size_t>> out_edges(operators_.size());
  for (size_t i = 0; i < operators_.size(); ++i) {
    in_connected[i].assign(operators_[i].inputs.size(), false);
    out_connected[i].assign(operators_[i].outputs.size(), false);
  }
  for (size_t k = 0; k < edges_.size(); ++k) {
    const Edge& e = edges_[k];
    in_connected[static_cast<size_t>(e.to_op)][static_cast<size_t>(e.to_port)] = true;
    out_connected[static_cast<size_t>(e.from_op)][static_cast<size_t>(e.from_port)] = true;
    out_edges[static_cast<size_t>(e.from_op)].push_back(k);
  }
  for (size_t i = 0; i < operators_.size(); ++i) {
    const OperatorNode& node = operators_[i];
    for (size_t p = 0; p < node.inputs.size(); ++p) {
      if (!in_connected[i][p] && !node.inputs[p].optional) {
        throw ConfigError(op_name(static_cast<int>(i)) + ": input port \"" + node.inputs[p].name +
                          "\" is not connected");
      }
    }
    for (size_t p = 0; p < node.outputs.size(); ++p) {
      if (!out_connected[i][p] && !node.outputs[p].optional) {
        throw ConfigError(op_name(static_cast<int>(i)) + ": output port \"" + node.outputs[p].name +
                          "\" is not connected");
      }
    }
  }

  // Cycles: each must pass through an operator that supports them (a cycle of others never
  // ends: what goes round keeps going round, and its operators never see their inputs end).
  const std::vector<int> comp = cycle_components();
  std::vector<bool> supported;
  for (size_t i = 0; i < operators_.size(); ++i) {
    const int c = comp[i];
    if (c < 0) continue;
    if (static_cast<size_t>(c) >= supported.size()) supported.resize(static_cast<size_t>(c) + 1);
    if (operators_[i].def->supports_cycles()) supported[static_cast<size_t>(c)] = true;
  }
  for (size_t c = 0; c < supported.size(); ++c) {
    if (supported[c]) continue;
    throw ConfigError("operators " +
                      cycle_path(operators_, edges_, comp, static_cast<int>(c), out_edges) +
                      " form a cycle, and none of them runs on a cycle (a model does): it would "
                      "never end");
  }

  // Routing reachability.
  for (const Edge& e : edges_) {
    std::string edge = "edge " + output_name(e.from_op, e.from_port) + " -> " + input_name(e.to_op, e.to_port);
    auto src = operators_[static_cast<size_t>(e.from_op)].placement.resolve(world_size);
    auto dst = operators_[static_cast<size_t>(e.to_op)].placement.resolve(world_size);
    auto has = [&](int r) { return std::find(dst.begin(), dst.end(), r) != dst.end(); };
    switch (e.routing.kind()) {
      case Routing::Kind::kForward:
        for (int r : src) {
          if (!has(r)) {
            throw ConfigError(edge + ": forward routing needs an instance of \"" +
                              operators_[static_cast<size_t>(e.to_op)].name + "\" on rank " +
                              std::to_string(r) + ", where \"" +
                              operators_[static_cast<size_t>(e.from_op)].name + "\" runs");
          }
        }
        break;
      case Routing::Kind::kToRank:
        if (!has(e.routing.rank())) {
          throw ConfigError(edge + ": to_rank(" + std::to_string(e.routing.rank()) + ") but \"" +
                            operators_[static_cast<size_t>(e.to_op)].name + "\" has no instance on rank " +
                            std::to_string(e.routing.rank()) + " (placement: " +
                            operators_[static_cast<size_t>(e.to_op)].placement.to_string() + ")");
        }
        break;
      case Routing::Kind::kBroadcast:
        if (!e.routing.include_self() && dst.size() < 2 && world_size > 1) {
          // Allowed: with one receiving instance some senders simply reach no one.
        }
        break;
      default:
        break;
    }
  }

  // Columns along edges (this also runs each operator's own input checks).
  auto schemas = infer_schemas();
  for (const Edge& e : edges_) {
    std::string edge = "edge " + output_name(e.from_op, e.from_port) + " -> " + input_name(e.to_op, e.to_port);
    const auto& provided = schemas[static_cast<size_t>(e.from_op)][static_cast<size_t>(e.from_port)];
    if (!provided) continue;
    if (e.routing.kind() == Routing::Kind::kKeyHash) {
      const ColumnSpec* key = find_column(*provided, e.routing.key());
      if (!key) {
        throw ConfigError(edge + ": key column \"" + e.routing.key() + "\" is not among the columns of " +
                          output_name(e.from_op, e.from_port) + " (" + schema_to_string(*provided) + ")");
      }
      if (!key->record_shape.empty() || key->any_shape) {
        throw ConfigError(edge + ": key column \"" + e.routing.key() + "\" must hold one value per record, it is " +
                          key->to_string());
      }
    }
    const auto& required = operators_[static_cast<size_t>(e.to_op)].inputs[static_cast<size_t>(e.to_port)].schema;
    if (!required) continue;
    std::string why = schema_mismatch(*provided, *required);
    if (!why.empty()) throw ConfigError(edge + ": " + why);
  }
}

std::string Graph::describe(int world_size) const {
  auto schemas = infer_schemas();
  auto comp = cycle_components();
  std::ostringstream os;
  os << "operators (" << operators_.size() << "), " << world_size << (world_size == 1 ? " rank" : " ranks") << ":\n";
  for (size_t i = 0; i < operators_.size(); ++i) {
    const OperatorNode& n = operators_[i];
    os << "  " << n.name << "  [" << n.def->type() << "]  on " << n.placement.to_string();
    if (comp[i] >= 0) os << "  (cycle " << comp[i] << ")";
    os << "\n";
    std::string params = n.def->describe();
    if (!params.empty()) os << "      " << params << "\n";
    for (const PortSpec& p : n.inputs) {
      os << "      in  " << p.name;
      if (p.schema) os << "  requires {" << schema_to_string(*p.schema) << "}";
      if (p.optional) os << "  (optional)";
      os << "\n";
    }
    for (size_t p = 0; p < n.outputs.size(); ++p) {
      os << "      out " << n.outputs[p].name;
      const auto& s = schemas[i][p];
      os << "  {" << (s ? schema_to_string(*s) : std::string("columns known at run time")) << "}";
      if (n.outputs[p].optional) os << "  (optional)";
      os << "\n";
    }
  }
  os << "edges (" << edges_.size() << "):\n";
  for (const Edge& e : edges_) {
    os << "  " << output_name(e.from_op, e.from_port) << " -> " << input_name(e.to_op, e.to_port) << "  "
       << e.routing.to_string();
    if (e.credit_bytes) os << "  credit " << e.credit_bytes << " B";
    if (comp[static_cast<size_t>(e.from_op)] >= 0 && comp[static_cast<size_t>(e.from_op)] == comp[static_cast<size_t>(e.to_op)]) {
      os << "  (cycle edge)";
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace tensair::dataflow
