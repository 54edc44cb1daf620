// Checkpoints of reduce and join: an instance restored from a snapshot and fed the same
// batches emits exactly what the original emitted after the snapshot (rows, batch boundaries,
// the order of keys within a window, late records as dead letters), at several points.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tensair/common/error.hpp"
#include "tensair/dataflow/state.hpp"
#include "tensair/ops/operator_state.hpp"
#include "tensair/ops/reduce.hpp"
#include "testing/batch_equality.hpp"
#include "testing/operator_driver.hpp"

namespace tensair::ops {
namespace {

using dataflow::BatchBuilder;
using dataflow::BatchPtr;
using dataflow::DType;
using dataflow::Schema;
using testing::Input;
using testing::instance_info;
using testing::OperatorDriver;
using testing::Resume;
using testing::resume_operator;
using testing::total_rows;

// `batches` batches of `rows` records (key string, group int64, value float64, t float64). Time
// advances by 0.01 per record; every 37th record is 0.4 s late and record 101 has no finite
// time, so event-time windows see late records (dead letters).
std::vector<BatchPtr> make_batches(int batches, int rows, uint32_t seed, const std::string& value) {
  std::mt19937 rng(seed);
  Schema s{{"key", DType::kString, {}},
           {"group", DType::kInt64, {}},
           {value, DType::kFloat64, {}},
           {"t", DType::kFloat64, {}}};
  std::vector<BatchPtr> out;
  int i = 0;
  for (int b = 0; b < batches; ++b) {
    BatchBuilder builder(s);
    for (int r = 0; r < rows; ++r, ++i) {
      builder.column(0).append_string("k" + std::to_string(rng() % 23));
      builder.column(1).append<int64_t>(static_cast<int64_t>(rng() % 3));
      builder.column(2).append<double>(static_cast<double>(static_cast<int>(rng() % 2001) - 1000) /
                                       8.0);
      double t = i * 0.01 - (i % 37 == 36 ? 0.4 : 0.0);
      if (i == 101) t = std::numeric_limits<double>::quiet_NaN();
      builder.column(3).append<double>(t);
    }
    out.push_back(dataflow::share(builder.finish()));
  }
  return out;
}

std::vector<Input> on_port(int port, const std::vector<BatchPtr>& batches) {
  std::vector<Input> out;
  for (const BatchPtr& b : batches) out.push_back({port, b});
  return out;
}

void expect_resumes_exactly(const std::shared_ptr<const dataflow::OperatorDef>& def,
                            const std::vector<Input>& inputs, const std::vector<size_t>& points) {
  for (size_t at : points) {
    SCOPED_TRACE("snapshot after " + std::to_string(at) + " of " + std::to_string(inputs.size()) +
                 " inputs");
    Resume r = resume_operator(def, instance_info("op"), inputs, at);
    EXPECT_TRUE(testing::same_records(r.reference, r.resumed));
    EXPECT_TRUE(testing::concatenation_is(r.head, r.reference, r.uninterrupted));
  }
}

ReduceOptions reduce_options(const std::string& window, std::vector<std::string> group_by) {
  ReduceOptions o;
  o.group_by = std::move(group_by);
  o.window = parse_window(window);
  o.aggregations = {parse_aggregation("n", "count"),       parse_aggregation("s", "sum(value)"),
                    parse_aggregation("lo", "min(value)"), parse_aggregation("hi", "max(group)"),
                    parse_aggregation("m", "mean(value)"), parse_aggregation("f", "first(value)"),
                    parse_aggregation("l", "last(key)")};
  return o;
}

// ---- reduce ----------------------------------------------------------------------------------

TEST(ReduceCheckpointTest, GlobalCountAndEventTimeWindowsResumeExactly) {
  const std::vector<Input> inputs = on_port(0, make_batches(20, 60, 7, "value"));
  for (const char* window : {"global", "count:7", "tumbling:0.5:t:0.1"}) {
    for (const auto& keys : std::vector<std::vector<std::string>>{{"key"}, {"group", "key"}, {}}) {
      SCOPED_TRACE(std::string(window) + ", " + std::to_string(keys.size()) + " keys");
      auto def = reduce(reduce_options(window, keys));
      expect_resumes_exactly(def, inputs, {0, 1, 7, 13, 19, 20});
      // Mid-stream, both parts emit something, and the tail is not the whole output.
      Resume r = resume_operator(def, instance_info("op"), inputs, 13);
      EXPECT_GT(total_rows(r.resumed.emitted(0)), 0);
      if (std::string(window) != "global") {
        EXPECT_GT(total_rows(r.head.emitted(0)), 0);
      }
    }
  }
}

TEST(ReduceCheckpointTest, EventTimeLateRecordsAfterTheSnapshotAreTheSameDeadLetters) {
  const std::vector<Input> inputs = on_port(0, make_batches(20, 60, 11, "value"));
  auto def = reduce(reduce_options("tumbling:0.5:t:0.1", {"key"}));
  Resume r = resume_operator(def, instance_info("op"), inputs, 5);
  EXPECT_FALSE(r.resumed.dead_letters().empty());
  EXPECT_EQ(r.resumed.dead_letters().front().reason.rfind("late record", 0), 0u)
      << r.resumed.dead_letters().front().reason;
  EXPECT_TRUE(testing::same_records(r.reference, r.resumed));
}

// An event time too far from 0 for the windows (1e300 s: window 5e299, beyond any int64) is a
// dead letter naming it, not an out-of-range cast (UBSan found it through a damaged watermark);
// the other records are aggregated as without it.
TEST(ReduceCheckpointTest, AnEventTimeBeyondTheWindowRangeIsADeadLetter) {
  auto def = reduce(reduce_options("tumbling:2:t:0.25", {"key"}));
  Schema s{{"key", DType::kString, {}},
           {"group", DType::kInt64, {}},
           {"value", DType::kFloat64, {}},
           {"t", DType::kFloat64, {}}};
  auto batch = [&](const std::vector<double>& times) {
    BatchBuilder b(s);
    for (double t : times) {
      b.column(0).append_string("k");
      b.column(1).append<int64_t>(1);
      b.column(2).append<double>(1.0);
      b.column(3).append<double>(t);
    }
    return dataflow::share(b.finish());
  };
  OperatorDriver with(def, instance_info("op"));
  with.process(0, batch({0.5, 1e300, 1.0, -1e300, 3.0}));
  with.finish();
  OperatorDriver without(def, instance_info("op"));
  without.process(0, batch({0.5, 1.0, 3.0}));
  without.finish();
  ASSERT_EQ(with.ctx().dead_letters().size(), 2u);
  EXPECT_EQ(with.ctx().dead_letters()[0].reason,
            "time column \"t\" is 1e+300, too far from 0 for windows of 2 s");
  EXPECT_EQ(with.ctx().dead_letters()[0].record, "t=1e+300");
  EXPECT_EQ(with.ctx().dead_letters()[1].reason,
            "time column \"t\" is -1e+300, too far from 0 for windows of 2 s");
  EXPECT_TRUE(without.ctx().dead_letters().empty());
  EXPECT_TRUE(testing::batch_lists_equal(without.ctx().emitted(0), with.ctx().emitted(0)));
  EXPECT_EQ(total_rows(with.ctx().emitted(0)), 2);  // windows [0, 2) and [2, 4)
}

TEST(ReduceCheckpointTest, RestoredAfterTheLastBatchStillEmitsOnFinish) {
  const std::vector<Input> inputs = on_port(0, make_batches(4, 30, 3, "value"));
  for (const char* window : {"global", "count:1000", "tumbling:10:t"}) {
    SCOPED_TRACE(window);
    Resume r = resume_operator(reduce(reduce_options(window, {"key"})), instance_info("op"), inputs,
                               inputs.size());
    EXPECT_TRUE(r.head.emitted(0).empty());
    EXPECT_GT(total_rows(r.resumed.emitted(0)), 10);
    EXPECT_EQ(total_rows(r.resumed.emitted(0)), total_rows(r.uninterrupted.emitted(0)));
    EXPECT_TRUE(testing::same_records(r.reference, r.resumed));
  }
}

TEST(ReduceCheckpointTest, ProcessingTimeWindowKeepsItsGroupsAndRestartsTheTimer) {
  // The clock is driven by hand: timer() closes the current window, as on_timer does when the
  // engine's timer fires.
  auto def = reduce(reduce_options("tumbling:3600", {"key"}));
  const std::vector<BatchPtr> batches = make_batches(6, 40, 5, "value");
  auto run = [&](OperatorDriver& d, size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      d.process(0, batches[i]);
      if (i % 2 == 1) d.timer();
    }
  };
  OperatorDriver original(def, instance_info("op"));
  run(original, 0, 3);  // windows 0 closed, window 1 open with batch 2's records
  const std::string state = original.snapshot();
  original.ctx().clear_records();
  run(original, 3, 6);
  original.finish();
  const auto before = std::chrono::steady_clock::now();
  OperatorDriver restored(def, instance_info("op"), state);
  // The open window (1) gets its full hour again from the restart.
  ASSERT_TRUE(restored.ctx().timer().has_value());
  EXPECT_GE(*restored.ctx().timer(), before + std::chrono::seconds(3590));
  EXPECT_LE(*restored.ctx().timer(), before + std::chrono::seconds(3610));
  run(restored, 3, 6);
  restored.finish();
  EXPECT_TRUE(testing::same_records(original.ctx(), restored.ctx()));
  // Window 1 holds records from before and after the snapshot: batch 2's keys are in it.
  const auto& first = *restored.ctx().emitted(0).front();
  EXPECT_EQ(first.column("window_start").at<double>(0), 3600.0);
}

TEST(ReduceCheckpointTest, DamagedStateIsADataErrorNamingTheState) {
  const std::vector<Input> inputs = on_port(0, make_batches(3, 20, 1, "value"));
  auto def = reduce(reduce_options("count:5", {"key", "group"}));
  const auto info = instance_info("op");
  Resume r = resume_operator(def, info, inputs, 3);
  for (size_t n = 0; n < r.state.size(); n += 5) {
    try {
      OperatorDriver d(def, info, r.state.substr(0, n));
      ADD_FAILURE() << "restored from " << n << " of " << r.state.size() << " bytes";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(OperatorDriver::state_name(info)), std::string::npos)
          << e.what();
    }
  }
  // A group key that is not a (string, int64) encoding is caught before it is decoded.
  dataflow::StateWriter w;
  put_layout(w, "reduce", 1);
  put_flag(w, true);
  put_schema(w, inputs[0].batch->schema());
  w.put<double>(0);
  w.put<int64_t>(0);
  w.put<int64_t>(0);     // current window
  w.put<uint64_t>(1);    // one window
  w.put<int64_t>(0);     // window 0
  w.put<uint64_t>(1);    // one group
  w.put_string("\x40");  // a string of 64 bytes, absent
  w.put<int64_t>(1);     // rows
  w.put<int64_t>(0);     // count window
  w.put<uint64_t>(0);    // accumulators
  try {
    OperatorDriver d(def, info, w.take());
    ADD_FAILURE() << "restored a damaged key";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("damaged group key"), std::string::npos) << e.what();
  }
  // The state of a join is not a reduce's.
  Resume j = resume_operator(join({{"key"}, parse_window("global")}), info,
                             {{0, inputs[0].batch}, {1, inputs[1].batch}}, 2);
  try {
    OperatorDriver d(def, info, j.state);
    ADD_FAILURE() << "a reduce took a join's state";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("not of a \"reduce\""), std::string::npos) << e.what();
  }
}

