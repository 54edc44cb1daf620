// Checkpoints of the drift detectors (Detector::save_state / load_state) and of the
// drift_detector operator: a detector loaded from a saved state and fed the same values reports
// the same detections with the same state() as the original; a damaged or mismatched state is
// a one-line DataError.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "tensair/common/error.hpp"
#include "tensair/drift/detector.hpp"
#include "tensair/drift/evaluate.hpp"
#include "tensair/drift/operator.hpp"
#include "testing/operator_driver.hpp"

namespace tensair::drift {
namespace {

using dataflow::BatchBuilder;
using dataflow::DType;
using testing::Input;
using testing::instance_info;
using testing::OperatorDriver;
using testing::Resume;
using testing::resume_operator;

// A loss stream with level shifts up and down (and a variance change), from a fixed seed.
std::vector<double> loss_stream(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0, 1);
  std::vector<double> out;
  for (size_t i = 0; i < n; ++i) {
    const size_t phase = (i / 700) % 4;
    const double mean = phase == 1 ? 3 : phase == 3 ? -2 : 0;
    const double sd = phase == 2 ? 3 : 0.5;
    out.push_back(mean + sd * noise(rng));
  }
  return out;
}

// 0/1 errors whose rate steps from 0.1 to 0.6 and back.
std::vector<double> error_stream(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<double> out;
  for (size_t i = 0; i < n; ++i) {
    const double p = (i / 900) % 2 ? 0.6 : 0.1;
    out.push_back(std::uniform_real_distribution<double>(0, 1)(rng) < p ? 1.0 : 0.0);
  }
  return out;
}

struct Case {
  std::string name;
  ParamMap params;
  bool errors = false;  // 0/1 input
};

std::vector<Case> cases() {
  return {{"optwin", {}},
          {"optwin", {{"w_length", "150"}, {"direction", "both"}}},  // a full, sliding window
          {"optwin", {{"input", "error"}, {"w_length", "400"}}, true},
          {"adwin", {}},
          {"adwin", {{"input", "error"}, {"direction", "both"}, {"clock", "1"}}, true},
          {"page-hinkley", {{"threshold", "20"}, {"direction", "both"}}},
          {"page-hinkley", {{"input", "correct"}, {"threshold", "15"}}, true}};
}

std::string describe(const Case& c) {
  std::string s = c.name;
  for (const auto& [k, v] : c.params) s += " " + k + "=" + v;
  return s;
}

// Feeds values[from, to) and returns the indices detected at and state() after each value.
struct Trace {
  std::vector<size_t> detections;
  std::vector<nlohmann::json> states;
};
Trace feed(Detector& d, const std::vector<double>& values, size_t from, size_t to) {
  Trace t;
  for (size_t i = from; i < to; ++i) {
    if (d.update(values[i])) t.detections.push_back(i);
    t.states.push_back(d.state());
  }
  return t;
}

TEST(DetectorCheckpointTest, LoadedDetectorReportsTheSameDetectionsAndState) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const std::vector<double> values = c.errors ? error_stream(4000, 3) : loss_stream(4000, 3);
    size_t total_detections = 0;
    for (size_t at : {0, 1, 29, 151, 700, 1234, 2105, 3999, 4000}) {
      SCOPED_TRACE("saved after " + std::to_string(at) + " values");
      auto original = make_detector(c.name, c.params);
      feed(*original, values, 0, at);
      const std::string state = original->save_state();
      auto loaded = make_detector(c.name, c.params);
      loaded->load_state(state);
      EXPECT_EQ(loaded->state(), original->state());
      const Trace expected = feed(*original, values, at, values.size());
      const Trace actual = feed(*loaded, values, at, values.size());
      EXPECT_EQ(actual.detections, expected.detections);
      ASSERT_EQ(actual.states.size(), expected.states.size());
      for (size_t i = 0; i < expected.states.size(); ++i) {
        ASSERT_EQ(actual.states[i], expected.states[i]) << "after value " << at + i;
      }
      if (at == 0) total_detections = expected.detections.size();
    }
    // The streams change: every detector finds something to report, so the traces compare
    // detections, not only quiet states.
    EXPECT_GT(total_detections, 0u);
  }
}

