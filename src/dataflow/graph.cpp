#include "tensair/dataflow/graph.hpp"

#include <algorithm>
#include <functional>
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
  for (const auto& [out, in] : def->peer_edges()) {
    connect(name + "." + out, name + "." + in, Routing::broadcast(/*include_self=*/false));
  }
  return static_cast<int>(operators_.size()) - 1;
}

int Graph::find(std::string_view name) const {
  for (size_t i = 0; i < operators_.size(); ++i) {
    if (operators_[i].name == name) return static_cast<int>(i);
  }
  return -1;
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
  // Tarjan's algorithm over operators.
  const int n = static_cast<int>(operators_.size());
  std::vector<std::vector<int>> adj(static_cast<size_t>(n));
  std::vector<bool> self_loop(static_cast<size_t>(n), false);
  for (const Edge& e : edges_) {
    adj[static_cast<size_t>(e.from_op)].push_back(e.to_op);
    if (e.from_op == e.to_op) self_loop[static_cast<size_t>(e.from_op)] = true;
  }
  std::vector<int> index(static_cast<size_t>(n), -1), low(static_cast<size_t>(n), 0);
  std::vector<int> comp(static_cast<size_t>(n), -1);
  std::vector<bool> on_stack(static_cast<size_t>(n), false);
  std::vector<int> stack;
  int counter = 0, components = 0;
  std::function<void(int)> visit = [&](int v) {
    index[static_cast<size_t>(v)] = low[static_cast<size_t>(v)] = counter++;
    stack.push_back(v);
    on_stack[static_cast<size_t>(v)] = true;
    for (int w : adj[static_cast<size_t>(v)]) {
      if (index[static_cast<size_t>(w)] < 0) {
        visit(w);
        low[static_cast<size_t>(v)] = std::min(low[static_cast<size_t>(v)], low[static_cast<size_t>(w)]);
      } else if (on_stack[static_cast<size_t>(w)]) {
        low[static_cast<size_t>(v)] = std::min(low[static_cast<size_t>(v)], index[static_cast<size_t>(w)]);
      }
    }
    if (low[static_cast<size_t>(v)] == index[static_cast<size_t>(v)]) {
      std::vector<int> members;
      int w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[static_cast<size_t>(w)] = false;
        members.push_back(w);
      } while (w != v);
      if (members.size() > 1 || self_loop[static_cast<size_t>(v)]) {
        for (int m : members) comp[static_cast<size_t>(m)] = components;
        components++;
      }
    }
  };
  for (int v = 0; v < n; ++v) {
    if (index[static_cast<size_t>(v)] < 0) visit(v);
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
  // Inputs of op i: the schema arriving at each input port, from the first edge whose source
  // has been inferred. Iterate to a fixed point (cycles use declared schemas).
  auto inputs_of = [&](size_t i) {
    std::vector<std::optional<Schema>> in(operators_[i].inputs.size());
    for (const Edge& e : edges_) {
      if (static_cast<size_t>(e.to_op) != i || !done[static_cast<size_t>(e.from_op)]) continue;
      auto& slot = in[static_cast<size_t>(e.to_port)];
      const auto& s = out[static_cast<size_t>(e.from_op)][static_cast<size_t>(e.from_port)];
      if (!slot && s) slot = s;
    }
    return in;
  };
  auto ready = [&](size_t i) {
    for (const Edge& e : edges_) {
      if (static_cast<size_t>(e.to_op) == i && !done[static_cast<size_t>(e.from_op)] &&
          e.from_op != e.to_op) {
        return false;
      }
    }
    return true;
  };
  auto infer = [&](size_t i) {
    try {
      out[i] = operators_[i].def->infer_outputs(inputs_of(i));
    } catch (const Error& e) {
      e.rethrow_with_context("operator \"" + operators_[i].name + "\"");
    }
    out[i].resize(operators_[i].outputs.size());
    done[i] = true;
  };
  for (size_t remaining = n; remaining > 0;) {
    bool progress = false;
    for (size_t i = 0; i < n; ++i) {
      if (!done[i] && ready(i)) {
        infer(i);
        --remaining;
        progress = true;
      }
    }
    if (!progress) {
      // Every remaining operator waits on a cycle: infer the first with what is known.
      for (size_t i = 0; i < n; ++i) {
        if (!done[i]) {
          infer(i);
          --remaining;
          break;
        }
      }
    }
  }
  return out;
}

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
  for (size_t i = 0; i < operators_.size(); ++i) {
    const OperatorNode& node = operators_[i];
    for (size_t p = 0; p < node.inputs.size(); ++p) {
      bool connected = std::any_of(edges_.begin(), edges_.end(), [&](const Edge& e) {
        return static_cast<size_t>(e.to_op) == i && static_cast<size_t>(e.to_port) == p;
      });
      if (!connected && !node.inputs[p].optional) {
        throw ConfigError(op_name(static_cast<int>(i)) + ": input port \"" + node.inputs[p].name +
                          "\" is not connected");
      }
    }
    for (size_t p = 0; p < node.outputs.size(); ++p) {
      bool connected = std::any_of(edges_.begin(), edges_.end(), [&](const Edge& e) {
        return static_cast<size_t>(e.from_op) == i && static_cast<size_t>(e.from_port) == p;
      });
      if (!connected && !node.outputs[p].optional) {
        throw ConfigError(op_name(static_cast<int>(i)) + ": output port \"" + node.outputs[p].name +
                          "\" is not connected");
      }
    }
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