// Restores every one-byte alteration of `state` and, when the restore succeeds, feeds it
// `inputs` and finishes it: each either works or throws a tensair::Error, never crashes (run
// the tests under ASan to see).
void expect_alterations_fail_cleanly(const std::shared_ptr<const dataflow::OperatorDef>& def,
                                     const std::string& state, const std::vector<Input>& inputs) {
  const auto info = instance_info("op");
  int failed = 0;
  for (size_t i = 0; i < state.size(); ++i) {
    std::string altered = state;
    altered[i] = static_cast<char>(altered[i] ^ 0x5a);
    try {
      OperatorDriver d(def, info, altered);
      for (const Input& in : inputs) d.process(in.port, in.batch);
      d.finish();
    } catch (const Error&) {
      ++failed;
    }
  }
  EXPECT_GT(failed, 0);
}

TEST(ReduceCheckpointTest, AnyAlteredByteRestoresOrFailsCleanly) {
  const std::vector<Input> inputs = on_port(0, make_batches(3, 12, 4, "value"));
  auto def = reduce(reduce_options("count:5", {"key", "group"}));
  const Resume r = resume_operator(def, instance_info("op"), inputs, 2);
  expect_alterations_fail_cleanly(def, r.state, {inputs[2]});
}

// ---- join ------------------------------------------------------------------------------------

