// Operators: what runs inside a dataflow.
//
// An OperatorDef is the immutable definition of an operator (its type, ports and parameters);
// the graph holds one per operator. At start-up each rank in the operator's placement asks the
// definition for a running instance (instantiate), which holds the mutable state. An instance
// runs on its own thread; the engine calls its methods one at a time, so an instance needs no
// locking of its own state.
//
// Lifecycle of an instance:
//   restore(state)                           when the job resumes from a checkpoint: once,
//                                            before open(), with what snapshot() wrote
//   open()                                   once, before anything else
//   produce()                                sources (no input ports): repeatedly, until kDone
//   process(port, batch)                     every batch that arrives, in per-channel order
//   on_input_done(port)                      once per input port, when all its senders ended
//                                            (at start for a port no channel reaches)
//   on_timer()                               when a timer set with Context::set_timer fires
//   on_credit(port, target)                  after offer() refused a batch, once that channel
//                                            has credit again
//   snapshot(state)                          at a checkpoint barrier, between two other calls
//   on_checkpoint_complete(id)               checkpoint `id` is complete on every rank
//   on_finish()                              once, when all inputs ended (for operators on a
//                                            cycle: when the whole cycle has gone quiet)
// after on_finish() the engine sends end-of-stream on every output; emitting later is an error.
//
// Checkpoints (docs/fault-tolerance.md): snapshot() writes everything the instance would need
// to carry on exactly where it is; restore() reads it back into a fresh instance. The engine
// itself saves what lies between operators (batches in flight on a cycle or recorded while a
// barrier travels, which ports and channels ended, counters, round-robin positions), so an
// operator saves only its own members. An operator without state needs neither; an operator
// with state that does not implement them restarts from scratch on restore, so every built-in
// operator with state implements both.
//
// Errors: throw a tensair::Error (or any std::exception) to fail the job; the engine adds the
// operator name and rank and stops every rank cleanly. A bad record is not an error: report it
// with Context::dead_letter and carry on.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tensair/dataflow/batch.hpp"

namespace tensair::dataflow {

// Where an instance runs and who its siblings are.
struct InstanceInfo {
  std::string name;     // the operator's name in the graph
  std::string type;     // the definition's type()
  int rank = 0;         // this process's rank
  int world_size = 1;   // ranks in the job
  int instance = 0;     // index of this instance among the operator's instances
  int instances = 1;    // how many instances the operator has
  std::filesystem::path out_dir;  // the job's output directory (may be empty)
};

enum class SourceState {
  kMore,  // produce() has more to give: call it again
  kDone,  // the source is exhausted: finish the instance
};

// The engine's services for one instance. Only the instance's own thread may call these.
class Context {
 public:
  virtual ~Context() = default;

  virtual const InstanceInfo& info() const = 0;

  // Sends `batch` on output port `port` along every edge leaving that port, each edge routing
  // it by its policy. Blocks while a receiver has used up its credit (back-pressure), and
  // throws Cancelled if the job stops meanwhile. Batches with no rows are not sent.
  virtual void emit(int port, BatchPtr batch) = 0;
  void emit(int port, Batch batch) { emit(port, share(std::move(batch))); }

  // Per-receiver sending on an output port with exactly one edge (e.g. the model exchange), to
  // instance `target` of the receiving operator. offer() never waits: it returns false, sending
  // nothing, when that channel's credit is used up, and on_credit(port, target) follows once
  // credit is back. send_to() sends at once on an edge inside a cycle (where waiting could
  // deadlock; the credit then runs over by this batch) and otherwise waits for credit like
  // emit(). On a cycle a refused offer counts as a message in flight until on_credit, so the
  // cycle does not terminate while the operator still has something to send there. A port with several edges, or a target no channel reaches, is a programmer error
  // (TENSAIR_ASSERT).
  virtual bool offer(int port, int target, BatchPtr batch) = 0;
  virtual void send_to(int port, int target, BatchPtr batch) = 0;
  // The receiving instances that port `port`'s single edge reaches from this instance, in
  // instance order (the targets of offer/send_to).
  virtual std::vector<int> targets(int port) const = 0;

  // Reports a record that cannot be processed: counted in the metrics and written, with the
  // reason and the operator name, to OUT/dead_letters.jsonl. `record` is a short rendering.
  virtual void dead_letter(std::string_view reason, std::string_view record) = 0;

  // Appends a JSON object to OUT/metrics.jsonl; "t" (seconds since start), "rank", "operator"
  // and "instance" are added when absent.
  virtual void log_event(const nlohmann::json& event) = 0;

  // Input selection: a paused input port is not served (its batches wait, holding credit, so
  // its senders are eventually slowed down) until resumed.
  virtual void pause(int in_port) = 0;
  virtual void resume(int in_port) = 0;
  // Batches (and end-of-stream markers) waiting on an input port.
  virtual size_t queued(int in_port) const = 0;