TEST(DetectorCheckpointTest, DamagedOrMismatchedStateIsAOneLineDataError) {
  const std::vector<double> values = loss_stream(500, 4);
  for (const std::string& name : detector_names()) {
    SCOPED_TRACE(name);
    auto d = make_detector(name);
    feed(*d, values, 0, values.size());
    const std::string state = d->save_state();
    auto expect_error = [&](Detector& target, const std::string& bad, const std::string& says) {
      try {
        target.load_state(bad);
        ADD_FAILURE() << "loaded a damaged state (" << says << ")";
      } catch (const DataError& e) {
        const std::string what = e.what();
        EXPECT_EQ(what.find('\n'), std::string::npos) << what;
        EXPECT_NE(what.find(says), std::string::npos) << what;
      }
    };
    auto fresh = make_detector(name);
    for (size_t n = 0; n < state.size(); n += 13) {
      expect_error(*fresh, state.substr(0, n), name + " state: ");
    }
    expect_error(*fresh, state + "xyz", "bytes left over");
    // Another detector's state, and the same detector with other parameters.
    const std::string other = name == "adwin" ? "optwin" : "adwin";
    expect_error(*make_detector(other), state, "was saved by a \"" + name + "\" detector");
    auto direction = make_detector(name, {{"direction", "both"}});
    expect_error(*direction, state, "was saved with the parameters");
    // A failed load leaves the detector as it was.
    EXPECT_EQ(fresh->state(), make_detector(name)->state());
  }
  PeriodicDetector p(10);
  feed(p, values, 0, 25);
  PeriodicDetector q(10);
  q.load_state(p.save_state());
  EXPECT_EQ(q.state(), p.state());
  EXPECT_THROW(PeriodicDetector(11).load_state(p.save_state()), DataError);
}

// ---- the drift_detector operator -------------------------------------------------------------

// Model-metrics-like batches: loss, phase (train/predict in turns), step, records.
std::vector<Input> metrics_batches(const std::vector<double>& losses, size_t rows) {
  std::vector<Input> out;
  dataflow::Schema s{{"loss", DType::kFloat64, {}},
                     {"phase", DType::kString, {}},
                     {"step", DType::kInt64, {}},
                     {"records", DType::kInt64, {}}};
  for (size_t start = 0; start < losses.size(); start += rows) {
    BatchBuilder b(s);
    for (size_t i = start; i < std::min(losses.size(), start + rows); ++i) {
      b.column(0).append<double>(losses[i]);
      b.column(1).append_string((i / 1000) % 4 == 3 ? "train" : "predict");
      b.column(2).append<int64_t>(static_cast<int64_t>(i / 10));
      b.column(3).append<int64_t>(static_cast<int64_t>(i * 32));
    }
    out.push_back({0, dataflow::share(b.finish())});
  }
  return out;
}

TEST(DetectorOperatorCheckpointTest, ResumedOperatorReportsTheSameDrifts) {
  const std::vector<Input> inputs = metrics_batches(loss_stream(5000, 8), 100);
  for (const char* watch : {"all", "predict"}) {
    for (const char* detector : {"optwin", "adwin", "page-hinkley"}) {
      SCOPED_TRACE(std::string(detector) + ", watch " + watch);
      DetectorOperatorOptions o;
      o.detector = detector;
      o.watch = watch;
      o.reset_optimizer = true;
      if (o.detector == "page-hinkley") o.params = {{"threshold", "20"}, {"direction", "both"}};
      auto def = detector_operator(o);
      // After batch 30 (row 3000) the rows are "train": watching "predict", the restored
      // operator must reset its detector there as the original does (fed_since_reset_ > 0).
      for (size_t at : {0, 1, 9, 17, 30, 31, 40, 50}) {
        SCOPED_TRACE("snapshot after " + std::to_string(at) + " batches");
        Resume r = resume_operator(def, instance_info("drift"), inputs, at);
        EXPECT_TRUE(testing::same_records(r.reference, r.resumed));
        EXPECT_TRUE(testing::concatenation_is(r.head, r.reference, r.uninterrupted));
      }
      // Drifts are reported on both sides of a mid-stream snapshot.
      Resume mid = resume_operator(def, instance_info("drift"), inputs, 17);
      EXPECT_FALSE(mid.head.emitted(1).empty());
      EXPECT_FALSE(mid.resumed.emitted(1).empty());
    }
  }
}

TEST(DetectorOperatorCheckpointTest, DamagedStateIsADataErrorNamingTheState) {
  DetectorOperatorOptions o;
  auto def = detector_operator(o);
  const auto info = instance_info("drift");
  Resume r = resume_operator(def, info, metrics_batches(loss_stream(800, 2), 100), 8);
  for (size_t n = 0; n < r.state.size(); n += 17) {
    try {
      OperatorDriver d(def, info, r.state.substr(0, n));
      ADD_FAILURE() << "restored from " << n << " of " << r.state.size() << " bytes";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(OperatorDriver::state_name(info)), std::string::npos)
          << e.what();
    }
  }
  // A detector of other parameters rejects the state, naming both.
  o.params = {{"rho", "0.25"}};
  try {
    OperatorDriver d(detector_operator(o), info, r.state);
    ADD_FAILURE() << "an optwin with another rho took the state";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(OperatorDriver::state_name(info)), std::string::npos) << what;
    EXPECT_NE(what.find("optwin state: was saved with the parameters"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace tensair::drift