// Left and right batches interleaved, the right with column "price" instead of "value" (and
// "group" and "t" on both sides, prefixed in the output).
std::vector<Input> join_inputs() {
  std::vector<BatchPtr> left = make_batches(10, 40, 21, "value");
  std::vector<BatchPtr> right = make_batches(10, 40, 22, "price");
  std::vector<Input> inputs;
  for (size_t i = 0; i < left.size(); ++i) {
    inputs.push_back({0, left[i]});
    if (i % 3 != 2) inputs.push_back({1, right[i]});
  }
  for (size_t i = 0; i < right.size(); ++i) {
    if (i % 3 == 2) inputs.push_back({1, right[i]});
  }
  return inputs;
}

TEST(JoinCheckpointTest, GlobalAndEventTimeJoinsResumeExactly) {
  const std::vector<Input> inputs = join_inputs();
  for (const char* window : {"global", "tumbling:1:t", "tumbling:0.3:t:0.2"}) {
    for (const auto& keys : std::vector<std::vector<std::string>>{{"key"}, {"key", "group"}}) {
      SCOPED_TRACE(std::string(window) + ", " + std::to_string(keys.size()) + " keys");
      JoinOptions o;
      o.keys = keys;
      o.window = parse_window(window);
      auto def = join(o);
      // After input 17 only the right side's held-back batches 2, 5 and 8 are left: late, for
      // a tumbling window, against the watermark the left side set before the snapshot.
      expect_resumes_exactly(def, inputs, {0, 1, 2, 9, 14, 17, inputs.size()});
      Resume r = resume_operator(def, instance_info("op"), inputs, 9);
      EXPECT_GT(total_rows(r.head.emitted(0)), 0);
      EXPECT_GT(total_rows(r.resumed.emitted(0)), 0);
      if (std::string(window) != "global") {
        Resume late = resume_operator(def, instance_info("op"), inputs, 17);
        EXPECT_GE(late.resumed.dead_letters().size(), 80u);  // batches 2 and 5
      }
    }
  }
}