  // Arms the instance's single timer (replacing an armed one); on_timer runs at `when`.
  virtual void set_timer(std::chrono::steady_clock::time_point when) = 0;
  virtual void clear_timer() = 0;

  // In snapshot() only: the engine fsyncs file descriptor `fd` (it keeps a duplicate) on its
  // writer thread before this checkpoint can complete, so that what the file holds at the
  // snapshot is durable when the checkpoint is, without snapshot() waiting for the disk (a
  // sink flushes its buffer to the file, records its length and hands the file here). The
  // default (a Context outside the engine, in tests) fsyncs at once. Throws IoError.
  virtual void sync_at_checkpoint(int fd);

  // The job's checkpoints as an operator that commits to an outside system (a Kafka sink) sees
  // them. `snapshot_id` is the checkpoint being taken, in snapshot() only (0 elsewhere);
  // `last_complete` the newest checkpoint complete on every rank (0: none yet); `stopping` is
  // true once the job stops on a signal (its last checkpoint taken, output after it will be
  // produced again by a resumed run). The default (outside the engine) has checkpoints off.
  struct CheckpointView {
    bool enabled = false;   // the job takes checkpoints (a [checkpoint] table)
    bool periodic = false;  // by time or record count, not only when the job stops
    uint64_t snapshot_id = 0;
    uint64_t last_complete = 0;
    bool stopping = false;
  };
  virtual CheckpointView checkpoints() const { return {}; }

  // True once the job is stopping because of an error; long loops should check it.
  virtual bool cancelled() const = 0;
  // Sources: true when the engine wants produce() to return soon (a checkpoint barrier or a
  // stop is waiting); a produce() that may block for long (a rate limit, a poll) checks it.
  virtual bool yield_requested() const = 0;
};

class StateWriter;
class StateReader;

class Operator {
 public:
  virtual ~Operator() = default;
  virtual void open(Context& ctx) {}
  virtual SourceState produce(Context& ctx) { return SourceState::kDone; }
  virtual void process(int port, const BatchPtr& batch, Context& ctx) {}
  virtual void on_input_done(int port, Context& ctx) {}
  virtual void on_timer(Context& ctx) {}
  virtual void on_credit(int port, int target, Context& ctx) {}
  virtual void snapshot(StateWriter& state, Context& ctx) {}
  virtual void restore(StateReader& state, Context& ctx) {}
  virtual void on_checkpoint_complete(uint64_t id, Context& ctx) {}
  virtual void on_finish(Context& ctx) {}
};

struct PortSpec {
  PortSpec(std::string port_name, std::optional<Schema> columns = std::nullopt,
           bool may_be_unconnected = false, int serve_priority = 0)
      : name(std::move(port_name)),
        schema(std::move(columns)),
        optional(may_be_unconnected),
        priority(serve_priority) {}

  std::string name;
  // Inputs: columns the operator requires (others may be present). Outputs: the columns of
  // every batch emitted. nullopt: not known before running (no check is made).
  std::optional<Schema> schema;
  bool optional = false;  // may be left unconnected
  int priority = 0;       // inputs: a port with a higher priority is served first
};

class OperatorDef {
 public:
  virtual ~OperatorDef() = default;

  // A short type name, e.g. "text_source", "reduce".
  virtual std::string type() const = 0;
  virtual std::vector<PortSpec> inputs() const { return {}; }
  virtual std::vector<PortSpec> outputs() const { return {}; }

  // The schema of each output given the schema arriving at each input (nullopt: unknown).
  // Throws ConfigError when the inputs cannot work, naming the column (the engine adds the
  // operator). The default returns the declared output schemas.
  virtual std::vector<std::optional<Schema>> infer_outputs(
      const std::vector<std::optional<Schema>>& inputs) const;

  // A running instance for `info`.
  virtual std::unique_ptr<Operator> instantiate(const InstanceInfo& info) const = 0;

  // Edges the operator needs between its own instances, added by Graph::add: each pair
  // (output port, input port) is connected with Routing::broadcast(include_self = false), so
  // every instance's emits on the output reach every other instance's input (e.g. the
  // gradient exchange between model replicas). Such an edge makes a cycle.
  virtual std::vector<std::pair<std::string, std::string>> peer_edges() const { return {}; }

  // True for an operator made to run on a cycle: one that ends its part of the cycle by itself
  // (the model: a replica's updates stop when its training input ends). Graph::validate refuses
  // a cycle none of whose operators says so (two maps feeding each other would run forever).
  virtual bool supports_cycles() const { return false; }

  // Parameters as shown by `tensair validate`, e.g. "path=words.txt batch_size=1024".
  virtual std::string describe() const { return ""; }
};

}  // namespace tensair::dataflow
