// OperatorDriver: one operator instance run by hand, without the engine, over a
// RecordingContext; for tests of what an instance emits and of its checkpoints.
//
// The driver follows the engine's lifecycle (tensair/dataflow/operator.hpp): a fresh instance
// is opened at once; a restored one gets restore() with the saved state (then
// StateReader::expect_end(), as the engine checks) before open(). A checkpoint test runs an
// instance to some point, takes snapshot(), clears the records and continues to the end (the
// reference tail); then restores the snapshot into a second driver, continues it with the same
// inputs, and compares the two tails (resume_source and resume_operator do this).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tensair/dataflow/operator.hpp"
#include "tensair/dataflow/state.hpp"
#include "testing/recording_context.hpp"

namespace tensair::testing {

// An InstanceInfo for instance `instance` of `instances` of an operator named `name`.
dataflow::InstanceInfo instance_info(const std::string& name = "op", int instance = 0,
                                     int instances = 1);

class OperatorDriver {
 public:
  // A fresh instance of `def`, opened.
  OperatorDriver(std::shared_ptr<const dataflow::OperatorDef> def, dataflow::InstanceInfo info);
  // An instance of `def` restored from `state` (what another instance's snapshot() wrote), then
  // opened. Restore errors (DataError, IoError, ...) propagate from the constructor.
  OperatorDriver(std::shared_ptr<const dataflow::OperatorDef> def, dataflow::InstanceInfo info,
                 const std::string& state);
  OperatorDriver(const OperatorDriver&) = delete;
  OperatorDriver& operator=(const OperatorDriver&) = delete;

  // What a StateReader over this driver's restored state is called (in DataError messages).
  static std::string state_name(const dataflow::InstanceInfo& info);

  // Sources: calls produce() up to `calls` times, fewer when it returns kDone; returns the
  // number of calls made. run_to_end() produces until kDone (at most `max_calls` calls; more
  // is a test failure, not a hang).
  int produce(int calls);
  void run_to_end(int max_calls = 1000000);
  bool done() const { return done_; }

  // Inputs.
  void process(int port, dataflow::BatchPtr batch);
  void process(int port, dataflow::Batch batch) {
    process(port, dataflow::share(std::move(batch)));
  }
  void input_done(int port);
  void timer();
  void finish();

  // The instance's state now (Operator::snapshot).
  std::string snapshot();

  RecordingContext& ctx() { return ctx_; }
  dataflow::Operator& op() { return *op_; }

 private:
  std::shared_ptr<const dataflow::OperatorDef> def_;
  RecordingContext ctx_;
  std::unique_ptr<dataflow::Operator> op_;
  bool done_ = false;
};

// A checkpoint test's four recordings: `head`, what the original instance recorded before the
// snapshot; `reference`, what it recorded after the snapshot, run to its end; `resumed`, what
// an instance restored from the snapshot recorded, run to its end with the same inputs; and
// `uninterrupted`, a third instance's whole run without a snapshot (to check that taking one
// changes nothing).
struct Resume {
  std::string state;
  RecordingContext head{{}}, reference{{}}, resumed{{}}, uninterrupted{{}};
  int calls = 0;  // sources: produce() calls made before the snapshot (fewer at the end)
};

// A source snapshotted after `calls` produce() calls.
Resume resume_source(const std::shared_ptr<const dataflow::OperatorDef>& def,
                     const dataflow::InstanceInfo& info, int calls);

// One input of an operator: a batch on an input port, or (batch null) the end of that port
// (on_input_done).
struct Input {
  int port = 0;
  dataflow::BatchPtr batch;
};
// An operator fed `inputs` in order and then finished (on_finish), snapshotted after the first
// `at` inputs.
Resume resume_operator(const std::shared_ptr<const dataflow::OperatorDef>& def,
                       const dataflow::InstanceInfo& info, const std::vector<Input>& inputs,
                       size_t at);

// Both contexts recorded the same: the same batches on every port (boundaries, columns,
// values), the same dead letters and the same events, in order.
::testing::AssertionResult same_records(const RecordingContext& expected,
                                        const RecordingContext& actual);
// `head` followed by `tail` recorded what `whole` recorded (batches, dead letters, events).
::testing::AssertionResult concatenation_is(const RecordingContext& head,
                                            const RecordingContext& tail,
                                            const RecordingContext& whole);

}  // namespace tensair::testing