TEST(JoinCheckpointTest, OneSidedStateWaitsForTheOtherSideAfterARestore) {
  // Only the left side arrives before the snapshot: the restored join has no plan yet and
  // matches the right side's rows against the saved left rows.
  std::vector<Input> inputs = join_inputs();
  std::stable_partition(inputs.begin(), inputs.end(), [](const Input& in) { return in.port == 0; });
  JoinOptions o;
  o.keys = {"key"};
  auto def = join(o);
  Resume r = resume_operator(def, instance_info("op"), inputs, 10);
  EXPECT_TRUE(r.head.emitted(0).empty());
  EXPECT_GT(total_rows(r.resumed.emitted(0)), 0);
  EXPECT_TRUE(testing::same_records(r.reference, r.resumed));
}

TEST(JoinCheckpointTest, AnyAlteredByteRestoresOrFailsCleanly) {
  JoinOptions o;
  o.keys = {"key"};
  o.window = parse_window("tumbling:1:t");
  auto def = join(o);
  std::vector<Input> inputs = join_inputs();
  inputs.resize(4);
  const Resume r = resume_operator(def, instance_info("op"), inputs, 3);
  expect_alterations_fail_cleanly(def, r.state, {inputs[3]});
}

TEST(JoinCheckpointTest, TruncatedStateIsADataErrorNamingTheState) {
  JoinOptions o;
  o.keys = {"key"};
  o.window = parse_window("tumbling:1:t");
  auto def = join(o);
  const auto info = instance_info("op");
  Resume r = resume_operator(def, info, join_inputs(), 6);
  for (size_t n = 0; n < r.state.size(); n += 97) {
    try {
      OperatorDriver d(def, info, r.state.substr(0, n));
      ADD_FAILURE() << "restored from " << n << " of " << r.state.size() << " bytes";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(OperatorDriver::state_name(info)), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace tensair::ops
